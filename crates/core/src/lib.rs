//! fom-core: the whole deposit-paperwork pipeline, with no HTTP server and no queue loop.
//!
//! - [`pdf`]: walk a PDF page by page (JPEG + text layer) with memory that does not grow with
//!   the page count or the file size.
//! - [`memory`]: RSS readings, thresholds and the "Memory Monitor" log lines.
//! - [`extract`]: turn pages and CSV files into [`donation::Donation`] records.
//! - [`pipeline`]: run one file through detection, pages and extraction.

pub mod aliases;
pub mod config;
pub mod dedup;
pub mod deposits;
pub mod donation;
pub mod extract;
pub mod filetype;
pub mod intake;
pub mod jobs;
pub mod keys;
pub mod memory;
pub mod normalize;
pub mod pdf;
pub mod photo;
pub mod pipeline;
pub mod qbo;
pub mod queue;
pub mod redis_conn;
pub mod report;
pub mod runtime;
pub mod services;
pub mod sessions;
pub mod store;
pub mod workers;
