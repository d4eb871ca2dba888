//! A worker child: consumes both queues (documents, and QuickBooks send-alls) one job at a
//! time each, runs the jobs of `fom_core::jobs` with a span naming the job, beats its
//! heartbeat, and leaves when it crosses its budget so the supervisor can start a fresh
//! process. This is the queue library's glue: claiming a delivered job, mapping how it ended
//! onto the queue, and handing claimed work back on a clean stop.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis::prelude::*;
use fom_core::ceiling::Ceiling;
use fom_core::jobs::{
    Begin, DocumentJob, Job, JobContext, JobEnd, JobState, JobStore, Queued, SendAllJob,
};
use fom_core::memory;
use fom_core::pipeline::PipelineSettings;
use fom_core::queue::QueueName;
use fom_core::workers::Heartbeat;
use fom_queue::RedisQueues;
use tracing::Instrument;

use crate::settings::WorkerSettings;
use crate::supervisor::EXIT_BUDGET;

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
}

impl Runner {
    fn context(&self, queue: QueueName) -> &JobContext {
        match queue {
            QueueName::Documents => &self.documents,
            QueueName::Qbo => &self.sends,
        }
    }

    fn set_current(&self, job: Option<&str>) {
        if let Ok(mut c) = self.current_job.lock() {
            *c = job.map(str::to_string);
        }
        self.busy.store(job.is_some(), Ordering::SeqCst);
    }
}

pub async fn run(pipeline: PipelineSettings, ws: WorkerSettings) -> anyhow::Result<i32> {
    let connected = ws.connect().await?;
    let services = connected.services;
    let queues = connected.queues;
    let worker_id = format!(
        "{}-{}-{}",
        std::env::var("DYNO").unwrap_or_else(|_| "local".into()),
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
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
    let heartbeat = tokio::spawn(heartbeat_loop(runner.clone(), ws.services.heartbeat));

    let on_signal = stop.clone();
    tokio::spawn(async move {
        crate::child_signal::wait().await;
        tracing::info!("worker: shutdown requested");
        on_signal.shut_down();
    });
    let documents = WorkerBuilder::new(worker_id.clone())
        .backend(queues.storage::<DocumentJob>())
        .data(runner.clone())
        .concurrency(1)
        .build(handle::<DocumentJob>);
    let sends = WorkerBuilder::new(send_worker_id.clone())
        .backend(queues.storage::<SendAllJob>())
        .data(runner.clone())
        .concurrency(1)
        .build(handle::<SendAllJob>);
    let (result, send_result) = tokio::join!(
        documents.run_until(stop.clone().consumers_stopped()),
        sends.run_until(stop.clone().consumers_stopped())
    );
    heartbeat.abort();

    deregister(&queues, &worker_id, &send_worker_id).await;
    if let Err(e) = services.workers.remove(&worker_id).await {
        tracing::warn!(error = %e, "worker: heartbeat not removed");
    }
    if let Err(e) = result.and(send_result) {
        tracing::error!(error = %e, "worker stopped with an error");
        return Ok(1);
    }
    Ok(runner.exit_code.load(Ordering::SeqCst))
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

async fn heartbeat_loop(runner: Arc<Runner>, every: Duration) {
    let registry = runner.documents.services.workers.clone();
    loop {
        let beat = Heartbeat {
            id: runner.worker_id.clone(),
            pid: std::process::id(),
            rss_mb: memory::rss_mb(),
            jobs_done: runner.jobs_done.load(Ordering::Relaxed),
            current_job: runner.current_job.lock().ok().and_then(|c| c.clone()),
            last_seen: fom_core::jobs::now_ms(),
        };
        if let Err(e) = registry.beat(&beat).await {
            tracing::warn!(error = %e, "worker heartbeat not written");
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
        let verdict = run_claimed::<J>(&runner, ctx, &job.job_id).await;
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
