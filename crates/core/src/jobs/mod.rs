//! Background jobs: what a worker runs, one file per kind, behind one small trait.
//!
//! - [`record`]: our own job records in Redis (state, stage, progress, result), which the page
//!   and the operator read.
//! - [`document`]: one uploaded file through pages and extraction into its deposit.
//! - [`send_all`]: the `qbo` queue's job ([`QboJob`]) and send-all, every unsent row of a
//!   deposit to QuickBooks;
//! - [`bank`]: the deposit's receipts moved into the bank by one QuickBooks Deposit;
//! - [`attach`]: each receipt's scan attached to it in QuickBooks (`ATTACH_SOURCES`).
//!
//! A job's payload is its id only; everything else is in its record. The queue library's glue
//! (claiming, acknowledging, the budget) is the worker's; a job only says how it ended
//! ([`JobEnd`]) and the worker maps that onto the queue.

pub mod attach;
pub mod bank;
pub mod document;
pub mod record;
pub mod send_all;
pub mod statements;

use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::Instrument;

pub use document::DocumentJob;
pub use record::*;
pub use send_all::QboJob;

use crate::deposits::DepositError;
use crate::memory;
use crate::pipeline::PipelineSettings;
use crate::queue::QueueName;
use crate::services::Services;
use crate::store::StoreError;

/// A kind of background job. Its payload on the queue is [`Queued`]: the job record's id.
pub trait Job: Send + Sync + 'static {
    /// For logs and spans.
    const NAME: &'static str;
    /// The queue its payloads go on.
    const QUEUE: QueueName;

    /// Runs job `job_id`, whose record the caller has claimed for `ctx.worker`.
    fn run(job_id: &str, ctx: &JobContext)
        -> impl Future<Output = Result<JobEnd, JobFault>> + Send;
}

/// A job on a queue: its record's id only, never file bytes; `J` says which kind. Serialised
/// as `{"job_id": "..."}`.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Queued<J> {
    pub job_id: String,
    #[serde(skip)]
    kind: PhantomData<fn() -> J>,
}

impl<J> Queued<J> {
    pub fn new(job_id: &str) -> Self {
        Self {
            job_id: job_id.to_string(),
            kind: PhantomData,
        }
    }
}

impl<J> Clone for Queued<J> {
    fn clone(&self) -> Self {
        Self::new(&self.job_id)
    }
}

impl<J> std::fmt::Debug for Queued<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued")
            .field("job_id", &self.job_id)
            .finish()
    }
}

/// The id prefixes of the `qbo` queue's job kinds (made by [`send_all::start`],
/// [`bank::start`], [`attach::start`] and [`statements::start`]).
pub const QBO_PREFIXES: [&str; 4] = [
    send_all::ID_PREFIX,
    bank::ID_PREFIX,
    attach::ID_PREFIX,
    statements::ID_PREFIX,
];

/// The queue a job record's job runs on.
pub fn queue_of(job_id: &str) -> QueueName {
    if QBO_PREFIXES.iter().any(|p| job_id.starts_with(p)) {
        QboJob::QUEUE
    } else {
        DocumentJob::QUEUE
    }
}

/// What a job needs from the process running it.
pub struct JobContext {
    pub services: Services,
    pub pipeline: Arc<PipelineSettings>,
    /// The name this process claims jobs under (the record's `worker`).
    pub worker: String,
    /// Set on shutdown or at the critical memory threshold: stop at the next page or row and
    /// hand the job back.
    pub stop: Arc<AtomicBool>,
    /// Set by a job that stopped because this process reached its critical memory threshold.
    pub memory_critical: Arc<AtomicBool>,
    /// Test-only behaviour before the pipeline runs (the worker's `WORKER_TEST_HOOKS`).
    pub test_hook: Option<fn(&str, &AtomicBool)>,
}

/// How a job ended, for the queue and the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    Done,
    /// Stopped before the end (shutdown, or `memory`: the critical threshold); queued again.
    HandedBack {
        why: String,
        memory: bool,
    },
    /// Failed for a reason a person must act on; not retried by the queue.
    Failed(String),
    /// Can never succeed (unreadable file, deposit gone, QuickBooks not set up).
    Dead(String),
}

/// Trouble outside the job's input (Redis, the upload store, the disk): the record says
/// failed and the queue tries the job again later.
#[derive(Debug, thiserror::Error)]
pub enum JobFault {
    #[error(transparent)]
    Record(#[from] JobError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Deposit(#[from] DepositError),
    #[error("local file error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// Writes progress readings sent from a job's loop (often a blocking thread); when the
/// channel is full the newest reading is dropped, never the job. Ends when the sender is
/// dropped.
pub fn progress_writer(
    jobs: JobStore,
    id: String,
    stage: Stage,
) -> (
    tokio::sync::mpsc::Sender<(u32, u32)>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u32, u32)>(4);
    let writer = tokio::spawn(
        async move {
            while let Some((page, pages)) = rx.recv().await {
                if let Err(e) = jobs
                    .progress(&id, stage, page, pages, memory::rss_mb())
                    .await
                {
                    tracing::warn!(error = %e, "progress not written");
                }
            }
        }
        .instrument(tracing::Span::current()),
    );
    (tx, writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_job_is_its_id_as_before() {
        // Tasks queued by an earlier release must still be read after a deploy.
        let q = Queued::<DocumentJob>::new("abc");
        assert_eq!(
            serde_json::to_string(&q).ok().as_deref(),
            Some(r#"{"job_id":"abc"}"#)
        );
        let back: Result<Queued<QboJob>, _> = serde_json::from_str(r#"{"job_id":"send-1"}"#);
        assert_eq!(back.map(|b| b.job_id).ok().as_deref(), Some("send-1"));
        assert_eq!(queue_of("send-1"), QueueName::Qbo);
        assert_eq!(queue_of("bank-1"), QueueName::Qbo);
        assert_eq!(queue_of("attach-1"), QueueName::Qbo);
        assert_eq!(queue_of("stmt-1"), QueueName::Qbo);
        assert_eq!(queue_of("0123abcd"), QueueName::Documents);
    }
}
