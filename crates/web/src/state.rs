//! What every request handler shares: settings and the Redis-backed stores of this process.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use fom_core::deposits::DepositStore;
use fom_core::jobs::JobStore;
use fom_core::qbo::client::QboClient;
use fom_core::qbo::connection::Connection;
use fom_core::qbo::sync::Qbo;
use fom_core::queue::{documents_config, qbo_config, DocQueue, SendQueue};
use fom_core::redis_conn::{RedisPool, RedisSettings};
use fom_core::store::UploadStore;

use crate::config::Config;

pub struct AppState {
    pub cfg: Config,
    /// The web's one pool (`REDIS_POOL_SIZE`); every request borrows from it briefly.
    pub redis: RedisPool,
    pub jobs: JobStore,
    pub deposits: DepositStore,
    pub store: UploadStore,
    /// Pushes document jobs (the queue library needs its own multiplexed connection).
    pub queue: DocQueue,
    /// Pushes send-all jobs to the worker's `qbo` queue.
    pub send_queue: SendQueue,
    /// QuickBooks, when set up.
    pub qbo: Option<Qbo>,
    /// /health's Redis, queue and worker figures, at most one second old: health checks
    /// under load must not each scan the job index.
    pub health_cache: Mutex<Option<(Instant, serde_json::Value)>>,
}

impl AppState {
    pub async fn connect(cfg: Config) -> anyhow::Result<Self> {
        RedisSettings::install_tls_provider();
        let redis = RedisPool::pool(&cfg.redis.url, cfg.pool_size, Duration::from_secs(5))
            .context("REDIS_URL is not usable")?;
        // Fail at start-up, with a clear message, rather than on the first request.
        let mut probe = redis
            .get()
            .await
            .context("cannot connect to Redis (REDIS_URL)")?;
        let _: String = redis::cmd("PING")
            .query_async(&mut probe)
            .await
            .context("Redis does not answer PING")?;
        drop(probe);
        let queue_conn = apalis_redis_connect(&cfg.redis.url).await?;
        let keys = cfg.redis.keys.clone();
        let queue = DocQueue::new(
            queue_conn.clone(),
            documents_config(&keys, Duration::from_secs(1), 10),
        );
        let send_queue = SendQueue::new(queue_conn, qbo_config(&keys, Duration::from_secs(1), 10));
        let jobs = JobStore::new(redis.clone(), keys.clone(), 3);
        let deposits = DepositStore::new(redis.clone(), keys.clone()).with_ttl(cfg.deposit_ttl);
        let store = UploadStore::from_spec(&cfg.redis.upload_store, redis.clone(), keys.clone())
            .context("UPLOAD_STORE")?;
        let qbo = cfg.qbo.clone().map(|s| {
            let conn = Connection::new(s, redis.clone(), keys.clone());
            Qbo::new(QboClient::new(conn), deposits.clone())
        });
        Ok(Self {
            cfg,
            redis,
            jobs,
            deposits,
            store,
            queue,
            send_queue,
            qbo,
            health_cache: Mutex::new(None),
        })
    }
}

async fn apalis_redis_connect(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url).context("REDIS_URL is not usable")?;
    redis::aio::ConnectionManager::new(client)
        .await
        .context("cannot connect to Redis (REDIS_URL)")
}
