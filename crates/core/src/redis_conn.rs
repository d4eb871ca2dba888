//! Redis settings and connections shared by both processes.
//!
//! The worker talks to Redis through one multiplexed [`SteadyConnection`] (the queue library
//! needs one connection it can clone); the web process uses a small `deadpool-redis` pool whose
//! size bounds its share of the Key-Value Store's connection limit (docs/REDIS.md, "Connection
//! budget"), and a `SteadyConnection` for its queue pushes. Stores in this crate accept either
//! through [`RedisPool`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
pub use redis::RedisError;
use redis::{Cmd, ErrorKind, Pipeline, RedisFuture, ServerErrorKind, Value};

use crate::config::EnvReader;
use crate::keys::Keys;

/// `REDIS_URL`, `REDIS_TLS_VERIFY` and `KEY_PREFIX`, checked once.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// With `#insecure` appended for `rediss://` unless verification is on.
    pub url: String,
    pub keys: Keys,
    /// `REDIS_OUTAGE_WAIT_SECS`: how long the worker's commands wait out a Redis that does not
    /// answer (a restart, a failover) before they fail.
    pub outage_wait: Duration,
}

impl RedisSettings {
    pub fn from_env(env: &mut EnvReader) -> Self {
        let url = env.text("REDIS_URL", "redis://127.0.0.1:6379");
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            env.problem("REDIS_URL", "must start with redis:// or rediss://");
        }
        // Heroku Key-Value Store serves TLS with a self-signed certificate (docs/RULES.md#key-value-store):
        // certificate checks are off for rediss:// unless REDIS_TLS_VERIFY=1.
        let verify = env.flag("REDIS_TLS_VERIFY", false);
        let url = if url.starts_with("rediss://") && !verify && !url.contains('#') {
            format!("{url}#insecure")
        } else {
            url
        };
        let prefix = env.text("KEY_PREFIX", "fom");
        if prefix.is_empty() || prefix.contains(char::is_whitespace) {
            env.problem("KEY_PREFIX", "must be non-empty and contain no spaces");
        }
        let outage_wait = Duration::from_secs(env.number("REDIS_OUTAGE_WAIT_SECS", 120, 0, 3600));
        Self {
            url,
            keys: Keys::new(prefix),
            outage_wait,
        }
    }

    /// Installs the process's TLS provider for `rediss://` (idempotent).
    pub fn install_tls_provider() {
        // An error only means a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Errors that say Redis is away for now (restarting, loading its data, failing over), not
/// that the command is wrong: worth waiting out.
pub fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
            )
        )
}

const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(2);

/// One outage is logged once, however many commands wait through it.
#[derive(Default)]
struct OutageLog {
    /// When the current outage was first seen (ms since the epoch); 0 when Redis answers.
    since_ms: AtomicI64,
    /// When the last outage ended; 0 if none was seen.
    ended_ms: AtomicI64,
}

impl OutageLog {
    fn noticed(&self, e: &RedisError, patience: Duration) {
        let now = crate::jobs::now_ms();
        if self
            .since_ms
            .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            tracing::warn!(
                error = %e,
                wait_s = patience.as_secs(),
                "Redis does not answer; waiting for it to come back"
            );
        }
    }

    fn answered(&self) {
        if self.since_ms.load(Ordering::Relaxed) == 0 {
            return;
        }
        let since = self.since_ms.swap(0, Ordering::SeqCst);
        if since != 0 {
            let now = crate::jobs::now_ms();
            self.ended_ms.store(now, Ordering::SeqCst);
            let away_ms = now.saturating_sub(since);
            tracing::info!(away_ms, "Redis answers again");
        }
    }

    fn away_since_ms(&self) -> Option<i64> {
        let since = self.since_ms.load(Ordering::Relaxed);
        (since != 0).then_some(since)
    }
}

/// A multiplexed connection that waits out a Redis restart instead of failing: a command that
/// meets a dropped connection, a refusal, a timeout or `LOADING` is sent again (after the
/// connection manager has reconnected) with backoff from 50 ms to 2 s, for at most `patience`
/// in all. Redis being away is then a pause, not an error: a running job's writes and the
/// queue library's heartbeats and fetches resume where they were (docs/REDIS.md, "Redis
/// restarts").
///
/// A command whose connection broke after Redis ran it but before the answer came may run
/// twice. Every write here tolerates that: queue pushes carry an idempotency key, job and
/// deposit updates are scripts that check state first, and a job delivered twice is
/// recognised when it begins (`jobs::Begin`).
#[derive(Clone)]
pub struct SteadyConnection {
    inner: ConnectionManager,
    patience: Duration,
    outage: Arc<OutageLog>,
}

impl SteadyConnection {
    /// Connects to `url`, waiting out an unreachable Redis for at most `patience` (so a
    /// process started during a restart comes up after it, while a wrong address still
    /// fails at start-up).
    pub async fn open(url: &str, patience: Duration) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        // redis-rs answers "timed out" after 500 ms by default; a slow script on a busy
        // Key-Value Store is not an outage. Reconnection itself is driven by our retries.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(LAST_RETRY);
        let outage = Arc::new(OutageLog::default());
        let started = Instant::now();
        let mut delay = FIRST_RETRY;
        let inner = loop {
            match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                Ok(c) => break c,
                Err(e) if is_transient(&e) && started.elapsed() + delay <= patience => {
                    outage.noticed(&e, patience);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(LAST_RETRY);
                }
                Err(e) => return Err(e),
            }
        };
        outage.answered();
        Ok(Self {
            inner,
            patience,
            outage,
        })
    }

    /// The same connection with another patience (the web answers a person, so it waits
    /// less than the worker).
    pub fn waiting(&self, patience: Duration) -> Self {
        Self {
            patience,
            ..self.clone()
        }
    }

    /// When the current outage began (ms since the epoch), if Redis is away now.
    pub fn away_since_ms(&self) -> Option<i64> {
        self.outage.away_since_ms()
    }

    /// When the last outage this connection waited through ended (ms since the epoch).
    pub fn outage_ended_ms(&self) -> Option<i64> {
        let ended = self.outage.ended_ms.load(Ordering::Relaxed);
        (ended != 0).then_some(ended)
    }
}

/// Backoff for one command: how long it has waited so far, and whether it may wait more.
struct Patience<'a> {
    started: Instant,
    delay: Duration,
    limit: Duration,
    outage: &'a OutageLog,
}

impl<'a> Patience<'a> {
    fn new(conn: &'a SteadyConnection) -> Self {
        Self {
            started: Instant::now(),
            delay: FIRST_RETRY,
            limit: conn.patience,
            outage: &conn.outage,
        }
    }

    /// Waits before the next try after `e`, or gives `e` back when it is not worth waiting
    /// for (a real error, or patience spent).
    async fn after(&mut self, e: RedisError) -> Result<(), RedisError> {
        if !is_transient(&e) || self.started.elapsed() + self.delay > self.limit {
            return Err(e);
        }
        self.outage.noticed(&e, self.limit);
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(LAST_RETRY);
        Ok(())
    }

    fn answered(&self) {
        self.outage.answered();
    }
}

// The command is sent as it is on every try (no copy: a deposit write can be megabytes).
impl ConnectionLike for SteadyConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut patience = Patience::new(self);
            loop {
                match self.inner.clone().req_packed_command(cmd).await {
                    Ok(v) => {
                        patience.answered();
                        return Ok(v);
                    }
                    Err(e) => patience.after(e).await?,
                }
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut patience = Patience::new(self);
            loop {
                match self
                    .inner
                    .clone()
                    .req_packed_commands(pipeline, offset, count)
                    .await
                {
                    Ok(v) => {
                        patience.answered();
                        return Ok(v);
                    }
                    Err(e) => patience.after(e).await?,
                }
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

/// A plain connection manager that never waits (tests and tools that want errors at once).
impl From<ConnectionManager> for SteadyConnection {
    fn from(inner: ConnectionManager) -> Self {
        Self {
            inner,
            patience: Duration::ZERO,
            outage: Arc::default(),
        }
    }
}

impl From<ConnectionManager> for RedisPool {
    fn from(c: ConnectionManager) -> Self {
        Self::Shared(c.into())
    }
}

/// Either the worker's shared multiplexed connection or the web's pool.
#[derive(Clone)]
pub enum RedisPool {
    Shared(SteadyConnection),
    Pool(deadpool_redis::Pool),
}

impl From<SteadyConnection> for RedisPool {
    fn from(c: SteadyConnection) -> Self {
        Self::Shared(c)
    }
}

impl From<deadpool_redis::Pool> for RedisPool {
    fn from(p: deadpool_redis::Pool) -> Self {
        Self::Pool(p)
    }
}

impl RedisPool {
    /// A pool of at most `size` connections, opened lazily; a connection waits at most
    /// `wait` for a free slot.
    pub fn pool(url: &str, size: usize, wait: Duration) -> Result<Self, RedisError> {
        let mut cfg = deadpool_redis::Config::from_url(url);
        let mut pc = deadpool_redis::PoolConfig::new(size.max(1));
        pc.timeouts.wait = Some(wait);
        pc.timeouts.create = Some(wait);
        pc.timeouts.recycle = Some(wait);
        cfg.pool = Some(pc);
        cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map(Self::Pool)
            .map_err(|e| RedisError::from(std::io::Error::other(e.to_string())))
    }

    /// A connection for a few commands; pooled connections go back when dropped.
    pub async fn get(&self) -> Result<RedisConn, RedisError> {
        match self {
            Self::Shared(c) => Ok(RedisConn::Shared(c.clone())),
            Self::Pool(p) => match p.get().await {
                Ok(c) => Ok(RedisConn::Pooled(Box::new(c))),
                Err(deadpool_redis::PoolError::Backend(e)) => Err(e),
                Err(e) => Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no Redis connection available: {e}"),
                ))),
            },
        }
    }

    /// Pool occupancy for /health: (in use, size); `None` for a shared connection.
    pub fn occupancy(&self) -> Option<(usize, usize)> {
        match self {
            Self::Shared(_) => None,
            Self::Pool(p) => {
                let s = p.status();
                Some((s.size.saturating_sub(s.available), s.max_size))
            }
        }
    }
}

pub enum RedisConn {
    Shared(SteadyConnection),
    Pooled(Box<deadpool_redis::Connection>),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Shared(c) => c.req_packed_command(cmd),
            Self::Pooled(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Shared(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Pooled(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Shared(c) => c.get_db(),
            Self::Pooled(c) => c.get_db(),
        }
    }
}

/// What /health reports about Redis.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RedisHealth {
    pub ok: bool,
    pub latency_ms: f64,
    pub used_memory_mb: Option<f64>,
    /// `None` when Redis has no memory limit.
    pub maxmemory_mb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Memory figures from `INFO memory`, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisMemory {
    pub used: u64,
    /// 0 = no limit.
    pub max: u64,
}

impl RedisMemory {
    /// Bytes left before `maxmemory`; `None` without a limit.
    pub fn headroom(&self) -> Option<u64> {
        (self.max > 0).then(|| self.max.saturating_sub(self.used))
    }
}

/// Redis's connected clients (`INFO clients`).
pub async fn connected_clients(
    conn: &mut impl redis::aio::ConnectionLike,
) -> Result<Option<usize>, RedisError> {
    let info: String = redis::cmd("INFO").arg("clients").query_async(conn).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok()))
}

pub async fn memory_info(conn: &mut RedisConn) -> Result<RedisMemory, RedisError> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    Ok(parse_memory_info(&info))
}

fn parse_memory_info(info: &str) -> RedisMemory {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    RedisMemory {
        used: field("used_memory"),
        max: field("maxmemory"),
    }
}

/// PING and `INFO memory`, bounded by `timeout`: a hung Redis makes /health say so, not hang.
pub async fn health(pool: &RedisPool, timeout: Duration) -> RedisHealth {
    let started = Instant::now();
    let probe = async {
        let mut conn = pool.get().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        let latency = started.elapsed();
        let mem = memory_info(&mut conn).await?;
        Ok::<_, RedisError>((latency, mem))
    };
    let mb = |b: u64| (b as f64 / 1_048_576.0 * 10.0).round() / 10.0;
    match tokio::time::timeout(timeout, probe).await {
        Ok(Ok((latency, mem))) => RedisHealth {
            ok: true,
            latency_ms: (latency.as_secs_f64() * 10_000.0).round() / 10.0,
            used_memory_mb: Some(mb(mem.used)),
            maxmemory_mb: (mem.max > 0).then(|| mb(mem.max)),
            error: None,
        },
        Ok(Err(e)) => RedisHealth {
            error: Some(e.to_string()),
            ..RedisHealth::default()
        },
        Err(_) => RedisHealth {
            error: Some(format!("no answer within {} ms", timeout.as_millis())),
            ..RedisHealth::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_info_is_parsed() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:26214400\r\nmaxmemory_human:25.00M\r\n";
        let m = parse_memory_info(info);
        assert_eq!(m.used, 1_048_576);
        assert_eq!(m.max, 26_214_400);
        assert_eq!(m.headroom(), Some(25_165_824));
        assert_eq!(parse_memory_info("maxmemory:0").headroom(), None);
    }

    #[test]
    fn rediss_urls_skip_verification_unless_asked() {
        let mut env = EnvReader::from_pairs([("REDIS_URL", "rediss://h:1")]);
        assert_eq!(
            RedisSettings::from_env(&mut env).url,
            "rediss://h:1#insecure"
        );
        let mut env =
            EnvReader::from_pairs([("REDIS_URL", "rediss://h:1"), ("REDIS_TLS_VERIFY", "1")]);
        assert_eq!(RedisSettings::from_env(&mut env).url, "rediss://h:1");
        let mut env = EnvReader::from_pairs([("REDIS_URL", "http://x"), ("KEY_PREFIX", "a b")]);
        let _ = RedisSettings::from_env(&mut env);
        let err = env
            .finish()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("REDIS_URL") && err.contains("KEY_PREFIX"),
            "{err}"
        );
    }
}
