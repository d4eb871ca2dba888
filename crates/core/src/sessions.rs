//! Signed-in sessions and the sign-in attempt limiter, kept in Redis so any web process can
//! serve any request. The cookie carries only a random id (signed by the web); the session's
//! life is its key's TTL here: renewed by activity up to the idle timeout, but never past the
//! session's absolute end, so a stolen cookie cannot be kept alive for ever.

use std::time::Duration;

use redis::AsyncCommands;

use crate::keys::Keys;
use crate::redis_conn::RedisPool;

/// How long failed sign-in attempts from one address are counted.
pub const ATTEMPT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Renews a live session's key to the idle timeout, capped at its absolute end (the earlier of
/// the `ends_at` written at sign-in and `created_at` + the lifetime now configured, so a
/// lowered `SESSION_MAX_HOURS` also shortens sessions already open). A session past its end is
/// deleted. Returns 1 when live.
/// KEYS[1] session; ARGV now (ms), idle (ms), lifetime (ms).
const TOUCH: &str = r"
local rec = redis.call('GET', KEYS[1])
if not rec then return 0 end
local now, idle, life = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ok, doc = pcall(cjson.decode, rec)
local ends = nil
if ok and type(doc) == 'table' then
  local created = tonumber(doc['created_at'])
  if created then ends = created + life end
  local stated = tonumber(doc['ends_at'])
  if stated and (not ends or stated < ends) then ends = stated end
end
if not ends then
  redis.call('DEL', KEYS[1])
  return 0
end
local left = math.min(idle, ends - now)
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('PEXPIRE', KEYS[1], math.floor(left))
return 1
";

#[derive(Clone)]
pub struct Sessions {
    redis: RedisPool,
    keys: Keys,
    idle: Duration,
    lifetime: Duration,
}

impl Sessions {
    /// `idle`: how long a session lasts without a request (`SESSION_TTL_HOURS`); `lifetime`:
    /// how long it lasts at most, however active (`SESSION_MAX_HOURS`).
    pub fn new(
        redis: impl Into<RedisPool>,
        keys: Keys,
        idle: Duration,
        lifetime: Duration,
    ) -> Self {
        Self {
            redis: redis.into(),
            keys,
            idle,
            lifetime,
        }
    }

    /// The absolute lifetime: a session's cookie lasts exactly this long.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new session id (256 random bits), stored until the earlier of its idle timeout and
    /// its absolute end.
    pub async fn create(&self) -> Result<String, redis::RedisError> {
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = crate::jobs::now_ms();
        let record = serde_json::json!({
            "created_at": now,
            "ends_at": now + millis(self.lifetime),
        })
        .to_string();
        let _: () = self
            .redis
            .get()
            .await?
            .pset_ex(
                self.keys.session(&id),
                record,
                millis(self.idle.min(self.lifetime)) as u64,
            )
            .await?;
        Ok(id)
    }

    /// True when the session is live, renewing its idle expiry (never past its absolute end).
    pub async fn touch(&self, id: &str) -> Result<bool, redis::RedisError> {
        let live: i32 = redis::Script::new(TOUCH)
            .key(self.keys.session(id))
            .arg(crate::jobs::now_ms())
            .arg(millis(self.idle))
            .arg(millis(self.lifetime))
            .invoke_async(&mut self.redis.get().await?)
            .await?;
        Ok(live == 1)
    }

    /// True when the session is live, without renewing it: for checks that are not the
    /// person's activity (an open event stream, /health).
    pub async fn alive(&self, id: &str) -> Result<bool, redis::RedisError> {
        self.redis.get().await?.exists(self.keys.session(id)).await
    }

    pub async fn end(&self, id: &str) -> Result<(), redis::RedisError> {
        self.redis.get().await?.del(self.keys.session(id)).await
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Counts sign-in attempts per client address over [`ATTEMPT_WINDOW`]; a successful sign-in
/// forgets them.
#[derive(Clone)]
pub struct SignInLimiter {
    redis: RedisPool,
    keys: Keys,
    max_attempts: u64,
}

impl SignInLimiter {
    pub fn new(redis: impl Into<RedisPool>, keys: Keys, max_attempts: u64) -> Self {
        Self {
            redis: redis.into(),
            keys,
            max_attempts,
        }
    }

    /// Takes one sign-in attempt for `client`, counted before the password is checked, in one
    /// script (count, start the window, compare): parallel attempts cannot all read "under the
    /// limit" before any is counted. `Some(wait)` when the attempts are used up: how long until
    /// it may try again. A successful sign-in clears the count ([`Self::succeeded`]).
    pub async fn attempt(&self, client: &str) -> Result<Option<Duration>, redis::RedisError> {
        const TAKE: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
  return ttl
end
return -1
";
        let wait: i64 = redis::Script::new(TAKE)
            .key(self.keys.login_attempts(client))
            .arg(self.max_attempts)
            .arg(ATTEMPT_WINDOW.as_secs())
            .invoke_async(&mut self.redis.get().await?)
            .await?;
        Ok(u64::try_from(wait)
            .ok()
            .map(|s| Duration::from_secs(s.max(1))))
    }

    /// Forgets the failures after a successful sign-in.
    pub async fn succeeded(&self, client: &str) -> Result<(), redis::RedisError> {
        self.redis
            .get()
            .await?
            .del(self.keys.login_attempts(client))
            .await
    }
}
