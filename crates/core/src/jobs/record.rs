//! Our own job records in Redis: what operators and the web page read, independent of the
//! queue library's internals (whose listing is unreliable; docs/RULES.md#task-listing).
//!
//! Every state change that must happen at most once is one Lua script, so two processes that
//! both believe they own a job (a recovered orphan and a slow original) cannot both finish it.
//! Terminal states are always reachable: a job found `running` when it is delivered again was
//! orphaned by a crash; its crash count rises and at `max_crashes` it goes `dead` with a reason.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::keys::{Keys, JOB_TTL};
use crate::redis_conn::RedisPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Dead,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "dead" => JobState::Dead,
            _ => return None,
        })
    }
}

/// Where a running job is; the page shows it next to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Fetching the upload from the store (set when a worker claims the job).
    Download,
    Render,
    Extract,
    /// Records going into the deposit.
    Merge,
    /// Rows matched to QuickBooks customers.
    Match,
    /// Send-all: receipts going to QuickBooks.
    Send,
    /// Scans going to QuickBooks as attachments of their receipts.
    Attach,
    /// Statements: the period's receipts read from QuickBooks (`page` counts them).
    Gather,
    /// Statements: letters written (`page` of `pages` donors).
    Letters,
    Done,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Download => "download",
            Stage::Render => "render",
            Stage::Extract => "extract",
            Stage::Merge => "merge",
            Stage::Match => "match",
            Stage::Send => "send",
            Stage::Attach => "attach",
            Stage::Gather => "gather",
            Stage::Letters => "letters",
            Stage::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "download" => Stage::Download,
            "render" => Stage::Render,
            "extract" => Stage::Extract,
            "merge" => Stage::Merge,
            "match" => Stage::Match,
            "send" => Stage::Send,
            "attach" => Stage::Attach,
            "gather" => Stage::Gather,
            "letters" => Stage::Letters,
            "done" => Stage::Done,
            _ => return None,
        })
    }
}

/// One job (a document, or a deposit's send-all) as people see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub deposit_id: String,
    pub file_id: String,
    pub file_name: String,
    pub state: JobState,
    pub stage: Option<Stage>,
    pub page: u32,
    pub pages: u32,
    pub rss_mb: f64,
    /// The worker's peak RSS over this job's last run (reset when it started), in MB.
    pub peak_rss_mb: f64,
    pub attempts: u32,
    /// Times the job was found orphaned by a dead worker.
    pub crashes: u32,
    /// Pages left out because an attempt ended while pdfium was loading them (the memory
    /// ceiling); each becomes a page error, the other pages are read.
    pub skip_pages: Vec<u32>,
    pub last_error: Option<String>,
    pub worker: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// How a CSV file was read: by which profile, what was skipped, and the columns when
    /// the treasurer must (or may) choose them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<crate::extract::csv::ReadSummary>,
    /// Photos read together with `file_id` (photos sent in one upload): one job, so a check
    /// and its envelope reach the model in the same request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_files: Vec<JobFile>,
}

/// A stored upload a job reads besides its first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFile {
    pub file_id: String,
    pub file_name: String,
}

impl JobRecord {
    pub fn new(id: &str, deposit_id: &str, file_id: &str, file_name: &str, now_ms: i64) -> Self {
        Self {
            id: id.to_string(),
            deposit_id: deposit_id.to_string(),
            file_id: file_id.to_string(),
            file_name: file_name.to_string(),
            state: JobState::Queued,
            stage: None,
            page: 0,
            pages: 0,
            rss_mb: 0.0,
            peak_rss_mb: 0.0,
            attempts: 0,
            crashes: 0,
            skip_pages: Vec::new(),
            last_error: None,
            worker: None,
            created_at: now_ms,
            started_at: None,
            updated_at: now_ms,
            finished_at: None,
            csv: None,
            more_files: Vec::new(),
        }
    }

    /// The job's file as people read it: its name, or the first photo's and how many more.
    pub fn label(&self) -> String {
        match self.more_files.len() {
            0 => self.file_name.clone(),
            1 => format!("{} and 1 more photo", self.file_name),
            n => format!("{} and {n} more photos", self.file_name),
        }
    }

    /// Every stored upload the job reads, its first file first: (id, name).
    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::once((self.file_id.as_str(), self.file_name.as_str())).chain(
            self.more_files
                .iter()
                .map(|f| (f.file_id.as_str(), f.file_name.as_str())),
        )
    }

    fn to_fields(&self) -> Vec<(&'static str, String)> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let opt_i = |v: Option<i64>| v.map_or_else(String::new, |n| n.to_string());
        vec![
            ("id", self.id.clone()),
            ("deposit_id", self.deposit_id.clone()),
            ("file_id", self.file_id.clone()),
            ("file_name", self.file_name.clone()),
            ("state", self.state.as_str().to_string()),
            (
                "stage",
                self.stage
                    .map(Stage::as_str)
                    .unwrap_or_default()
                    .to_string(),
            ),
            ("page", self.page.to_string()),
            ("pages", self.pages.to_string()),
            ("rss_mb", self.rss_mb.to_string()),
            ("peak_rss_mb", self.peak_rss_mb.to_string()),
            ("attempts", self.attempts.to_string()),
            ("crashes", self.crashes.to_string()),
            (
                "skip_pages",
                self.skip_pages
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("last_error", opt(&self.last_error)),
            ("worker", opt(&self.worker)),
            ("created_at", self.created_at.to_string()),
            ("started_at", opt_i(self.started_at)),
            ("updated_at", self.updated_at.to_string()),
            ("finished_at", opt_i(self.finished_at)),
            (
                "more_files",
                if self.more_files.is_empty() {
                    String::new()
                } else {
                    serde_json::to_string(&self.more_files).unwrap_or_default()
                },
            ),
        ]
    }

    fn from_fields(mut f: HashMap<String, String>) -> Option<Self> {
        let mut take = |k: &str| f.remove(k).filter(|v| !v.is_empty());
        let id = take("id")?;
        let state = JobState::parse(&take("state")?)?;
        let num = |v: Option<String>| v.and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
        let int = |v: Option<String>| v.and_then(|s| s.parse::<i64>().ok());
        Some(Self {
            id,
            deposit_id: take("deposit_id").unwrap_or_default(),
            file_id: take("file_id").unwrap_or_default(),
            file_name: take("file_name").unwrap_or_default(),
            state,
            stage: take("stage").as_deref().and_then(Stage::parse),
            page: num(take("page")),
            pages: num(take("pages")),
            rss_mb: take("rss_mb").and_then(|s| s.parse().ok()).unwrap_or(0.0),
            peak_rss_mb: take("peak_rss_mb")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0),
            attempts: num(take("attempts")),
            crashes: num(take("crashes")),
            skip_pages: take("skip_pages")
                .map(|v| v.split(',').filter_map(|p| p.parse().ok()).collect())
                .unwrap_or_default(),
            last_error: take("last_error"),
            worker: take("worker"),
            created_at: int(take("created_at")).unwrap_or(0),
            started_at: int(take("started_at")),
            updated_at: int(take("updated_at")).unwrap_or(0),
            finished_at: int(take("finished_at")),
            csv: take("csv").and_then(|v| serde_json::from_str(&v).ok()),
            more_files: take("more_files")
                .and_then(|v| serde_json::from_str(&v).ok())
                .unwrap_or_default(),
        })
    }
}

/// What a worker should do with a delivered job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Run it (this worker now owns it).
    Run,
    /// Already finished: acknowledge without running again.
    AlreadyDone,
    /// Dead (too many crashes, or retired by an operator): do not run.
    Dead(String),
    /// No record (expired or purged): nothing to do.
    Missing,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot encode the job result: {0}")]
    Encode(#[from] serde_json::Error),
}

const BEGIN: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', ''} end
if state == 'done' then return {'done', ''} end
if state == 'dead' then return {'dead', redis.call('HGET', KEYS[1], 'last_error') or ''} end
local loading = redis.call('HGET', KEYS[1], 'loading_page')
if state == 'running' and loading and loading ~= '' then
  -- The worker died while pdfium was loading this page: leave the page out next time. That
  -- is progress, not a crash of the document.
  local skip = redis.call('HGET', KEYS[1], 'skip_pages') or ''
  if skip == '' then skip = loading else skip = skip .. ',' .. loading end
  redis.call('HSET', KEYS[1], 'skip_pages', skip)
  redis.call('HDEL', KEYS[1], 'loading_page')
elseif state == 'running' then
  local crashes = redis.call('HINCRBY', KEYS[1], 'crashes', 1)
  local memory = redis.call('HGET', KEYS[1], 'ceiling_hit')
  redis.call('HDEL', KEYS[1], 'ceiling_hit')
  if crashes >= tonumber(ARGV[3]) then
    local why = 'the document crashed its worker ' .. crashes .. ' times; it will not be retried'
    if memory == '1' then
      why = 'the document needs more memory than a worker may use: it reached the memory ceiling ' ..
        crashes .. ' times; it will not be retried (split it or scan it at a lower resolution)'
    end
    redis.call('HSET', KEYS[1], 'state', 'dead', 'last_error', why, 'finished_at', ARGV[2], 'updated_at', ARGV[2])
    redis.call('EXPIRE', KEYS[1], ARGV[4])
    return {'dead', why}
  end
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'started_at', ARGV[2],
  'updated_at', ARGV[2], 'stage', 'download', 'page', 0)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {'run', ''}
";

const FINISH: &str = r"
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
redis.call('HSET', KEYS[1], 'state', 'done', 'stage', 'done', 'finished_at', ARGV[2], 'updated_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
";

const SETTLE: &str = r"
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'last_error', ARGV[3], 'updated_at', ARGV[4])
if ARGV[2] == 'dead' or ARGV[2] == 'failed' then redis.call('HSET', KEYS[1], 'finished_at', ARGV[4]) end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
";

const HAND_BACK: &str = r"
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then
  return ''
end
local state = 'queued'
local why = ARGV[2]
if ARGV[3] == '1' then
  local n = redis.call('HINCRBY', KEYS[1], 'crashes', 1)
  if n >= tonumber(ARGV[4]) then
    state = 'dead'
    why = 'the document needs more memory than a worker may use (stopped ' .. n .. ' times); split it or scan it at a lower resolution'
    redis.call('HSET', KEYS[1], 'finished_at', ARGV[5])
  end
end
redis.call('HSET', KEYS[1], 'state', state, 'last_error', why, 'updated_at', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return state
";

/// Job counts by state, for /health and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    pub queued: u64,
    pub running: u64,
    pub done: u64,
    pub failed: u64,
    pub dead: u64,
}

const COUNTS: &str = r"
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local c = {queued = 0, running = 0, done = 0, failed = 0, dead = 0}
for _, id in ipairs(ids) do
  local s = redis.call('HGET', ARGV[1] .. id, 'state')
  if s and c[s] then c[s] = c[s] + 1 end
end
return {c.queued, c.running, c.done, c.failed, c.dead}
";

/// Reads and writes job records.
#[derive(Clone)]
pub struct JobStore {
    redis: RedisPool,
    keys: Keys,
    max_crashes: u32,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ttl_secs() -> u64 {
    JOB_TTL.as_secs()
}

impl JobStore {
    pub fn new(redis: impl Into<RedisPool>, keys: Keys, max_crashes: u32) -> Self {
        Self {
            redis: redis.into(),
            keys,
            max_crashes: max_crashes.max(1),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub async fn create(&self, job: &JobRecord) -> Result<(), JobError> {
        let key = self.keys.job(&job.id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(&key, &job.to_fields())
            .ignore()
            .expire(&key, JOB_TTL.as_secs() as i64)
            .ignore()
            .zadd(self.keys.jobs_index(), &job.id, job.created_at)
            .ignore();
        pipe.query_async::<()>(&mut self.redis.get().await?).await?;
        Ok(())
    }

    /// A finished job's stored result (JSON), if any.
    pub async fn result(&self, id: &str) -> Result<Option<serde_json::Value>, JobError> {
        let raw: Option<String> = self
            .redis
            .get()
            .await?
            .get(self.keys.job_result(id))
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>, JobError> {
        let fields: HashMap<String, String> =
            self.redis.get().await?.hgetall(self.keys.job(id)).await?;
        Ok(JobRecord::from_fields(fields))
    }

    /// Claims a delivered job for `worker` (see [`Begin`]).
    pub async fn begin(&self, id: &str, worker: &str) -> Result<Begin, JobError> {
        let (verdict, why): (String, String) = redis::Script::new(BEGIN)
            .key(self.keys.job(id))
            .arg(worker)
            .arg(now_ms())
            .arg(self.max_crashes)
            .arg(ttl_secs())
            .invoke_async(&mut self.redis.get().await?)
            .await?;
        Ok(match verdict.as_str() {
            "run" => Begin::Run,
            "done" => Begin::AlreadyDone,
            "dead" => Begin::Dead(why),
            _ => Begin::Missing,
        })
    }

    /// Progress of the running job (stage, page i of n, RSS).
    pub async fn progress(
        &self,
        id: &str,
        stage: Stage,
        page: u32,
        pages: u32,
        rss_mb: f64,
    ) -> Result<(), JobError> {
        let key = self.keys.job(id);
        let fields = [
            ("stage", stage.as_str().to_string()),
            ("page", page.to_string()),
            ("pages", pages.to_string()),
            ("rss_mb", format!("{rss_mb:.1}")),
            ("updated_at", now_ms().to_string()),
        ];
        let _: () = self.redis.get().await?.hset_multiple(key, &fields).await?;
        Ok(())
    }

    /// The page pdfium is loading for this job (`None` once it is done with it), written
    /// before the load so that a worker dying inside it leaves the page named.
    pub async fn loading(&self, id: &str, page: Option<u32>) -> Result<(), JobError> {
        let mut conn = self.redis.get().await?;
        let key = self.keys.job(id);
        match page {
            Some(n) => conn.hset::<_, _, _, ()>(key, "loading_page", n).await?,
            None => conn.hdel::<_, _, ()>(key, "loading_page").await?,
        }
        Ok(())
    }

    /// Marks that the job's worker is ending at its memory ceiling, so the crash this leaves
    /// behind is reported as the document's need for memory.
    pub async fn note_ceiling(&self, id: &str) -> Result<(), JobError> {
        let _: () = self
            .redis
            .get()
            .await?
            .hset(self.keys.job(id), "ceiling_hit", 1)
            .await?;
        Ok(())
    }

    /// Records the worker's peak RSS over the job's run (shown with the job; the budget check
    /// uses it too).
    pub async fn record_peak(&self, id: &str, peak_rss_mb: f64) -> Result<(), JobError> {
        let _: () = self
            .redis
            .get()
            .await?
            .hset(
                self.keys.job(id),
                "peak_rss_mb",
                format!("{peak_rss_mb:.1}"),
            )
            .await?;
        Ok(())
    }

    /// Stores the result and marks the job done, only if `worker` still owns it. Returns false
    /// when another worker already finished it (the result is then not written again).
    pub async fn finish<T: Serialize>(
        &self,
        id: &str,
        worker: &str,
        result: &T,
    ) -> Result<bool, JobError> {
        let json = serde_json::to_string(result)?;
        let done: i32 = redis::Script::new(FINISH)
            .key(self.keys.job(id))
            .key(self.keys.job_result(id))
            .arg(worker)
            .arg(now_ms())
            .arg(json)
            .arg(ttl_secs())
            .invoke_async(&mut self.redis.get().await?)
            .await?;
        Ok(done == 1)
    }

    /// Ends `worker`'s run of the job in `state` (queued: handed back, not a failure; failed:
    /// will be retried; dead: given up) with a reason.
    pub async fn settle(
        &self,
        id: &str,
        worker: &str,
        state: JobState,
        reason: &str,
    ) -> Result<bool, JobError> {
        let changed: i32 = redis::Script::new(SETTLE)
            .key(self.keys.job(id))
            .arg(worker)
            .arg(state.as_str())
            .arg(reason)
            .arg(now_ms())
            .arg(ttl_secs())
            .invoke_async(&mut self.redis.get().await?)
            .await?;
        Ok(changed == 1)
    }

    /// Hands a running job back to the queue (shutdown, memory). When `counts_as_crash` (a
    /// fresh worker ran out of memory on it, so another will too) the crash count rises and at
    /// the limit the job is dead instead of looping. Returns the new state, `None` when
    /// `worker` no longer owns the job.
    pub async fn hand_back(
        &self,
        id: &str,
        worker: &str,
        reason: &str,
        counts_as_crash: bool,
    ) -> Result<Option<JobState>, JobError> {
        let state: String = redis::Script::new(HAND_BACK)
            .key(self.keys.job(id))
            .arg(worker)
            .arg(reason)
            .arg(if counts_as_crash { "1" } else { "0" })
            .arg(self.max_crashes)
            .arg(now_ms())
            .arg(ttl_secs())
            .invoke_async(&mut self.redis.get().await?)
            .await?;
        Ok(JobState::parse(&state))
    }

    /// An operator's retry: a failed or dead job becomes queued again with its crash count
    /// reset. Returns false for jobs in any other state.
    /// Stores how the job's CSV file was read (shown on the file's row).
    pub async fn set_csv_summary(
        &self,
        id: &str,
        summary: &crate::extract::csv::ReadSummary,
    ) -> Result<(), JobError> {
        let json = serde_json::to_string(summary)?;
        let _: () = self
            .redis
            .get()
            .await?
            .hset(self.keys.job(id), "csv", json)
            .await?;
        Ok(())
    }

    pub async fn reset_for_retry(&self, id: &str) -> Result<bool, JobError> {
        self.reset(id, false).await
    }

    /// Queues a finished job again (its file read anew), or a failed one as
    /// [`JobStore::reset_for_retry`] does; false while it is queued or running.
    pub async fn reset_for_reread(&self, id: &str) -> Result<bool, JobError> {
        self.reset(id, true).await
    }

    async fn reset(&self, id: &str, done_too: bool) -> Result<bool, JobError> {
        let Some(job) = self.get(id).await? else {
            return Ok(false);
        };
        let again = matches!(job.state, JobState::Failed | JobState::Dead)
            || (done_too && job.state == JobState::Done);
        if !again {
            return Ok(false);
        }
        let fields = [
            ("state", "queued".to_string()),
            ("crashes", "0".to_string()),
            ("updated_at", now_ms().to_string()),
            ("finished_at", String::new()),
        ];
        let _: () = self
            .redis
            .get()
            .await?
            .hset_multiple(self.keys.job(id), &fields)
            .await?;
        Ok(true)
    }

    /// The newest jobs first, optionally only those in `state`.
    pub async fn list(
        &self,
        state: Option<JobState>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, JobError> {
        let mut conn = self.redis.get().await?;
        let ids: Vec<String> = conn.zrevrange(self.keys.jobs_index(), 0, -1).await?;
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for chunk in ids.chunks(200) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.hgetall(self.keys.job(id));
            }
            let rows: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            for (id, row) in chunk.iter().zip(rows) {
                match JobRecord::from_fields(row) {
                    Some(job) if state.is_none_or(|s| s == job.state) => out.push(job),
                    Some(_) => {}
                    None => gone.push(id.clone()),
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        if !gone.is_empty() {
            // Records that expired: drop them from the index too.
            let _: () = conn.zrem(self.keys.jobs_index(), gone).await?;
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Several jobs at once, in the order asked (`None` for expired ones).
    pub async fn get_many(&self, ids: &[String]) -> Result<Vec<Option<JobRecord>>, JobError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.job(id));
        }
        let rows: Vec<HashMap<String, String>> =
            pipe.query_async(&mut self.redis.get().await?).await?;
        Ok(rows.into_iter().map(JobRecord::from_fields).collect())
    }

    /// How many known jobs are in each state (one script, so a count is never half-read).
    pub async fn counts(&self) -> Result<JobCounts, JobError> {
        let (queued, running, done, failed, dead): (u64, u64, u64, u64, u64) =
            redis::Script::new(COUNTS)
                .key(self.keys.jobs_index())
                .arg(self.keys.job(""))
                .invoke_async(&mut self.redis.get().await?)
                .await?;
        Ok(JobCounts {
            queued,
            running,
            done,
            failed,
            dead,
        })
    }

    /// Deletes done and dead jobs last updated longer ago than `older_than`; returns how many.
    pub async fn purge(&self, older_than: Duration) -> Result<usize, JobError> {
        let cutoff = now_ms() - i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let mut purged = 0;
        for job in self.list(None, usize::MAX).await? {
            if matches!(job.state, JobState::Done | JobState::Dead) && job.updated_at < cutoff {
                self.discard(&job.id).await?;
                purged += 1;
            }
        }
        Ok(purged)
    }

    /// Removes a job record, its result and its place in the index.
    pub async fn discard(&self, id: &str) -> Result<(), JobError> {
        let mut pipe = redis::pipe();
        pipe.del(self.keys.job(id))
            .ignore()
            .del(self.keys.job_result(id))
            .ignore()
            .zrem(self.keys.jobs_index(), id)
            .ignore();
        pipe.query_async::<()>(&mut self.redis.get().await?).await?;
        Ok(())
    }

    /// Records that a job could not be queued: failed, with `reason`, so the file shows as
    /// failed with a retry instead of waiting for ever.
    pub async fn mark_unqueued(&self, job: &JobRecord, reason: &str) -> Result<(), JobError> {
        let mut failed = job.clone();
        failed.state = JobState::Failed;
        failed.last_error = Some(reason.to_string());
        failed.finished_at = Some(now_ms());
        self.create(&failed).await
    }
}
