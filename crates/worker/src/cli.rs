use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fom_core::config::EnvReader;
use fom_core::memory::Monitor;
use fom_core::normalize::Rules;
use fom_core::pdf::PdfConfig;
use fom_core::runtime;

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
    /// Print the deposit report (text, or --csv) for files read offline.
    Report(crate::report::Options),
    /// Measure peak RSS and pages/s of the page pipeline (render or pass-through, JPEG, text).
    Memtest(crate::memtest::Options),
}

/// Settings every command shares, read from the environment once at start-up.
pub struct Settings {
    pub pdf: PdfConfig,
    pub rules: Rules,
    pub monitor: Monitor,
}

fn settings() -> Result<Settings, fom_core::config::ConfigError> {
    let mut env = EnvReader::from_process();
    let pdf = PdfConfig::from_env(&mut env);
    let rules = Rules::from_env(&mut env, chrono::Local::now().date_naive());
    let monitor = runtime::memory_settings(&mut env);
    env.finish()?;
    Ok(Settings {
        pdf,
        rules,
        monitor,
    })
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // Interactive runs show a progress bar; keep logs to warnings there unless asked.
    runtime::init_logs(if std::io::stderr().is_terminal() {
        "warn"
    } else {
        "info"
    });
    let settings = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprint!("fom-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Process { json, files } => crate::process::run(&settings, &files, json),
        Command::Report(opts) => crate::report::run(&settings, &opts),
        Command::Memtest(opts) => crate::memtest::run(&settings, &opts),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fom-worker: {e:#}");
            ExitCode::from(2)
        }
    }
}
