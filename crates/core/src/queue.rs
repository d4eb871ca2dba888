//! The job queue as core sees it: a named queue that takes job ids. The queue library itself
//! lives outside core (the `fom-queue` crate implements [`Enqueue`] with apalis), so the
//! pipeline, the stores and the jobs build and test without it.

use futures_util::future::BoxFuture;

/// The queues workers consume. Each job kind names its queue ([`crate::jobs::Job::QUEUE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueName {
    /// One uploaded file each: pages, extraction, merge into the deposit.
    Documents,
    /// "Send all to QuickBooks" for a deposit: slow (rate-limited) calls, kept apart so
    /// documents never wait behind them.
    Qbo,
}

impl QueueName {
    pub const ALL: [QueueName; 2] = [QueueName::Documents, QueueName::Qbo];

    /// The name in Redis keys (`keys::Keys::queue`).
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Documents => "documents",
            QueueName::Qbo => "qbo",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot queue job {job_id}: {reason}")]
pub struct PushError {
    pub job_id: String,
    pub reason: String,
}

/// Pushes job ids onto queues. Payloads carry ids only, never file bytes.
pub trait Enqueue: Send + Sync {
    /// Queues `job_id`; pushing the same id twice queues it once.
    fn push<'a>(
        &'a self,
        queue: QueueName,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<(), PushError>>;

    /// Queues a job again after an operator's or the treasurer's retry, past the first push's
    /// deduplication (which would swallow it).
    fn push_again<'a>(
        &'a self,
        queue: QueueName,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<(), PushError>>;
}
