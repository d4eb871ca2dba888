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

    /// `Some(wait)` when `client` has used up its attempts: how long until it may try again.
    pub async fn blocked(&self, client: &str) -> Result<Option<Duration>, redis::RedisError> {
        let key = self.keys.login_attempts(client);
        let mut conn = self.redis.get().await?;
        let failed: Option<u64> = conn.get(&key).await?;
        if failed.unwrap_or(0) < self.max_attempts {
            return Ok(None);
        }
        let ttl: i64 = conn.ttl(&key).await?;
        let wait = u64::try_from(ttl)
            .unwrap_or(ATTEMPT_WINDOW.as_secs())
            .max(1);
        Ok(Some(Duration::from_secs(wait)))
    }

    /// Counts a wrong password; the window starts at the first one.
    pub async fn failed(&self, client: &str) -> Result<(), redis::RedisError> {
        let key = self.keys.login_attempts(client);
        let mut pipe = redis::pipe();
        pipe.incr(&key, 1)
            .ignore()
            .expire(&key, ATTEMPT_WINDOW.as_secs() as i64)
            .arg("NX")
            .ignore();
        pipe.query_async::<()>(&mut self.redis.get().await?).await
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
