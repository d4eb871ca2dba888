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

/// Job peaks kept for the estimate.
const PEAKS_KEPT: isize = 50;

/// How a dyno's supervisor scales its children (`WORKER_PROCESSES=auto`), as /health and the
/// operations page show it.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, Serialize)]
pub struct Scaling {
    pub dyno: String,
    /// `auto`, or the fixed number.
    pub mode: String,
    pub children: usize,
    pub max_children: usize,
    /// What one more child is expected to need (MB), from recent job peaks.
    pub estimate_mb: f64,
    /// The supervisor's and its children's RSS now (MB).
    pub total_mb: f64,
    /// What the dyno's processes may use together (MB): the least of `DYNO_MEMORY_MB` and
    /// `MEMORY_WARNING_MB`.
    pub limit_mb: f64,
    /// What is left once every child is counted at its estimate and the reserve is kept (MB).
    pub headroom_mb: f64,
    /// Jobs waiting on the queues.
    pub waiting: usize,
    /// Children the Redis connection budget allows (`REDIS_MAX_CLIENTS`).
    pub redis_children: usize,
    /// Redis's connected clients (`INFO clients`), when read.
    pub redis_clients: Option<usize>,
    /// Milliseconds since the epoch.
    pub at: i64,
}

/// How far back the RSS series reach (the operations page's sparklines).
pub const SERIES_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);
/// One sample per this long at most: 720 an hour per child, about 15 KB of Redis.
pub const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
const SERIES_POINTS: isize = (SERIES_WINDOW.as_secs() / SAMPLE_EVERY.as_secs()) as isize;

/// What goes into an RSS series: the highest reading since the last sample, at most one
/// sample per [`SAMPLE_EVERY`]. Readings come more often (heartbeats, scaler ticks).
#[derive(Debug, Default)]
pub struct Sampler {
    last_ms: i64,
    highest: f64,
}

impl Sampler {
    /// Takes a reading; the sample to write when one is due.
    pub fn reading(&mut self, at_ms: i64, mb: f64) -> Option<f64> {
        self.highest = self.highest.max(mb);
        (at_ms - self.last_ms >= SAMPLE_EVERY.as_millis() as i64).then_some(self.highest)
    }

    /// The sample was written: the next one starts afresh.
    pub fn written(&mut self, at_ms: i64) {
        self.last_ms = at_ms;
        self.highest = 0.0;
    }
}

/// RSS over the last hour of one child (or one dyno's processes together), oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RssSeries {
    pub id: String,
    /// `(ms since the epoch, MB)`.
    pub samples: Vec<(i64, f64)>,
}

impl RssSeries {
    /// At most `n` samples: consecutive samples merged, each group keeping its highest, so a
    /// short peak still shows.
    pub fn thinned(mut self, n: usize) -> Self {
        let n = n.max(1);
        if self.samples.len() > n {
            let group = self.samples.len().div_ceil(n);
            self.samples = self
                .samples
                .chunks(group)
                .filter_map(|c| c.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)))
                .collect();
        }
        self
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

    /// Notes a job's peak RSS, for [`Self::recent_peaks`].
    pub async fn note_peak(&self, peak_mb: f64) -> Result<(), redis::RedisError> {
        let key = self.keys.worker_peaks();
        let mut pipe = redis::pipe();
        pipe.lpush(&key, format!("{peak_mb:.1}"))
            .ignore()
            .ltrim(&key, 0, PEAKS_KEPT - 1)
            .ignore();
        pipe.query_async::<()>(&mut self.redis.get().await?).await
    }

    /// The peak RSS of the latest `n` jobs (MB), newest first.
    pub async fn recent_peaks(&self, n: usize) -> Result<Vec<f64>, redis::RedisError> {
        let raw: Vec<String> = self
            .redis
            .get()
            .await?
            .lrange(self.keys.worker_peaks(), 0, n as isize - 1)
            .await?;
        Ok(raw.iter().filter_map(|v| v.parse().ok()).collect())
    }

    /// Writes a dyno's scaling as its supervisor sees it; it lapses with the supervisor.
    pub async fn note_scaling(
        &self,
        dyno: &str,
        scaling: &Scaling,
    ) -> Result<(), redis::RedisError> {
        let key = self.keys.worker_scaling(dyno);
        let json = serde_json::to_string(scaling).unwrap_or_default();
        let _: () = self
            .redis
            .get()
            .await?
            .set_ex(key, json, WORKER_TTL.as_secs())
            .await?;
        Ok(())
    }

    /// Every dyno's scaling, as their supervisors last wrote it.
    pub async fn scalings(&self) -> Result<Vec<Scaling>, redis::RedisError> {
        let mut conn = self.redis.get().await?;
        let pattern = self.keys.worker_scaling("*");
        let mut keys: Vec<String> = Vec::new();
        {
            let mut iter: redis::AsyncIter<'_, String> = conn.scan_match(&pattern).await?;
            while let Some(k) = futures_util::StreamExt::next(&mut iter).await {
                keys.push(k?);
            }
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let raw: Vec<Option<String>> = conn.mget(&keys).await?;
        Ok(raw
            .into_iter()
            .flatten()
            .filter_map(|r| serde_json::from_str(&r).ok())
            .collect())
    }

    /// Notes a child's RSS sample (`mb` at `at_ms`) in its hour-long series.
    pub async fn note_rss(&self, id: &str, at_ms: i64, mb: f64) -> Result<(), redis::RedisError> {
        self.push_sample(
            &self.keys.worker_rss(id),
            &self.keys.worker_rss_index(),
            id,
            at_ms,
            mb,
        )
        .await
    }

    /// Notes a dyno's total RSS sample in its hour-long series.
    pub async fn note_dyno_rss(
        &self,
        dyno: &str,
        at_ms: i64,
        mb: f64,
    ) -> Result<(), redis::RedisError> {
        self.push_sample(
            &self.keys.dyno_rss(dyno),
            &self.keys.dyno_rss_index(),
            dyno,
            at_ms,
            mb,
        )
        .await
    }

    async fn push_sample(
        &self,
        key: &str,
        index: &str,
        member: &str,
        at_ms: i64,
        mb: f64,
    ) -> Result<(), redis::RedisError> {
        let window_ms = SERIES_WINDOW.as_millis() as i64;
        let mut pipe = redis::pipe();
        pipe.lpush(key, format!("{at_ms}:{mb:.1}"))
            .ignore()
            .ltrim(key, 0, SERIES_POINTS - 1)
            .ignore()
            .expire(key, SERIES_WINDOW.as_secs() as i64)
            .ignore()
            .zadd(index, member, at_ms)
            .ignore()
            .zrembyscore(index, "-inf", at_ms - window_ms)
            .ignore();
        pipe.query_async::<()>(&mut self.redis.get().await?).await
    }

    /// Every child with a sample in the last hour, live or stopped, each series oldest first.
    pub async fn rss_history(&self, now_ms: i64) -> Result<Vec<RssSeries>, redis::RedisError> {
        self.series(&self.keys.worker_rss_index(), now_ms, |id| {
            self.keys.worker_rss(id)
        })
        .await
    }

    /// Every dyno's total RSS over the last hour.
    pub async fn dyno_history(&self, now_ms: i64) -> Result<Vec<RssSeries>, redis::RedisError> {
        self.series(&self.keys.dyno_rss_index(), now_ms, |d| {
            self.keys.dyno_rss(d)
        })
        .await
    }

    async fn series(
        &self,
        index: &str,
        now_ms: i64,
        key_of: impl Fn(&str) -> String,
    ) -> Result<Vec<RssSeries>, redis::RedisError> {
        let since = now_ms - SERIES_WINDOW.as_millis() as i64;
        let mut conn = self.redis.get().await?;
        let ids: Vec<String> = conn.zrangebyscore(index, since, "+inf").await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.lrange(key_of(id), 0, -1);
        }
        let lists: Vec<Vec<String>> = pipe.query_async(&mut conn).await?;
        Ok(ids
            .into_iter()
            .zip(lists)
            .map(|(id, raw)| {
                let mut samples: Vec<(i64, f64)> = raw
                    .iter()
                    .filter_map(|s| {
                        let (at, mb) = s.split_once(':')?;
                        Some((at.parse().ok()?, mb.parse().ok()?))
                    })
                    .filter(|(at, _)| *at >= since)
                    .collect();
                samples.reverse();
                RssSeries { id, samples }
            })
            .filter(|s| !s.samples.is_empty())
            .collect())
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
    fn a_sample_is_the_highest_reading_since_the_last() {
        let mut s = Sampler::default();
        assert_eq!(s.reading(10_000, 40.0), Some(40.0));
        s.written(10_000);
        assert_eq!(s.reading(11_000, 70.0), None);
        assert_eq!(s.reading(14_000, 50.0), None);
        assert_eq!(s.reading(15_000, 45.0), Some(70.0));
        // Not written (Redis away): the peak waits for the next try.
        assert_eq!(s.reading(16_000, 41.0), Some(70.0));
        s.written(16_000);
        assert_eq!(s.reading(21_000, 41.0), Some(41.0));
    }

    #[test]
    fn a_thinned_series_keeps_its_peaks() {
        let samples: Vec<(i64, f64)> = (0..720)
            .map(|i| (i, if i == 301 { 90.0 } else { 40.0 }))
            .collect();
        let thin = RssSeries {
            id: "c".into(),
            samples,
        }
        .thinned(240);
        assert_eq!(thin.samples.len(), 240);
        assert_eq!(thin.samples.iter().filter(|s| s.1 == 90.0).count(), 1);
        assert!(thin.samples.windows(2).all(|w| w[0].0 < w[1].0));
        let short = RssSeries {
            id: "c".into(),
            samples: vec![(1, 2.0)],
        }
        .thinned(240);
        assert_eq!(short.samples, vec![(1, 2.0)]);
    }

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
