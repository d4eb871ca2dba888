//! The jobs of the `qbo` queue, one kind per id prefix: send-all (every unsent row of a
//! deposit to QuickBooks, continuing past per-row errors), the bank deposit
//! ([`super::bank`]) and the scans attached to receipts ([`super::attach`]). [`start`] queues
//! a send-all (or answers the one already running) and [`latest`] finds the deposit's latest
//! one; the deposit's pointer to each kind's job is set atomically, so two clicks at once
//! start one job.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::{now_ms, progress_writer, Job, JobContext, JobEnd, JobError, JobRecord, JobState};
use super::{JobFault, Stage};
use crate::keys::JOB_TTL;
use crate::qbo::ErrorKind;
use crate::queue::{PushError, QueueName};
use crate::services::Services;

/// Send-all job ids start with this ([`super::queue_of`]).
pub const ID_PREFIX: &str = "send-";

/// The `qbo` queue's job: its id's prefix says which kind it is.
pub struct QboJob;

impl Job for QboJob {
    const NAME: &'static str = "qbo";
    const QUEUE: QueueName = QueueName::Qbo;

    async fn run(id: &str, ctx: &JobContext) -> Result<JobEnd, JobFault> {
        let deposit_id = ctx
            .services
            .jobs
            .get(id)
            .await?
            .map(|r| r.deposit_id)
            .unwrap_or_default();
        let Some(qbo) = ctx.services.qbo.clone() else {
            return Ok(JobEnd::Dead(
                "QuickBooks is not set up on the worker (QBO_CLIENT_ID)".into(),
            ));
        };
        if id.starts_with(super::statements::ID_PREFIX) {
            super::statements::run(id, ctx, &qbo).await
        } else if id.starts_with(super::bank::ID_PREFIX) {
            super::bank::run(id, ctx, &deposit_id, &qbo).await
        } else if id.starts_with(super::attach::ID_PREFIX) {
            super::attach::run(id, ctx, &deposit_id, &qbo).await
        } else {
            run(id, ctx, deposit_id, &qbo).await
        }
    }
}

/// One send-all.
async fn run(
    id: &str,
    ctx: &JobContext,
    deposit_id: String,
    qbo: &crate::qbo::sync::Qbo,
) -> Result<JobEnd, JobFault> {
    {
        let s = &ctx.services;
        let (tx, writer) = progress_writer(s.jobs.clone(), id.to_string(), Stage::Send);
        let stop = ctx.stop.clone();
        let sent = qbo
            .send_all(&deposit_id, |i, n| {
                let row = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
                let _ = tx.try_send((row(i), row(n)));
                if stop.load(Ordering::SeqCst) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .await;
        drop(tx);
        let _ = writer.await;
        match sent {
            // Shutdown between rows: back to the queue (not a crash); sent rows are skipped
            // when it runs again.
            Ok(all) if all.stopped && all.throttled => {
                tracing::warn!(
                    sent = all.results.len(),
                    "send all: QuickBooks stayed busy; queued again"
                );
                Ok(JobEnd::HandedBack {
                    why: "QuickBooks stayed busy; the rest is sent by itself when it answers again"
                        .into(),
                    memory: false,
                })
            }
            Ok(all) if all.stopped => Ok(JobEnd::HandedBack {
                why: "the worker stopped mid-way; the rest is sent on the next run".into(),
                memory: false,
            }),
            Ok(all) => {
                let results = all.results;
                let errors = results.iter().filter(|r| r.outcome.is_failure()).count();
                tracing::info!(rows = results.len(), errors, "send all finished");
                let body = serde_json::json!({"deposit_id": deposit_id, "results": results});
                s.jobs.finish(id, &ctx.worker, &body).await?;
                s.audit
                    .record(
                        crate::audit::AuditKind::SendAllFinished,
                        &crate::audit::Actor::default(),
                        serde_json::json!({"deposit_id": deposit_id, "job_id": id,
                                           "rows": results.len(), "errors": errors}),
                    )
                    .await;
                super::attach::after_sending(s, &deposit_id).await;
                Ok(JobEnd::Done)
            }
            // Busy before any row (reading the deposit's lists): queued again, not failed.
            Err(e @ crate::qbo::QboError::Throttled { .. }) => Ok(JobEnd::HandedBack {
                why: e.to_string(),
                memory: false,
            }),
            Err(e) => {
                let why = e.user_message();
                Ok(match e.kind() {
                    ErrorKind::NotFound | ErrorKind::NotConnected | ErrorKind::ReconnectNeeded => {
                        JobEnd::Dead(why)
                    }
                    _ => JobEnd::Failed(why),
                })
            }
        }
    }
}

/// What pressing "send all" came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendStart {
    pub job_id: String,
    pub state: JobState,
    /// A send-all of this deposit was already queued or running; this is that one.
    pub already_running: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Record(#[from] JobError),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Push(#[from] PushError),
}

/// Points the deposit at a new send-all job unless the one it points at is still queued or
/// running: ARGV[1] is the prefix of job record keys, ARGV[2] the new job id.
const POINT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local state = redis.call('HGET', ARGV[1] .. cur, 'state')
  if state == 'queued' or state == 'running' then return {0, cur, state} end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return {1, ARGV[2], 'queued'}
";

/// Queues a send-all of the deposit, or answers the one already queued or running.
pub async fn start(s: &Services, deposit_id: &str) -> Result<SendStart, StartError> {
    let pointer = s.keys.deposit_send(deposit_id);
    start_pointed(s, deposit_id, &pointer, ID_PREFIX, "Send to QuickBooks").await
}

/// Queues a `qbo` job of the kind `prefix` names for the deposit, unless the one `pointer`
/// names is still queued or running (then that one is the answer).
pub(super) async fn start_pointed(
    s: &Services,
    deposit_id: &str,
    pointer: &str,
    prefix: &str,
    label: &str,
) -> Result<SendStart, StartError> {
    match claim(s, deposit_id, pointer, prefix, label).await? {
        Claim::Running(running) => Ok(running),
        Claim::Started(job) => push_claimed(s, &job, label).await,
    }
}

/// What [`claim`] came to.
pub(super) enum Claim {
    /// A new job record, named by the pointer, not yet queued.
    Started(Box<JobRecord>),
    /// The job the pointer names is still queued or running.
    Running(SendStart),
}

/// Makes a job record of the kind `prefix` names and points `pointer` at it, unless the job
/// the pointer names is still queued or running. The caller queues it ([`push_claimed`]).
pub(super) async fn claim(
    s: &Services,
    deposit_id: &str,
    pointer: &str,
    prefix: &str,
    label: &str,
) -> Result<Claim, StartError> {
    let job_id = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    // The record exists before the pointer names it, so a reader never finds a dangling one.
    let job = JobRecord::new(&job_id, deposit_id, "", label, now_ms());
    s.jobs.create(&job).await?;
    let (took, current, state): (i64, String, String) = redis::Script::new(POINT)
        .key(pointer)
        .arg(s.keys.job(""))
        .arg(&job_id)
        .arg(JOB_TTL.as_secs())
        .invoke_async(&mut s.redis.get().await?)
        .await?;
    if took == 0 {
        s.jobs.discard(&job_id).await?;
        return Ok(Claim::Running(SendStart {
            job_id: current,
            state: JobState::parse(&state).unwrap_or(JobState::Queued),
            already_running: true,
        }));
    }
    Ok(Claim::Started(Box::new(job)))
}

/// Queues a job [`claim`] made.
pub(super) async fn push_claimed(
    s: &Services,
    job: &JobRecord,
    label: &str,
) -> Result<SendStart, StartError> {
    if let Err(e) = s.queue.push(QboJob::QUEUE, &job.id).await {
        // Failed, not queued: the next click starts a new job instead of joining this one.
        let _ = s
            .jobs
            .mark_unqueued(job, "the job could not be queued; press the button again")
            .await;
        return Err(e.into());
    }
    tracing::info!(deposit = %job.deposit_id, job = %job.id, label, "qbo job queued");
    Ok(SendStart {
        job_id: job.id.clone(),
        state: JobState::Queued,
        already_running: false,
    })
}

/// The id of the deposit's latest send-all job, if any (kept a week).
pub async fn latest(s: &Services, deposit_id: &str) -> Result<Option<String>, redis::RedisError> {
    latest_at(s, &s.keys.deposit_send(deposit_id)).await
}

/// The job id a deposit's pointer names, if any.
pub(super) async fn latest_at(
    s: &Services,
    pointer: &str,
) -> Result<Option<String>, redis::RedisError> {
    redis::AsyncCommands::get(&mut s.redis.get().await?, pointer).await
}
