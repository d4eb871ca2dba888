//! The services both processes share, built one way from one set of settings: job records,
//! deposits, the upload store, the worker registry, the queue and QuickBooks. The web and the
//! worker differ only in how they reach Redis (a small pool, or one multiplexed connection)
//! and in what they add on top (sessions; the job runner).
//!
//! Opening the connections is `fom_queue::connect`, which also brings the queue library's
//! side of [`Enqueue`].

use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditLog;
use crate::config::EnvReader;
use crate::deposits::DepositStore;
use crate::jobs::JobStore;
use crate::keys::Keys;
use crate::qbo::client::QboClient;
use crate::qbo::config::QboSettings;
use crate::qbo::connection::Connection;
use crate::qbo::sync::Qbo;
use crate::queue::Enqueue;
use crate::redis_conn::{RedisPool, RedisSettings};
use crate::store::{StoreError, StoreSpec, UploadStore};
use crate::workers::WorkerRegistry;

const MB: u64 = 1024 * 1024;

/// The settings behind [`Services`], read from the environment once at start-up by both
/// processes, so they always agree (each variable is in `.env.example`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub redis: RedisSettings,
    /// `UPLOAD_STORE`.
    pub store: StoreSpec,
    /// `MAX_FILE_MB`: the largest file accepted.
    pub max_file_bytes: u64,
    /// `UPLOAD_RETENTION_HOURS`: uploads kept after their job succeeded (0: deleted at once).
    pub upload_retention: Duration,
    /// `DEPOSIT_TTL_DAYS`: deposits kept after their last change.
    pub deposit_ttl: Duration,
    /// `REDIS_MIN_HEADROOM_MB`: Redis memory an upload (into the Redis store) must leave free;
    /// a job's merge into its deposit must leave half of it.
    pub min_headroom_bytes: u64,
    /// `WORKER_MAX_CRASHES`: a document that crashed its worker this often is dead.
    pub max_crashes: u32,
    /// `WORKER_HEARTBEAT_SECS`: how often workers beat and poll the queue.
    pub heartbeat: Duration,
    /// `WORKER_MISSED_HEARTBEATS`: beats missed before a worker's jobs are taken back.
    pub missed_heartbeats: usize,
    /// QuickBooks, when `QBO_CLIENT_ID` is set.
    pub qbo: Option<QboSettings>,
    /// `AUDIT_MAX_EVENTS`: the audit log keeps about this many of the newest events.
    pub audit_max_events: u64,
}

impl Settings {
    pub fn from_env(env: &mut EnvReader) -> Self {
        Self {
            redis: RedisSettings::from_env(env),
            store: StoreSpec::from_env(env),
            max_file_bytes: env.number("MAX_FILE_MB", 25u64, 1, 1024) * MB,
            upload_retention: Duration::from_secs(
                env.number("UPLOAD_RETENTION_HOURS", 0u64, 0, 24 * 365) * 3600,
            ),
            deposit_ttl: Duration::from_secs(
                env.number("DEPOSIT_TTL_DAYS", 30u64, 1, 3650) * 24 * 3600,
            ),
            min_headroom_bytes: env.number(
                "REDIS_MIN_HEADROOM_MB",
                crate::deposits::DEFAULT_MIN_HEADROOM / MB,
                0,
                1024,
            ) * MB,
            max_crashes: env.number("WORKER_MAX_CRASHES", 3, 1, 100),
            heartbeat: Duration::from_secs(env.number("WORKER_HEARTBEAT_SECS", 1, 1, 300)),
            missed_heartbeats: env.number("WORKER_MISSED_HEARTBEATS", 10, 1, 100),
            qbo: QboSettings::from_env(env),
            audit_max_events: env.number(
                "AUDIT_MAX_EVENTS",
                crate::audit::DEFAULT_MAX_EVENTS,
                100,
                1_000_000,
            ),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.redis.keys
    }
}

/// Everything a request handler, a job or an operator command works through.
#[derive(Clone)]
pub struct Services {
    pub keys: Keys,
    pub redis: RedisPool,
    pub jobs: JobStore,
    pub deposits: DepositStore,
    pub store: UploadStore,
    pub workers: WorkerRegistry,
    pub audit: AuditLog,
    /// The treasurer's column choices for CSV layouts.
    pub columns: crate::imports::ColumnChoices,
    /// The licence agreement and privacy policy the site shows.
    pub legal: crate::legal::LegalTexts,
    /// The year-end statements' settings and the customers left out of them.
    pub statements: crate::statements::StatementStore,
    pub queue: Arc<dyn Enqueue>,
    /// QuickBooks, when set up.
    pub qbo: Option<Qbo>,
    pub max_file_bytes: u64,
}

impl Services {
    /// Builds the services over an open Redis and queue (nothing is contacted here).
    pub fn build(
        settings: &Settings,
        redis: RedisPool,
        queue: Arc<dyn Enqueue>,
    ) -> Result<Self, StoreError> {
        let keys = settings.keys().clone();
        let jobs = JobStore::new(redis.clone(), keys.clone(), settings.max_crashes);
        let deposits = DepositStore::new(redis.clone(), keys.clone())
            .with_ttl(settings.deposit_ttl)
            .with_min_headroom(settings.min_headroom_bytes);
        let store = UploadStore::open(&settings.store, redis.clone(), keys.clone())?
            .with_retention(settings.upload_retention);
        let audit = AuditLog::new(redis.clone(), keys.clone(), settings.audit_max_events);
        let qbo = settings.qbo.clone().map(|q| {
            let conn = Connection::new(q, redis.clone(), keys.clone());
            Qbo::new(QboClient::new(conn), deposits.clone()).with_audit(audit.clone())
        });
        Ok(Self {
            workers: WorkerRegistry::new(redis.clone(), keys.clone()),
            columns: crate::imports::ColumnChoices::new(redis.clone(), keys.clone()),
            legal: crate::legal::LegalTexts::new(redis.clone(), keys.clone()),
            statements: crate::statements::StatementStore::new(redis.clone(), keys.clone()),
            audit,
            keys,
            redis,
            jobs,
            deposits,
            store,
            queue,
            qbo,
            max_file_bytes: settings.max_file_bytes,
        })
    }
}

/// Why a job could not be queued again.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error(transparent)]
    Record(#[from] crate::jobs::JobError),
    #[error(transparent)]
    Queue(#[from] crate::queue::PushError),
}

impl Services {
    /// Queues a failed or dead job again, its crash count reset (the operator's retry, from
    /// the command line or the operations page); false when it has not failed or is gone.
    pub async fn retry_job(&self, id: &str) -> Result<bool, RetryError> {
        if !self.jobs.reset_for_retry(id).await? {
            return Ok(false);
        }
        // The first push's deduplication key is still held, so push past it.
        self.queue.push_again(crate::jobs::queue_of(id), id).await?;
        Ok(true)
    }
}
