//! What every request handler shares: settings, the services (built the same way as the
//! worker's) and this process's sessions.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use fom_core::services::Services;
use fom_core::sessions::{Sessions, SignInLimiter};
use fom_queue::RedisUse;

use crate::config::Config;
use crate::streams::StreamSlots;

pub struct AppState {
    pub cfg: Config,
    /// Over the web's one pool (`REDIS_POOL_SIZE`); every request borrows from it briefly.
    pub services: Services,
    /// The queues themselves, for their depths (the operations page).
    pub queues: fom_queue::RedisQueues,
    pub sessions: Sessions,
    pub sign_in: SignInLimiter,
    /// Places for event streams, per session and in this process.
    pub streams: Arc<StreamSlots>,
    /// /health's Redis, queue and worker figures, at most one second old: health checks
    /// under load must not each scan the job index.
    pub health_cache: Mutex<Option<(Instant, serde_json::Value)>>,
    /// Bytes of uploads into the Redis store being received right now: counted against the
    /// room before they are written, so two uploads cannot both take the last megabytes.
    pub upload_reserved: AtomicU64,
}

impl AppState {
    pub async fn connect(cfg: Config) -> anyhow::Result<Self> {
        let how = RedisUse::Pool {
            size: cfg.pool_size,
            wait: Duration::from_secs(5),
        };
        let connected = fom_queue::connect(&cfg.services, how)
            .await
            .context("cannot start")?;
        let services = connected.services;
        let keys = services.keys.clone();
        Ok(Self {
            sessions: Sessions::new(
                services.redis.clone(),
                keys.clone(),
                cfg.session_ttl,
                cfg.session_max,
            ),
            sign_in: SignInLimiter::new(services.redis.clone(), keys, cfg.login_max_attempts),
            streams: StreamSlots::new(cfg.events_max_per_session, cfg.events_max),
            services,
            queues: connected.queues,
            cfg,
            health_cache: Mutex::new(None),
            upload_reserved: AtomicU64::new(0),
        })
    }
}
