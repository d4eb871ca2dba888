//! `fom-worker process`: the pipeline on local files, with the offline text extractor.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use fom_core::donation::{format_amount, Donation};
use fom_core::extract::text::TextExtractor;
use fom_core::extract::ExtractError;
use fom_core::memory;
use fom_core::pipeline::{process_file, FileOutcome};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::Settings;

#[derive(Serialize)]
struct Report<'a> {
    records: Vec<&'a Donation>,
    errors: Vec<&'a ExtractError>,
    files: Vec<FileSummary<'a>>,
    peak_rss_mb: f64,
}

#[derive(Serialize)]
struct FileSummary<'a> {
    file: &'a str,
    kind: Option<&'static str>,
    pages: u32,
    records: usize,
    error: Option<&'a str>,
}

pub fn run(settings: &Settings, files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let extractor = TextExtractor;
    let bar = progress_bar();
    let mut outcomes: Vec<FileOutcome> = Vec::with_capacity(files.len());
    for path in files {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        bar.set_message(name.clone());
        bar.set_position(0);
        let outcome = process_file(
            path,
            &name,
            &settings.pdf,
            &extractor,
            &settings.monitor,
            &mut |p| {
                bar.set_length(u64::from(p.page_count));
                bar.set_position(u64::from(p.pages_done));
                bar.set_prefix(format!("{:.0} MB", memory::rss_mb()));
            },
        );
        if let Some(e) = &outcome.error {
            bar.suspend(|| eprintln!("{name}: {e}"));
        }
        outcomes.push(outcome);
    }
    bar.finish_and_clear();

    let any_failed = outcomes.iter().any(|o| o.error.is_some());
    let report = Report {
        records: outcomes.iter().flat_map(|o| &o.records).collect(),
        errors: outcomes.iter().flat_map(|o| &o.errors).collect(),
        files: outcomes
            .iter()
            .map(|o| FileSummary {
                file: &o.file,
                kind: o.kind.map(|k| k.as_str()),
                pages: o.pages,
                records: o.records.len(),
                error: o.error.as_deref(),
            })
            .collect(),
        peak_rss_mb: memory::round1(memory::peak_rss_mb()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    Ok(if any_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{msg:30!} [{bar:30}] page {pos}/{len}  RSS {prefix}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

fn print_human(report: &Report<'_>) {
    for (i, r) in report.records.iter().enumerate() {
        let amount = r
            .amount
            .map_or_else(|| "?".to_string(), |a| format!("${}", format_amount(a)));
        let date = r
            .payment_date
            .map_or_else(String::new, |d| d.format("%m/%d/%Y").to_string());
        let reference = r.payment_ref.as_deref().unwrap_or(match r.payment_method {
            Some(fom_core::donation::PaymentMethod::Online) => "online",
            _ => "-",
        });
        println!(
            "{:>3}. {:<32} {:>12}  {:<10}  ref {:<12} ({}{})",
            i + 1,
            r.display_name().unwrap_or("(no name)"),
            amount,
            date,
            reference,
            r.provenance.file,
            r.provenance
                .pages
                .first()
                .map_or_else(String::new, |p| format!(" p.{p}")),
        );
        for issue in &r.issues {
            println!("       {:?}: {}", issue.level, issue.message);
        }
    }
    for e in &report.errors {
        println!("  ! {} {}: {}", e.file, e.pages_label(), e.reason);
    }
    for f in &report.files {
        match f.error {
            Some(err) => println!("{}: FAILED: {err}", f.file),
            None if f.pages > 0 => {
                println!("{}: {} page(s), {} record(s)", f.file, f.pages, f.records)
            }
            None => println!("{}: {} record(s)", f.file, f.records),
        }
    }
    println!("peak RSS {:.1} MB", report.peak_rss_mb);
}
