//! Turning pages and CSV files into donation records.
//!
//! Every backend implements [`Extractor`]; the pipeline does not know which one runs.

pub mod csv;
pub mod gemini;
pub mod profiles;
pub mod text;

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::config::EnvReader;

use crate::donation::Donation;
use crate::pdf::Page;

/// What an extractor produced for part of a document: records, or a visible error for the
/// pages it could not read. Nothing is dropped silently.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    Record(Box<Donation>),
    Error(ExtractError),
    /// A total the paper states (a deposit list's, a slip's, a report's).
    Total(StatedTotal),
}

/// A total and count stated on a deposit list, slip or report: compared with the deposit's
/// rows once they are merged, to prove the deposit adds up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatedTotal {
    pub file: String,
    pub pages: Vec<u32>,
    /// deposit_list, deposit_slip or report.
    pub kind: String,
    #[serde(with = "rust_decimal::serde::str_option", default)]
    pub amount: Option<rust_decimal::Decimal>,
    #[serde(default)]
    pub count: Option<u32>,
}

/// A part of a file that yielded no records, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractError {
    pub file: String,
    /// 1-based pages concerned (empty when the whole file is meant).
    pub pages: Vec<u32>,
    pub reason: String,
}

impl ExtractError {
    /// "pages 1-3, 7" for people; "whole file" when no page is named.
    pub fn pages_label(&self) -> String {
        if self.pages.is_empty() {
            return "whole file".into();
        }
        let mut parts = Vec::new();
        let mut i = 0;
        while i < self.pages.len() {
            let start = self.pages[i];
            let mut end = start;
            while i + 1 < self.pages.len() && self.pages[i + 1] == end + 1 {
                i += 1;
                end = self.pages[i];
            }
            parts.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
            i += 1;
        }
        let noun = if self.pages.len() == 1 {
            "page"
        } else {
            "pages"
        };
        format!("{noun} {}", parts.join(", "))
    }
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
    /// Starts photos read together (one upload's photos): page `n` is the photo `names[n-1]`.
    /// By default they are one document named after the first.
    fn begin_photos(&self, names: &[String]) -> Box<dyn DocumentExtraction> {
        self.begin(names.first().map_or("photos", String::as_str))
    }
}

/// Extraction of one document, fed one page at a time.
pub trait DocumentExtraction {
    fn push(&mut self, page: &Page) -> Vec<Outcome>;
    fn finish(self: Box<Self>) -> Vec<Outcome>;
    /// Model token counts of this document, complete once `finish` has returned.
    fn usage_meter(&self) -> Option<Arc<Mutex<gemini::TokenUsage>>> {
        None
    }
}

/// The extractor chosen by `EXTRACTOR` (gemini or text; default gemini when `GEMINI_API_KEY`
/// is set, else text, so everything runs offline without a key).
pub fn from_env(env: &mut EnvReader) -> Arc<dyn Extractor + Send + Sync> {
    let key = env.raw("GEMINI_API_KEY").filter(|k| !k.trim().is_empty());
    let default = if key.is_some() { "gemini" } else { "text" };
    match env.text("EXTRACTOR", default).as_str() {
        "text" => Arc::new(text::TextExtractor),
        "gemini" => match key {
            Some(k) => Arc::new(gemini::GeminiExtractor::new(
                gemini::GeminiConfig::from_env(env, k.trim()),
            )),
            None => {
                env.problem("GEMINI_API_KEY", "required when EXTRACTOR=gemini");
                Arc::new(text::TextExtractor)
            }
        },
        other => {
            env.problem("EXTRACTOR", format!("{other:?}: use gemini or text"));
            Arc::new(text::TextExtractor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extractor_follows_the_key_unless_told() {
        let pick = |pairs: &[(&str, &str)]| {
            let mut env = EnvReader::from_pairs(pairs.iter().copied());
            let name = from_env(&mut env).name();
            (name, env.finish().err().map(|e| e.to_string()))
        };
        assert_eq!(pick(&[]), ("text", None));
        assert_eq!(pick(&[("GEMINI_API_KEY", "k")]), ("gemini", None));
        assert_eq!(
            pick(&[("GEMINI_API_KEY", "k"), ("EXTRACTOR", "text")]),
            ("text", None)
        );
        let (_, err) = pick(&[("EXTRACTOR", "gemini")]);
        assert!(err.is_some_and(|e| e.contains("GEMINI_API_KEY")));
        let (_, err) = pick(&[("EXTRACTOR", "ocr")]);
        assert!(err.is_some_and(|e| e.contains("EXTRACTOR")));
    }

    #[test]
    fn page_labels_collapse_runs() {
        let e = |pages: Vec<u32>| ExtractError {
            file: "f".into(),
            pages,
            reason: String::new(),
        };
        assert_eq!(e(vec![]).pages_label(), "whole file");
        assert_eq!(e(vec![4]).pages_label(), "page 4");
        assert_eq!(e((1..=200).collect()).pages_label(), "pages 1-200");
        assert_eq!(
            e(vec![1, 2, 3, 7, 9, 10]).pages_label(),
            "pages 1-3, 7, 9-10"
        );
    }
}
