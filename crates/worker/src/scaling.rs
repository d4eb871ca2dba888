//! Memory-aware scaling (`WORKER_PROCESSES=auto`): while jobs wait and the dyno has room, the
//! supervisor starts more children, up to `WORKER_MAX_PROCESSES`; an extra child idle for
//! `WORKER_IDLE_RETIRE_SECS` leaves. "Room" is counted conservatively: every child at the larger
//! of its RSS now and what a child is expected to need (the largest peak of the latest jobs),
//! one more child at that estimate, and a reserve, must stay under the least of the dyno's
//! memory (`DYNO_MEMORY_MB`, by default the cgroup's limit, else 512) and `MEMORY_WARNING_MB`;
//! and the Redis connections of the dyno's processes must fit its half of `REDIS_MAX_CLIENTS`
//! (the other half is for the dyno that overlaps it during a deploy). When the dyno's total
//! crosses the limit anyway (a document far larger than the estimate), the newest extra child is
//! asked to stop: it hands its job back between pages, and the remaining children go on.
//!
//! This file holds the settings and the decision; the supervisor observes and acts.

use fom_core::config::EnvReader;

/// Redis connections of one worker child: the queue's multiplexed connection and the
/// subscription that wakes it on a push (docs/REDIS.md).
pub const CLIENTS_PER_CHILD: usize = 2;
/// The supervisor's own connection (scaling, and handing back a dead child's jobs).
pub const CLIENTS_SUPERVISOR: usize = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct ScalingSettings {
    /// `WORKER_MAX_PROCESSES`.
    pub max_children: usize,
    /// `DYNO_MEMORY_MB`, else the cgroup's limit, else 512.
    pub dyno_mb: f64,
    /// `MEMORY_WARNING_MB`: the dyno's processes together stay under it.
    pub warning_mb: f64,
    /// `WORKER_MEMORY_RESERVE_MB`: kept free besides.
    pub reserve_mb: f64,
    /// `WORKER_CHILD_ESTIMATE_MB`: what a child is expected to need until jobs say otherwise.
    pub default_estimate_mb: f64,
    /// `WORKER_IDLE_RETIRE_SECS`.
    pub idle_retire: std::time::Duration,
    /// `REDIS_MAX_CLIENTS`.
    pub redis_max_clients: usize,
    /// The web dyno's connections: `REDIS_POOL_SIZE` plus the one it queues jobs on.
    pub web_clients: usize,
}

impl ScalingSettings {
    pub fn from_env(env: &mut EnvReader) -> Self {
        let dyno_mb = match env.raw("DYNO_MEMORY_MB").filter(|v| !v.trim().is_empty()) {
            Some(_) => env.number("DYNO_MEMORY_MB", 512.0, 64.0, 1_048_576.0),
            None => cgroup_limit_mb().unwrap_or(512.0),
        };
        Self {
            max_children: env.number("WORKER_MAX_PROCESSES", 4, 1, 16),
            dyno_mb,
            warning_mb: env.number("MEMORY_WARNING_MB", 400.0, 32.0, 65_536.0),
            reserve_mb: env.number("WORKER_MEMORY_RESERVE_MB", 32.0, 0.0, 4096.0),
            default_estimate_mb: env.number("WORKER_CHILD_ESTIMATE_MB", 120.0, 16.0, 4096.0),
            idle_retire: std::time::Duration::from_secs(env.number(
                "WORKER_IDLE_RETIRE_SECS",
                30,
                1,
                86_400,
            )),
            redis_max_clients: env.number("REDIS_MAX_CLIENTS", 20, 4, 100_000),
            web_clients: env.number("REDIS_POOL_SIZE", 4usize, 1, 64) + 1,
        }
    }

    /// What the dyno's processes may use together.
    pub fn limit_mb(&self) -> f64 {
        self.dyno_mb.min(self.warning_mb)
    }

    /// Children the Redis connection budget allows: this dyno's half of `REDIS_MAX_CLIENTS`,
    /// less a web dyno's connections and the supervisor's; at least one.
    pub fn redis_children(&self) -> usize {
        let half = self.redis_max_clients / 2;
        (half.saturating_sub(self.web_clients + CLIENTS_SUPERVISOR) / CLIENTS_PER_CHILD).max(1)
    }

    /// What one more child is expected to need: the largest recent job peak, else the default.
    pub fn estimate_mb(&self, recent_peaks: &[f64]) -> f64 {
        recent_peaks
            .iter()
            .copied()
            .filter(|p| p.is_finite() && *p > 0.0)
            .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))))
            .unwrap_or(self.default_estimate_mb)
    }
}

/// What the supervisor saw on one tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub supervisor_mb: f64,
    /// RSS of each running child.
    pub children_mb: Vec<f64>,
    /// Children running no job.
    pub idle: usize,
    /// Jobs waiting on the queues.
    pub waiting: usize,
    /// Redis's connected clients, when read.
    pub redis_clients: Option<usize>,
}

impl Observed {
    pub fn total_mb(&self) -> f64 {
        self.supervisor_mb + self.children_mb.iter().sum::<f64>()
    }

    /// Room left once every child counts at least `estimate` and the reserve is kept.
    pub fn headroom_mb(&self, s: &ScalingSettings, estimate: f64) -> f64 {
        let committed: f64 = self.children_mb.iter().map(|r| r.max(estimate)).sum();
        s.limit_mb() - self.supervisor_mb - committed - s.reserve_mb
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start one more child.
    Grow,
    /// Over the limit: ask the newest extra child to stop.
    Shed,
    Hold,
}

/// One tick's decision.
pub fn decide(s: &ScalingSettings, o: &Observed, estimate: f64) -> Decision {
    let children = o.children_mb.len();
    if o.total_mb() > s.limit_mb() && children > 1 {
        return Decision::Shed;
    }
    let work_waits = o.waiting > o.idle;
    let below_max = children < s.max_children.min(s.redis_children());
    let memory = o.headroom_mb(s, estimate) >= estimate;
    let redis = o
        .redis_clients
        .is_none_or(|c| c + CLIENTS_PER_CHILD <= s.redis_max_clients);
    if work_waits && below_max && memory && redis {
        Decision::Grow
    } else {
        Decision::Hold
    }
}

/// The memory limit of this process's cgroup (v2 `memory.max`, else v1), in MB; `None` when
/// there is none (or it is larger than any machine).
pub fn cgroup_limit_mb() -> Option<f64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let raw = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))?;
    let bytes: u64 = raw.trim().parse().ok()?;
    // "No limit" in cgroup v1 is a number near 2^63.
    (bytes < (1u64 << 50)).then(|| bytes as f64 / 1_048_576.0)
}

/// The resident set of process `pid` (MB), from `/proc/<pid>/statm`.
pub fn rss_of(pid: u32) -> Option<f64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages as f64 * page_size() as f64 / 1_048_576.0)
}

#[allow(unsafe_code)]
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions and touches no memory of ours.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ScalingSettings {
        ScalingSettings {
            max_children: 4,
            dyno_mb: 512.0,
            warning_mb: 400.0,
            reserve_mb: 32.0,
            default_estimate_mb: 120.0,
            idle_retire: std::time::Duration::from_secs(30),
            redis_max_clients: 40,
            web_clients: 5,
        }
    }

    fn seen(children: &[f64], idle: usize, waiting: usize) -> Observed {
        Observed {
            supervisor_mb: 8.0,
            children_mb: children.to_vec(),
            idle,
            waiting,
            redis_clients: Some(10),
        }
    }

    #[test]
    fn grows_while_jobs_wait_and_the_estimate_fits() {
        let s = settings();
        // 8 + 80 (one child at its estimate) + 80 + 32 <= 400.
        assert_eq!(decide(&s, &seen(&[60.0], 0, 5), 80.0), Decision::Grow);
        assert_eq!(
            decide(&s, &seen(&[60.0, 70.0, 75.0], 0, 5), 80.0),
            Decision::Grow
        );
        // Four at 80: the fifth would pass the limit, and the maximum is 4 anyway.
        assert_eq!(decide(&s, &seen(&[80.0; 4], 0, 5), 80.0), Decision::Hold);
        // Nothing waits beyond what idle children take.
        assert_eq!(decide(&s, &seen(&[30.0, 30.0], 2, 2), 80.0), Decision::Hold);
        // A large estimate (big scans) keeps it at two.
        assert_eq!(
            decide(&s, &seen(&[60.0, 60.0], 0, 5), 180.0),
            Decision::Hold
        );
    }

    #[test]
    fn sheds_over_the_limit_and_respects_redis() {
        let s = settings();
        assert_eq!(
            decide(&s, &seen(&[300.0, 150.0], 0, 5), 80.0),
            Decision::Shed
        );
        // Alone over the limit: the child's own ceiling deals with it.
        assert_eq!(decide(&s, &seen(&[420.0], 0, 5), 80.0), Decision::Hold);
        let mut full = seen(&[60.0], 0, 5);
        full.redis_clients = Some(39);
        assert_eq!(decide(&s, &full, 80.0), Decision::Hold);
        // The mini plan's 20 clients: half for this dyno, less the web's 5 and the
        // supervisor's 1, leaves room for 2 children.
        let mini = ScalingSettings {
            redis_max_clients: 20,
            ..settings()
        };
        assert_eq!(mini.redis_children(), 2);
        assert_eq!(settings().redis_children(), 7);
        assert_eq!(
            decide(&mini, &seen(&[60.0, 60.0], 0, 5), 80.0),
            Decision::Hold
        );
    }

    #[test]
    fn the_estimate_is_the_largest_recent_peak() {
        let s = settings();
        assert_eq!(s.estimate_mb(&[]), 120.0);
        assert_eq!(s.estimate_mb(&[45.0, 71.5, 60.0]), 71.5);
    }
}
