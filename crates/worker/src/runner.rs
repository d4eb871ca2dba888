//! A worker child: consumes both queues (documents, and QuickBooks send-alls) one job at a
//! time each, runs the jobs of `fom_core::jobs` with a span naming the job, beats its
//! heartbeat, and leaves when it crosses its budget so the supervisor can start a fresh
//! process. This is the queue library's glue: claiming a delivered job, mapping how it ended
//! onto the queue, and handing claimed work back on a clean stop.
//!
//! Redis going away is waited out below this module (`SteadyConnection`). Should a consumer
//! still stop (Redis away for longer than `REDIS_OUTAGE_WAIT_SECS`, or the queue library no
//! longer beating), the child does not linger alive but idle: it hands its jobs back without
//! counting a crash of their documents and exits with [`EXIT_QUEUE`] for a fresh start.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use fom_core::ceiling::Ceiling;
use fom_core::jobs::{
    Begin, DocumentJob, Job, JobContext, JobEnd, JobState, JobStore, QboJob, Queued,
};
use fom_core::memory;
use fom_core::pipeline::PipelineSettings;
use fom_core::queue::QueueName;
use fom_core::workers::Heartbeat;
use fom_queue::RedisQueues;
use tracing::Instrument;

use crate::settings::WorkerSettings;
use crate::supervisor::{EXIT_BUDGET, EXIT_QUEUE};

/// How long the other consumer gets to hand back its job after one consumer stopped.
const LOST_QUEUE_DRAIN: Duration = Duration::from_secs(20);

/// How a worker child stops, in one place. A signal (SIGTERM, SIGINT) or its own budget ends
/// the queue consumers: no new jobs. A signal, or the critical memory threshold reached inside
/// a job, also ends the running job at its next page or row, which hands it back to the queue.
#[derive(Clone)]
struct Stop {
    /// Read by the running job (on its blocking thread too).
    jobs: Arc<AtomicBool>,
    consumers: tokio_util::sync::CancellationToken,
}

impl Stop {
    fn new() -> Self {
        Self {
            jobs: Arc::new(AtomicBool::new(false)),
            consumers: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Shutdown: stop taking jobs and stop the running one.
    fn shut_down(&self) {
        self.jobs.store(true, Ordering::SeqCst);
        self.consumers.cancel();
    }

    /// The budget is spent: take no more jobs (the one just finished is the last).
    fn take_no_more(&self) {
        self.consumers.cancel();
    }

    fn jobs_stopping(&self) -> bool {
        self.jobs.load(Ordering::SeqCst)
    }

    /// Resolves once the consumers are to stop, as apalis's `run_until` wants.
    async fn consumers_stopped(self) -> Result<(), std::io::Error> {
        self.consumers.cancelled().await;
        Ok(())
    }
}

/// Shared by the handlers, the heartbeat task and the shutdown path.
struct Runner {
    worker_id: String,
    max_rss_mb: f64,
    max_jobs: u64,
    jobs: JobStore,
    /// One context per queue: each claims jobs under its own consumer name.
    documents: JobContext,
    sends: JobContext,
    jobs_done: AtomicU64,
    exit_code: AtomicI32,
    stop: Stop,
    /// Set by a job that stopped at the critical memory threshold.
    memory_critical: Arc<AtomicBool>,
    current_job: Mutex<Option<String>>,
    /// A job is running: the memory watchdog may end the process for it.
    busy: Arc<AtomicBool>,
    /// Jobs claimed and not yet ended, with the owner name they were claimed under: handed
    /// back if a consumer stops under them.
    held: Mutex<Vec<(String, String)>>,
    /// The last queue-library heartbeat of each consumer (documents, sends), ms since epoch.
    consumer_beats: [AtomicI64; 2],
    /// Set when a consumer stopped beating while Redis answered.
    queue_lost: tokio_util::sync::CancellationToken,
}

impl Runner {
    fn context(&self, queue: QueueName) -> &JobContext {
        match queue {
            QueueName::Documents => &self.documents,
            QueueName::Qbo => &self.sends,
        }
    }

    fn consumer_beat(&self, queue: QueueName) -> &AtomicI64 {
        match queue {
            QueueName::Documents => &self.consumer_beats[0],
            QueueName::Qbo => &self.consumer_beats[1],
        }
    }

    fn hold(&self, id: &str, owner: &str, held: bool) {
        if let Ok(mut h) = self.held.lock() {
            h.retain(|(j, _)| j != id);
            if held {
                h.push((id.to_string(), owner.to_string()));
            }
        }
    }

    fn set_current(&self, job: Option<&str>) {
        if let Ok(mut c) = self.current_job.lock() {
            *c = job.map(str::to_string);
        }
        self.busy.store(job.is_some(), Ordering::SeqCst);
    }
}

pub async fn run(
    pipeline: PipelineSettings,
    ws: WorkerSettings,
    id: Option<String>,
) -> anyhow::Result<i32> {
    let connected = ws.connect().await?;
    let services = connected.services;
    let queues = connected.queues;
    let worker_id = id.unwrap_or_else(|| {
        format!(
            "{}-{}-{}",
            std::env::var("DYNO").unwrap_or_else(|_| "local".into()),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    });
    let send_worker_id = format!("{worker_id}-qbo");
    let pipeline = Arc::new(pipeline);
    let stop = Stop::new();
    let memory_critical = Arc::new(AtomicBool::new(false));
    let test_hook = ws
        .test_hooks
        .then_some(crate::test_hooks::before_pipeline as fn(&str, &AtomicBool));
    let context = |worker: &str| JobContext {
        services: services.clone(),
        pipeline: pipeline.clone(),
        worker: worker.to_string(),
        stop: stop.jobs.clone(),
        memory_critical: memory_critical.clone(),
        test_hook,
    };
    let runner = Arc::new(Runner {
        worker_id: worker_id.clone(),
        max_rss_mb: ws.max_rss_mb,
        max_jobs: ws.max_jobs,
        jobs: services.jobs.clone(),
        documents: context(&worker_id),
        sends: context(&send_worker_id),
        jobs_done: AtomicU64::new(0),
        exit_code: AtomicI32::new(0),
        stop: stop.clone(),
        memory_critical,
        current_job: Mutex::new(None),
        busy: Arc::new(AtomicBool::new(false)),
        held: Mutex::new(Vec::new()),
        consumer_beats: [
            AtomicI64::new(fom_core::jobs::now_ms()),
            AtomicI64::new(fom_core::jobs::now_ms()),
        ],
        queue_lost: tokio_util::sync::CancellationToken::new(),
    });
    let watched = runner.clone();
    let runtime = tokio::runtime::Handle::current();
    Ceiling::from_thresholds(&pipeline.monitor.thresholds).enforce(
        runner.busy.clone(),
        move |rss| {
            let job = watched.current_job.lock().ok().and_then(|c| c.clone());
            if let Some(id) = &job {
                // Briefly: the process is about to be past its ceiling.
                let noted = runtime.block_on(async {
                    tokio::time::timeout(Duration::from_millis(500), watched.jobs.note_ceiling(id))
                        .await
                });
                if !matches!(noted, Ok(Ok(()))) {
                    tracing::warn!("the memory ceiling was not noted on the job");
                }
            }
            tracing::error!(
                rss_mb = rss,
                job = job.as_deref().unwrap_or("-"),
                "Memory Monitor: worker {} ending: the running job needs more memory than this \
                 worker may use (RSS {rss:.1} MB); the queue takes the job back",
                watched.worker_id
            );
        },
    )?;
    pipeline.monitor.log(&format!("worker {worker_id} start"));
    if let Err(e) = services.store.sweep().await {
        tracing::warn!(error = %e, "upload sweep skipped");
    }
    let heartbeat = tokio::spawn(heartbeat_loop(
        runner.clone(),
        queues.connection(),
        ws.services.heartbeat,
        ws.services.heartbeat * ws.services.missed_heartbeats.max(1) as u32,
    ));

    let on_signal = stop.clone();
    tokio::spawn(async move {
        crate::child_signal::wait().await;
        tracing::info!("worker: shutdown requested");
        on_signal.shut_down();
        // The supervisor kills a child that has not drained by then; one whose supervisor is
        // gone (the signal came from PR_SET_PDEATHSIG) must leave by itself all the same.
        tokio::time::sleep(crate::supervisor::DRAIN).await;
        tracing::error!("worker: did not drain in time after the shutdown request; leaving");
        std::process::exit(1);
    });
    // A push wakes this child's consumers at once (one more Redis connection, for the
    // subscription).
    let wake = fom_queue::wake::Wakeups::listen(&ws.services.redis.url, ws.services.keys());
    let documents = WorkerBuilder::new(worker_id.clone())
        .backend(queues.woken_storage::<DocumentJob>(&wake))
        .data(runner.clone())
        .concurrency(1)
        .on_event(beat_of(&runner, QueueName::Documents))
        .build(handle::<DocumentJob>);
    let sends = WorkerBuilder::new(send_worker_id.clone())
        .backend(queues.woken_storage::<QboJob>(&wake))
        .data(runner.clone())
        .concurrency(1)
        .on_event(beat_of(&runner, QueueName::Qbo))
        .build(handle::<QboJob>);
    let (result, lost) = consume(
        &runner,
        documents.run_until(stop.clone().consumers_stopped()),
        sends.run_until(stop.clone().consumers_stopped()),
    )
    .await;
    heartbeat.abort();
    let clean_up = async {
        if lost {
            hand_back_held(&runner).await;
        }
        deregister(&queues, &worker_id, &send_worker_id).await;
        if let Err(e) = services.workers.remove(&worker_id).await {
            tracing::warn!(error = %e, "worker: heartbeat not removed");
        }
    };
    // Heroku kills 30 s after SIGTERM, and a child whose supervisor died must not linger
    // waiting for an absent Redis: what is left is handed back by the supervisor's releaser
    // or another worker's orphan sweep.
    if tokio::time::timeout(CLEAN_UP_WAIT, clean_up).await.is_err() {
        tracing::warn!(
            wait_s = CLEAN_UP_WAIT.as_secs(),
            "worker: Redis did not answer while stopping; claimed jobs are handed back by the \
             supervisor or another worker"
        );
    }
    if lost {
        return Ok(EXIT_QUEUE);
    }
    if let Err(e) = result {
        tracing::error!(error = %e, "worker stopped with an error");
        return Ok(1);
    }
    Ok(runner.exit_code.load(Ordering::SeqCst))
}

/// Notes each queue-library heartbeat of one consumer: the proof it still fetches.
fn beat_of(runner: &Arc<Runner>, queue: QueueName) -> impl Fn(&WorkerContext, &Event) {
    let runner = runner.clone();
    move |_, event| {
        if matches!(event, Event::HeartBeat) {
            runner
                .consumer_beat(queue)
                .store(fom_core::jobs::now_ms(), Ordering::Relaxed);
        }
    }
}

/// Runs both consumers until they are told to stop. One that ends by itself, or stops
/// beating, is a lost queue: the other is stopped too (its job handed back at its next page,
/// for at most [`LOST_QUEUE_DRAIN`]). Returns the consumers' result and whether the queue
/// was lost.
async fn consume<D, S>(runner: &Runner, documents: D, sends: S) -> (Result<(), WorkerError>, bool)
where
    D: std::future::Future<Output = Result<(), WorkerError>>,
    S: std::future::Future<Output = Result<(), WorkerError>>,
{
    tokio::pin!(documents, sends);
    let (mut docs_end, mut sends_end) = (None, None);
    let mut lost = false;
    let mut drain_until: Option<tokio::time::Instant> = None;
    while docs_end.is_none() || sends_end.is_none() {
        tokio::select! {
            r = &mut documents, if docs_end.is_none() => docs_end = Some(r),
            r = &mut sends, if sends_end.is_none() => sends_end = Some(r),
            () = runner.queue_lost.cancelled(), if !lost => lost = true,
            () = sleep_until(drain_until), if drain_until.is_some() => {
                tracing::error!("worker: a consumer did not stop in time; leaving without it");
                break;
            }
        }
        // Told to stop (signal or budget): both consumers drain in their own time.
        let asked = runner.stop.consumers.is_cancelled() && !lost;
        if !asked && !lost && (docs_end.is_some() || sends_end.is_some()) {
            let which = if docs_end.is_some() {
                "documents"
            } else {
                "QuickBooks"
            };
            let why = docs_end
                .as_ref()
                .or(sends_end.as_ref())
                .and_then(|r| r.as_ref().err().map(ToString::to_string))
                .unwrap_or_else(|| "stopped".into());
            tracing::error!(
                queue = which,
                error = %why,
                "worker: a queue consumer stopped; handing back its jobs for a fresh worker"
            );
            lost = true;
        }
        if lost && drain_until.is_none() {
            runner.stop.shut_down();
            drain_until = Some(tokio::time::Instant::now() + LOST_QUEUE_DRAIN);
        }
    }
    let result = match (docs_end, sends_end) {
        (Some(Err(e)), _) | (_, Some(Err(e))) => Err(e),
        _ => Ok(()),
    };
    (result, lost)
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The longest a stopping child waits for Redis to hand back and deregister.
const CLEAN_UP_WAIT: Duration = Duration::from_secs(20);

/// After a lost queue: jobs still claimed go back to "queued" without counting a crash of
/// their documents (the queue, not the document, stopped them). Waits for Redis as long as
/// the connection does.
async fn hand_back_held(runner: &Runner) {
    let held = runner.held.lock().map(|h| h.clone()).unwrap_or_default();
    for (id, owner) in held {
        let why = "the worker lost its connection to the queue; the job will run again";
        match runner.jobs.hand_back(&id, &owner, why, false).await {
            Ok(Some(_)) => tracing::info!(job = %id, "worker: job handed back"),
            Ok(None) => {}
            Err(e) => tracing::error!(job = %id, error = %e, "worker: job not handed back"),
        }
    }
}

/// Hands back what each consumer still holds and removes its name from the queue library.
async fn deregister(queues: &RedisQueues, documents: &str, sends: &str) {
    for (queue, name) in [(QueueName::Documents, documents), (QueueName::Qbo, sends)] {
        match fom_queue::release_and_deregister(queues, queue, name).await {
            Ok(n) if n > 0 => {
                tracing::info!(tasks = n, "worker: claimed tasks handed back to the queue")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "worker: could not deregister cleanly"),
        }
    }
}

/// Writes this child's heartbeat to the registry, and watches its consumers: one that has
/// not beaten for `stale_after` while Redis answered has stopped fetching.
async fn heartbeat_loop(
    runner: Arc<Runner>,
    redis: fom_core::redis_conn::SteadyConnection,
    every: Duration,
    stale_after: Duration,
) {
    let registry = runner.documents.services.workers.clone();
    let started = fom_core::jobs::now_ms();
    let stale_ms = stale_after.as_millis() as i64;
    // The operations page's series.
    let mut sampler = fom_core::workers::Sampler::default();
    loop {
        let now = fom_core::jobs::now_ms();
        // Beats missed while Redis was away say nothing about the consumers.
        let calm_since = redis.outage_ended_ms().unwrap_or(0).max(started);
        let away = redis.away_since_ms().is_some();
        let stalled = [QueueName::Documents, QueueName::Qbo]
            .into_iter()
            .find(|q| {
                now - runner
                    .consumer_beat(*q)
                    .load(Ordering::Relaxed)
                    .max(calm_since)
                    > stale_ms
            });
        let stopping = runner.stop.consumers.is_cancelled();
        let beat = Heartbeat {
            id: runner.worker_id.clone(),
            pid: std::process::id(),
            rss_mb: memory::rss_mb(),
            jobs_done: runner.jobs_done.load(Ordering::Relaxed),
            current_job: runner.current_job.lock().ok().and_then(|c| c.clone()),
            last_seen: now,
            consuming: !away && !stopping && stalled.is_none(),
        };
        if let Some(mb) = sampler.reading(now, beat.rss_mb) {
            match registry.note_rss(&beat.id, now, mb).await {
                Ok(()) => sampler.written(now),
                Err(e) => tracing::debug!(error = %e, "worker: RSS sample not written"),
            }
        }
        let wrote = Instant::now();
        match registry.beat(&beat).await {
            // Written at once: Redis answers, so a consumer that has not beaten has stopped.
            Ok(()) if wrote.elapsed() < every => {
                if let (Some(q), false, false) = (stalled, away, stopping) {
                    tracing::error!(
                        queue = q.as_str(),
                        stale_s = stale_after.as_secs(),
                        "worker: a queue consumer stopped beating while Redis answers"
                    );
                    runner.queue_lost.cancel();
                }
            }
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "worker heartbeat not written"),
        }
        tokio::time::sleep(every).await;
    }
}

/// One delivered job of kind `J`: claim, run inside a span naming it, record how it ended,
/// then check the budget.
async fn handle<J: Job>(
    job: Queued<J>,
    runner: Data<Arc<Runner>>,
    wrk: WorkerContext,
) -> Result<(), BoxDynError> {
    let runner: Arc<Runner> = (*runner).clone();
    let span =
        tracing::info_span!("job", id = %job.job_id, queue = J::QUEUE.as_str(), kind = J::NAME);
    let ctx = runner.context(J::QUEUE);
    async {
        match runner.jobs.begin(&job.job_id, &ctx.worker).await? {
            Begin::Run => {}
            // Delivered again after it finished, or its record is gone: nothing to run.
            Begin::AlreadyDone | Begin::Missing => return Ok(()),
            Begin::Dead(why) => {
                tracing::error!("job dead: {why}");
                return Err(AbortError::new(std::io::Error::other(why)).into());
            }
        }
        // Held until its end is recorded: if the consumer stops under it, it goes back.
        runner.hold(&job.job_id, &ctx.worker, true);
        let verdict = run_claimed::<J>(&runner, ctx, &job.job_id).await;
        runner.hold(&job.job_id, &ctx.worker, false);
        if J::QUEUE == QueueName::Documents {
            check_budget(&runner, &wrk);
        } else if runner.stop.jobs_stopping() {
            let _ = wrk.stop();
        }
        verdict
    }
    .instrument(span)
    .await
}

/// Runs a job this worker has claimed and records how it ended.
async fn run_claimed<J: Job>(
    runner: &Runner,
    ctx: &JobContext,
    id: &str,
) -> Result<(), BoxDynError> {
    runner.set_current(Some(id));
    // The job's own peak, not the process's since start: what the budget check weighs.
    memory::reset_peak_rss();
    let ended = J::run(id, ctx).await;
    let peak = memory::peak_rss_mb();
    if let Err(e) = runner.jobs.record_peak(id, peak).await {
        tracing::warn!(error = %e, "job peak not recorded");
    }
    // What a child needs, for the supervisor's scaling (WORKER_PROCESSES=auto).
    if let Err(e) = ctx.services.workers.note_peak(peak).await {
        tracing::warn!(error = %e, "job peak not noted for scaling");
    }
    runner.set_current(None);
    let jobs = &runner.jobs;
    match ended {
        Ok(JobEnd::Done) => Ok(()),
        Ok(JobEnd::HandedBack { why, memory }) => {
            // Back to the queue, not a failure of the document; but a fresh worker that ran
            // out of memory on it counts towards the crash limit, or it would loop for ever.
            let fresh = runner.jobs_done.load(Ordering::SeqCst) == 0;
            let state = jobs
                .hand_back(id, &ctx.worker, &why, memory && fresh)
                .await?;
            if state == Some(JobState::Dead) {
                Err(AbortError::new(std::io::Error::other("needs more memory than allowed")).into())
            } else {
                Err(RetryAfterError::new(std::io::Error::other(why), Duration::from_secs(1)).into())
            }
        }
        Ok(JobEnd::Failed(why)) => {
            jobs.settle(id, &ctx.worker, JobState::Failed, &why).await?;
            Err(AbortError::new(std::io::Error::other(why)).into())
        }
        Ok(JobEnd::Dead(why)) => {
            jobs.settle(id, &ctx.worker, JobState::Dead, &why).await?;
            Err(AbortError::new(std::io::Error::other(why)).into())
        }
        Err(fault) => {
            // Trouble around the job, not in it: failed for now, and the queue tries again.
            let why = fault.to_string();
            tracing::warn!(error = %why, "job failed; the queue will try it again");
            jobs.settle(id, &ctx.worker, JobState::Failed, &why).await?;
            Err(std::io::Error::other(why).into())
        }
    }
}

/// After each document: leave when over the memory or job budget, or when stopping.
fn check_budget(runner: &Runner, wrk: &WorkerContext) {
    let done = runner.jobs_done.fetch_add(1, Ordering::SeqCst) + 1;
    let rss = memory::rss_mb();
    // Peak since the job started: a job that briefly needed a lot leaves the heap fragmented
    // even when RSS has come back down, so its worker is recycled too.
    let peak = memory::peak_rss_mb().max(rss);
    let over_rss = peak > runner.max_rss_mb;
    let over_jobs = runner.max_jobs > 0 && done >= runner.max_jobs;
    let critical = runner.memory_critical.load(Ordering::SeqCst);
    if !(over_rss || over_jobs || critical || runner.stop.jobs_stopping()) {
        return;
    }
    if over_rss || over_jobs {
        let why = if over_rss {
            format!(
                "job peak {peak:.1} MB (RSS now {rss:.1} MB) over the worker budget of {} MB",
                runner.max_rss_mb
            )
        } else {
            format!("{done} jobs done, the limit is {}", runner.max_jobs)
        };
        tracing::warn!(
            rss_mb = rss,
            peak_rss_mb = peak,
            "Memory Monitor: worker {} recycling: {why}",
            runner.worker_id
        );
    }
    if over_rss || over_jobs || critical {
        runner.exit_code.store(EXIT_BUDGET, Ordering::SeqCst);
    }
    let _ = wrk.stop();
    runner.stop.take_no_more();
}
