use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fom_core::ceiling::Ceiling;
use fom_core::config::EnvReader;
use fom_core::pipeline::PipelineSettings;
use fom_core::runtime;

use crate::settings::WorkerSettings;

#[derive(Parser)]
#[command(
    name = "fom-worker",
    version,
    about = "fom-qbo worker and operator tools"
)]
struct Cli {
    /// Run the worker loop in this process instead of supervising children (for a container
    /// runtime that restarts the process itself).
    #[arg(long)]
    no_supervise: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Extract donation records from files, offline (PDF text layer and CSV), no Redis needed.
    Process {
        /// Print one JSON object instead of a human summary.
        #[arg(long)]
        json: bool,
        /// PDF, JPEG, PNG or CSV files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the deposit report (text, or --csv) for files read offline.
    Report(crate::report::Options),
    /// Measure peak RSS and pages/s of the page pipeline (render or pass-through, JPEG, text).
    Memtest(crate::memtest::Options),
    /// Take local files into a deposit (a new one unless --deposit) and queue one document job
    /// each; prints the deposit id, then each job id and file name.
    Enqueue(crate::jobs_cli::EnqueueArgs),
    /// Inspect and manage document jobs.
    #[command(subcommand)]
    Jobs(crate::jobs_cli::JobsCommand),
    /// The QuickBooks connection: status, refresh, matching.
    #[command(subcommand)]
    Qbo(crate::qbo_cli::QboCommand),
    /// The audit log (sign-ins, uploads, edits, receipts...), newest first.
    Audit(crate::audit_cli::AuditArgs),
    /// After a deploy: reaches Redis, pdfium, the upload store and QuickBooks and says what
    /// works (exit 0) and what to do about what does not (exit 1).
    Check,
    /// One worker child (started by the supervisor).
    #[command(hide = true)]
    Child {
        /// The child's name in the queue, chosen by the supervisor.
        #[arg(long)]
        id: Option<String>,
        /// The supervisor's pid: the child ends when it dies.
        #[arg(long)]
        parent: Option<u32>,
    },
}

fn settings() -> Result<PipelineSettings, fom_core::config::ConfigError> {
    let mut env = EnvReader::from_process();
    let pipeline = PipelineSettings::from_env(&mut env);
    env.finish()?;
    Ok(pipeline)
}

fn worker_settings() -> Result<WorkerSettings, fom_core::config::ConfigError> {
    let mut env = EnvReader::from_process();
    let ws = WorkerSettings::from_env(&mut env);
    env.finish()?;
    Ok(ws)
}

/// Runs an async queue command on a small runtime (the worker does little async work).
fn with_queue<F, Fut>(f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(WorkerSettings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let ws = worker_settings().map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(f(ws))
}

fn run_child(
    settings: PipelineSettings,
    id: Option<String>,
    parent: Option<u32>,
) -> anyhow::Result<ExitCode> {
    // First thing: from here on, the supervisor's death (a kill -9 included) ends this child.
    if let Some(p) = parent {
        if !crate::child_signal::die_with_parent(p) {
            tracing::warn!(
                supervisor = p,
                "the supervisor is gone; the child does not start"
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    let ws = worker_settings().map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let code = rt.block_on(crate::runner::run(settings, ws, id))?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // Interactive runs show a progress bar; keep logs to warnings there unless asked.
    let logs = runtime::init_logs(if std::io::stderr().is_terminal() {
        "warn"
    } else {
        "info"
    });
    if let Err(e) = logs {
        eprint!("fom-worker: {e}");
        return ExitCode::from(2);
    }
    let settings = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprint!("fom-worker: {e}");
            return ExitCode::from(2);
        }
    };
    if matches!(
        cli.command,
        Some(Command::Process { .. } | Command::Report(_) | Command::Memtest(_))
    ) {
        // Offline reading holds the same ceiling as a worker child (a child sets its own).
        let critical = settings.monitor.thresholds.critical_mb;
        let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let enforced =
            Ceiling::from_thresholds(&settings.monitor.thresholds).enforce(armed, move |rss| {
                eprintln!(
                    "fom-worker: stopped: {} needs more memory than this process may use \
                 (RSS {rss:.0} MB, MEMORY_CRITICAL_MB={critical}); split the file or scan it again \
                 at a lower resolution",
                    crate::process::current_file()
                );
            });
        if let Err(e) = enforced {
            eprintln!("fom-worker: the memory watchdog could not start: {e}");
            return ExitCode::from(2);
        }
    }
    let result = match cli.command {
        Some(Command::Process { json, files }) => crate::process::run(&settings, &files, json),
        Some(Command::Report(opts)) => crate::report::run(&settings, &opts),
        Some(Command::Memtest(opts)) => crate::memtest::run(&settings, &opts),
        Some(Command::Enqueue(args)) => {
            with_queue(|ws| async move { crate::jobs_cli::enqueue(&ws, &args).await })
        }
        Some(Command::Jobs(cmd)) => {
            with_queue(|ws| async move { crate::jobs_cli::jobs(&ws, &cmd).await })
        }
        Some(Command::Audit(args)) => {
            with_queue(|ws| async move { crate::audit_cli::run(&ws, &args).await })
        }
        Some(Command::Qbo(cmd)) => {
            with_queue(|ws| async move { crate::qbo_cli::run(&ws, &cmd).await })
        }
        Some(Command::Check) => {
            let pipeline = settings;
            with_queue(|ws| async move { crate::check::run(&ws, &pipeline).await })
        }
        Some(Command::Child { id, parent }) => run_child(settings, id, parent),
        None if cli.no_supervise => run_child(settings, None, None),
        None => with_queue(|ws| async move { crate::supervisor::run(ws).await }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fom-worker: {e:#}");
            ExitCode::from(2)
        }
    }
}
