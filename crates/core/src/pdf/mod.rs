//! Walking a PDF page by page in constant memory.
//!
//! Design (measured in docs/PERFORMANCE.md):
//! - The file is opened from its path through a seekable reader: pdfium reads only what it
//!   needs, so the file size does not count against memory.
//! - pdfium keeps per-document caches (decoded images, fonts, parsed page data) that grow with
//!   every page rendered. The document is closed and reopened every `reopen_every` pages, which
//!   drops those caches; reopening costs a cross-reference parse, a few milliseconds.
//! - Three stages on two threads, joined by rendezvous channels: the pdfium thread renders page
//!   n+1 into a recycled BGRx buffer while the encoder thread turns page n into a JPEG, and the
//!   consumer holds page n-1. At most three page-sized buffers exist at any time.
//! - A page that is exactly one full-page baseline JPEG (RGB or gray, no transparency, no
//!   rotation, at or above the configured resolution, under a size cap) is passed through as it
//!   is stored: no decode, no render, no encode. One that may not be passed through (over the
//!   size cap, or pass-through off) but covers the render size is decoded by the encoder thread
//!   at the smallest DCT scale that covers it and shrunk to size: the picture pdfium would
//!   render, without pdfium's full-size decode (2.6x faster, half the peak; docs/PERFORMANCE.md).
//! - Every page-level failure (including a panic inside the binding) becomes a [`PageError`]
//!   for that page; the walk continues.

mod jpeg;
pub mod library;
pub mod precheck;
mod walk;

pub mod synth;

use std::io::Read;
use std::path::Path;

use pdfium_render::prelude::{PdfDocument, PdfiumError, PdfiumInternalError};
use serde::Serialize;

use crate::config::EnvReader;
pub use library::LibraryError;
pub use walk::PdfPages;

/// How pages are turned into images. Every field has an environment variable (`from_env`).
#[derive(Debug, Clone, PartialEq)]
pub struct PdfConfig {
    /// `RENDER_DPI`: resolution pages are rendered at.
    pub dpi: u32,
    /// `RENDER_MAX_PIXELS`: a page whose render would exceed this many pixels is scaled down.
    pub max_pixels: u64,
    /// `JPEG_QUALITY`: quality of the JPEGs we encode.
    pub jpeg_quality: u8,
    /// `PDF_MAX_PAGES`: documents with more pages are refused.
    pub max_pages: u32,
    /// `PDF_MAX_IMAGE_PIXELS`: a page drawing a larger embedded image is refused (decoding it
    /// would need more memory than the worker's budget).
    pub max_image_pixels: u64,
    /// `PDF_MAX_STREAM_MB` (in bytes): a page whose content, form or image stream inflates
    /// past this is refused before pdfium loads it (`precheck`).
    pub max_stream_bytes: u64,
    /// `PDF_MAX_PAGE_OPERATORS`: a page whose content streams (and the forms it draws) hold
    /// more drawing operators is refused before pdfium loads it.
    pub max_page_operators: u64,
    /// `PDF_MAX_OBJECTS`: a document whose cross-reference declares more objects is refused
    /// before pdfium parses it.
    pub max_objects: u64,
    /// `PDF_JPEG_PASSTHROUGH`: allow full-page JPEG pass-through.
    pub passthrough: bool,
    /// `PDF_PASSTHROUGH_MAX_KB`: largest embedded JPEG passed through as it is.
    pub passthrough_max_bytes: usize,
    /// A page that is one full-page JPEG at or above the render size is decoded at a reduced
    /// scale (DCT scaling) instead of rendered by pdfium: the same picture for a fraction of
    /// the work. Off only to compare the two.
    pub scaled_decode: bool,
    /// `PDF_REOPEN_EVERY`: close and reopen the document after this many pages.
    pub reopen_every: u32,
    /// Produce page images at all. Off when the extractor reads only the text layer.
    pub images: bool,
    /// Pages left out, each reported as a page error with its reason (pages that ended an
    /// earlier attempt at the memory ceiling).
    pub skip: PageSkip,
    /// Told on the render thread which page pdfium is about to load, and when it is done with
    /// it, before anything else happens.
    pub watch: PageWatch,
}

/// Pages to leave out of a walk, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageSkip {
    pub pages: Vec<u32>,
    pub reason: String,
}

/// A callback for the page pdfium is loading: `Some(page)` before, `None` after.
#[derive(Clone, Default)]
pub struct PageWatch(Option<std::sync::Arc<dyn Fn(Option<u32>) + Send + Sync>>);

impl PageWatch {
    pub fn new(f: impl Fn(Option<u32>) + Send + Sync + 'static) -> Self {
        Self(Some(std::sync::Arc::new(f)))
    }

    pub(crate) fn tell(&self, page: Option<u32>) {
        if let Some(f) = &self.0 {
            f(page);
        }
    }
}

impl std::fmt::Debug for PageWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "PageWatch(set)"
        } else {
            "PageWatch(none)"
        })
    }
}

impl PartialEq for PageWatch {
    /// Settings compare equal whatever watches them.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Default for PdfConfig {
    fn default() -> Self {
        Self {
            dpi: 150,
            max_pixels: 6_000_000,
            jpeg_quality: 85,
            max_pages: 500,
            max_image_pixels: 40_000_000,
            max_stream_bytes: 128 * 1024 * 1024,
            max_page_operators: 1_000_000,
            max_objects: 200_000,
            passthrough: true,
            passthrough_max_bytes: 4 * 1024 * 1024,
            scaled_decode: true,
            reopen_every: 4,
            images: true,
            skip: PageSkip::default(),
            watch: PageWatch::default(),
        }
    }
}

impl PdfConfig {
    pub fn from_env(env: &mut EnvReader) -> Self {
        let d = Self::default();
        Self {
            dpi: env.number("RENDER_DPI", d.dpi, 50, 600),
            max_pixels: env.number("RENDER_MAX_PIXELS", d.max_pixels, 100_000, 40_000_000),
            jpeg_quality: env.number("JPEG_QUALITY", d.jpeg_quality, 30, 100),
            max_pages: env.number("PDF_MAX_PAGES", d.max_pages, 1, 100_000),
            max_image_pixels: env.number(
                "PDF_MAX_IMAGE_PIXELS",
                d.max_image_pixels,
                1_000_000,
                400_000_000,
            ),
            max_stream_bytes: env.number("PDF_MAX_STREAM_MB", d.max_stream_bytes >> 20, 1, 4096)
                << 20,
            max_page_operators: env.number(
                "PDF_MAX_PAGE_OPERATORS",
                d.max_page_operators,
                10_000,
                1_000_000_000,
            ),
            max_objects: env.number("PDF_MAX_OBJECTS", d.max_objects, 1_000, 100_000_000),
            passthrough: env.flag("PDF_JPEG_PASSTHROUGH", d.passthrough),
            passthrough_max_bytes: env.number::<usize>(
                "PDF_PASSTHROUGH_MAX_KB",
                d.passthrough_max_bytes / 1024,
                64,
                19 * 1024,
            ) * 1024,
            scaled_decode: d.scaled_decode,
            reopen_every: env.number("PDF_REOPEN_EVERY", d.reopen_every, 1, 10_000),
            images: true,
            skip: PageSkip::default(),
            watch: PageWatch::default(),
        }
    }
}

/// Why a whole document cannot be read. Each message tells a person what to do.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum PdfError {
    #[error("not a PDF file ({0})")]
    NotPdf(String),
    #[error("the PDF is password-protected; remove the password (print to a new PDF) and upload it again")]
    Encrypted,
    #[error("the PDF is damaged and cannot be read ({0}); re-scan or re-export it")]
    Corrupt(String),
    #[error("the PDF has no pages")]
    NoPages,
    #[error(
        "the PDF has {pages} pages, more than the limit of {limit}; split it into smaller files"
    )]
    TooManyPages { pages: u32, limit: u32 },
    #[error(
        "the PDF declares {objects} objects, more than the limit of {limit}; print it to a new \
         PDF or split it into smaller files"
    )]
    TooManyObjects { objects: u64, limit: u64 },
    #[error("cannot read the file: {0}")]
    Io(String),
    #[error("{0}")]
    Library(String),
}

impl From<LibraryError> for PdfError {
    fn from(e: LibraryError) -> Self {
        PdfError::Library(e.to_string())
    }
}

/// Why one page (or a run of pages) could not be turned into an image and text.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{}: {reason}", page_label(*first_page, *last_page))]
pub struct PageError {
    /// 1-based.
    pub first_page: u32,
    pub last_page: u32,
    pub reason: String,
}

fn page_label(first: u32, last: u32) -> String {
    if first == last {
        format!("page {first}")
    } else {
        format!("pages {first}-{last}")
    }
}

/// How a page's JPEG was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    /// Rendered by pdfium and encoded by us.
    Rendered,
    /// The page's own full-page JPEG, as stored in the file.
    PassThrough,
    /// The page's own full-page JPEG, decoded at a reduced scale (DCT scaling) to the render
    /// size and encoded by us: what a render gives, without pdfium decoding it at full size.
    Decoded,
    /// No image was asked for.
    None,
}

/// One page, ready for extraction.
#[derive(Debug, Clone)]
pub struct Page {
    /// 1-based page number.
    pub number: u32,
    pub page_count: u32,
    /// JPEG bytes (empty when images were not asked for).
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub source: ImageSource,
    /// The page's text layer, lines separated by `\n`.
    pub text: String,
}

/// Page count and basic facts, read without rendering anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfInfo {
    pub pages: u32,
    /// Pages the pre-flight refused (1-based), each with its reason: pdfium never loads them.
    pub refused: Vec<(u32, String)>,
}

/// Checks the header bytes and what the file declares (`precheck`), then opens the document
/// once to validate it and count its pages.
pub fn inspect(path: &Path, cfg: &PdfConfig) -> Result<PdfInfo, PdfError> {
    check_header(path)?;
    let started = std::time::Instant::now();
    // Before pdfium parses the cross-reference: a declared object count is refused here.
    let preflight = precheck::preflight(path, cfg)?;
    let preflight_ms = started.elapsed().as_millis() as u64;
    let pdfium = library::pdfium()?;
    let doc = open_document(pdfium, path)?;
    let pages = u32::try_from(doc.pages().len()).unwrap_or(0);
    if pages == 0 {
        return Err(PdfError::NoPages);
    }
    if pages > cfg.max_pages {
        return Err(PdfError::TooManyPages {
            pages,
            limit: cfg.max_pages,
        });
    }
    let refused = match preflight {
        precheck::Preflight::Pages(verdicts) if verdicts.len() == pages as usize => verdicts
            .into_iter()
            .zip(1..)
            .filter_map(|(v, n)| v.map(|why| (n, why)))
            .collect(),
        precheck::Preflight::Pages(verdicts) => {
            // Our page tree and pdfium's disagree: the verdicts cannot be trusted per page.
            tracing::info!(
                ours = verdicts.len(),
                pdfium = pages,
                "PDF pre-flight skipped: page counts differ"
            );
            Vec::new()
        }
        precheck::Preflight::Unchecked(why) => {
            tracing::info!(why = %why, "PDF pre-flight skipped: structure not understood");
            Vec::new()
        }
    };
    tracing::debug!(
        pages,
        refused = refused.len(),
        preflight_ms,
        ms = started.elapsed().as_millis() as u64,
        "PDF inspected"
    );
    Ok(PdfInfo { pages, refused })
}

fn check_header(path: &Path) -> Result<(), PdfError> {
    let mut head = Vec::with_capacity(1024);
    std::fs::File::open(path)
        .map_err(|e| PdfError::Io(e.to_string()))?
        .take(1024)
        .read_to_end(&mut head)
        .map_err(|e| PdfError::Io(e.to_string()))?;
    match crate::filetype::sniff(&head) {
        Ok(crate::filetype::FileKind::Pdf) => Ok(()),
        Ok(other) => Err(PdfError::NotPdf(format!("it is a {} file", other.as_str()))),
        Err(e) => Err(PdfError::NotPdf(e.to_string())),
    }
}

pub(crate) fn open_document<'a>(
    pdfium: &'a pdfium_render::prelude::Pdfium,
    path: &Path,
) -> Result<PdfDocument<'a>, PdfError> {
    let file = std::fs::File::open(path).map_err(|e| PdfError::Io(e.to_string()))?;
    // A buffered reader: pdfium asks for many small blocks.
    let reader = std::io::BufReader::with_capacity(64 * 1024, file);
    pdfium
        .load_pdf_from_reader(reader, None)
        .map_err(map_open_error)
}

fn map_open_error(e: PdfiumError) -> PdfError {
    match e {
        PdfiumError::PdfiumLibraryInternalError(
            PdfiumInternalError::PasswordError | PdfiumInternalError::SecurityError,
        ) => PdfError::Encrypted,
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::FormatError) => {
            PdfError::Corrupt("format error".into())
        }
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::FileError) => {
            PdfError::Corrupt("file structure error".into())
        }
        PdfiumError::IoError(e) => PdfError::Io(e.to_string()),
        other => PdfError::Corrupt(format!("{other:?}")),
    }
}
