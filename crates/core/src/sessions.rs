//! Signed-in sessions and the sign-in attempt limiter, kept in Redis so any web process can
//! serve any request. The cookie carries only a random id (signed by the web); the session's
//! life is its key's TTL here.

use std::time::Duration;

use redis::AsyncCommands;

use crate::keys::Keys;
use crate::redis_conn::RedisPool;

/// How long failed sign-in attempts from one address are counted.
pub const ATTEMPT_WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Clone)]
pub struct Sessions {
    redis: RedisPool,
    keys: Keys,
    ttl: Duration,
}

impl Sessions {
    pub fn new(redis: impl Into<RedisPool>, keys: Keys, ttl: Duration) -> Self {
        Self {
            redis: redis.into(),
            keys,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session id (256 random bits), stored for the session's lifetime.
    pub async fn create(&self) -> Result<String, redis::RedisError> {
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let record = serde_json::json!({ "created_at": crate::jobs::now_ms() }).to_string();
        let _: () = self
            .redis
            .get()
            .await?
            .set_ex(self.keys.session(&id), record, self.ttl.as_secs())
            .await?;
        Ok(id)
    }

    /// True when the session is live, renewing its expiry (sliding).
    pub async fn touch(&self, id: &str) -> Result<bool, redis::RedisError> {
        let found: Option<String> = redis::cmd("GETEX")
            .arg(self.keys.session(id))
            .arg("EX")
            .arg(self.ttl.as_secs())
            .query_async(&mut self.redis.get().await?)
            .await?;
        Ok(found.is_some())
    }

    pub async fn end(&self, id: &str) -> Result<(), redis::RedisError> {
        self.redis.get().await?.del(self.keys.session(id)).await
    }
}

/// Counts failed sign-ins per client address over [`ATTEMPT_WINDOW`].
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
