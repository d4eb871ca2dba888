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

/// Processes the photos of one upload together (`files`: path and name, in upload order), so
/// the model sees a check and its envelope in the same request. Each photo is page `n` of the
/// reading and loaded only when its turn comes (one decoded photo in memory at a time); each
/// record, error and total is put back on the photo it came from. A photo that cannot be read
/// is an error of that photo, and the others are read.
pub fn process_photos(
    files: &[(std::path::PathBuf, String)],
    settings: &PipelineSettings,
    cfg: &PdfConfig,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> FileOutcome {
    let first = files.first().map_or("photos", |(_, n)| n.as_str());
    let extractor = settings.extractor.as_ref();
    if !extractor.needs_images() {
        return FileOutcome::failed(
            first,
            Some(FileKind::Jpeg),
            "photos and scans have no text layer; the offline text extractor cannot read \
             them. Set GEMINI_API_KEY to read images.",
        );
    }
    settings
        .monitor
        .log(&format!("start {} photos read together", files.len()));
    let names: Vec<String> = files.iter().map(|(_, n)| n.clone()).collect();
    let count = u32::try_from(files.len()).unwrap_or(u32::MAX);
    let mut doc = extractor.begin_photos(&names);
    let mut outcomes = Vec::new();
    let mut unreadable = 0usize;
    let mut stopped = false;
    for (i, (path, name)) in files.iter().enumerate() {
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        match crate::photo::load_page(path, cfg) {
            Ok(mut page) => {
                page.number = number;
                page.page_count = count;
                outcomes.extend(doc.push(&page));
            }
            Err(e) => {
                unreadable += 1;
                outcomes.push(Outcome::Error(ExtractError {
                    file: name.clone(),
                    pages: vec![number],
                    reason: e.to_string(),
                }));
            }
        }
        let flow = progress(Progress {
            pages_done: number,
            page_count: count,
        });
        if flow.is_break() {
            stopped = true;
            break;
        }
    }
    let meter = doc.usage_meter();
    // Even when stopping, the photos already handed over are waited for: the answer is
    // dropped with the outcome, which is then marked stopped.
    outcomes.extend(doc.finish());
    let mut out = collect(first, FileKind::Jpeg, count, put_back(outcomes, &names));
    out.stopped = stopped;
    out.usage = meter.and_then(|m| m.lock().ok().map(|u| *u));
    if unreadable == files.len() {
        out.error = out
            .errors
            .first()
            .map(|e| format!("{}: {}", e.file, e.reason));
    }
    for record in &mut out.records {
        normalize(record, &settings.rules);
    }
    settings.monitor.log("end photos read together");
    out
}

/// Outcomes of photos read together carry photo numbers as pages: each goes back to its
/// photo's file (page 1 of that file). A record read from several photos (a check and its
/// envelope) names the first as its source and the others in its history.
fn put_back(outcomes: Vec<Outcome>, names: &[String]) -> Vec<Outcome> {
    let name_of =
        |n: u32| -> Option<&String> { (n as usize).checked_sub(1).and_then(|i| names.get(i)) };
    let mut out = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        match o {
            Outcome::Record(mut r) => {
                let photos: Vec<u32> = r.provenance.pages.clone();
                let mut files = photos.iter().filter_map(|&n| name_of(n));
                if let Some(first) = files.next() {
                    r.provenance.file.clone_from(first);
                    r.provenance.pages = vec![1];
                }
                let others: Vec<String> = files
                    .filter(|f| **f != r.provenance.file)
                    .cloned()
                    .collect();
                for file in others {
                    r.merge_history.push(crate::donation::MergeEntry {
                        merged_at: chrono::Utc::now(),
                        merged_id: uuid::Uuid::new_v4(),
                        source: crate::donation::Source {
                            file,
                            pages: vec![1],
                            line: None,
                            kind: crate::donation::SourceKind::Unknown,
                            job: None,
                        },
                        fields: Vec::new(),
                        payment_ref: None,
                        amount: None,
                    });
                }
                out.push(Outcome::Record(r));
            }
            Outcome::Error(e) => {
                // A failed request names all its photos: one error per photo.
                let mut seen: Vec<&String> = Vec::new();
                for name in e.pages.iter().filter_map(|&n| name_of(n)) {
                    if !seen.contains(&name) {
                        seen.push(name);
                        out.push(Outcome::Error(ExtractError {
                            file: name.clone(),
                            pages: Vec::new(),
                            reason: e.reason.clone(),
                        }));
                    }
                }
                if seen.is_empty() {
                    out.push(Outcome::Error(e));
                }
            }
            Outcome::Total(mut t) => {
                if let Some(name) = t.pages.first().and_then(|&n| name_of(n)) {
                    t.file.clone_from(name);
                    t.pages = vec![1];
                }
                out.push(Outcome::Total(t));
            }
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["check.jpg".into(), "envelope.jpg".into(), "list.jpg".into()]
    }

    #[test]
    fn photos_read_together_go_back_to_their_own_files() {
        let mut both = Donation::new("check.jpg");
        both.provenance.pages = vec![1, 2];
        let mut list = Donation::new("check.jpg");
        list.provenance.pages = vec![3];
        let failed = Outcome::Error(ExtractError {
            file: "check.jpg".into(),
            pages: vec![2, 3],
            reason: "the model's answer was cut off".into(),
        });
        let total = Outcome::Total(crate::extract::StatedTotal {
            file: "check.jpg".into(),
            pages: vec![3],
            kind: "deposit_list".into(),
            amount: None,
            count: Some(2),
        });
        let out = put_back(
            vec![
                Outcome::Record(Box::new(both)),
                Outcome::Record(Box::new(list)),
                failed,
                total,
            ],
            &names(),
        );
        let out = collect("check.jpg", FileKind::Jpeg, 3, out);
        // The check and its envelope in one record: the check is its source, the envelope
        // is in its history.
        let r = &out.records[0];
        assert_eq!(r.provenance.file, "check.jpg");
        assert_eq!(r.provenance.pages, vec![1]);
        let also: Vec<&str> = r
            .merge_history
            .iter()
            .map(|m| m.source.file.as_str())
            .collect();
        assert_eq!(also, ["envelope.jpg"]);
        assert_eq!(out.records[1].provenance.file, "list.jpg");
        assert!(out.records[1].merge_history.is_empty());
        // A failed request: one error per photo it held.
        let failed: Vec<&str> = out.errors.iter().map(|e| e.file.as_str()).collect();
        assert_eq!(failed, ["envelope.jpg", "list.jpg"]);
        assert!(out.errors.iter().all(|e| e.pages.is_empty()));
        assert_eq!(out.totals[0].file, "list.jpg");
    }
}
