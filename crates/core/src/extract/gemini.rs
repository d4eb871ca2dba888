//! Gemini extraction: page images (JPEG) with their text layer, in small batches, to
//! `generateContent` with structured JSON output (docs/RULES.md#gemini).
//!
//! - At most one batch is in flight while the next one is being rendered: a rendezvous
//!   channel hands a full batch to the request thread, which takes it only when the previous
//!   request is over. Memory is one batch of images plus the page being rendered.
//! - Requests are retried on 408/429/5xx and transport errors with exponential backoff and
//!   jitter (a 429's `RetryInfo` delay is honoured); a per-day quota is not retried. A client-side
//!   rate limit spaces requests instead of failing them.
//! - A batch that still fails becomes a visible error for its pages; the rest of the document
//!   continues. A `MAX_TOKENS` answer is retried as two half batches.
//! - The response schema is generated from [`WireRecord`], the same type the answer is parsed
//!   into, so the two cannot drift apart.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{DocumentExtraction, ExtractError, Extractor, Outcome};
use crate::config::EnvReader;
use crate::donation::{parse_amount, parse_date, Donation, IssueLevel, PaymentMethod, SourceKind};
use crate::pdf::Page;

/// The prompt, versioned with the code (its first line names the version).
pub const PROMPT: &str = include_str!("gemini_prompt.md");
pub const DEFAULT_MODEL: &str = "gemini-3.8-flash";
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// Settings from `GEMINI_*` variables.
#[derive(Debug, Clone)]
pub struct GeminiConfig {
    pub api_key: String,
    pub model: String,
    pub base_url: String,
    /// Pages per request.
    pub batch_pages: usize,
    /// Largest request body we send (the API allows 100 MB inline; we stay far below).
    pub max_request_bytes: usize,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Requests per minute this process may start (0 = no limit).
    pub requests_per_minute: u32,
    pub timeout: Duration,
    pub thinking_level: String,
    pub max_output_tokens: u32,
    /// `GEMINI_RECORD=dir:PATH`: each answer is saved as `PATH/<request digest>.json`.
    pub record: Option<std::path::PathBuf>,
    /// `GEMINI_REPLAY=dir:PATH`: requests are answered from those files, without the network,
    /// so a real deposit becomes a regression case kept outside the repository.
    pub replay: Option<std::path::PathBuf>,
}

impl GeminiConfig {
    pub fn new(api_key: &str) -> Self {
        Self {
            api_key: api_key.to_string(),
            model: DEFAULT_MODEL.into(),
            base_url: DEFAULT_BASE_URL.into(),
            batch_pages: 8,
            max_request_bytes: 16 * 1024 * 1024,
            max_attempts: 6,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            requests_per_minute: 60,
            timeout: Duration::from_secs(120),
            thinking_level: "low".into(),
            max_output_tokens: 16_384,
            record: None,
            replay: None,
        }
    }

    /// Reads the `GEMINI_*` variables; `api_key` comes from `GEMINI_API_KEY`.
    pub fn from_env(env: &mut EnvReader, api_key: &str) -> Self {
        let d = Self::new(api_key);
        let model = env.text("GEMINI_MODEL", &d.model);
        let base_url = env
            .text("GEMINI_BASE_URL", &d.base_url)
            .trim_end_matches('/')
            .to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            env.problem("GEMINI_BASE_URL", "must be an http(s) URL");
        }
        let thinking_level = env.text("GEMINI_THINKING_LEVEL", &d.thinking_level);
        if !matches!(thinking_level.as_str(), "low" | "medium" | "high") {
            env.problem("GEMINI_THINKING_LEVEL", "use low, medium or high");
        }
        Self {
            model,
            base_url,
            batch_pages: env.number("GEMINI_BATCH_PAGES", d.batch_pages, 1, 50),
            max_request_bytes: env.number("GEMINI_MAX_REQUEST_MB", 16usize, 1, 100) * 1024 * 1024,
            max_attempts: env.number("GEMINI_MAX_ATTEMPTS", d.max_attempts, 1, 20),
            backoff_initial: Duration::from_millis(env.number(
                "GEMINI_RETRY_INITIAL_MS",
                1000u64,
                1,
                60_000,
            )),
            backoff_max: Duration::from_secs(env.number("GEMINI_RETRY_MAX_SECS", 60u64, 1, 600)),
            requests_per_minute: env.number("GEMINI_RPM", d.requests_per_minute, 0, 10_000),
            timeout: Duration::from_secs(env.number("GEMINI_TIMEOUT_SECS", 120u64, 5, 600)),
            thinking_level,
            max_output_tokens: env.number(
                "GEMINI_MAX_OUTPUT_TOKENS",
                d.max_output_tokens,
                1024,
                65_536,
            ),
            record: answers_dir(env, "GEMINI_RECORD", true),
            replay: answers_dir(env, "GEMINI_REPLAY", false),
            api_key: d.api_key,
        }
    }
}

/// A `dir:PATH` setting: the directory (made when `create`), or a problem when it is unusable.
fn answers_dir(env: &mut EnvReader, name: &str, create: bool) -> Option<std::path::PathBuf> {
    let raw = env.raw(name).filter(|v| !v.trim().is_empty())?;
    let Some(path) = raw.trim().strip_prefix("dir:") else {
        env.problem(name, "use dir:PATH");
        return None;
    };
    let path = std::path::PathBuf::from(path);
    if create {
        if let Err(e) = std::fs::create_dir_all(&path) {
            env.problem(name, format!("cannot make the directory: {e}"));
            return None;
        }
    } else if !path.is_dir() {
        env.problem(name, "no such directory");
        return None;
    }
    Some(path)
}

/// The name a request's answer is recorded under: the SHA-256 of the exact request body
/// (pages, prompt, schema), so a changed prompt or schema never replays a stale answer.
fn request_digest(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One payment as the model returns it; its JSON schema is sent as the response schema.
/// Fields are written in the order listed: what is seen before what is concluded.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
pub struct WireRecord {
    /// 1-based page numbers (from the "Page N of FILE" headers) the payment was read from.
    pub pages: Vec<u32>,
    /// The kind of paper the payment was read from.
    pub source_kind: Option<WireKind>,
    pub payment_method: Option<WireMethod>,
    /// Check number or payment id exactly as written, leading zeros kept.
    pub payment_ref: Option<String>,
    /// The check-number digits of the MICR line along the check's bottom edge (never its
    /// routing or account number).
    pub micr_check_number: Option<String>,
    /// The amount in the figures box.
    pub amount_figures: Option<String>,
    /// The written-out (legal) amount, converted to digits.
    pub amount_words_value: Option<String>,
    /// The amount to record, a plain decimal such as "125.00".
    pub amount: Option<String>,
    /// MM/DD/YYYY as written on the check.
    pub check_date: Option<String>,
    /// MM/DD/YYYY from the envelope's postmark.
    pub postmark_date: Option<String>,
    /// MM/DD/YYYY from a deposit slip or list.
    pub deposit_date: Option<String>,
    /// MM/DD/YYYY a printed report's line gives its gift (online gifts).
    pub gift_date: Option<String>,
    /// The payer's name as written.
    pub payer_name: Option<String>,
    /// Every other form of the donor's name seen.
    #[serde(default)]
    pub aliases: Vec<String>,
    pub salutation: Option<String>,
    pub organization_name: Option<String>,
    pub address_line_1: Option<String>,
    pub city: Option<String>,
    /// Two-letter state code.
    pub state: Option<String>,
    /// ZIP code as text, leading zeros kept.
    pub zip: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub memo: Option<String>,
    /// Fields present on the paper but not legible (null then means "could not read", not
    /// "not there").
    #[serde(default)]
    pub unreadable: Vec<WireField>,
    /// How sure the reading of the fields that matter most is.
    pub confidence: Option<WireConfidence>,
}

/// A field the model can call illegible.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WireField {
    Amount,
    PaymentRef,
    PayerName,
    CheckDate,
    PostmarkDate,
    Address,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WireLevel {
    High,
    Medium,
    Low,
}

/// Confidence per field: high (clear print or writing), medium (read with some doubt), low
/// (a guess worth checking against the paper).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
pub struct WireConfidence {
    pub amount: Option<WireLevel>,
    pub payment_ref: Option<WireLevel>,
    pub payer_name: Option<WireLevel>,
    pub dates: Option<WireLevel>,
}

/// The order the model writes a record's properties in (Gemini's `propertyOrdering`): what it
/// sees (pages, the kind of paper, the check number, the figures and the words) before what it
/// concludes (the amount), and the name as written before its other forms. A test checks it
/// names every property of [`WireRecord`] once.
pub const PROPERTY_ORDER: &[&str] = &[
    "pages",
    "source_kind",
    "payment_method",
    "payment_ref",
    "micr_check_number",
    "amount_figures",
    "amount_words_value",
    "amount",
    "check_date",
    "postmark_date",
    "deposit_date",
    "gift_date",
    "payer_name",
    "aliases",
    "salutation",
    "organization_name",
    "address_line_1",
    "city",
    "state",
    "zip",
    "email",
    "phone",
    "memo",
    "unreadable",
    "confidence",
];

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WireKind {
    Check,
    Envelope,
    DepositList,
    Other,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WireMethod {
    HandwrittenCheck,
    PrintedCheck,
    MoneyOrder,
    Online,
}

/// The whole answer.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
pub struct WireAnswer {
    /// One entry per payment on these pages.
    pub records: Vec<WireRecord>,
    /// The totals (and counts) deposit lists, slips and reports on these pages state.
    #[serde(default)]
    pub totals: Vec<WireTotal>,
}

/// A total line of a deposit list, slip or report: never a payment.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
pub struct WireTotal {
    /// 1-based page numbers the total is on.
    pub pages: Vec<u32>,
    /// deposit_list, deposit_slip or report.
    pub source_kind: Option<WireTotalKind>,
    /// How many payments the paper says it lists.
    pub count: Option<u32>,
    /// The total as written, a plain decimal such as "1240.00".
    pub total: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WireTotalKind {
    DepositList,
    DepositSlip,
    Report,
}

/// The response schema: generated from [`WireAnswer`], sub-schemas inlined and `$schema`
/// `$schema`, `title` and `default` dropped (not in the API's JSON-schema subset).
pub fn response_schema() -> Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let generator = schemars::generate::SchemaSettings::draft2020_12()
                .with(|s| s.inline_subschemas = true)
                .into_generator();
            let mut v = generator.into_root_schema_for::<WireAnswer>().to_value();
            strip_keys(&mut v, &["$schema", "title", "default"]);
            // JSON objects have no order (and serde_json sorts keys): without this the model
            // would write "amount" before the figures and words it is read from.
            if let Some(record) = v.pointer_mut("/properties/records/items") {
                record["propertyOrdering"] = json!(PROPERTY_ORDER);
            }
            if let Some(total) = v.pointer_mut("/properties/totals/items") {
                total["propertyOrdering"] = json!(["pages", "source_kind", "count", "total"]);
            }
            v["propertyOrdering"] = json!(["records", "totals"]);
            v
        })
        .clone()
}

fn strip_keys(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(map) => {
            for k in keys {
                map.remove(*k);
            }
            // "properties" maps names to schemas: a property named like a key must stay.
            for (name, child) in map.iter_mut() {
                if name == "properties" {
                    if let Value::Object(props) = child {
                        for p in props.values_mut() {
                            strip_keys(p, keys);
                        }
                    }
                } else {
                    strip_keys(child, keys);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| strip_keys(i, keys)),
        _ => {}
    }
}

/// Token counts summed over a document's requests (from `usageMetadata`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub requests: u32,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub thoughts_tokens: u64,
    pub total_tokens: u64,
}

impl TokenUsage {
    fn add(&mut self, usage: &Value) {
        let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
        self.requests += 1;
        self.prompt_tokens += n("promptTokenCount");
        self.output_tokens += n("candidatesTokenCount");
        self.thoughts_tokens += n("thoughtsTokenCount");
        self.total_tokens += n("totalTokenCount");
    }
}

#[derive(Debug, Clone)]
pub struct GeminiExtractor {
    cfg: Arc<GeminiConfig>,
}

impl GeminiExtractor {
    pub fn new(cfg: GeminiConfig) -> Self {
        Self { cfg: Arc::new(cfg) }
    }
}

impl Extractor for GeminiExtractor {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn needs_images(&self) -> bool {
        true
    }

    fn begin(&self, file: &str) -> Box<dyn DocumentExtraction> {
        Box::new(GeminiDocument::start(self.cfg.clone(), file, Vec::new()))
    }

    fn begin_photos(&self, names: &[String]) -> Box<dyn DocumentExtraction> {
        let file = names.first().map_or("photos", String::as_str);
        Box::new(GeminiDocument::start(
            self.cfg.clone(),
            file,
            names.to_vec(),
        ))
    }
}

/// A page ready to send: the JPEG already base64-encoded (the raw bytes are not kept).
struct PagePart {
    number: u32,
    /// The photo's file name when the pages are one upload's photos.
    label: Option<String>,
    jpeg_b64: String,
    text: String,
}

impl PagePart {
    fn wire_bytes(&self) -> usize {
        self.jpeg_b64.len() + self.text.len() + 256
    }
}

struct GeminiDocument {
    cfg: Arc<GeminiConfig>,
    file: String,
    batch: Vec<PagePart>,
    batch_bytes: usize,
    to_sender: Option<SyncSender<Vec<PagePart>>>,
    results: Receiver<Vec<Outcome>>,
    sender: Option<JoinHandle<()>>,
    usage: Arc<Mutex<TokenUsage>>,
    /// Outcomes produced here rather than by a request (a page too large to send).
    local: Vec<Outcome>,
    /// One upload's photos, by page number - 1 (empty for a PDF): they fill each request up
    /// to its size limit rather than `batch_pages`, so a check and its envelope are read
    /// together.
    labels: Vec<String>,
}

impl GeminiDocument {
    fn start(cfg: Arc<GeminiConfig>, file: &str, labels: Vec<String>) -> Self {
        // Rendezvous: a full batch waits here until the request thread is free.
        let (to_sender, batches) = mpsc::sync_channel::<Vec<PagePart>>(0);
        let (to_results, results) = mpsc::channel();
        let usage = Arc::new(Mutex::new(TokenUsage::default()));
        let sender = {
            let cfg = cfg.clone();
            let file = file.to_string();
            let usage = usage.clone();
            // The request thread logs under the caller's span (the job's id and queue).
            let span = tracing::Span::current();
            std::thread::Builder::new()
                .name("gemini-requests".into())
                .spawn(move || {
                    let _in_job = span.enter();
                    request_loop(&cfg, &file, &batches, &to_results, &usage)
                })
                .ok()
        };
        Self {
            cfg,
            file: file.to_string(),
            batch: Vec::new(),
            batch_bytes: 0,
            to_sender: Some(to_sender),
            results,
            sender,
            usage,
            local: Vec::new(),
            labels,
        }
    }

    /// Pages per request at most: `batch_pages`, or every photo of the upload.
    fn max_pages(&self) -> usize {
        self.cfg.batch_pages.max(self.labels.len())
    }

    /// Room for the prompt, the schema and the per-request text.
    fn budget(&self) -> usize {
        self.cfg
            .max_request_bytes
            .saturating_sub(PROMPT.len() + 16 * 1024)
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let pages: Vec<u32> = batch.iter().map(|p| p.number).collect();
        let sent = match (&self.to_sender, &self.sender) {
            (Some(tx), Some(_)) => tx.send(batch).is_ok(),
            _ => false,
        };
        if !sent {
            self.local.push(batch_error(
                &self.file,
                pages,
                "the Gemini request thread is not running",
            ));
        }
    }

    fn drain(&mut self) -> Vec<Outcome> {
        let mut out = std::mem::take(&mut self.local);
        while let Ok(batch) = self.results.try_recv() {
            out.extend(batch);
        }
        out
    }
}

impl DocumentExtraction for GeminiDocument {
    fn push(&mut self, page: &Page) -> Vec<Outcome> {
        let label = (page.number as usize)
            .checked_sub(1)
            .and_then(|i| self.labels.get(i))
            .cloned();
        let part = PagePart {
            number: page.number,
            label,
            jpeg_b64: base64::engine::general_purpose::STANDARD.encode(&page.jpeg),
            text: page.text.clone(),
        };
        let size = part.wire_bytes();
        if page.jpeg.is_empty() || size > self.budget() {
            let why = if page.jpeg.is_empty() {
                "no page image was produced for this page".to_string()
            } else {
                format!(
                    "the page image is too large to send ({} KB; the limit is {} KB)",
                    size / 1024,
                    self.budget() / 1024
                )
            };
            self.local
                .push(batch_error(&self.file, vec![page.number], &why));
            return self.drain();
        }
        if !self.batch.is_empty()
            && (self.batch.len() >= self.max_pages() || self.batch_bytes + size > self.budget())
        {
            self.flush();
        }
        self.batch_bytes += size;
        self.batch.push(part);
        self.drain()
    }

    fn finish(mut self: Box<Self>) -> Vec<Outcome> {
        self.flush();
        self.to_sender = None;
        if let Some(h) = self.sender.take() {
            if h.join().is_err() {
                tracing::error!("the Gemini request thread panicked");
            }
        }
        self.drain()
    }

    fn usage_meter(&self) -> Option<Arc<Mutex<TokenUsage>>> {
        Some(self.usage.clone())
    }
}

fn batch_error(file: &str, pages: Vec<u32>, reason: &str) -> Outcome {
    Outcome::Error(ExtractError {
        file: file.to_string(),
        pages,
        reason: reason.to_string(),
    })
}

fn request_loop(
    cfg: &GeminiConfig,
    file: &str,
    batches: &Receiver<Vec<PagePart>>,
    results: &mpsc::Sender<Vec<Outcome>>,
    usage: &Mutex<TokenUsage>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let client = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(Duration::from_secs(10))
        .build();
    let (runtime, client) = match (runtime, client) {
        (Ok(r), Ok(c)) => (r, c),
        (r, c) => {
            let why = format!(
                "cannot start the Gemini client: {}",
                r.err()
                    .map(|e| e.to_string())
                    .or_else(|| c.err().map(|e| e.to_string()))
                    .unwrap_or_default()
            );
            for batch in batches {
                let pages = batch.iter().map(|p| p.number).collect();
                let _ = results.send(vec![batch_error(file, pages, &why)]);
            }
            return;
        }
    };
    let api = Api {
        cfg,
        client: &client,
        file,
        usage,
    };
    for batch in batches {
        let refs: Vec<&PagePart> = batch.iter().collect();
        let outcomes = runtime.block_on(api.run_batch(&refs));
        if results.send(outcomes).is_err() {
            return;
        }
    }
}

/// Why a request failed for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeminiError {
    #[error("Gemini refused the request ({status} {code}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the daily Gemini quota is used up ({0}); these pages can be retried tomorrow")]
    DailyQuota(String),
    #[error("Gemini blocked these pages ({0}); check them by hand")]
    Blocked(String),
    #[error("Gemini stopped without an answer ({0}); check these pages by hand")]
    Finished(String),
    #[error("Gemini's answer was cut off (MAX_TOKENS)")]
    MaxTokens,
    #[error("Gemini's answer was not the JSON asked for: {0}")]
    Malformed(String),
    #[error("Gemini did not answer after {attempts} attempts: {last}")]
    GaveUp { attempts: u32, last: String },
    #[error("no recorded answer for this request ({0}.json): the pages, prompt or schema changed since it was recorded")]
    NotRecorded(String),
}

/// What one attempt came to.
enum Attempt {
    Answer(WireAnswer),
    Fatal(GeminiError),
    /// Retry, after at least this long (a `RetryInfo` delay) or the backoff.
    Retry(String, Option<Duration>),
}

struct Api<'a> {
    cfg: &'a GeminiConfig,
    client: &'a reqwest::Client,
    file: &'a str,
    usage: &'a Mutex<TokenUsage>,
}

impl Api<'_> {
    /// Records for a batch, or error entries for its pages; a cut-off answer is retried as
    /// two halves.
    async fn run_batch(&self, batch: &[&PagePart]) -> Vec<Outcome> {
        let pages: Vec<u32> = batch.iter().map(|p| p.number).collect();
        match self.call(batch).await {
            Ok(answer) => to_outcomes(self.file, &pages, answer),
            Err(GeminiError::MaxTokens) if batch.len() > 1 => {
                let (a, b) = batch.split_at(batch.len() / 2);
                let mut out = Box::pin(self.run_batch(a)).await;
                out.extend(Box::pin(self.run_batch(b)).await);
                out
            }
            Err(e) => {
                tracing::warn!(file = %self.file, pages = ?pages, error = %e, "Gemini batch failed");
                vec![batch_error(self.file, pages, &e.to_string())]
            }
        }
    }

    async fn call(&self, batch: &[&PagePart]) -> Result<WireAnswer, GeminiError> {
        let body = bytes::Bytes::from(request_body(self.cfg, self.file, batch));
        let digest =
            (self.cfg.record.is_some() || self.cfg.replay.is_some()).then(|| request_digest(&body));
        if let (Some(dir), Some(digest)) = (&self.cfg.replay, &digest) {
            let text = std::fs::read_to_string(dir.join(format!("{digest}.json")))
                .map_err(|_| GeminiError::NotRecorded(digest.clone()))?;
            return match self.judge(200, &text) {
                Attempt::Answer(a) => Ok(a),
                Attempt::Fatal(e) => Err(e),
                Attempt::Retry(why, _) => Err(GeminiError::Malformed(why)),
            };
        }
        let url = format!(
            "{}/v1beta/models/{}:generateContent",
            self.cfg.base_url, self.cfg.model
        );
        let mut last = String::new();
        for attempt in 0..self.cfg.max_attempts {
            wait_for_rate_limit(self.cfg.requests_per_minute).await;
            let sent = self
                .client
                .post(&url)
                .header("x-goog-api-key", &self.cfg.api_key)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let outcome = match sent {
                Ok(res) => {
                    let status = res.status().as_u16();
                    match res.text().await {
                        Ok(text) => {
                            let judged = self.judge(status, &text);
                            if let (Some(dir), Some(digest), Attempt::Answer(_)) =
                                (&self.cfg.record, &digest, &judged)
                            {
                                let path = dir.join(format!("{digest}.json"));
                                if let Err(e) = std::fs::write(&path, &text) {
                                    tracing::warn!(error = %e, "Gemini answer not recorded");
                                }
                            }
                            judged
                        }
                        Err(e) => Attempt::Retry(format!("reading the answer failed: {e}"), None),
                    }
                }
                Err(e) if e.is_timeout() => Attempt::Retry("the request timed out".into(), None),
                Err(e) => Attempt::Retry(format!("connection failed: {e}"), None),
            };
            match outcome {
                Attempt::Answer(a) => return Ok(a),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry(why, hint) => {
                    last = why;
                    if attempt + 1 < self.cfg.max_attempts {
                        let wait = hint
                            .map(|h| h.min(self.cfg.backoff_max))
                            .unwrap_or_else(|| backoff(self.cfg, attempt));
                        tracing::info!(file = %self.file, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, reason = %last, "Gemini request will be retried");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Err(GeminiError::GaveUp {
            attempts: self.cfg.max_attempts,
            last,
        })
    }

    fn judge(&self, status: u16, text: &str) -> Attempt {
        let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        if status == 200 {
            if let Some(u) = body.get("usageMetadata") {
                if let Ok(mut usage) = self.usage.lock() {
                    usage.add(u);
                }
            }
            return match parse_answer(&body) {
                Ok(a) => Attempt::Answer(a),
                Err(GeminiError::Malformed(why)) => {
                    Attempt::Retry(format!("malformed answer: {why}"), None)
                }
                Err(e) => Attempt::Fatal(e),
            };
        }
        let err = body.get("error").cloned().unwrap_or(Value::Null);
        let code = err
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN")
            .to_string();
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| format!("HTTP {status}"), str::to_string);
        match status {
            429 => {
                if let Some(quota) = daily_quota(&err) {
                    return Attempt::Fatal(GeminiError::DailyQuota(quota));
                }
                let hint = retry_delay(&err);
                if hint.is_some_and(|h| h > Duration::from_secs(600)) {
                    return Attempt::Fatal(GeminiError::DailyQuota(message));
                }
                Attempt::Retry(format!("rate limited: {message}"), hint)
            }
            408 | 500 | 502 | 503 | 504 => {
                Attempt::Retry(format!("{status} {code}: {message}"), None)
            }
            _ => Attempt::Fatal(GeminiError::Api {
                status,
                code,
                message,
            }),
        }
    }
}

/// Exponential backoff with jitter: initial x 2^attempt, capped, times 0.5-1.0.
fn backoff(cfg: &GeminiConfig, attempt: u32) -> Duration {
    let base = cfg
        .backoff_initial
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(cfg.backoff_max);
    base.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// Spaces request starts at 60/rpm seconds across the whole process: over the limit a request
/// waits instead of failing.
async fn wait_for_rate_limit(rpm: u32) {
    if rpm == 0 {
        return;
    }
    static NEXT: Mutex<Option<Instant>> = Mutex::new(None);
    let gap = Duration::from_secs(60) / rpm;
    let wait = {
        let Ok(mut next) = NEXT.lock() else {
            return;
        };
        let now = Instant::now();
        let start = next.map_or(now, |n| n.max(now));
        *next = Some(start + gap);
        start - now
    };
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

/// The quota id of a per-day `QuotaFailure`, which no retry today will cure.
fn daily_quota(err: &Value) -> Option<String> {
    err.get("details")?
        .as_array()?
        .iter()
        .filter_map(|d| d.get("violations")?.as_array())
        .flatten()
        .filter_map(|v| v.get("quotaId")?.as_str())
        .find(|id| id.contains("PerDay"))
        .map(str::to_string)
}

/// `RetryInfo.retryDelay` ("27s", "3.700s").
fn retry_delay(err: &Value) -> Option<Duration> {
    err.get("details")?
        .as_array()?
        .iter()
        .find_map(|d| d.get("retryDelay")?.as_str())
        .and_then(|s| s.strip_suffix('s')?.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The request for a batch: each page's header and text layer, then its image; the question
/// last (images before text, as Google advises). Serialised straight from borrowed page data:
/// the images are copied once, into the body.
fn request_body(cfg: &GeminiConfig, file: &str, batch: &[&PagePart]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Inline<'a> {
        mime_type: &'static str,
        data: &'a str,
    }
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Part<'a> {
        Text { text: String },
        Image { inline_data: Inline<'a> },
    }
    let mut parts = Vec::with_capacity(batch.len() * 2 + 1);
    for p in batch {
        let text = p.text.trim();
        let layer = if text.is_empty() {
            "(no text layer)".to_string()
        } else {
            format!("Text layer (may be wrong; the image is authoritative):\n{text}")
        };
        let header = match &p.label {
            Some(photo) => format!("Photo {} of this upload: {photo}", p.number),
            None => format!("Page {} of {file}", p.number),
        };
        parts.push(Part::Text {
            text: format!("{header}\n{layer}"),
        });
        parts.push(Part::Image {
            inline_data: Inline {
                mime_type: "image/jpeg",
                data: &p.jpeg_b64,
            },
        });
    }
    let numbers: Vec<String> = batch.iter().map(|p| p.number.to_string()).collect();
    let question = if batch.iter().all(|p| p.label.is_some()) {
        format!(
            "Extract every payment in photos {} of this upload as JSON matching the schema; \
             a check and its envelope in different photos are one payment.",
            numbers.join(", ")
        )
    } else {
        format!(
            "Extract every payment on pages {} of {file} as JSON matching the schema.",
            numbers.join(", ")
        )
    };
    parts.push(Part::Text { text: question });
    let body = json!({
        "systemInstruction": {"parts": [{"text": PROMPT}]},
        "generationConfig": {
            "responseMimeType": "application/json",
            "responseJsonSchema": response_schema(),
            "maxOutputTokens": cfg.max_output_tokens,
            "thinkingConfig": {"thinkingLevel": cfg.thinking_level},
        }
    });
    // Everything but the parts is small; write it, then splice the parts in without a
    // second copy of the images.
    #[derive(Serialize)]
    struct Content<'a, 'b> {
        role: &'static str,
        parts: &'b [Part<'a>],
    }
    #[derive(Serialize)]
    struct Request<'a, 'b> {
        #[serde(rename = "systemInstruction")]
        system_instruction: &'b Value,
        contents: [Content<'a, 'b>; 1],
        #[serde(rename = "generationConfig")]
        generation_config: &'b Value,
    }
    let req = Request {
        system_instruction: &body["systemInstruction"],
        contents: [Content {
            role: "user",
            parts: &parts,
        }],
        generation_config: &body["generationConfig"],
    };
    serde_json::to_vec(&req).unwrap_or_default()
}

/// The records in a 200 answer, or why there are none.
pub fn parse_answer(body: &Value) -> Result<WireAnswer, GeminiError> {
    if let Some(reason) = body
        .pointer("/promptFeedback/blockReason")
        .and_then(Value::as_str)
    {
        return Err(GeminiError::Blocked(reason.to_string()));
    }
    let Some(candidate) = body.pointer("/candidates/0") else {
        return Err(GeminiError::Malformed("no candidates in the answer".into()));
    };
    match candidate.get("finishReason").and_then(Value::as_str) {
        None | Some("STOP") => {}
        Some("MAX_TOKENS") => return Err(GeminiError::MaxTokens),
        Some(other) => return Err(GeminiError::Finished(other.to_string())),
    }
    let text: String = candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter(|p| !p.get("thought").and_then(Value::as_bool).unwrap_or(false))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    parse_records_json(&text)
}

/// The answer's JSON, tolerating code fences and a bare array of records.
pub fn parse_records_json(text: &str) -> Result<WireAnswer, GeminiError> {
    let mut t = text.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let rest = rest.strip_prefix("json").unwrap_or(rest);
        t = rest.trim().strip_suffix("```").unwrap_or(rest).trim();
    }
    if t.starts_with('[') {
        return serde_json::from_str::<Vec<WireRecord>>(t)
            .map(|records| WireAnswer {
                records,
                totals: Vec::new(),
            })
            .map_err(|e| GeminiError::Malformed(e.to_string()));
    }
    serde_json::from_str::<WireAnswer>(t).map_err(|e| GeminiError::Malformed(e.to_string()))
}

/// Validates the model's records into donation records; never drops one for a bad value (the
/// value is kept in an issue instead).
fn to_outcomes(file: &str, batch_pages: &[u32], answer: WireAnswer) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = answer
        .records
        .into_iter()
        .map(|w| Outcome::Record(Box::new(to_donation(file, batch_pages, w))))
        .collect();
    for t in answer.totals {
        let amount = t.total.as_deref().and_then(|s| parse_amount(s).ok());
        if amount.is_none() && t.count.is_none() {
            continue;
        }
        let mut pages: Vec<u32> = t
            .pages
            .into_iter()
            .filter(|p| batch_pages.contains(p))
            .collect();
        pages.dedup();
        out.push(Outcome::Total(super::StatedTotal {
            file: file.to_string(),
            pages,
            kind: match t.source_kind {
                Some(WireTotalKind::DepositSlip) => "deposit_slip",
                Some(WireTotalKind::Report) => "report",
                Some(WireTotalKind::DepositList) | None => "deposit_list",
            }
            .to_string(),
            amount,
            count: t.count,
        }));
    }
    out
}

fn to_donation(file: &str, batch_pages: &[u32], w: WireRecord) -> Donation {
    let mut d = Donation::new(file);
    let mut pages: Vec<u32> = w
        .pages
        .iter()
        .copied()
        .filter(|p| batch_pages.contains(p))
        .collect();
    pages.sort_unstable();
    pages.dedup();
    if pages.is_empty() {
        pages = batch_pages.to_vec();
        d.issue(
            IssueLevel::Warning,
            "pages_unknown",
            "provenance",
            format!(
                "Gemini did not say which page this came from; it is one of pages {}",
                batch_pages
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    d.provenance.pages = pages;
    d.provenance.kind = match w.source_kind {
        Some(WireKind::Check) => SourceKind::Check,
        Some(WireKind::Envelope) => SourceKind::Envelope,
        Some(WireKind::DepositList) => SourceKind::DepositList,
        Some(WireKind::Other) | None => SourceKind::Unknown,
    };
    d.payment_method = w.payment_method.map(|m| match m {
        WireMethod::HandwrittenCheck => PaymentMethod::HandwrittenCheck,
        WireMethod::PrintedCheck => PaymentMethod::PrintedCheck,
        WireMethod::MoneyOrder => PaymentMethod::MoneyOrder,
        WireMethod::Online => PaymentMethod::Online,
    });
    d.payment_ref = w.payment_ref;
    cross_check_micr(&mut d, w.micr_check_number);
    set_amount(&mut d, w.amount, w.amount_figures, w.amount_words_value);
    d.check_date = date_field(&mut d, "check_date", w.check_date);
    d.postmark_date = date_field(&mut d, "postmark_date", w.postmark_date);
    d.deposit_date = date_field(&mut d, "deposit_date", w.deposit_date);
    // A report line's own date is the gift's (the date rule keeps it for online gifts).
    if let Some(g) = date_field(&mut d, "payment_date", w.gift_date) {
        d.payment_date = Some(g);
    }
    d.payer.aliases = w.payer_name.into_iter().chain(w.aliases).collect();
    d.payer.salutation = w.salutation;
    d.payer.organization_name = w.organization_name;
    d.contact.address_line_1 = w.address_line_1;
    d.contact.city = w.city;
    d.contact.state = w.state;
    d.contact.zip = w.zip;
    d.contact.email = w.email;
    d.contact.phone = w.phone;
    d.memo = w.memo;
    flag_legibility(&mut d, &w.unreadable, w.confidence.unwrap_or_default());
    d
}

/// The check number is printed twice: top right and in the MICR line. When only the MICR line
/// reads, it is the number; when both read and differ, the row says so.
fn cross_check_micr(d: &mut Donation, micr: Option<String>) {
    let Some(micr) = micr.map(|m| m.trim().to_string()).filter(|m| !m.is_empty()) else {
        return;
    };
    match &d.payment_ref {
        None => d.payment_ref = Some(micr),
        Some(top) => {
            let key = crate::normalize::payment_ref_key;
            if key(top) != key(&micr) {
                d.issue(
                    IssueLevel::Warning,
                    "check_number_differs",
                    "payment_ref",
                    format!(
                        "the check says no. {top} at the top but {micr} in the MICR line along \
                         its bottom edge; check which is right"
                    ),
                );
            }
        }
    }
}

/// Illegible fields and low confidence become warnings on the field concerned, so the review
/// table points the treasurer at them. An illegible postmark is named: the date rule then
/// falls back to the check date.
fn flag_legibility(d: &mut Donation, unreadable: &[WireField], confidence: WireConfidence) {
    for f in unreadable {
        let (code, field, what) = match f {
            WireField::Amount => ("amount_illegible", "amount", "the amount"),
            WireField::PaymentRef => ("payment_ref_illegible", "payment_ref", "the check number"),
            WireField::PayerName => ("name_illegible", "payer", "the donor's name"),
            WireField::CheckDate => ("check_date_illegible", "check_date", "the check's date"),
            WireField::PostmarkDate => ("postmark_illegible", "postmark_date", "the postmark"),
            WireField::Address => ("address_illegible", "address", "the address"),
        };
        let message = if *f == WireField::PostmarkDate {
            match d.check_date {
                Some(c) => format!(
                    "the postmark is there but cannot be read; the check's date {} is used",
                    c.format("%m/%d/%Y")
                ),
                None => "the postmark is there but cannot be read; the gift date is the \
                         check's date"
                    .to_string(),
            }
        } else {
            format!("{what} is on the paper but could not be read; check it against the paper")
        };
        // An illegible amount with no amount at all is already a blocking issue.
        if *f == WireField::Amount && d.amount.is_none() {
            continue;
        }
        d.issue(IssueLevel::Warning, code, field, message);
    }
    for (level, field, what) in [
        (confidence.amount, "amount", "the amount"),
        (confidence.payment_ref, "payment_ref", "the check number"),
        (confidence.payer_name, "payer", "the donor's name"),
        (confidence.dates, "payment_date", "the dates"),
    ] {
        if level == Some(WireLevel::Low)
            && !d.issues.iter().any(|i| i.field.as_deref() == Some(field))
        {
            d.issue(
                IssueLevel::Warning,
                "low_confidence",
                field,
                format!("{what} was hard to read; check it against the paper"),
            );
        }
    }
}

/// The amount is decided here, from what the model read, not taken from its conclusion:
///
/// | figures | words | amount used | issue |
/// |---|---|---|---|
/// | read | read, equal | that value | none (the model's `amount` is ignored) |
/// | read | read, different | the words (the legal amount) | warning `amount_figures_words_differ` |
/// | read | absent or unreadable | the figures | none |
/// | absent or unreadable | read | the words | none |
/// | absent or unreadable | absent or unreadable | the model's `amount` when it reads | none |
/// | nothing reads | | none | error `amount_unreadable` (an absent amount is `amount_missing` later) |
pub fn set_amount(
    d: &mut Donation,
    amount: Option<String>,
    figures: Option<String>,
    words: Option<String>,
) {
    let read = |v: &Option<String>| v.as_deref().and_then(|s| parse_amount(s).ok());
    let (a, f, w) = (read(&amount), read(&figures), read(&words));
    d.amount = match (f, w) {
        (Some(f), Some(w)) if f != w => {
            d.issue(
                IssueLevel::Warning,
                "amount_figures_words_differ",
                "amount",
                format!("the figures say ${f} but the written amount says ${w}; the written amount is used"),
            );
            Some(w)
        }
        (Some(v), _) | (None, Some(v)) => Some(v),
        (None, None) => a,
    };
    if d.amount.is_none() {
        // Something was written but nothing reads: the treasurer must enter it.
        let seen: Vec<&str> = [&figures, &words, &amount]
            .into_iter()
            .filter_map(|v| v.as_deref())
            .filter(|v| !v.trim().is_empty())
            .collect();
        if let Some(first) = seen.first() {
            d.issue(
                IssueLevel::Error,
                "amount_unreadable",
                "amount",
                format!("the amount {first:?} could not be read; enter it"),
            );
        }
    }
}

fn date_field(d: &mut Donation, field: &str, raw: Option<String>) -> Option<chrono::NaiveDate> {
    let raw = raw?;
    match parse_date(&raw) {
        Ok(date) => Some(date),
        Err(_) => {
            d.issue(
                IssueLevel::Warning,
                "date_unreadable",
                field,
                format!("the {} {raw:?} could not be read", field.replace('_', " ")),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32) -> PagePart {
        PagePart {
            number: n,
            label: None,
            jpeg_b64: "AAAA".into(),
            text: format!("text of page {n}"),
        }
    }

    #[test]
    fn the_schema_comes_from_the_record_type() {
        let s = response_schema();
        assert!(s.get("$schema").is_none());
        let rec = &s["properties"]["records"]["items"];
        assert!(rec["properties"]["payment_ref"].is_object(), "{s}");
        assert!(rec["properties"]["amount_words_value"].is_object());
        let text = s.to_string();
        assert!(!text.contains("$ref"), "sub-schemas are inlined: {text}");
        assert!(text.contains("deposit_list"));
    }

    #[test]
    fn the_model_writes_the_evidence_before_the_answer() {
        let s = response_schema();
        let rec = &s["properties"]["records"]["items"];
        let order: Vec<&str> = rec["propertyOrdering"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        // Every property once, and nothing else.
        let mut props: Vec<&str> = rec["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = order.clone();
        props.sort_unstable();
        sorted.sort_unstable();
        assert_eq!(sorted, props);
        let at = |name: &str| order.iter().position(|p| *p == name).unwrap();
        assert!(at("amount_figures") < at("amount") && at("amount_words_value") < at("amount"));
        assert!(at("payment_ref") < at("amount"));
        assert!(at("payer_name") < at("aliases"));
        assert_eq!(s["propertyOrdering"], json!(["records", "totals"]));
        assert!(s["properties"]["totals"]["items"]["propertyOrdering"].is_array());
    }

    fn amount_of(amount: Option<&str>, figures: Option<&str>, words: Option<&str>) -> Donation {
        let mut d = Donation::new("scan.pdf");
        let own = |v: Option<&str>| v.map(str::to_string);
        set_amount(&mut d, own(amount), own(figures), own(words));
        d
    }

    #[test]
    fn the_amount_is_decided_from_the_figures_and_the_words() {
        let dec = |s: &str| Some(s.parse::<rust_decimal::Decimal>().unwrap());
        // Figures and words agree: that value, whatever the model concluded.
        let d = amount_of(Some("1500.00"), Some("150.00"), Some("150.00"));
        assert_eq!(d.amount, dec("150.00"));
        assert!(d.issues.is_empty(), "{:?}", d.issues);
        // They differ: the written (legal) amount, with a warning.
        let d = amount_of(Some("150.00"), Some("150.00"), Some("105.00"));
        assert_eq!(d.amount, dec("105.00"));
        assert!(d.has_issue("amount_figures_words_differ"));
        // One unreadable: the other, and no unreadable issue (a fallback that reads clears it).
        let d = amount_of(Some("illegible"), Some("??"), Some("75.00"));
        assert_eq!(d.amount, dec("75.00"));
        assert!(d.issues.is_empty(), "{:?}", d.issues);
        let d = amount_of(None, Some("75.00"), Some("seventy-five-ish"));
        assert_eq!(d.amount, dec("75.00"));
        assert!(d.issues.is_empty(), "{:?}", d.issues);
        // Both unreadable: the model's amount when it reads...
        let d = amount_of(Some("20.00"), Some("2?.00"), None);
        assert_eq!(d.amount, dec("20.00"));
        assert!(d.issues.is_empty(), "{:?}", d.issues);
        // ...else no amount, one blocking issue.
        let d = amount_of(Some("lots"), Some("2?.00"), Some(""));
        assert_eq!(d.amount, None);
        assert_eq!(
            d.issues
                .iter()
                .filter(|i| i.code == "amount_unreadable")
                .count(),
            1
        );
        // Nothing written at all: no issue here (validation names it missing).
        let d = amount_of(None, None, None);
        assert!(d.amount.is_none() && d.issues.is_empty());
    }

    #[test]
    fn a_report_line_keeps_its_own_date() {
        let w = WireRecord {
            pages: vec![1],
            source_kind: Some(WireKind::DepositList),
            payment_method: Some(WireMethod::Online),
            amount: Some("25.00".into()),
            gift_date: Some("03/03/2026".into()),
            deposit_date: Some("03/10/2026".into()),
            payer_name: Some("Grace Kim".into()),
            ..WireRecord::default()
        };
        let d = to_donation("report.pdf", &[1], w);
        assert_eq!(d.payment_date, chrono::NaiveDate::from_ymd_opt(2026, 3, 3));
        assert_eq!(d.deposit_date, chrono::NaiveDate::from_ymd_opt(2026, 3, 10));
    }

    #[test]
    fn a_money_order_is_booked_like_a_check_dated_when_issued() {
        let w = |serial: Option<&str>| WireRecord {
            pages: vec![1],
            source_kind: Some(WireKind::Check),
            payment_method: Some(WireMethod::MoneyOrder),
            payment_ref: serial.map(str::to_string),
            amount_figures: Some("50.00".into()),
            check_date: Some("03/01/2026".into()),
            postmark_date: Some("03/03/2026".into()),
            payer_name: Some("Ana Silva".into()),
            ..WireRecord::default()
        };
        let rules =
            crate::normalize::Rules::new(chrono::NaiveDate::from_ymd_opt(2026, 3, 15).unwrap());
        let mut d = to_donation("mo.jpg", &[1], w(Some("21-123456789")));
        crate::normalize::normalize(&mut d, &rules);
        assert_eq!(d.payment_method, Some(PaymentMethod::MoneyOrder));
        assert!(d.payment_method.is_some_and(PaymentMethod::is_check));
        assert_eq!(d.payment_date, chrono::NaiveDate::from_ymd_opt(2026, 3, 1));
        assert!(!d.has_issue("payment_ref_missing"));
        let mut d = to_donation("mo.jpg", &[1], w(None));
        crate::normalize::normalize(&mut d, &rules);
        let missing = d.issues.iter().find(|i| i.code == "payment_ref_missing");
        assert_eq!(
            missing.map(|i| i.message.as_str()),
            Some("no money order serial number")
        );
    }

    #[test]
    fn the_micr_line_checks_the_check_number() {
        let w = |top: Option<&str>, micr: Option<&str>| WireRecord {
            pages: vec![1],
            payment_ref: top.map(str::to_string),
            micr_check_number: micr.map(str::to_string),
            amount: Some("10.00".into()),
            ..WireRecord::default()
        };
        let d = to_donation("c.jpg", &[1], w(Some("1041"), Some("001041")));
        assert_eq!(d.payment_ref.as_deref(), Some("1041"));
        assert!(d.issues.is_empty(), "{:?}", d.issues);
        let d = to_donation("c.jpg", &[1], w(None, Some("1041")));
        assert_eq!(d.payment_ref.as_deref(), Some("1041"));
        let d = to_donation("c.jpg", &[1], w(Some("1041"), Some("1014")));
        assert!(d.has_issue("check_number_differs"));
        assert_eq!(d.payment_ref.as_deref(), Some("1041"));
    }

    #[test]
    fn illegible_fields_and_low_confidence_point_at_the_field() {
        let w = WireRecord {
            pages: vec![1],
            amount_figures: Some("40.00".into()),
            check_date: Some("03/02/2026".into()),
            unreadable: vec![WireField::PostmarkDate, WireField::PaymentRef],
            confidence: Some(WireConfidence {
                payer_name: Some(WireLevel::Low),
                amount: Some(WireLevel::High),
                ..WireConfidence::default()
            }),
            payer_name: Some("J. Smtih".into()),
            ..WireRecord::default()
        };
        let d = to_donation("photo.jpg", &[1], w);
        let find = |code: &str| d.issues.iter().find(|i| i.code == code).cloned();
        let postmark = find("postmark_illegible").unwrap();
        assert_eq!(postmark.field.as_deref(), Some("postmark_date"));
        assert!(
            postmark.message.contains("03/02/2026 is used"),
            "{}",
            postmark.message
        );
        assert_eq!(
            find("payment_ref_illegible").unwrap().field.as_deref(),
            Some("payment_ref")
        );
        assert_eq!(
            find("low_confidence").unwrap().field.as_deref(),
            Some("payer")
        );
        assert_eq!(
            d.issues
                .iter()
                .filter(|i| i.code == "low_confidence")
                .count(),
            1
        );
        assert_eq!(d.amount, Some(rust_decimal::Decimal::new(4000, 2)));
    }

    #[test]
    fn answers_parse_with_fences_bare_arrays_and_thoughts() {
        let rec = r#"{"pages":[1],"payment_ref":"1001","amount":"10.00"}"#;
        for text in [
            format!("{{\"records\":[{rec}]}}"),
            format!("```json\n{{\"records\":[{rec}]}}\n```"),
            format!("```\n[{rec}]\n```"),
        ] {
            let a = parse_records_json(&text).unwrap();
            assert_eq!(a.records[0].payment_ref.as_deref(), Some("1001"), "{text}");
        }
        let body = json!({"candidates": [{"content": {"parts": [
            {"text": "let me think", "thought": true},
            {"text": format!("{{\"records\":[{rec}]}}")}]}, "finishReason": "STOP"}]});
        assert_eq!(parse_answer(&body).unwrap().records.len(), 1);
        assert!(matches!(
            parse_records_json("Sure! {\"records\": ["),
            Err(GeminiError::Malformed(_))
        ));
    }

    #[test]
    fn finish_reasons_and_blocks_are_errors_people_can_read() {
        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}});
        assert_eq!(
            parse_answer(&blocked).unwrap_err(),
            GeminiError::Blocked("SAFETY".into())
        );
        let cut = json!({"candidates": [{"content": {"parts": [{"text": "{\"rec"}]}, "finishReason": "MAX_TOKENS"}]});
        assert_eq!(parse_answer(&cut).unwrap_err(), GeminiError::MaxTokens);
        let safety = json!({"candidates": [{"finishReason": "RECITATION"}]});
        assert!(parse_answer(&safety)
            .unwrap_err()
            .to_string()
            .contains("RECITATION"));
    }

    #[test]
    fn retry_hints_and_daily_quotas_are_read() {
        let err = json!({"code": 429, "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3.700s"}]});
        assert_eq!(retry_delay(&err), Some(Duration::from_millis(3700)));
        assert_eq!(daily_quota(&err), None);
        let daily = json!({"details": [{"violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]});
        assert!(daily_quota(&daily).is_some());
    }

    #[test]
    fn records_are_validated_never_dropped() {
        let w = WireRecord {
            pages: vec![9],
            amount: Some("lots".into()),
            amount_figures: Some("150.00".into()),
            amount_words_value: Some("105.00".into()),
            check_date: Some("13/45/2026".into()),
            payer_name: Some("Jane Doe".into()),
            ..WireRecord::default()
        };
        let d = to_donation("scan.pdf", &[3, 4], w);
        assert_eq!(d.provenance.pages, vec![3, 4]);
        assert!(d.has_issue("pages_unknown"));
        assert!(d.has_issue("amount_figures_words_differ"));
        assert_eq!(d.amount, Some(rust_decimal::Decimal::new(10_500, 2)));
        assert!(d.has_issue("date_unreadable"));
        assert_eq!(d.check_date, None);
        let w = WireRecord {
            pages: vec![4],
            amount: Some("12,50".into()),
            ..WireRecord::default()
        };
        let d = to_donation("scan.pdf", &[3, 4], w);
        assert_eq!(d.provenance.pages, vec![4]);
        assert!(d.has_issue("amount_unreadable") || d.amount.is_some());
    }

    #[test]
    fn requests_put_each_page_header_before_its_image_and_the_question_last() {
        let cfg = GeminiConfig::new("k");
        let (a, b) = (part(3), part(4));
        let body: Value =
            serde_json::from_slice(&request_body(&cfg, "scan.pdf", &[&a, &b])).unwrap();
        let parts = body["contents"][0]["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 5);
        assert!(parts[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Page 3 of scan.pdf\n"));
        assert_eq!(parts[1]["inline_data"]["mime_type"], "image/jpeg");
        assert!(parts[4]["text"].as_str().unwrap().contains("pages 3, 4"));
        assert_eq!(
            body["generationConfig"]["responseMimeType"],
            "application/json"
        );
        assert!(body["generationConfig"].get("responseSchema").is_none());
    }

    #[test]
    fn photos_of_one_upload_are_named_and_asked_about_together() {
        let cfg = GeminiConfig::new("k");
        let photo = |n: u32, name: &str| PagePart {
            label: Some(name.into()),
            ..part(n)
        };
        let (a, b) = (photo(1, "check.jpg"), photo(2, "envelope.jpg"));
        let body: Value =
            serde_json::from_slice(&request_body(&cfg, "check.jpg", &[&a, &b])).unwrap();
        let parts = body["contents"][0]["parts"].as_array().unwrap();
        assert!(parts[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Photo 1 of this upload: check.jpg\n"));
        assert!(parts[2]["text"]
            .as_str()
            .unwrap()
            .starts_with("Photo 2 of this upload: envelope.jpg\n"));
        let question = parts[4]["text"].as_str().unwrap();
        assert!(
            question.contains("photos 1, 2 of this upload"),
            "{question}"
        );
    }

    #[test]
    fn the_rate_limit_spaces_requests_instead_of_failing_them() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = Instant::now();
        // 600 per minute: one every 100 ms, so the fourth starts at least 300 ms after the first.
        rt.block_on(async {
            for _ in 0..4 {
                wait_for_rate_limit(600).await;
            }
        });
        assert!(
            started.elapsed() >= Duration::from_millis(290),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut cfg = GeminiConfig::new("k");
        cfg.backoff_initial = Duration::from_secs(1);
        cfg.backoff_max = Duration::from_secs(60);
        assert!(backoff(&cfg, 0) <= Duration::from_secs(1));
        assert!(backoff(&cfg, 3) >= Duration::from_secs(4));
        assert!(backoff(&cfg, 30) <= Duration::from_secs(60));
    }
}
