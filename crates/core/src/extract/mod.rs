//! Turning pages and CSV files into donation records.
//!
//! Every backend implements [`Extractor`]; the pipeline does not know which one runs.

pub mod csv;
pub mod text;

use serde::Serialize;

use crate::donation::Donation;
use crate::pdf::Page;

/// What an extractor produced for part of a document: records, or a visible error for the
/// pages it could not read. Nothing is dropped silently.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    Record(Box<Donation>),
    Error(ExtractError),
}

/// A part of a file that yielded no records, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtractError {
    pub file: String,
    /// 1-based pages concerned (empty when the whole file is meant).
    pub pages: Vec<u32>,
    pub reason: String,
}

/// An extraction backend.
pub trait Extractor {
    /// Short name for logs and output ("text", "gemini").
    fn name(&self) -> &'static str;
    /// Whether page images are needed (a text-layer extractor does not need them, so the
    /// pipeline skips rendering entirely).
    fn needs_images(&self) -> bool;
    /// Starts one document.
    fn begin(&self, file: &str) -> Box<dyn DocumentExtraction>;
}

/// Extraction of one document, fed one page at a time.
pub trait DocumentExtraction {
    fn push(&mut self, page: &Page) -> Vec<Outcome>;
    fn finish(self: Box<Self>) -> Vec<Outcome>;
}
