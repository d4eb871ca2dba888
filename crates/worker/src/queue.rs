//! The worker's queue settings and connections. The queue's payload and configuration are in
//! `fom_core::queue` (the web pushes to the same queue); unique worker names per child process
//! and our own removal of the name on exit are in `child`.

use std::time::Duration;

use anyhow::Context;
use apalis_redis::{Config, RedisStorage};
use fom_core::config::EnvReader;
use fom_core::deposits::DepositStore;
use fom_core::jobs::JobStore;
use fom_core::keys::Keys;
use fom_core::qbo::client::QboClient;
use fom_core::qbo::connection::Connection;
use fom_core::qbo::sync::Qbo;
use fom_core::queue::{DocJob, DocQueue, SendJob, SendQueue};
use fom_core::store::UploadStore;
use redis::aio::ConnectionManager;

/// Exit code of a child that stopped because it crossed its memory or job budget.
pub const EXIT_BUDGET: i32 = 3;

pub struct QueueSettings {
    pub redis_url: String,
    pub keys: Keys,
    pub upload_store: String,
    pub max_rss_mb: f64,
    pub max_jobs: u64,
    pub max_crashes: u32,
    pub heartbeat: Duration,
    pub missed_heartbeats: usize,
    pub processes: usize,
    pub max_file_bytes: u64,
    /// Kept after a job succeeded, then deleted by a worker's sweep (0: deleted at once).
    pub upload_retention: Duration,
    /// Test-only behaviours keyed on file names (see `child::test_hook`).
    pub test_hooks: bool,
    /// QuickBooks, when `QBO_CLIENT_ID` is set (checked at start-up like the rest).
    pub qbo: Option<fom_core::qbo::config::QboSettings>,
}

impl QueueSettings {
    pub fn from_env(env: &mut EnvReader) -> Self {
        let redis = fom_core::redis_conn::RedisSettings::from_env(env);
        Self {
            redis_url: redis.url,
            keys: redis.keys,
            upload_store: redis.upload_store,
            max_rss_mb: env.number("WORKER_MAX_RSS_MB", 200.0, 32.0, 65_536.0),
            max_jobs: env.number("WORKER_MAX_JOBS", 0, 0, u64::MAX),
            max_crashes: env.number("WORKER_MAX_CRASHES", 3, 1, 100),
            heartbeat: Duration::from_secs(env.number("WORKER_HEARTBEAT_SECS", 1, 1, 300)),
            missed_heartbeats: env.number("WORKER_MISSED_HEARTBEATS", 10, 1, 100),
            processes: env.number("WORKER_PROCESSES", 1, 1, 16),
            max_file_bytes: env.number("MAX_FILE_MB", 25u64, 1, 1024) * 1024 * 1024,
            upload_retention: Duration::from_secs(
                env.number("UPLOAD_RETENTION_HOURS", 0u64, 0, 24 * 365) * 3600,
            ),
            test_hooks: env.flag("WORKER_TEST_HOOKS", false),
            qbo: fom_core::qbo::config::QboSettings::from_env(env),
        }
    }

    pub fn queue_config(&self) -> Config {
        fom_core::queue::documents_config(&self.keys, self.heartbeat, self.missed_heartbeats)
    }

    pub fn qbo_queue_config(&self) -> Config {
        fom_core::queue::qbo_config(&self.keys, self.heartbeat, self.missed_heartbeats)
    }
}

/// Connections and stores of one process.
pub struct Queue {
    pub conn: ConnectionManager,
    pub jobs: JobStore,
    pub store: UploadStore,
    pub deposits: DepositStore,
    pub queue: DocQueue,
    pub send_queue: SendQueue,
    pub qbo: Option<Qbo>,
}

impl Queue {
    pub async fn connect(s: &QueueSettings) -> anyhow::Result<Self> {
        fom_core::redis_conn::RedisSettings::install_tls_provider();
        let conn = apalis_redis::connect(s.redis_url.as_str())
            .await
            .context("cannot connect to Redis (REDIS_URL)")?;
        let jobs = JobStore::new(conn.clone(), s.keys.clone(), s.max_crashes);
        let store = UploadStore::from_spec(&s.upload_store, conn.clone(), s.keys.clone())?;
        let deposits = DepositStore::new(conn.clone(), s.keys.clone());
        let queue = DocQueue::new(conn.clone(), s.queue_config());
        let send_queue = SendQueue::new(conn.clone(), s.qbo_queue_config());
        let qbo = s.qbo.clone().map(|q| {
            let c = Connection::new(q, conn.clone(), s.keys.clone());
            Qbo::new(QboClient::new(c), deposits.clone())
        });
        Ok(Self {
            conn,
            jobs,
            store,
            deposits,
            queue,
            send_queue,
            qbo,
        })
    }

    /// The queue library's storage, for the consuming worker.
    pub fn storage(&self) -> RedisStorage<DocJob> {
        self.queue.storage().clone()
    }

    /// The `qbo` queue's storage (send-all jobs).
    pub fn send_storage(&self) -> RedisStorage<SendJob> {
        self.send_queue.storage().clone()
    }

    /// Queues one document job; pushing the same job id twice queues it once.
    pub async fn push(&mut self, job_id: &str) -> anyhow::Result<()> {
        Ok(self.queue.push(job_id).await?)
    }
}
