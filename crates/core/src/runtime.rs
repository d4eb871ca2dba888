//! Process start-up shared by every binary: logs and the memory settings.

use std::io::IsTerminal;

use crate::config::EnvReader;
use crate::memory::{self, Monitor, Thresholds};

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (else `default_filter`); colours
/// only on a terminal, so log collectors get plain lines.
pub fn init_logs(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Reads `MEMORY_WARNING_MB`, `MEMORY_CRITICAL_MB` and `MALLOC_TUNING`, applies the allocator
/// tuning, and returns the monitor. Call before `env.finish()`; tuning is applied even if other
/// variables are invalid, which is harmless (the process then exits).
pub fn memory_settings(env: &mut EnvReader) -> Monitor {
    let thresholds = Thresholds::from_env(env);
    if env.flag("MALLOC_TUNING", true) {
        memory::tune_allocator();
    }
    Monitor::new(thresholds)
}
