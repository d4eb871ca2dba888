//! `fom-worker report`: the deposit report (FoM's text layout, or CSV of every field) for a
//! set of files read offline, after normalisation and de-duplication.

use std::path::PathBuf;
use std::process::ExitCode;

use fom_core::report;

use fom_core::pipeline::PipelineSettings;

#[derive(clap::Args)]
pub struct Options {
    /// Every field as CSV instead of the text report.
    #[arg(long)]
    pub csv: bool,
    /// Report date (MM/DD/YYYY); default: the latest deposit date in the records, else today.
    #[arg(long, value_parser = parse_date)]
    pub date: Option<chrono::NaiveDate>,
    /// PDF, JPEG, PNG or CSV files of one deposit.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    fom_core::donation::parse_date(s).map_err(|e| e.to_string())
}

pub fn run(settings: &PipelineSettings, opts: &Options) -> anyhow::Result<ExitCode> {
    let deposit = crate::process::read_deposit(settings, &opts.files);
    if opts.csv {
        print!("{}", report::csv_export(&deposit.records)?);
    } else {
        let date = opts
            .date
            .unwrap_or_else(|| report::report_date_for(&deposit.records, settings.rules.today));
        print!("{}", report::text_report(&deposit.records, date));
    }
    Ok(if deposit.any_failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
