//! fom-queue: the queue library's side of fom-qbo, so fom-core has none.
//!
//! - [`RedisQueues`]: apalis-redis storages for each job kind, and the pushes behind
//!   `fom_core::queue::Enqueue`.
//! - [`connect`]: the one way both processes open Redis and build `fom_core::services::Services`.
//! - [`release_and_deregister`]: what a cleanly stopping consumer must do that apalis 1.0
//!   leaves undone.
//! - [`wake`]: a push wakes idle consumers at once (instead of at their next heartbeat).
//!
//! apalis-redis 1.0 traps handled here (docs/RULES.md#apalis-queue-traps): `batch_size(1)` so a worker
//! never claims jobs it is not running; an idempotency TTL so pushes with the same key dedupe
//! at all; and a stopped worker's name removed by us, since apalis keeps it registered.

use std::sync::Arc;
use std::time::Duration;

pub mod wake;

use apalis::prelude::{PollWith, StreamStrategy, TaskBuilder, TaskSink};
use apalis_redis::{Config, RedisStorage};
use fom_core::jobs::{DocumentJob, Job, QboJob, Queued};
use fom_core::keys::{Keys, JOB_TTL};
use fom_core::queue::{Enqueue, PushError, QueueName};
use fom_core::redis_conn::{RedisPool, RedisSettings, SteadyConnection};
use fom_core::services::{Services, Settings};
use futures_util::future::BoxFuture;

/// The queues over one multiplexed connection that waits out Redis restarts, so neither a
/// push nor a consumer's heartbeat or fetch fails because Redis was briefly away.
#[derive(Clone)]
pub struct RedisQueues {
    conn: SteadyConnection,
    keys: Keys,
    heartbeat: Duration,
    missed_heartbeats: usize,
}

impl RedisQueues {
    /// `heartbeat` and `missed_heartbeats` matter only to consumers.
    pub fn new(
        conn: SteadyConnection,
        keys: Keys,
        heartbeat: Duration,
        missed_heartbeats: usize,
    ) -> Self {
        Self {
            conn,
            keys,
            heartbeat,
            missed_heartbeats,
        }
    }

    /// The queue library's configuration of `queue`.
    pub fn config(&self, queue: QueueName) -> Config {
        Config::default()
            .queue(self.keys.queue(queue.as_str()))
            .batch_size(1)
            .heartbeat_interval(self.heartbeat)
            .missed_heartbeats(self.missed_heartbeats)
            .idempotency_ttl(Some(JOB_TTL))
    }

    /// The storage a worker consumes job kind `J` from.
    pub fn storage<J: Job>(&self) -> RedisStorage<Queued<J>, SteadyConnection> {
        RedisStorage::new(self.conn.clone()).with_config(self.config(J::QUEUE))
    }

    /// [`Self::storage`], also polled whenever `wake` says a job was pushed on its queue.
    pub fn woken_storage<J: Job>(&self, wake: &wake::Wakeups) -> WokenStorage<J> {
        PollWith::new(
            self.storage::<J>(),
            StreamStrategy::new(wake.stream(J::QUEUE)),
        )
    }

    async fn push_job<J: Job>(&self, job_id: &str, idempotent: bool) -> Result<(), PushError> {
        let mut task = TaskBuilder::new(Queued::<J>::new(job_id));
        if idempotent {
            task = task.idempotency_key(job_id);
        }
        self.storage::<J>()
            .push_task(task.build())
            .await
            .map_err(|e| PushError {
                job_id: job_id.to_string(),
                reason: e.to_string(),
            })?;
        // Idle consumers fetch now rather than at their next heartbeat; a lost wake-up only
        // costs that heartbeat, so it is not the push's failure.
        let channel = self.keys.queue_wake(J::QUEUE.as_str());
        let woken: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(job_id)
            .query_async(&mut self.conn.clone())
            .await;
        if let Err(e) = woken {
            tracing::warn!(error = %e, "queue wake-up not published");
        }
        Ok(())
    }

    async fn push_to(
        &self,
        queue: QueueName,
        job_id: &str,
        idempotent: bool,
    ) -> Result<(), PushError> {
        match queue {
            QueueName::Documents => self.push_job::<DocumentJob>(job_id, idempotent).await,
            QueueName::Qbo => self.push_job::<QboJob>(job_id, idempotent).await,
        }
    }

    /// Jobs waiting on `queue`: ready, or scheduled for now or earlier (every push is
    /// scheduled first and moved to the ready list by the next fetch).
    pub async fn waiting_jobs(&self, queue: QueueName) -> Result<usize, redis::RedisError> {
        let cfg = self.config(queue);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (ready, due): (usize, usize) = redis::pipe()
            .llen(cfg.active_jobs_list())
            .zcount(cfg.scheduled_jobs_set(), "-inf", now)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(ready + due)
    }

    /// The connection the queues use (the worker's stores share it).
    pub fn connection(&self) -> SteadyConnection {
        self.conn.clone()
    }

    /// The same queues with pushes that wait at most `patience` for an absent Redis.
    pub fn waiting(&self, patience: Duration) -> Self {
        Self {
            conn: self.conn.waiting(patience),
            ..self.clone()
        }
    }
}

impl Enqueue for RedisQueues {
    fn push<'a>(
        &'a self,
        queue: QueueName,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<(), PushError>> {
        Box::pin(self.push_to(queue, job_id, true))
    }

    fn push_again<'a>(
        &'a self,
        queue: QueueName,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<(), PushError>> {
        Box::pin(self.push_to(queue, job_id, false))
    }
}

/// A consumer's storage that also fetches as soon as a push wakes it ([`wake`]).
pub type WokenStorage<J> =
    PollWith<RedisStorage<Queued<J>, SteadyConnection>, StreamStrategy<wake::WakeStream>>;

/// How a process reaches Redis for its own reads and writes.
#[derive(Debug, Clone, Copy)]
pub enum RedisUse {
    /// The web: a pool of at most `size` connections (its share of the Key-Value Store's
    /// connection limit); a request waits at most `wait` for one.
    Pool { size: usize, wait: Duration },
    /// The worker and the command line: the queue's one multiplexed connection, which waits
    /// out Redis restarts for `REDIS_OUTAGE_WAIT_SECS`.
    Shared,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to Redis (REDIS_URL): {0}")]
    Redis(#[from] redis::RedisError),
    #[error("UPLOAD_STORE: {0}")]
    Store(#[from] fom_core::store::StoreError),
}

/// A process's open connections and services.
pub struct Connected {
    pub services: Services,
    pub queues: RedisQueues,
}

/// How long the web's queue pushes wait for an absent Redis before the file is refused with
/// "try again": a person is waiting on the answer.
pub const PUSH_WAIT: Duration = Duration::from_secs(10);

/// Opens Redis (checking it answers, so a wrong `REDIS_URL` fails at start-up with a clear
/// message rather than on the first request) and builds the services.
pub async fn connect(settings: &Settings, how: RedisUse) -> Result<Connected, ConnectError> {
    RedisSettings::install_tls_provider();
    let url = settings.redis.url.as_str();
    let patience = match how {
        RedisUse::Shared => settings.redis.outage_wait,
        RedisUse::Pool { .. } => PUSH_WAIT.min(settings.redis.outage_wait),
    };
    let conn = SteadyConnection::open(url, patience).await?;
    let redis = match how {
        RedisUse::Shared => RedisPool::Shared(conn.clone()),
        RedisUse::Pool { size, wait } => {
            let pool = RedisPool::pool(url, size, wait)?;
            let _: String = redis::cmd("PING")
                .query_async(&mut pool.get().await?)
                .await?;
            pool
        }
    };
    let queues = RedisQueues::new(
        conn,
        settings.keys().clone(),
        settings.heartbeat,
        orphan_beats(settings),
    );
    let services = Services::build(settings, redis, Arc::new(queues.clone()))?;
    Ok(Connected { services, queues })
}

/// Heartbeats a consumer may miss before another takes its jobs back: `WORKER_MISSED_HEARTBEATS`
/// plus the beats of a whole `REDIS_OUTAGE_WAIT_SECS`. Nobody can beat while Redis is away,
/// and the first beat after an outage carries the time it was first sent; without the outage
/// allowance that beat would find every live consumer (itself included) overdue and take its
/// running jobs away. A child that dies is released by its supervisor at once, so this longer
/// wait only matters when a whole dyno vanishes.
pub fn orphan_beats(settings: &Settings) -> usize {
    let beat = settings.heartbeat.as_secs().max(1);
    let outage = settings.redis.outage_wait.as_secs().div_ceil(beat);
    settings.missed_heartbeats + usize::try_from(outage).unwrap_or(usize::MAX / 2)
}

/// Hands back to `queue` whatever consumer `worker` still holds in flight and removes its
/// name, in one script; returns how many tasks went back. apalis 1.0 leaves a cleanly stopped
/// worker registered, and a task it claimed just before stopping can stay in its in-flight
/// set: once the name is gone, orphan recovery would never look at that set again.
pub async fn release_and_deregister(
    queues: &RedisQueues,
    queue: QueueName,
    worker: &str,
) -> Result<i64, redis::RedisError> {
    const SCRIPT: &str = r"
local ids = redis.call('SMEMBERS', KEYS[1])
if #ids > 0 then
  redis.call('RPUSH', KEYS[2], unpack(ids))
  redis.call('DEL', KEYS[1])
end
redis.call('ZREM', KEYS[3], ARGV[1])
return #ids
";
    let cfg = queues.config(queue);
    redis::Script::new(SCRIPT)
        .key(format!("{}:{worker}", cfg.inflight_jobs_set()))
        .key(cfg.active_jobs_list())
        .key(cfg.workers_set())
        .arg(worker)
        .invoke_async(&mut queues.connection())
        .await
}
