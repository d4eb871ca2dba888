use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fom_core::config::EnvReader;
use fom_core::memory::{self, Monitor, Thresholds};
use fom_core::pdf::PdfConfig;

#[derive(Parser)]
#[command(
    name = "fom-worker",
    version,
    about = "fom-qbo worker and operator tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Measure peak RSS and pages/s of the page pipeline (render or pass-through, JPEG, text).
    Memtest {
        /// Pages of the generated scanned-style PDF (ignored with --file).
        #[arg(long, default_value_t = 200)]
        pages: u32,
        /// Render resolution (default: RENDER_DPI, 150).
        #[arg(long)]
        dpi: Option<u32>,
        /// Resolution of the generated scan's page images.
        #[arg(long, default_value_t = 300)]
        scan_dpi: u32,
        /// Measure this PDF instead of a generated one.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Render every page (no JPEG pass-through), so the rendering path is measured.
        #[arg(long)]
        force_render: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Settings every command shares, read from the environment once at start-up.
pub struct Settings {
    pub pdf: PdfConfig,
    pub monitor: Monitor,
}

fn settings() -> Result<Settings, fom_core::config::ConfigError> {
    let mut env = EnvReader::from_process();
    let pdf = PdfConfig::from_env(&mut env);
    let thresholds = Thresholds::from_env(&mut env);
    let tuning = env.flag("MALLOC_TUNING", true);
    env.finish()?;
    if tuning {
        memory::tune_allocator();
    }
    Ok(Settings {
        pdf,
        monitor: Monitor::new(thresholds),
    })
}

fn init_logs() {
    // Interactive runs show a progress bar; keep logs to warnings there unless asked.
    let default = if std::io::stderr().is_terminal() {
        "warn"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logs();
    let settings = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprint!("fom-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Process { json, files } => crate::process::run(&settings, &files, json),
        Command::Memtest {
            pages,
            dpi,
            scan_dpi,
            file,
            force_render,
            json,
        } => crate::memtest::run(
            &settings,
            &crate::memtest::Options {
                pages,
                dpi,
                scan_dpi,
                file,
                force_render,
                json,
            },
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fom-worker: {e:#}");
            ExitCode::from(2)
        }
    }
}
