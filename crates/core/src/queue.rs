//! The document queue's payload and configuration, shared by the web (which pushes) and the
//! worker (which consumes), so both always agree on the queue name and deduplication.
//!
//! apalis-redis 1.0 traps handled here (PEERS.md §0, §1.1): `batch_size(1)` so a worker never
//! claims jobs it is not running; an idempotency TTL so pushes with the same key dedupe at all.

use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::{Config, RedisStorage};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use crate::keys::{Keys, JOB_TTL};

/// Payload of a document job: ids only, never file bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocJob {
    pub job_id: String,
}

/// Payload of a "send all to QuickBooks" job on the `qbo` queue: the job record's id (its
/// `deposit_id` says which deposit).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendJob {
    pub job_id: String,
}

/// The documents queue's configuration. `heartbeat` and `missed` matter only to consumers.
pub fn documents_config(keys: &Keys, heartbeat: Duration, missed: usize) -> Config {
    queue_config(keys, "documents", heartbeat, missed)
}

/// The `qbo` queue's configuration (send-all jobs), with the same traps handled.
pub fn qbo_config(keys: &Keys, heartbeat: Duration, missed: usize) -> Config {
    queue_config(keys, "qbo", heartbeat, missed)
}

fn queue_config(keys: &Keys, name: &str, heartbeat: Duration, missed: usize) -> Config {
    Config::default()
        .queue(keys.queue(name))
        .batch_size(1)
        .heartbeat_interval(heartbeat)
        .missed_heartbeats(missed)
        .idempotency_ttl(Some(JOB_TTL))
}

#[derive(Debug, thiserror::Error)]
#[error("cannot queue job {job_id}: {reason}")]
pub struct PushError {
    pub job_id: String,
    pub reason: String,
}

/// Pushes jobs; pushing the same job id twice queues it once.
pub struct JobQueue<T> {
    storage: RedisStorage<T>,
}

impl<T> Clone for JobQueue<T> {
    fn clone(&self) -> Self {
        Self {
            storage: self.storage.clone(),
        }
    }
}

pub type DocQueue = JobQueue<DocJob>;
pub type SendQueue = JobQueue<SendJob>;

/// A payload made from a job id.
pub trait JobPayload:
    Serialize + serde::de::DeserializeOwned + Send + Sync + Unpin + 'static
{
    fn for_job(job_id: &str) -> Self;
}

impl JobPayload for DocJob {
    fn for_job(job_id: &str) -> Self {
        DocJob {
            job_id: job_id.to_string(),
        }
    }
}

impl JobPayload for SendJob {
    fn for_job(job_id: &str) -> Self {
        SendJob {
            job_id: job_id.to_string(),
        }
    }
}

impl<T: JobPayload> JobQueue<T> {
    pub fn new(conn: ConnectionManager, config: Config) -> Self {
        Self {
            storage: RedisStorage::new(conn).with_config(config),
        }
    }

    pub fn storage(&self) -> &RedisStorage<T> {
        &self.storage
    }

    pub async fn push(&self, job_id: &str) -> Result<(), PushError> {
        self.push_task(job_id, true).await
    }

    /// Queues a job again after an operator's or the treasurer's retry: without the
    /// idempotency key, which would swallow it as a duplicate of the first push.
    pub async fn push_again(&self, job_id: &str) -> Result<(), PushError> {
        self.push_task(job_id, false).await
    }

    async fn push_task(&self, job_id: &str, idempotent: bool) -> Result<(), PushError> {
        let mut task = TaskBuilder::new(T::for_job(job_id));
        if idempotent {
            task = task.idempotency_key(job_id);
        }
        self.storage
            .clone()
            .push_task(task.build())
            .await
            .map_err(|e| PushError {
                job_id: job_id.to_string(),
                reason: e.to_string(),
            })
    }
}
