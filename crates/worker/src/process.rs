//! `fom-worker process` and `fom-worker report`: the pipeline on local files, offline.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use fom_core::dedup;
use fom_core::donation::{format_amount, Donation};
use fom_core::extract::ExtractError;
use fom_core::filetype::{self, FileKind};
use fom_core::memory;
use fom_core::normalize::normalize;
use fom_core::pipeline::{process_photos, FileOutcome};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use fom_core::pipeline::PipelineSettings;

/// The files of one deposit, read, normalised and de-duplicated.
pub struct Deposit {
    pub files: Vec<FileOutcome>,
    /// Records after merging duplicates across all files.
    pub records: Vec<Donation>,
    pub merged: usize,
}

impl Deposit {
    pub fn any_failed(&self) -> bool {
        self.files.iter().any(|o| o.error.is_some())
    }
}

/// The file being read, for the memory watchdog's message.
static CURRENT_FILE: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// The file being read now ("the input" before the first).
pub fn current_file() -> String {
    CURRENT_FILE
        .lock()
        .ok()
        .map(|f| f.clone())
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "the input".into())
}

/// Reads every file (one failing file does not stop the others), then merges duplicates across
/// files with the same rules a later upload into an existing deposit uses.
/// The photos among the files are read together (as one upload's photos are), where the
/// first of them stands.
pub fn read_deposit(settings: &PipelineSettings, files: &[PathBuf]) -> Deposit {
    let bar = progress_bar();
    let mut outcomes: Vec<FileOutcome> = Vec::with_capacity(files.len());
    let mut records = Vec::new();
    let mut merged = 0;
    let name_of = |path: &PathBuf| {
        path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    let photos: Vec<(PathBuf, String)> = files
        .iter()
        .filter(|p| matches!(filetype::sniff_path(p), Ok(FileKind::Jpeg | FileKind::Png)))
        .map(|p| (p.clone(), name_of(p)))
        .collect();
    for path in files {
        let together = photos.len() > 1 && photos.iter().any(|(p, _)| p == path);
        if together && photos.first().is_some_and(|(p, _)| p != path) {
            continue;
        }
        let name = name_of(path);
        bar.set_message(name.clone());
        bar.set_position(0);
        if let Ok(mut f) = CURRENT_FILE.lock() {
            f.clone_from(&name);
        }
        let mut on_page = |p: fom_core::pipeline::Progress| {
            bar.set_length(u64::from(p.page_count));
            bar.set_position(u64::from(p.pages_done));
            bar.set_prefix(format!("{:.0} MB", memory::rss_mb()));
            std::ops::ControlFlow::Continue(())
        };
        let outcome = if together {
            process_photos(&photos, settings, &settings.pdf, &mut on_page)
        } else {
            settings.process(path, &name, &mut on_page)
        };
        if let Some(e) = &outcome.error {
            // One line per bad file, starting with its name (some messages already name it).
            if e.starts_with(&format!("{name} ")) {
                bar.suspend(|| eprintln!("{e}"));
            } else {
                bar.suspend(|| eprintln!("{name}: {e}"));
            }
        }
        merged += dedup::merge_into(&mut records, outcome.records.clone()).merged;
        outcomes.push(outcome);
    }
    bar.finish_and_clear();
    // Merged records are checked again: a merge can fill a missing field or join memos.
    for r in &mut records {
        normalize(r, &settings.rules);
    }
    Deposit {
        files: outcomes,
        records,
        merged,
    }
}

#[derive(Serialize)]
struct Report<'a> {
    records: &'a [Donation],
    errors: Vec<&'a ExtractError>,
    files: Vec<FileSummary<'a>>,
    duplicates_merged: usize,
    peak_rss_mb: f64,
}

#[derive(Serialize)]
struct FileSummary<'a> {
    file: &'a str,
    kind: Option<&'static str>,
    pages: u32,
    /// Records read from this file, before duplicates across files were merged.
    records: usize,
    error: Option<&'a str>,
    /// Model tokens spent on this file (Gemini).
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<fom_core::extract::gemini::TokenUsage>,
}

pub fn run(settings: &PipelineSettings, files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let deposit = read_deposit(settings, files);
    let report = Report {
        records: &deposit.records,
        errors: deposit.files.iter().flat_map(|o| &o.errors).collect(),
        files: deposit
            .files
            .iter()
            .map(|o| FileSummary {
                file: &o.file,
                kind: o.kind.map(|k| k.as_str()),
                pages: o.pages,
                records: o.records.len(),
                error: o.error.as_deref(),
                usage: o.usage,
            })
            .collect(),
        duplicates_merged: deposit.merged,
        peak_rss_mb: memory::round1(memory::peak_rss_mb()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    Ok(if deposit.any_failed() {
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
        let merged = if r.merge_history.is_empty() {
            String::new()
        } else {
            format!(" merged x{}", r.merge_history.len() + 1)
        };
        println!(
            "{:>3}. {:<32} {:>12}  {:<10}  ref {:<12} ({}{}){merged}",
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
    if report.duplicates_merged > 0 {
        println!("{} duplicate(s) merged", report.duplicates_merged);
    }
    println!("peak RSS {:.1} MB", report.peak_rss_mb);
}
