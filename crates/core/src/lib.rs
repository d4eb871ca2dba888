//! fom-core: the whole deposit-paperwork pipeline and the state around it, with no HTTP server
//! and no queue library (the `fom-queue` crate brings apalis; docs/ARCHITECTURE.md).
//!
//! Files to records:
//! - [`filetype`]: what a file is, from its first bytes.
//! - [`pdf`]: walk a PDF page by page (JPEG + text layer) in memory that does not grow with the
//!   page count or the file size; [`photo`]: a JPEG/PNG photo as one upright page.
//! - [`extract`]: pages and CSV files to [`donation::Donation`] records (text, CSV, Gemini).
//! - [`normalize`], [`aliases`]: the record rules (docs/RULES.md); [`dedup`]: merging records.
//! - [`pipeline`]: one file through detection, pages, extraction and normalisation.
//! - [`report`]: the deposit report (text and CSV).
//!
//! State in Redis, one owner per piece (keys all built in [`keys`]):
//! - [`jobs`]: job records, the [`jobs::Job`] trait and the jobs (document, send-all).
//! - [`deposits`]: deposits, changed by compare-and-set.
//! - [`store`]: uploaded files (Redis, directory or S3) and their retention.
//! - [`sessions`]: signed-in sessions and the sign-in limiter.
//! - [`workers`]: worker heartbeats.
//! - [`qbo`]: QuickBooks Online: connection, client, limits, matching, customers, receipts.
//!
//! Wiring:
//! - [`services`]: the settings both processes share and the services built from them.
//! - [`intake`]: one file into a deposit (the upload route and `fom-worker enqueue`).
//! - [`queue`]: the queue as core sees it ([`queue::Enqueue`]).
//! - [`redis_conn`], [`config`], [`memory`], [`runtime`]: Redis connections, environment
//!   settings, RSS readings and the Memory Monitor lines, logging set-up.
//! - [`ceiling`]: the memory ceiling no input can break (kernel limit and watchdog).

pub mod aliases;
pub mod audit;
pub mod ceiling;
pub mod config;
pub mod dedup;
pub mod deposits;
pub mod donation;
pub mod extract;
pub mod filetype;
pub mod imports;
pub mod intake;
pub mod jobs;
pub mod keys;
pub mod legal;
pub mod limits;
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
pub mod statements;
pub mod store;
pub mod workers;
