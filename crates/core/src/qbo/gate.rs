//! Intuit's limits per company: at most 10 requests in flight and 500 a minute for one app and
//! realm, counted over every process of the deployment (the web dyno and each worker child). A
//! per-process semaphore cannot see the other processes, so the count lives in Redis:
//!
//! - **In flight**: a sorted set of leases (member: a random id, score: when the lease
//!   lapses). A call takes a lease before it is sent and gives it back when the answer has
//!   been read; a process killed mid-call loses its lease when it lapses (the request timeout
//!   plus 10 s), so a crash never leaks a slot for good.
//! - **Rate**: GCRA (a token bucket kept as one "theoretical arrival time"): a steady
//!   `QBO_RATE_PER_MINUTE` with bursts of `QBO_RATE_BURST`. The defaults (450 a minute, bursts
//!   of 8) sit under Intuit's 500 a minute and 10 a second with room for network jitter, so
//!   the deployment waits here rather than being told 429 and waiting a minute.
//!
//! Both are checked and taken in one script, with Redis's clock, so processes on different
//! machines agree.

use std::time::{Duration, Instant};

use crate::keys::Keys;
use crate::qbo::config::QboSettings;
use crate::qbo::QboError;
use crate::redis_conn::RedisPool;

/// KEYS: leases (ZSET), rate (STRING). ARGV: lease id, max in flight, lease ms, interval ms,
/// burst. Returns 0 when the lease is taken, else how many ms to wait before asking again.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease_ms = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return -1
end
local interval = tonumber(ARGV[4])
local tolerance = interval * (tonumber(ARGV[5]) - 1)
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tat < now then tat = now end
if tat - now > tolerance then
  return math.max(1, math.ceil(tat - now - tolerance))
end
local next_tat = tat + interval
redis.call('SET', KEYS[2], string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - now) + 1000)
redis.call('ZADD', KEYS[1], now + lease_ms, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease_ms)
return 0
";

/// How often a caller blocked by the in-flight limit asks again (plus jitter): a lease is
/// usually held for one round trip to Intuit.
const FULL_POLL: Duration = Duration::from_millis(20);

/// The deployment-wide gate in front of every QuickBooks API call.
#[derive(Clone)]
pub struct RealmGate {
    redis: RedisPool,
    keys: Keys,
    max_in_flight: usize,
    interval_ms: f64,
    burst: u32,
    lease: Duration,
    wait_limit: Duration,
}

/// One slot taken; give it back with [`RealmGate::release`].
#[must_use = "a lease not released holds a slot until it lapses"]
pub struct Lease {
    realm: String,
    id: String,
}

impl RealmGate {
    pub fn new(settings: &QboSettings, redis: RedisPool, keys: Keys) -> Self {
        let lease = settings.hold_limit();
        Self {
            redis,
            keys,
            max_in_flight: settings.realm_max_concurrent.max(1),
            interval_ms: 60_000.0 / f64::from(settings.rate_per_minute.max(1)),
            burst: settings.rate_burst.max(1),
            lease,
            // Long enough for every lease of a crashed process to lapse.
            wait_limit: lease + Duration::from_secs(10),
        }
    }

    /// Waits for a slot for `realm`, or fails when the deployment stays saturated for longer
    /// than a lease lasts (something is stuck).
    pub async fn acquire(&self, realm: &str) -> Result<Lease, QboError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let started = Instant::now();
        loop {
            let mut conn = self.redis.get().await?;
            let wait_ms: i64 = redis::Script::new(ACQUIRE)
                .key(self.keys.qbo_in_flight(realm))
                .key(self.keys.qbo_rate(realm))
                .arg(&id)
                .arg(self.max_in_flight)
                .arg(self.lease.as_millis() as u64)
                .arg(format!("{:.3}", self.interval_ms))
                .arg(self.burst)
                .invoke_async(&mut conn)
                .await?;
            drop(conn);
            if wait_ms == 0 {
                return Ok(Lease {
                    realm: realm.to_string(),
                    id,
                });
            }
            if started.elapsed() > self.wait_limit {
                return Err(QboError::Unavailable(
                    "QuickBooks is busy with this server's other requests (Intuit allows 10 at \
                     once per company); try again in a minute"
                        .into(),
                ));
            }
            let wait = if wait_ms < 0 {
                FULL_POLL
            } else {
                Duration::from_millis(wait_ms as u64)
            };
            tokio::time::sleep(wait + Duration::from_millis(fastrand::u64(0..10))).await;
        }
    }

    /// Gives a slot back. A failure is only logged: the lease lapses on its own.
    pub async fn release(&self, lease: Lease) {
        let result = async {
            let mut conn = self.redis.get().await?;
            redis::cmd("ZREM")
                .arg(self.keys.qbo_in_flight(&lease.realm))
                .arg(&lease.id)
                .query_async::<i64>(&mut conn)
                .await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!("qbo: could not give back an in-flight slot (it lapses by itself): {e}");
        }
    }
}
