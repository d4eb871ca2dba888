//! A worker child: takes one document job at a time from the queue, runs the page pipeline off
//! the async runtime (so queue heartbeats continue), records progress, and leaves when it
//! crosses its budget so the supervisor can start a fresh process.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis::prelude::*;
use fom_core::deposits::DepositStore;
use fom_core::donation::Donation;
use fom_core::extract::ExtractError;
use fom_core::jobs::{Begin, JobState, JobStore};
use fom_core::keys::WORKER_TTL;
use fom_core::memory;
use fom_core::pipeline::{process_file, FileOutcome};
use fom_core::store::UploadStore;
use redis::AsyncCommands;
use serde::Serialize;

use crate::cli::Settings;
use crate::queue::{Queue, QueueSettings, EXIT_BUDGET};
use fom_core::queue::{DocJob, SendJob};

const RELEASE_AND_DEREGISTER: &str = r"
local ids = redis.call('SMEMBERS', KEYS[1])
if #ids > 0 then
  redis.call('RPUSH', KEYS[2], unpack(ids))
  redis.call('DEL', KEYS[1])
end
redis.call('ZREM', KEYS[3], ARGV[1])
return #ids
";

/// Shared by the handler, the heartbeat task and the shutdown path.
struct Child {
    worker_id: String,
    settings: Arc<Settings>,
    max_rss_mb: f64,
    max_jobs: u64,
    test_hooks: bool,
    jobs: JobStore,
    store: UploadStore,
    deposits: DepositStore,
    keys: fom_core::keys::Keys,
    conn: redis::aio::ConnectionManager,
    upload_retention: Duration,
    jobs_done: AtomicU64,
    exit_code: AtomicI32,
    /// Set on SIGTERM/SIGINT or at the critical memory threshold: stop at the next page.
    stopping: Arc<AtomicBool>,
    current_job: Mutex<Option<String>>,
    /// Ends `run_until`'s wait when the worker stops on its own (budget), not by signal.
    stopped_itself: Arc<tokio::sync::Notify>,
    /// QuickBooks, when set up: matching after extraction, and send-all jobs.
    qbo: Option<fom_core::qbo::sync::Qbo>,
}

/// What a finished job stores as its result.
#[derive(Serialize)]
struct JobResult<'a> {
    file: &'a str,
    pages: u32,
    records: &'a [Donation],
    errors: &'a [ExtractError],
    /// Model tokens spent (Gemini).
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<fom_core::extract::gemini::TokenUsage>,
}

pub async fn run(settings: Settings, qs: QueueSettings) -> anyhow::Result<i32> {
    let queue = Queue::connect(&qs).await?;
    let worker_id = format!(
        "{}-{}-{}",
        std::env::var("DYNO").unwrap_or_else(|_| "local".into()),
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let child = Arc::new(Child {
        worker_id: worker_id.clone(),
        settings: Arc::new(settings),
        max_rss_mb: qs.max_rss_mb,
        max_jobs: qs.max_jobs,
        test_hooks: qs.test_hooks,
        jobs: queue.jobs.clone(),
        store: queue.store.clone(),
        deposits: queue.deposits.clone(),
        keys: qs.keys.clone(),
        conn: queue.conn.clone(),
        upload_retention: qs.upload_retention,
        jobs_done: AtomicU64::new(0),
        exit_code: AtomicI32::new(0),
        stopping: Arc::new(AtomicBool::new(false)),
        current_job: Mutex::new(None),
        stopped_itself: Arc::new(tokio::sync::Notify::new()),
        qbo: queue.qbo.clone(),
    });
    child
        .settings
        .monitor
        .log(&format!("worker {worker_id} start"));
    sweep_uploads(&child).await;
    let heartbeat = tokio::spawn(heartbeat_loop(
        child.clone(),
        queue.conn.clone(),
        qs.keys.clone(),
        qs.heartbeat,
    ));

    let stopping = child.stopping.clone();
    let stopped_itself = child.stopped_itself.clone();
    // One stop for both queues' workers: a signal, or this worker stopping on its own.
    let stop = tokio_util::sync::CancellationToken::new();
    let stop_all = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = crate::child_signal::wait() => {
                // Stop taking jobs; the running one stops at its next page and is handed back.
                stopping.store(true, Ordering::SeqCst);
                tracing::info!("worker: shutdown requested");
            }
            () = stopped_itself.notified() => {}
        }
        stop_all.cancel();
    });
    let until = |t: tokio_util::sync::CancellationToken| async move {
        t.cancelled().await;
        Ok::<(), std::io::Error>(())
    };
    let send_worker_id = format!("{worker_id}-qbo");
    let documents = WorkerBuilder::new(worker_id.clone())
        .backend(queue.storage())
        .data(child.clone())
        .concurrency(1)
        .build(handle);
    let sends = WorkerBuilder::new(send_worker_id.clone())
        .backend(queue.send_storage())
        .data(child.clone())
        .concurrency(1)
        .build(handle_send);
    let (result, send_result) = tokio::join!(
        documents.run_until(until(stop.clone())),
        sends.run_until(until(stop.clone()))
    );
    heartbeat.abort();

    // apalis 1.0 leaves a cleanly stopped worker registered (PEERS.md §1.1), and a task it
    // claimed just before stopping can stay in its in-flight set. Hand such tasks back to the
    // queue and deregister in one script: once the name is gone, orphan recovery would never
    // look at that set again.
    let mut conn = queue.conn.clone();
    for (cfg, name) in [
        (qs.queue_config(), &worker_id),
        (qs.qbo_queue_config(), &send_worker_id),
    ] {
        let released: Result<i64, _> = redis::Script::new(RELEASE_AND_DEREGISTER)
            .key(format!("{}:{name}", cfg.inflight_jobs_set()))
            .key(cfg.active_jobs_list())
            .key(cfg.workers_set())
            .arg(name)
            .invoke_async(&mut conn)
            .await;
        match released {
            Ok(n) if n > 0 => {
                tracing::info!(tasks = n, "worker: claimed tasks handed back to the queue")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "worker: could not deregister cleanly"),
        }
    }
    let _: Result<(), _> = conn.del(qs.keys.worker(&worker_id)).await;
    let _: Result<(), _> = conn.zrem(qs.keys.workers(), &worker_id).await;
    if let Err(e) = result.and(send_result) {
        tracing::error!(error = %e, "worker stopped with an error");
        return Ok(1);
    }
    Ok(child.exit_code.load(Ordering::SeqCst))
}

async fn heartbeat_loop(
    child: Arc<Child>,
    mut conn: redis::aio::ConnectionManager,
    keys: fom_core::keys::Keys,
    every: Duration,
) {
    loop {
        let current = child
            .current_job
            .lock()
            .map(|c| c.clone().unwrap_or_default())
            .unwrap_or_default();
        let key = keys.worker(&child.worker_id);
        let fields = [
            ("id", child.worker_id.clone()),
            ("pid", std::process::id().to_string()),
            ("rss_mb", format!("{:.1}", memory::rss_mb())),
            (
                "jobs_done",
                child.jobs_done.load(Ordering::Relaxed).to_string(),
            ),
            ("current_job", current),
            ("last_seen", fom_core::jobs::now_ms().to_string()),
        ];
        let mut pipe = redis::pipe();
        pipe.hset_multiple(&key, &fields)
            .ignore()
            .expire(&key, WORKER_TTL.as_secs() as i64)
            .ignore()
            .zadd(
                keys.workers(),
                &child.worker_id,
                chrono::Utc::now().timestamp(),
            )
            .ignore();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::warn!(error = %e, "worker heartbeat not written");
        }
        tokio::time::sleep(every).await;
    }
}

/// Claims a delivered job for `worker`: `true` to run it, `false` when it is already done or
/// gone, an abort when it is dead.
async fn claim(jobs: &JobStore, id: &str, worker: &str) -> Result<bool, BoxDynError> {
    match jobs.begin(id, worker).await? {
        Begin::Run => Ok(true),
        Begin::AlreadyDone | Begin::Missing => Ok(false),
        Begin::Dead(why) => {
            tracing::error!(job = %id, "job dead: {why}");
            Err(AbortError::new(std::io::Error::other(why)).into())
        }
    }
}

/// Writes progress readings sent from the job's loop; when the channel is full the newest
/// reading is dropped, never the job. Ends when the sender is dropped.
fn progress_writer(
    jobs: JobStore,
    id: String,
    stage: &'static str,
) -> (
    tokio::sync::mpsc::Sender<(u32, u32)>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u32, u32)>(4);
    let writer = tokio::spawn(async move {
        while let Some((page, pages)) = rx.recv().await {
            if let Err(e) = jobs
                .progress(&id, stage, page, pages, memory::rss_mb())
                .await
            {
                tracing::warn!(error = %e, "progress not written");
            }
        }
    });
    (tx, writer)
}

async fn handle(
    job: DocJob,
    child: Data<Arc<Child>>,
    wrk: WorkerContext,
) -> Result<(), BoxDynError> {
    let child: Arc<Child> = (*child).clone();
    let id = job.job_id;
    if !claim(&child.jobs, &id, &child.worker_id).await? {
        return Ok(());
    }
    if let Ok(mut c) = child.current_job.lock() {
        *c = Some(id.clone());
    }
    let outcome = run_job(&child, &id).await;
    if let Ok(mut c) = child.current_job.lock() {
        *c = None;
    }
    let verdict = match outcome {
        Ok(JobEnd::Done) => Ok(()),
        Ok(JobEnd::HandedBack { why, memory }) => {
            // Back to the queue, not a failure of the document; but a fresh worker that ran
            // out of memory on it counts towards the crash limit, or it would loop for ever.
            let fresh = child.jobs_done.load(Ordering::SeqCst) == 0;
            let state = child
                .jobs
                .hand_back(&id, &child.worker_id, &why, memory && fresh)
                .await?;
            if state == Some(JobState::Dead) {
                Err(AbortError::new(std::io::Error::other("needs more memory than allowed")).into())
            } else {
                Err(RetryAfterError::new(std::io::Error::other(why), Duration::from_secs(1)).into())
            }
        }
        Ok(JobEnd::BadInput(why)) => {
            child
                .jobs
                .settle(&id, &child.worker_id, JobState::Dead, &why)
                .await?;
            Err(AbortError::new(std::io::Error::other(why)).into())
        }
        Err(e) => {
            let why = format!("{e:#}");
            child
                .jobs
                .settle(&id, &child.worker_id, JobState::Failed, &why)
                .await?;
            Err(std::io::Error::other(why).into())
        }
    };
    let done = child.jobs_done.fetch_add(1, Ordering::SeqCst) + 1;
    let rss = memory::rss_mb();
    let over_rss = rss > child.max_rss_mb;
    let over_jobs = child.max_jobs > 0 && done >= child.max_jobs;
    if over_rss || over_jobs || child.stopping.load(Ordering::SeqCst) {
        if over_rss || over_jobs {
            let why = if over_rss {
                format!(
                    "RSS {rss:.1} MB over the worker budget of {} MB",
                    child.max_rss_mb
                )
            } else {
                format!("{done} jobs done, the limit is {}", child.max_jobs)
            };
            tracing::warn!(
                rss_mb = rss,
                "Memory Monitor: worker {} recycling: {why}",
                child.worker_id
            );
            child.exit_code.store(EXIT_BUDGET, Ordering::SeqCst);
        }
        let _ = wrk.stop();
        child.stopped_itself.notify_one();
    }
    verdict
}

enum JobEnd {
    Done,
    /// Stopped before the end (shutdown, or `memory`: the critical threshold): queued again.
    HandedBack {
        why: String,
        memory: bool,
    },
    /// The file itself cannot be read; retrying will not help.
    BadInput(String),
}

async fn run_job(child: &Arc<Child>, id: &str) -> anyhow::Result<JobEnd> {
    let record = child
        .jobs
        .get(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("job record vanished"))?;
    child.settings.monitor.log(&format!("job {id} start"));
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("document");
    child.store.fetch_to(&record.file_id, &path).await?;
    child
        .jobs
        .progress(id, "render", 0, 0, memory::rss_mb())
        .await?;

    // Progress flows from the blocking thread to Redis through a small channel.
    let (tx, writer) = progress_writer(child.jobs.clone(), id.to_string(), "extract");
    let c = child.clone();
    let name = record.file_name.clone();
    let outcome: FileOutcome = tokio::task::spawn_blocking(move || {
        if c.test_hooks {
            test_hook(&name, &c.stopping);
        }
        let critical = c.settings.monitor.thresholds.critical_mb;
        process_file(
            &path,
            &name,
            &c.settings.pdf,
            &c.settings.rules,
            c.settings.extractor.as_ref(),
            &c.settings.monitor,
            &mut |p| {
                let _ = tx.try_send((p.pages_done, p.page_count));
                if c.stopping.load(Ordering::SeqCst) {
                    return ControlFlow::Break(());
                }
                if memory::rss_mb() >= critical {
                    c.settings
                        .monitor
                        .log("critical RSS mid-job; handing the job back");
                    c.stopping.store(true, Ordering::SeqCst);
                    c.exit_code.store(EXIT_BUDGET, Ordering::SeqCst);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            },
        )
    })
    .await?;
    let _ = writer.await;
    child.settings.monitor.log(&format!("job {id} end"));
    if outcome.stopped {
        let memory = child.exit_code.load(Ordering::SeqCst) == EXIT_BUDGET;
        let why = if memory {
            "the worker reached its critical memory threshold mid-document; the job was queued again"
        } else {
            "the worker stopped mid-document; the job was queued again"
        };
        return Ok(JobEnd::HandedBack {
            why: why.into(),
            memory,
        });
    }
    if let Some(e) = outcome.error {
        return Ok(JobEnd::BadInput(e));
    }
    child
        .jobs
        .progress(id, "merge", outcome.pages, outcome.pages, memory::rss_mb())
        .await?;
    // Into the deposit before the job is marked done: a crash in between re-runs the job, and
    // the deposit takes each job's records once.
    if !record.deposit_id.is_empty() {
        match child
            .deposits
            .merge_job(&record.deposit_id, id, &outcome.records, &outcome.errors)
            .await?
        {
            Some(s) => tracing::info!(
                job = %id,
                added = s.added,
                merged = s.merged,
                "records merged into the deposit"
            ),
            None => {
                tracing::warn!(job = %id, "the deposit no longer exists; records kept on the job")
            }
        }
    }
    if let (Some(qbo), false) = (&child.qbo, record.deposit_id.is_empty()) {
        match_after_extraction(child, qbo, id, &record.deposit_id, outcome.pages).await;
    }
    let result = JobResult {
        file: &outcome.file,
        pages: outcome.pages,
        records: &outcome.records,
        errors: &outcome.errors,
        usage: outcome.usage,
    };
    if !child.jobs.finish(id, &child.worker_id, &result).await? {
        tracing::warn!(job = %id, "job finished elsewhere; this result was not stored");
    }
    // The upload is no longer needed once its records are stored (or after the retention).
    if child.upload_retention.is_zero() {
        if let Err(e) = child.store.delete(&record.file_id).await {
            tracing::warn!(error = %e, "uploaded file not deleted");
        }
    } else {
        let when = chrono::Utc::now().timestamp() + child.upload_retention.as_secs() as i64;
        let kept: Result<(), _> = child
            .conn
            .clone()
            .zadd(child.keys.uploads_expiring(), &record.file_id, when)
            .await;
        if let Err(e) = kept {
            tracing::warn!(error = %e, "uploaded file not scheduled for deletion");
        }
    }
    sweep_uploads(child).await;
    Ok(JobEnd::Done)
}

/// Matches the deposit's new rows to QuickBooks customers when QuickBooks is connected. A
/// failure here never fails the document: the rows stay unmatched and the treasurer can
/// match them from the page.
async fn match_after_extraction(
    child: &Arc<Child>,
    qbo: &fom_core::qbo::sync::Qbo,
    id: &str,
    deposit_id: &str,
    pages: u32,
) {
    match qbo.client.connection().status().await {
        Ok(s) if s.connected => {}
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "qbo: status unknown; matching skipped");
            return;
        }
    }
    if let Err(e) = child
        .jobs
        .progress(id, "match", pages, pages, memory::rss_mb())
        .await
    {
        tracing::warn!(error = %e, "progress not written");
    }
    if let Err(e) = qbo.match_deposit(deposit_id, false).await {
        tracing::warn!(job = %id, error = %e, "qbo: matching failed; rows left unmatched");
    }
}

/// One send-all job: every unsent row of the deposit, continuing past per-row errors.
async fn handle_send(
    job: SendJob,
    child: Data<Arc<Child>>,
    wrk: WorkerContext,
) -> Result<(), BoxDynError> {
    let child: Arc<Child> = (*child).clone();
    let id = job.job_id;
    let worker = format!("{}-qbo", child.worker_id);
    if !claim(&child.jobs, &id, &worker).await? {
        return Ok(());
    }
    let record = child.jobs.get(&id).await?;
    let deposit_id = record.map(|r| r.deposit_id).unwrap_or_default();
    let Some(qbo) = child.qbo.clone() else {
        let why = "QuickBooks is not set up on the worker (QBO_CLIENT_ID)";
        child.jobs.settle(&id, &worker, JobState::Dead, why).await?;
        return Err(AbortError::new(std::io::Error::other(why)).into());
    };
    let (tx, writer) = progress_writer(child.jobs.clone(), id.clone(), "send");
    let stopping = child.stopping.clone();
    let sent = qbo
        .send_all(&deposit_id, |i, n| {
            let row = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
            let _ = tx.try_send((row(i), row(n)));
            if stopping.load(Ordering::SeqCst) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await;
    drop(tx);
    let _ = writer.await;
    let verdict = match sent {
        Ok(all) if all.stopped => {
            // Shutdown between rows: back to the queue (not a crash); sent rows are skipped
            // when it runs again.
            let why = "the worker stopped mid-way; the rest is sent on the next run";
            child.jobs.hand_back(&id, &worker, why, false).await?;
            Err(RetryAfterError::new(std::io::Error::other(why), Duration::from_secs(1)).into())
        }
        Ok(all) => {
            let results = all.results;
            let errors = results.iter().filter(|r| r.outcome.is_failure()).count();
            tracing::info!(job = %id, rows = results.len(), errors, "send all finished");
            let body = serde_json::json!({"deposit_id": deposit_id, "results": results});
            child.jobs.finish(&id, &worker, &body).await?;
            Ok(())
        }
        Err(e) => {
            let why = e.user_message();
            let state = match e.kind() {
                fom_core::qbo::ErrorKind::NotFound
                | fom_core::qbo::ErrorKind::NotConnected
                | fom_core::qbo::ErrorKind::ReconnectNeeded => JobState::Dead,
                _ => JobState::Failed,
            };
            child.jobs.settle(&id, &worker, state, &why).await?;
            Err(AbortError::new(std::io::Error::other(why)).into())
        }
    };
    if child.stopping.load(Ordering::SeqCst) {
        let _ = wrk.stop();
    }
    verdict
}

/// Deletes kept uploads whose retention has passed (a few per call: it runs between jobs).
async fn sweep_uploads(child: &Child) {
    let key = child.keys.uploads_expiring();
    let mut conn = child.conn.clone();
    let due: Vec<String> = match redis::cmd("ZRANGEBYSCORE")
        .arg(&key)
        .arg("-inf")
        .arg(chrono::Utc::now().timestamp())
        .arg("LIMIT")
        .arg(0)
        .arg(50)
        .query_async(&mut conn)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "upload sweep skipped");
            return;
        }
    };
    for id in due {
        match child.store.delete(&id).await {
            Ok(()) => {
                let _: Result<(), _> = conn.zrem(&key, &id).await;
            }
            Err(e) => tracing::warn!(error = %e, "kept upload not deleted"),
        }
    }
}

/// Test-only behaviours (WORKER_TEST_HOOKS=1), chosen by the job's file name, so the
/// supervisor and queue can be tested against real crashes, leaks and long jobs.
fn test_hook(name: &str, stopping: &AtomicBool) {
    let arg = |prefix: &str| -> Option<u64> {
        name.strip_prefix(prefix)?.split('-').next()?.parse().ok()
    };
    if name.starts_with("crash-") {
        std::process::abort();
    }
    if let Some(mb) = arg("bloat-") {
        // Touch every page so it counts in RSS, and keep it: a leak the budget must catch.
        let block = vec![1u8; usize::try_from(mb).unwrap_or(0) * 1024 * 1024];
        std::mem::forget(block);
    }
    if let Some(secs) = arg("spin-") {
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        let mut x = 0u64;
        while std::time::Instant::now() < until {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
    }
    if let Some(secs) = arg("slow-") {
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < until && !stopping.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
