//! Process start-up shared by every binary: logs and the memory settings.

use std::io::IsTerminal;

use crate::config::EnvReader;
use crate::memory::{self, Monitor, Thresholds};

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (else `default_filter`), as
/// `LOG_FORMAT` says: `text` (the default; colours only on a terminal, so log collectors get
/// plain lines) or `json` (one JSON object per line, for log drains). Any other format is
/// refused here, before anything else runs.
pub fn init_logs(default_filter: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let format = std::env::var("LOG_FORMAT").unwrap_or_default();
    match format.trim().to_ascii_lowercase().as_str() {
        "" | "text" => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .init(),
        "json" => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .init(),
        other => {
            return Err(format!(
                "configuration error:\n  LOG_FORMAT: must be text or json (got {other:?})\n"
            ))
        }
    }
    Ok(())
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
