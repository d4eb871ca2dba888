//! fom-worker: the worker process and the operator's command line.
//!
//! - `process [--json] FILE...`: the whole pipeline in-process, offline (no Redis, no network).
//! - `report [--csv] FILE...`: the deposit report of those files.
//! - `memtest`: measures the page pipeline's peak RSS and speed on a generated or given PDF.
//! - `audit [--kind K] [--json]`: the audit log, newest first.
//! - `check`: after a deploy, whether Redis, pdfium, the upload store and QuickBooks answer.

mod audit_cli;
mod check;
mod child_signal;
mod cli;
mod jobs_cli;
mod memtest;
mod process;
mod qbo_cli;
mod report;
mod runner;
mod scaling;
mod settings;
mod supervisor;
mod test_hooks;

#[cfg(feature = "heap-profile")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() -> std::process::ExitCode {
    #[cfg(feature = "heap-profile")]
    let _profiler = dhat::Profiler::new_heap();
    cli::run()
}
