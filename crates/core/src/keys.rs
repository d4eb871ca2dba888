//! Every Redis key the system uses, built in one place, with its type and time to live.
//!
//! All keys live under `KEY_PREFIX` (default `fom`), so one Redis can serve several
//! deployments or tests (each test uses its own prefix), and `redis-cli --scan --pattern
//! 'fom:*'` shows everything we own. docs/REDIS.md lists them for operators.

use std::time::Duration;

/// Job records live a week after their last update; done and dead jobs are also purged by
/// `fom-worker jobs purge`.
pub const JOB_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// A worker's heartbeat expires when the worker stops writing it.
pub const WORKER_TTL: Duration = Duration::from_secs(60);
/// Uploaded files not yet processed (and not deleted after success) expire after two days.
pub const UPLOAD_TTL: Duration = Duration::from_secs(48 * 3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// HASH: one job record (`jobs::JobRecord` fields). TTL [`JOB_TTL`], renewed on update.
    pub fn job(&self, job_id: &str) -> String {
        format!("{}:job:{job_id}", self.prefix)
    }

    /// STRING: a finished job's result (JSON). TTL [`JOB_TTL`].
    pub fn job_result(&self, job_id: &str) -> String {
        format!("{}:job:{job_id}:result", self.prefix)
    }

    /// ZSET: every job id, scored by creation time (ms). Trimmed by purge.
    pub fn jobs_index(&self) -> String {
        format!("{}:jobs", self.prefix)
    }

    /// HASH: a worker child's heartbeat (pid, RSS, jobs done, current job). TTL [`WORKER_TTL`].
    pub fn worker(&self, worker_id: &str) -> String {
        format!("{}:worker:{worker_id}", self.prefix)
    }

    /// ZSET: worker ids scored by last heartbeat (s).
    pub fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    /// LIST: the peak RSS (MB) of the latest jobs, newest first, capped at 50: what a worker
    /// child is expected to need, for the supervisor's scaling. No TTL.
    pub fn worker_peaks(&self) -> String {
        format!("{}:workers:peaks", self.prefix)
    }

    /// HASH: a dyno's scaling as its supervisor last saw it (children, estimate, headroom).
    /// TTL [`WORKER_TTL`].
    pub fn worker_scaling(&self, dyno: &str) -> String {
        format!("{}:workers:scaling:{dyno}", self.prefix)
    }

    /// LIST: a worker child's RSS over the last hour, one `<ms>:<MB>` sample every few seconds
    /// (the highest heartbeat since the last sample), newest first, capped. TTL one hour, so a
    /// child that stopped stays on the operations page for that long.
    pub fn worker_rss(&self, worker_id: &str) -> String {
        format!("{}:workers:rss:{worker_id}", self.prefix)
    }

    /// ZSET: the children with an RSS series, scored by their latest sample (ms).
    pub fn worker_rss_index(&self) -> String {
        format!("{}:workers:rss-index", self.prefix)
    }

    /// LIST: a dyno's total RSS (supervisor and children) over the last hour, as
    /// [`Keys::worker_rss`]. TTL one hour.
    pub fn dyno_rss(&self, dyno: &str) -> String {
        format!("{}:workers:dyno-rss:{dyno}", self.prefix)
    }

    /// ZSET: the dynos with an RSS series, scored by their latest sample (ms).
    pub fn dyno_rss_index(&self) -> String {
        format!("{}:workers:dyno-rss-index", self.prefix)
    }

    /// STRING: the year-end statements' settings (letterhead, EIN, signer, paragraphs) as
    /// JSON, set on the statements page. No TTL.
    pub fn statements_settings(&self) -> String {
        format!("{}:statements:settings", self.prefix)
    }

    /// HASH: QuickBooks customers marked as not donors (id to name), left out of every run.
    /// No TTL.
    pub fn statements_excluded(&self) -> String {
        format!("{}:statements:excluded", self.prefix)
    }

    /// STRING: the latest statements run's job id (`stmt-…`), so a second start joins a
    /// running one. TTL [`JOB_TTL`].
    pub fn statements_latest(&self) -> String {
        format!("{}:statements:latest", self.prefix)
    }

    /// STRING: a statements run's choices (period, $250 filter) as JSON. TTL [`JOB_TTL`].
    pub fn statements_run(&self, job_id: &str) -> String {
        format!("{}:statements:run:{job_id}", self.prefix)
    }

    /// HASH: an uploaded file's metadata (name, size, chunks). TTL [`UPLOAD_TTL`].
    pub fn upload(&self, file_id: &str) -> String {
        format!("{}:upload:{file_id}", self.prefix)
    }

    /// ZSET: uploaded files kept after their job succeeded (`UPLOAD_RETENTION_HOURS`), scored by
    /// the time (s) they may be deleted; workers sweep it.
    pub fn uploads_expiring(&self) -> String {
        format!("{}:uploads:expiring", self.prefix)
    }

    /// STRING: chunk `n` of an uploaded file. TTL [`UPLOAD_TTL`].
    pub fn upload_chunk(&self, file_id: &str, n: u64) -> String {
        format!("{}:upload:{file_id}:{n}", self.prefix)
    }

    /// HASH: one deposit (`rev`, `ttl`, `doc` = the deposit as JSON, changed only by
    /// compare-and-set on `rev`). TTL `DEPOSIT_TTL_DAYS`, renewed on every change.
    pub fn deposit(&self, deposit_id: &str) -> String {
        format!("{}:deposit:{deposit_id}", self.prefix)
    }

    /// ZSET: every deposit id, scored by creation time (ms).
    pub fn deposits(&self) -> String {
        format!("{}:deposits", self.prefix)
    }

    /// STRING: a signed-in session (JSON: `created_at`, `ends_at`, ms). TTL the idle timeout
    /// `SESSION_TTL_HOURS`, renewed by each request but never past `ends_at` (sign-in +
    /// `SESSION_MAX_HOURS`).
    pub fn session(&self, session_id: &str) -> String {
        format!("{}:session:{session_id}", self.prefix)
    }

    /// STRING: sign-in attempts from one client address, counted (atomically, with the check)
    /// before the password is compared; deleted by a successful sign-in. TTL 15 minutes from
    /// the first.
    pub fn login_attempts(&self, client: &str) -> String {
        format!("{}:login:{client}", self.prefix)
    }

    /// STRING: the QuickBooks connection (realm, tokens, expiry times, reconnect reason),
    /// sealed with AES-256-GCM under `TOKEN_ENCRYPTION_KEY`. No TTL: it lives until disconnect.
    pub fn qbo_connection(&self) -> String {
        format!("{}:qbo:connection", self.prefix)
    }

    /// STRING: the one process refreshing QuickBooks tokens right now (a random owner id).
    /// TTL `QBO_TIMEOUT_SECS` + 10 s, so a crashed refresher never blocks the others for long.
    pub fn qbo_refresh_lock(&self) -> String {
        format!("{}:qbo:refresh-lock", self.prefix)
    }

    /// STRING: a pending OAuth `state`, holding a digest of the session that asked for it.
    /// TTL 10 minutes; deleted when the callback uses it.
    pub fn qbo_oauth_state(&self, state: &str) -> String {
        format!("{}:qbo:oauth-state:{state}", self.prefix)
    }

    /// STRING: the treasurer's chosen receipt defaults (item, deposit account, payment
    /// method) as JSON. No TTL.
    pub fn qbo_defaults(&self) -> String {
        format!("{}:qbo:defaults", self.prefix)
    }

    /// STRING: the operator's own text of a legal page (`eula`, `privacy`), set on the
    /// settings page; none: the default text. No TTL.
    pub fn legal_text(&self, page: &str) -> String {
        format!("{}:settings:legal:{page}", self.prefix)
    }

    /// STRING: the receipt layout (Description, DocNumber and customer memo templates) as
    /// JSON, set on the settings page. No TTL.
    pub fn receipt_layout(&self) -> String {
        format!("{}:qbo:receipt_layout", self.prefix)
    }

    /// ZSET: QuickBooks calls in flight for a company across every process (member: lease
    /// id, score: when the lease lapses, ms). TTL the lease time, renewed by each call.
    pub fn qbo_in_flight(&self, realm: &str) -> String {
        format!("{}:qbo:{realm}:in-flight", self.prefix)
    }

    /// STRING: the company's request-rate state (GCRA "theoretical arrival time", ms). TTL
    /// about a second past it.
    pub fn qbo_rate(&self, realm: &str) -> String {
        format!("{}:qbo:{realm}:rate", self.prefix)
    }

    /// STRING: the id of the deposit's latest send-all job, so a second click while one runs
    /// joins it instead of starting another. TTL [`JOB_TTL`].
    pub fn deposit_send(&self, deposit_id: &str) -> String {
        format!("{}:deposit:{deposit_id}:send", self.prefix)
    }

    /// STRING: the id of the deposit's latest bank-deposit job (as [`Keys::deposit_send`]).
    /// TTL [`JOB_TTL`].
    pub fn deposit_bank(&self, deposit_id: &str) -> String {
        format!("{}:deposit:{deposit_id}:bank", self.prefix)
    }

    /// STRING: the id of the deposit's latest job attaching scans to its receipts (as
    /// [`Keys::deposit_send`]). TTL [`JOB_TTL`].
    pub fn deposit_attach(&self, deposit_id: &str) -> String {
        format!("{}:deposit:{deposit_id}:attach", self.prefix)
    }

    /// The name of a job queue (apalis keeps its own keys under it).
    pub fn queue(&self, name: &str) -> String {
        format!("{}:queue:{name}", self.prefix)
    }

    /// Pub/sub CHANNEL: a job was pushed on queue `name` (the message is its id); idle worker
    /// children subscribe and fetch at once instead of at their next heartbeat.
    pub fn queue_wake(&self, name: &str) -> String {
        format!("{}:queue:{name}:wake", self.prefix)
    }

    /// STREAM: the audit log, capped at `AUDIT_MAX_EVENTS` (`audit::AuditLog`).
    pub fn audit(&self) -> String {
        format!("{}:audit", self.prefix)
    }

    /// HASH: the treasurer's column choices for CSV layouts, by header signature
    /// (`imports::ColumnChoices`). No TTL: the next export of the same kind is read by them.
    pub fn csv_columns(&self) -> String {
        format!("{}:csv_columns", self.prefix)
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self::new("fom")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_prefix() {
        let k = Keys::new("t1");
        for key in [
            k.job("j"),
            k.job_result("j"),
            k.jobs_index(),
            k.worker("w"),
            k.workers(),
            k.upload("f"),
            k.upload_chunk("f", 3),
            k.queue("documents"),
            k.audit(),
            k.uploads_expiring(),
            k.deposit("d"),
            k.deposits(),
            k.session("s"),
            k.login_attempts("127.0.0.1"),
            k.qbo_connection(),
            k.qbo_refresh_lock(),
            k.qbo_oauth_state("s"),
            k.qbo_defaults(),
            k.receipt_layout(),
            k.legal_text("eula"),
            k.qbo_in_flight("1"),
            k.qbo_rate("1"),
            k.deposit_send("d"),
            k.deposit_bank("d"),
            k.deposit_attach("d"),
            k.worker_peaks(),
            k.worker_scaling("worker.1"),
            k.worker_rss("w"),
            k.worker_rss_index(),
            k.dyno_rss("worker.1"),
            k.dyno_rss_index(),
            k.statements_settings(),
            k.statements_excluded(),
            k.statements_latest(),
            k.statements_run("stmt-1"),
        ] {
            assert!(key.starts_with("t1:"), "{key}");
        }
        assert_eq!(k.upload_chunk("f", 3), "t1:upload:f:3");
    }
}
