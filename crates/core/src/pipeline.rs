//! One file through detection, pages and extraction: the unit of work of the worker.

use std::ops::ControlFlow;
use std::path::Path;

use serde::Serialize;

use crate::donation::Donation;
use crate::extract::gemini::TokenUsage;
use crate::extract::{csv, ExtractError, Extractor, Outcome};
use crate::filetype::{self, FileKind};
use crate::memory::Monitor;
use crate::normalize::{normalize, Rules};
use crate::pdf::{PdfConfig, PdfPages};

/// What processing a file needs besides the file: every command of the worker shares one,
/// read from the environment once at start-up.
pub struct PipelineSettings {
    pub pdf: PdfConfig,
    pub rules: Rules,
    pub monitor: Monitor,
    /// `EXTRACTOR`: gemini (with `GEMINI_API_KEY`) or the offline text extractor.
    pub extractor: std::sync::Arc<dyn Extractor + Send + Sync>,
    /// `MAX_RECORDS_PER_FILE`: a CSV file with more data rows is refused before its records
    /// are built (docs/MEMORY.md, "CSV files and the Redis budget").
    pub max_records_per_file: u64,
}

/// Default of `MAX_RECORDS_PER_FILE`: a deposit of this many CSV rows fits Heroku Key-Value
/// Store's mini plan (25 MB) with room for its write (docs/MEMORY.md, "CSV files and the Redis
/// budget").
pub const DEFAULT_MAX_RECORDS_PER_FILE: u64 = 4_000;

impl PipelineSettings {
    pub fn from_env(env: &mut crate::config::EnvReader) -> Self {
        Self {
            pdf: PdfConfig::from_env(env),
            rules: Rules::from_env(env, chrono::Local::now().date_naive()),
            monitor: crate::runtime::memory_settings(env),
            extractor: crate::extract::from_env(env),
            max_records_per_file: env.number(
                "MAX_RECORDS_PER_FILE",
                DEFAULT_MAX_RECORDS_PER_FILE,
                1,
                1_000_000,
            ),
        }
    }

    /// [`process_file`] with these settings (and no saved CSV column choices).
    pub fn process(
        &self,
        path: &Path,
        name: &str,
        on_page: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    ) -> FileOutcome {
        let csv = self.csv_options();
        process_file(path, name, self, &self.pdf, &csv, on_page)
    }

    /// How CSV files are read by default.
    pub fn csv_options(&self) -> csv::ReadOptions {
        csv::ReadOptions::new(self.max_records_per_file)
    }
}

/// Pages between "Memory Monitor" lines within one document.
pub const MONITOR_EVERY_PAGES: u32 = 10;

/// Progress of the file being processed, reported after every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub pages_done: u32,
    pub page_count: u32,
}

/// What became of one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    pub file: String,
    pub kind: Option<FileKind>,
    /// PDF pages (0 for CSV and image files).
    pub pages: u32,
    #[serde(skip)]
    pub records: Vec<Donation>,
    /// Parts of the file that yielded no records (pages that failed, pages without text).
    #[serde(skip)]
    pub errors: Vec<ExtractError>,
    /// Set when the file as a whole could not be read.
    pub error: Option<String>,
    /// The file was refused for a reason its sender can fix (too many rows): the job ends
    /// failed, not dead, and the error says what to do.
    #[serde(skip)]
    pub refused: bool,
    /// The progress callback asked to stop before the end: the outcome is partial.
    #[serde(skip)]
    pub stopped: bool,
    /// How a CSV file was read: its layout, gifts and skipped lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csv: Option<csv::ReadSummary>,
    /// The file's columns could not be told apart: the treasurer chooses them, then the job
    /// runs again (the upload is kept).
    #[serde(skip)]
    pub needs_columns: bool,
    /// Totals the file states (deposit lists, slips, reports).
    #[serde(skip)]
    pub totals: Vec<crate::extract::StatedTotal>,
    /// Model tokens spent on this file (Gemini only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
}

impl FileOutcome {
    fn failed(file: &str, kind: Option<FileKind>, error: impl ToString) -> Self {
        Self {
            file: file.to_string(),
            kind,
            pages: 0,
            records: Vec::new(),
            errors: Vec::new(),
            error: Some(error.to_string()),
            refused: false,
            stopped: false,
            csv: None,
            needs_columns: false,
            totals: Vec::new(),
            usage: None,
        }
    }

    fn refused(file: &str, kind: Option<FileKind>, error: impl ToString) -> Self {
        Self {
            refused: true,
            ..Self::failed(file, kind, error)
        }
    }
}

/// Processes one file into normalised records, with `settings`, the PDF settings `pdf` (a
/// job's own: its quarantined pages) and the CSV options `csv` (the saved column choices).
/// Never panics on bad input: every problem ends up in the outcome.
pub fn process_file(
    path: &Path,
    name: &str,
    settings: &PipelineSettings,
    pdf: &PdfConfig,
    csv: &csv::ReadOptions,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> FileOutcome {
    let mut outcome = read_file(path, name, settings, pdf, csv, progress);
    for record in &mut outcome.records {
        normalize(record, &settings.rules);
    }
    outcome
}

fn read_file(
    path: &Path,
    name: &str,
    settings: &PipelineSettings,
    cfg: &PdfConfig,
    csv_opts: &csv::ReadOptions,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> FileOutcome {
    let extractor = settings.extractor.as_ref();
    let monitor = &settings.monitor;
    let kind = match filetype::sniff_path(path) {
        Ok(k) => k,
        Err(e) => return FileOutcome::failed(name, None, e),
    };
    monitor.log(&format!("start {} file", kind.as_str()));
    let outcome = match kind {
        FileKind::Pdf => process_pdf(path, name, cfg, extractor, monitor, progress),
        FileKind::Csv => match csv::read_export(path, name, csv_opts) {
            Ok(read) => {
                // One step for the whole file: there is no page boundary to stop at.
                let _ = progress(Progress {
                    pages_done: 1,
                    page_count: 1,
                });
                let mut out = collect(name, kind, 0, read.outcomes);
                if out.records.is_empty() && out.errors.is_empty() {
                    out.errors.push(ExtractError {
                        file: name.to_string(),
                        pages: Vec::new(),
                        reason: format!("no gifts in this file: {}", read.summary.sentence()),
                    });
                }
                out.csv = Some(read.summary);
                out
            }
            Err(e @ csv::CsvError::TooManyRows { .. }) => FileOutcome::refused(name, Some(kind), e),
            Err(csv::CsvError::NoAmountColumn(layout) | csv::CsvError::NoNameColumn(layout)) => {
                let missing = if layout
                    .roles
                    .contains(&Some(crate::extract::profiles::Role::Amount))
                {
                    "which column holds the donor's name or a check number"
                } else {
                    "which column holds the amount"
                };
                let mut out = FileOutcome::failed(
                    name,
                    Some(kind),
                    format!(
                        "this file's columns were not recognised: choose {missing} (\"Choose \
                         columns\"), and the file is read again"
                    ),
                );
                out.needs_columns = true;
                out.csv = Some(csv::ReadSummary {
                    layout: Some(*layout),
                    ..csv::ReadSummary::default()
                });
                out
            }
            Err(e) => FileOutcome::failed(name, Some(kind), e),
        },
        FileKind::Jpeg | FileKind::Png => {
            if extractor.needs_images() {
                process_photo(path, name, kind, cfg, extractor, progress)
            } else {
                FileOutcome::failed(
                    name,
                    Some(kind),
                    "a photo or scan has no text layer; the offline text extractor cannot read \
                     it. Set GEMINI_API_KEY to read images.",
                )
            }
        }
    };
    monitor.log(&format!("end {} file", kind.as_str()));
    outcome
}

/// A photo or scanned image: one page through the same extractor as PDF pages.
fn process_photo(
    path: &Path,
    name: &str,
    kind: FileKind,
    cfg: &PdfConfig,
    extractor: &dyn Extractor,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> FileOutcome {
    let page = match crate::photo::load_page(path, cfg) {
        Ok(p) => p,
        Err(e) => return FileOutcome::failed(name, Some(kind), e),
    };
    let mut doc = extractor.begin(name);
    let mut outcomes = doc.push(&page);
    drop(page);
    let meter = doc.usage_meter();
    outcomes.extend(doc.finish());
    let _ = progress(Progress {
        pages_done: 1,
        page_count: 1,
    });
    let mut out = collect(name, kind, 1, outcomes);
    out.usage = meter.and_then(|m| m.lock().ok().map(|u| *u));
    out
}

fn process_pdf(
    path: &Path,
    name: &str,
    cfg: &PdfConfig,
    extractor: &dyn Extractor,
    monitor: &Monitor,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> FileOutcome {
    let cfg = PdfConfig {
        images: extractor.needs_images(),
        ..cfg.clone()
    };
    let pages = match PdfPages::open(path, &cfg) {
        Ok(p) => p,
        Err(e) => return FileOutcome::failed(name, Some(FileKind::Pdf), e),
    };
    let page_count = pages.page_count();
    let mut doc = extractor.begin(name);
    let mut outcomes = Vec::new();
    let mut done = 0;
    for page in pages {
        match page {
            Ok(page) => outcomes.extend(doc.push(&page)),
            Err(e) => outcomes.push(Outcome::Error(ExtractError {
                file: name.to_string(),
                pages: (e.first_page..=e.last_page).collect(),
                reason: e.reason,
            })),
        }
        done += 1;
        if done % MONITOR_EVERY_PAGES == 0 {
            monitor.log(&format!("pdf pages {done}/{page_count}"));
        }
        let flow = progress(Progress {
            pages_done: done,
            page_count,
        });
        if flow.is_break() {
            // Stopped at a page boundary (shutdown or memory): the caller hands the job back.
            let mut out = collect(name, FileKind::Pdf, page_count, outcomes);
            out.stopped = true;
            return out;
        }
    }
    let meter = doc.usage_meter();
    outcomes.extend(doc.finish());
    let mut out = collect(name, FileKind::Pdf, page_count, outcomes);
    out.usage = meter.and_then(|m| m.lock().ok().map(|u| *u));
    out
}

fn collect(name: &str, kind: FileKind, pages: u32, outcomes: Vec<Outcome>) -> FileOutcome {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut totals = Vec::new();
    for o in outcomes {
        match o {
            Outcome::Record(r) => records.push(*r),
            Outcome::Error(e) => errors.push(e),
            Outcome::Total(t) => totals.push(t),
        }
    }
    FileOutcome {
        file: name.to_string(),
        kind: Some(kind),
        pages,
        records,
        errors,
        error: None,
        refused: false,
        stopped: false,
        csv: None,
        needs_columns: false,
        totals,
        usage: None,
    }
}
