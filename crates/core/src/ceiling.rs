//! The memory ceiling of a process that reads documents (worker children, `fom-worker process`
//! and `memtest`): no input may take it past `MEMORY_CRITICAL_MB`, however small the file.
//!
//! Two parts, because pdfium cannot be interrupted inside a page (a 1 MB PDF whose one page
//! inflates into hundreds of MB of drawing operators is parsed in one call):
//! - a watchdog thread samples RSS every [`SAMPLE_EVERY`] and, past the watchdog line (95% of
//!   the critical threshold), ends the process with [`EXIT_MEMORY`] before the kernel has to;
//! - a hard limit the kernel enforces (`RLIMIT_DATA`, which counts the heap and every private
//!   writable mapping, so pdfium's own allocations too): an allocation past it fails, and
//!   pdfium then aborts the process. It backs up the watchdog when memory grows faster than
//!   one sample.
//!
//! The job the process was running is taken back by the queue; what the next attempt does
//! with the page that was loading is `jobs::document`'s business.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::memory::{self, Thresholds};

/// How often the watchdog reads RSS.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// Exit code of a process the watchdog ended: its input needed more memory than allowed.
pub const EXIT_MEMORY: i32 = 4;

const MB: u64 = 1024 * 1024;

/// The lines of one process, in MB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ceiling {
    /// The watchdog ends the process at this RSS.
    pub watchdog_mb: f64,
    /// `RLIMIT_DATA`: the kernel refuses memory past this.
    pub hard_mb: f64,
}

impl Ceiling {
    /// From the thresholds: the hard limit is the critical threshold, the watchdog line 5%
    /// below it (code and shared libraries count in RSS but not in the data limit, so the
    /// watchdog normally acts first).
    pub fn from_thresholds(t: &Thresholds) -> Self {
        Self {
            watchdog_mb: t.critical_mb * 0.95,
            hard_mb: t.critical_mb,
        }
    }

    /// Sets the hard limit for this process (and the children it starts after this call).
    pub fn apply_hard_limit(&self) -> std::io::Result<()> {
        let bytes = (self.hard_mb.max(1.0) as u64).saturating_mul(MB);
        rlimit::setrlimit(rlimit::Resource::DATA, bytes, bytes)
    }

    /// Starts the watchdog. `armed` says when crossing the line is the input's fault (a
    /// document is being read); `on_cross(rss_mb)` runs once, then the process exits with
    /// [`EXIT_MEMORY`].
    pub fn start_watchdog(
        &self,
        armed: Arc<AtomicBool>,
        on_cross: impl FnOnce(f64) + Send + 'static,
    ) -> std::io::Result<()> {
        let line = self.watchdog_mb;
        std::thread::Builder::new()
            .name("memory-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(SAMPLE_EVERY);
                let rss = memory::vm_rss_mb().unwrap_or_else(memory::rss_mb);
                if rss >= line && armed.load(Ordering::SeqCst) {
                    on_cross(rss);
                    std::process::exit(EXIT_MEMORY);
                }
            })
            .map(|_| ())
    }

    /// Both parts for a process that reads documents; `armed` as for [`Self::start_watchdog`].
    /// A hard limit that cannot be set is logged, not fatal: the watchdog still holds.
    pub fn enforce(
        &self,
        armed: Arc<AtomicBool>,
        on_cross: impl FnOnce(f64) + Send + 'static,
    ) -> std::io::Result<()> {
        if let Err(e) = self.apply_hard_limit() {
            tracing::warn!(error = %e, "memory ceiling: the kernel limit could not be set");
        }
        self.start_watchdog(armed, on_cross)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_follow_the_critical_threshold() {
        let c = Ceiling::from_thresholds(&Thresholds {
            warning_mb: 250.0,
            critical_mb: 300.0,
        });
        assert_eq!(c.hard_mb, 300.0);
        assert!((c.watchdog_mb - 285.0).abs() < 1e-9);
    }
}
