//! The document queue (apalis-redis) and the settings shared by the worker's queue commands.
//!
//! apalis-redis 1.0 traps handled here (PEERS.md §0, §1.1): `batch_size(1)` so a worker never
//! claims jobs it is not running; an idempotency TTL so pushes with the same key dedupe at all;
//! unique worker names per child process, and our own removal of the name on exit.

use std::time::Duration;

use anyhow::Context;
use apalis::prelude::TaskSink;
use apalis_redis::{Config, RedisStorage};
use fom_core::config::EnvReader;
use fom_core::jobs::JobStore;
use fom_core::keys::Keys;
use fom_core::store::UploadStore;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

/// Payload of a document job: ids only, never file bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocJob {
    pub job_id: String,
}

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
    /// Test-only behaviours keyed on file names (see `child::test_hook`).
    pub test_hooks: bool,
}

impl QueueSettings {
    pub fn from_env(env: &mut EnvReader) -> Self {
        let redis_url = env.text("REDIS_URL", "redis://127.0.0.1:6379");
        if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
            env.problem("REDIS_URL", "must start with redis:// or rediss://");
        }
        // Heroku Key-Value Store serves TLS with a self-signed certificate (CONTRACTS.md E.7):
        // certificate checks are off for rediss:// unless REDIS_TLS_VERIFY=1.
        let verify = env.flag("REDIS_TLS_VERIFY", false);
        let redis_url = if redis_url.starts_with("rediss://") && !verify && !redis_url.contains('#')
        {
            format!("{redis_url}#insecure")
        } else {
            redis_url
        };
        let prefix = env.text("KEY_PREFIX", "fom");
        if prefix.contains(char::is_whitespace) {
            env.problem("KEY_PREFIX", "must not contain spaces");
        }
        let upload_store = env.text("UPLOAD_STORE", "redis");
        if upload_store != "redis" && !upload_store.starts_with("dir:") {
            env.problem("UPLOAD_STORE", "use \"redis\" or \"dir:/path\"");
        }
        Self {
            redis_url,
            keys: Keys::new(prefix),
            upload_store,
            max_rss_mb: env.number("WORKER_MAX_RSS_MB", 200.0, 32.0, 65_536.0),
            max_jobs: env.number("WORKER_MAX_JOBS", 0, 0, u64::MAX),
            max_crashes: env.number("WORKER_MAX_CRASHES", 3, 1, 100),
            heartbeat: Duration::from_secs(env.number("WORKER_HEARTBEAT_SECS", 1, 1, 300)),
            missed_heartbeats: env.number("WORKER_MISSED_HEARTBEATS", 10, 1, 100),
            processes: env.number("WORKER_PROCESSES", 1, 1, 16),
            max_file_bytes: env.number("MAX_FILE_MB", 25u64, 1, 1024) * 1024 * 1024,
            test_hooks: env.flag("WORKER_TEST_HOOKS", false),
        }
    }

    pub fn queue_config(&self) -> Config {
        Config::default()
            .queue(self.keys.queue("documents"))
            .batch_size(1)
            .heartbeat_interval(self.heartbeat)
            .missed_heartbeats(self.missed_heartbeats)
            .idempotency_ttl(Some(fom_core::keys::JOB_TTL))
    }
}

/// Connections and stores of one process.
pub struct Queue {
    pub conn: ConnectionManager,
    pub jobs: JobStore,
    pub store: UploadStore,
    pub storage: RedisStorage<DocJob>,
}

impl Queue {
    pub async fn connect(s: &QueueSettings) -> anyhow::Result<Self> {
        // One TLS provider for the process (rediss://); an error only means one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let conn = apalis_redis::connect(s.redis_url.as_str())
            .await
            .context("cannot connect to Redis (REDIS_URL)")?;
        let jobs = JobStore::new(conn.clone(), s.keys.clone(), s.max_crashes);
        let store = UploadStore::from_spec(&s.upload_store, conn.clone(), s.keys.clone())?;
        let storage = RedisStorage::new(conn.clone()).with_config(s.queue_config());
        Ok(Self {
            conn,
            jobs,
            store,
            storage,
        })
    }

    /// Queues one document job; pushing the same job id twice queues it once.
    pub async fn push(&mut self, job_id: &str) -> anyhow::Result<()> {
        let task = apalis::prelude::TaskBuilder::new(DocJob {
            job_id: job_id.to_string(),
        })
        .idempotency_key(job_id)
        .build();
        self.storage
            .push_task(task)
            .await
            .map_err(|e| anyhow::anyhow!("cannot queue job {job_id}: {e}"))?;
        Ok(())
    }
}
