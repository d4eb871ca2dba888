//! The worker registry: each worker child's heartbeat, written by the child every few seconds
//! and read by the web's /health. One type for both sides, so they cannot drift.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde::Serialize;

use crate::keys::{Keys, WORKER_TTL};
use crate::redis_conn::RedisPool;

/// One worker child as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heartbeat {
    pub id: String,
    pub pid: u32,
    pub rss_mb: f64,
    pub jobs_done: u64,
    /// The job it is running, if any.
    pub current_job: Option<String>,
    /// Milliseconds since the epoch.
    pub last_seen: i64,
    /// Both of its queue consumers have beaten recently: it is fetching jobs, not only alive.
    pub consuming: bool,
}

impl Heartbeat {
    fn to_fields(&self) -> [(&'static str, String); 7] {
        [
            ("id", self.id.clone()),
            ("pid", self.pid.to_string()),
            ("rss_mb", format!("{:.1}", self.rss_mb)),
            ("jobs_done", self.jobs_done.to_string()),
            ("current_job", self.current_job.clone().unwrap_or_default()),
            ("last_seen", self.last_seen.to_string()),
            (
                "consuming",
                if self.consuming { "1" } else { "0" }.to_string(),
            ),
        ]
    }

    /// `None` for an expired (empty) hash; unreadable fields read as zero.
    fn from_fields(id: String, row: &HashMap<String, String>) -> Option<Self> {
        if row.is_empty() {
            return None;
        }
        let get = |k: &str| row.get(k).filter(|v| !v.is_empty());
        Some(Self {
            pid: get("pid").and_then(|v| v.parse().ok()).unwrap_or(0),
            rss_mb: get("rss_mb").and_then(|v| v.parse().ok()).unwrap_or(0.0),
            jobs_done: get("jobs_done").and_then(|v| v.parse().ok()).unwrap_or(0),
            current_job: get("current_job").cloned(),
            last_seen: get("last_seen").and_then(|v| v.parse().ok()).unwrap_or(0),
            consuming: get("consuming").is_some_and(|v| v == "1"),
            id,
        })
    }
}

#[derive(Clone)]
pub struct WorkerRegistry {
    redis: RedisPool,
    keys: Keys,
}

impl WorkerRegistry {
    pub fn new(redis: impl Into<RedisPool>, keys: Keys) -> Self {
        Self {
            redis: redis.into(),
            keys,
        }
    }

    /// Writes a heartbeat; it lapses after [`WORKER_TTL`] unless written again.
    pub async fn beat(&self, beat: &Heartbeat) -> Result<(), redis::RedisError> {
        let key = self.keys.worker(&beat.id);
        let mut pipe = redis::pipe();
        pipe.hset_multiple(&key, &beat.to_fields())
            .ignore()
            .expire(&key, WORKER_TTL.as_secs() as i64)
            .ignore()
            .zadd(self.keys.workers(), &beat.id, beat.last_seen / 1000)
            .ignore();
        pipe.query_async::<()>(&mut self.redis.get().await?).await
    }

    /// Removes a worker that stops cleanly.
    pub async fn remove(&self, id: &str) -> Result<(), redis::RedisError> {
        let mut pipe = redis::pipe();
        pipe.del(self.keys.worker(id))
            .ignore()
            .zrem(self.keys.workers(), id)
            .ignore();
        pipe.query_async::<()>(&mut self.redis.get().await?).await
    }

    /// Live workers (expired heartbeats are left out).
    pub async fn list(&self) -> Result<Vec<Heartbeat>, redis::RedisError> {
        let mut conn = self.redis.get().await?;
        let ids: Vec<String> = conn.zrange(self.keys.workers(), 0, -1).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(self.keys.worker(id));
        }
        let rows: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        Ok(ids
            .into_iter()
            .zip(rows)
            .filter_map(|(id, row)| Heartbeat::from_fields(id, &row))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_reads_back_as_written() {
        let beat = Heartbeat {
            id: "local-1-ab".into(),
            pid: 42,
            rss_mb: 61.5,
            jobs_done: 3,
            current_job: Some("j1".into()),
            last_seen: 1_700_000_000_123,
            consuming: true,
        };
        let row: HashMap<String, String> = beat
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(Heartbeat::from_fields(beat.id.clone(), &row), Some(beat));
        assert_eq!(Heartbeat::from_fields("x".into(), &HashMap::new()), None);
    }
}
