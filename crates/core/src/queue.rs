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

/// The documents queue's configuration. `heartbeat` and `missed` matter only to consumers.
pub fn documents_config(keys: &Keys, heartbeat: Duration, missed: usize) -> Config {
    Config::default()
        .queue(keys.queue("documents"))
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

/// Pushes document jobs; pushing the same job id twice queues it once.
#[derive(Clone)]
pub struct DocQueue {
    storage: RedisStorage<DocJob>,
}

impl DocQueue {
    pub fn new(conn: ConnectionManager, config: Config) -> Self {
        Self {
            storage: RedisStorage::new(conn).with_config(config),
        }
    }

    pub fn storage(&self) -> &RedisStorage<DocJob> {
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
        let mut task = TaskBuilder::new(DocJob {
            job_id: job_id.to_string(),
        });
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
