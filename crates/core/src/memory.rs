//! Process memory: current and peak RSS, thresholds, status, and the "Memory Monitor" log lines.
//!
//! The log format is a contract with operators (docs/MEMORY.md): `heroku logs --tail | grep "Memory
//! Monitor"` must show one line per operation start/end and per page batch, with the context and
//! the RSS in MB.

use serde::Serialize;

use crate::config::EnvReader;

const MB: f64 = 1024.0 * 1024.0;

/// Current resident set size in MB (`memory-stats`), or 0 when the platform cannot tell.
pub fn rss_mb() -> f64 {
    memory_stats::memory_stats()
        .map(|s| s.physical_mem as f64 / MB)
        .unwrap_or(0.0)
}

/// Resident set size in MB as the kernel counts it (`VmRSS`), cheap enough to read every few
/// milliseconds (the memory watchdog); `None` off Linux.
pub fn vm_rss_mb() -> Option<f64> {
    proc_status_kb("VmRSS:").map(|kb| kb as f64 / 1024.0)
}

/// Peak resident set size of this process in MB: `VmHWM` on Linux, `ru_maxrss` elsewhere.
pub fn peak_rss_mb() -> f64 {
    if let Some(kb) = proc_status_kb("VmHWM:") {
        return kb as f64 / 1024.0;
    }
    rusage_maxrss_mb().unwrap_or_else(rss_mb)
}

fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

#[allow(unsafe_code)]
fn rusage_maxrss_mb() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a plain C struct into memory we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: rc == 0 means the struct was filled in.
    let usage = unsafe { usage.assume_init() };
    // Linux reports kilobytes.
    Some(usage.ru_maxrss as f64 / 1024.0)
}

/// Resets the peak-RSS mark to the current RSS (Linux `clear_refs`), so a measurement can
/// exclude set-up work such as generating a test PDF. Returns false where unsupported.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Allocator set-up chosen by measurement (docs/PERFORMANCE.md, "Allocator"): glibc malloc
/// limited to two arenas, so the render and encode threads share one arena instead of each
/// keeping its own high-water mark. pdfium allocates through the same malloc, which is why a
/// Rust-only global allocator cannot cover the largest buffers; jemalloc and mimalloc preloaded
/// for the whole process both measured higher peaks here, and a fixed mmap threshold cost up to
/// 6x in speed for 1-2 MB of peak.
#[allow(unsafe_code)]
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc tunables; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        // A fixed threshold: buffers of 256 KiB and more (page images, base64 batches, request
        // bodies) are mmapped and go back to the OS when freed. glibc's default threshold
        // grows after such frees and then serves them from the heap, where they fragment:
        // measured 87.6 -> 75.4 MB peak on 200 rendered pages through the Gemini path.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Hands freed heap memory back to the OS (glibc `malloc_trim`), so RSS after a unit of work
/// reflects live memory. Cheap enough to call between pages batches and documents.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the OS.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Thresholds in MB of process RSS (defaults: warning 400, critical 450).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub warning_mb: f64,
    pub critical_mb: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            warning_mb: 400.0,
            critical_mb: 450.0,
        }
    }
}

impl Thresholds {
    /// `MEMORY_WARNING_MB` and `MEMORY_CRITICAL_MB`; warning must be below critical.
    pub fn from_env(env: &mut EnvReader) -> Self {
        let d = Self::default();
        let warning_mb = env.number("MEMORY_WARNING_MB", d.warning_mb, 1.0, 65_536.0);
        let critical_mb = env.number("MEMORY_CRITICAL_MB", d.critical_mb, 1.0, 65_536.0);
        if warning_mb >= critical_mb {
            env.problem(
                "MEMORY_WARNING_MB",
                format!("{warning_mb} must be below MEMORY_CRITICAL_MB ({critical_mb})"),
            );
        }
        Self {
            warning_mb,
            critical_mb,
        }
    }

    pub fn status(&self, rss_mb: f64) -> Status {
        if rss_mb >= self.critical_mb {
            Status::Critical
        } else if rss_mb >= self.warning_mb {
            Status::Warning
        } else {
            Status::Ok
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Critical,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

/// What `/health` shows under `system.memory_monitor`.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
    pub warning_mb: f64,
    pub critical_mb: f64,
    pub status: Status,
}

/// Reads RSS and logs "Memory Monitor" lines against its thresholds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Monitor {
    pub thresholds: Thresholds,
}

impl Monitor {
    pub fn new(thresholds: Thresholds) -> Self {
        Self { thresholds }
    }

    pub fn snapshot(&self) -> Snapshot {
        let rss = round1(rss_mb());
        Snapshot {
            rss_mb: rss,
            peak_rss_mb: round1(peak_rss_mb()),
            warning_mb: self.thresholds.warning_mb,
            critical_mb: self.thresholds.critical_mb,
            status: self.thresholds.status(rss),
        }
    }

    /// Logs one "Memory Monitor" line for `context` and returns the status. Warning and
    /// critical readings are logged at WARN/ERROR so they stand out in the log stream.
    pub fn log(&self, context: &str) -> Status {
        let s = self.snapshot();
        match s.status {
            Status::Ok => tracing::info!(
                rss_mb = s.rss_mb,
                status = s.status.as_str(),
                "Memory Monitor: {context}: RSS {:.1} MB",
                s.rss_mb
            ),
            Status::Warning => tracing::warn!(
                rss_mb = s.rss_mb,
                status = s.status.as_str(),
                "Memory Monitor: {context}: RSS {:.1} MB over warning threshold {} MB",
                s.rss_mb,
                s.warning_mb
            ),
            Status::Critical => tracing::error!(
                rss_mb = s.rss_mb,
                status = s.status.as_str(),
                "Memory Monitor: {context}: RSS {:.1} MB over critical threshold {} MB",
                s.rss_mb,
                s.critical_mb
            ),
        }
        s.status
    }
}

pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_thresholds() {
        let t = Thresholds::default();
        assert_eq!(t.status(10.0), Status::Ok);
        assert_eq!(t.status(400.0), Status::Warning);
        assert_eq!(t.status(449.9), Status::Warning);
        assert_eq!(t.status(450.0), Status::Critical);
    }

    #[test]
    fn thresholds_from_env_validate_order() {
        let mut env =
            EnvReader::from_pairs([("MEMORY_WARNING_MB", "300"), ("MEMORY_CRITICAL_MB", "350")]);
        let t = Thresholds::from_env(&mut env);
        assert!(env.finish().is_ok());
        assert_eq!(t.warning_mb, 300.0);

        let mut env =
            EnvReader::from_pairs([("MEMORY_WARNING_MB", "500"), ("MEMORY_CRITICAL_MB", "450")]);
        Thresholds::from_env(&mut env);
        let err = env
            .finish()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("MEMORY_WARNING_MB"), "{err}");
    }

    #[test]
    fn rss_readings_are_plausible() {
        let rss = rss_mb();
        let peak = peak_rss_mb();
        assert!(rss > 1.0, "rss {rss}");
        assert!(peak + 0.5 >= rss, "peak {peak} < rss {rss}");
    }
}
