//! A local contract fake of Gemini's `generateContent`.
//!
//! [`FakeGemini::start`] runs an actix-web server on a free 127.0.0.1 port in a background
//! thread; it stops when dropped. It checks the API key (`x-goog-api-key`), the model, the
//! request size and the request body (snake_case or camelCase fields, the generation config's
//! schema rules) the way the API does, and answers in the `candidates` envelope or with a
//! Google RPC `{"error": {code, message, status, details}}` envelope.
//!
//! The default answer has one [`default_record`] per page header (`Page N of NAME`, the first
//! line of a text part). Misbehaviour is scripted by the document name in those headers:
//!
//! | name contains | effect |
//! |---|---|
//! | `429-once` | the first request for the name: 429 `RESOURCE_EXHAUSTED`, per-minute quota, `RetryInfo` 1s |
//! | `503-twice` | the first two requests: 503 `UNAVAILABLE` |
//! | `500-always` | every request: 500 `INTERNAL` |
//! | `p3-500` | requests that hold page 3: 500 `INTERNAL` |
//! | `perday` | every request: 429 with a per-day `QuotaFailure` and `RetryInfo` 56000s |
//! | `fenced` | the JSON wrapped in a ```` ```json ```` code fence |
//! | `thought` | a `thought: true` part before the answer part |
//! | `blocked` | 200 without candidates, `promptFeedback.blockReason = SAFETY` |
//! | `maxtokens` | requests with more than one page: `MAX_TOKENS` and the JSON cut in half |
//! | `malformed` | text that is not JSON |
//! | `empty` | `{"records": []}` |
//!
//! [`FakeOptions::answers`] scripts the records themselves, by document name.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse};

use crate::server::FakeServer;
use base64::Engine;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

/// The model the fake knows by default (the newest stable Flash model when this was written).
pub const DEFAULT_MODEL: &str = "gemini-3.8-flash";
/// The API key the fake accepts by default.
pub const DEFAULT_KEY: &str = "test-key";
/// Prompt tokens counted per inline image or document.
pub const TOKENS_PER_IMAGE: usize = 258;

const INLINE_MIME_TYPES: [&str; 3] = ["image/jpeg", "image/png", "application/pdf"];
const INTERNAL_MESSAGE: &str = "An internal error has occurred. Please retry or report in \
                                https://developers.generativeai.google/guide/troubleshooting";
const OVERLOADED_MESSAGE: &str = "The model is overloaded. Please try again later.";
const QUOTA_MESSAGE: &str = "You exceeded your current quota, please check your plan and billing \
                             details. For more information on this error, head to: \
                             https://ai.google.dev/gemini-api/docs/rate-limits.";
/// What the `malformed` script answers.
pub const MALFORMED_TEXT: &str = "Sure! Here are the records: {\"records\": [";

/// How the fake is set up.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// The only accepted `x-goog-api-key`.
    pub api_key: String,
    /// Known models; any other gets 404 `NOT_FOUND`.
    pub models: Vec<String>,
    /// Larger request bodies get 400 `INVALID_ARGUMENT` (the API's limit: 100 MB).
    pub max_request_bytes: usize,
    /// Larger inline PDFs (decoded) get 400 `INVALID_ARGUMENT` (the API's limit: 50 MB).
    pub max_inline_pdf_bytes: usize,
    /// Each HTTP 200 answer waits this long first.
    pub latency: Duration,
    /// Keep every inline image received, decoded, for [`FakeGemini::images`] (off by default:
    /// long runs would hold them all).
    pub keep_images: bool,
    /// Scripted answers: a page whose document name contains the key is answered with these
    /// records (each given that page's number), instead of [`default_record`].
    pub answers: Vec<(String, Vec<Value>)>,
    /// Scripted totals, the same way (a deposit list's total and count).
    pub totals: Vec<(String, Vec<Value>)>,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            api_key: DEFAULT_KEY.into(),
            models: vec![DEFAULT_MODEL.into()],
            max_request_bytes: 100 * 1024 * 1024,
            max_inline_pdf_bytes: 50 * 1024 * 1024,
            latency: Duration::ZERO,
            keep_images: false,
            answers: Vec::new(),
            totals: Vec::new(),
        }
    }
}

/// The record the fake answers for page `page` (1-based), so tests can build expectations.
pub fn default_record(page: u32) -> Value {
    let amount = format!("{}.00", u64::from(page) * 10);
    json!({
        "pages": [page],
        "source_kind": "check",
        "payment_method": "handwritten_check",
        "payment_ref": (1000 + u64::from(page)).to_string(),
        "amount": amount,
        "amount_figures": amount,
        "amount_words_value": amount,
        "check_date": format!("11/0{}/2026", page % 9 + 1),
        "postmark_date": null,
        "deposit_date": null,
        "payer_name": format!("Donor {page}"),
        "aliases": [format!("Donor {page}")],
        "salutation": null,
        "organization_name": null,
        "address_line_1": format!("{page} Main St"),
        "city": "Springfield",
        "state": "IL",
        "zip": "62701",
        "email": null,
        "phone": null,
        "memo": null,
    })
}

#[derive(Default)]
struct Inner {
    requests: Vec<Value>,
    images: Vec<Vec<u8>>,
    per_name: HashMap<String, u32>,
}

struct Shared {
    opts: FakeOptions,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake; stops when dropped.
pub struct FakeGemini {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakeGemini {
    /// Starts on a free port.
    pub fn start(opts: FakeOptions) -> io::Result<FakeGemini> {
        Self::start_on(0, opts)
    }

    /// Starts on `port` of 127.0.0.1 (0: a free one).
    pub fn start_on(port: u16, opts: FakeOptions) -> io::Result<FakeGemini> {
        let shared = Arc::new(Shared {
            opts,
            inner: Mutex::new(Inner::default()),
        });
        let data = web::Data::from(shared.clone());
        let server = FakeServer::start("fake-gemini", FakeServer::bind(port)?, move || {
            App::new()
                .app_data(data.clone())
                .service(
                    web::resource("/v1beta/models/{call}").route(web::post().to(generate_content)),
                )
                .default_service(web::to(unknown_route))
        })?;
        Ok(FakeGemini { shared, server })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Every request body received, in order, with inline `data` replaced by
    /// `"<elided: N base64 chars>"`. A body that was not JSON is recorded as the string
    /// `"<invalid JSON: N bytes>"`, one over the size limit as `"<too large: N bytes>"`.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().requests.clone()
    }

    /// The inline images of every request, decoded, in order (with `keep_images` only).
    pub fn images(&self) -> Vec<Vec<u8>> {
        self.shared.lock().images.clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// How many valid requests named document `name` in their page headers.
    pub fn requests_for(&self, name: &str) -> u32 {
        self.shared.lock().per_name.get(name).copied().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------
// Errors: Google RPC `{"error": {code, message, status, details}}`

struct ApiError {
    code: u16,
    status: &'static str,
    message: String,
    details: Vec<Value>,
}

impl ApiError {
    fn new(code: u16, status: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "INVALID_ARGUMENT", message)
    }

    fn details(mut self, details: Vec<Value>) -> Self {
        self.details = details;
        self
    }

    fn response(&self) -> HttpResponse {
        let mut error = json!({
            "code": self.code,
            "message": self.message,
            "status": self.status,
        });
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details.clone());
        }
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status)
            .content_type("application/json; charset=UTF-8")
            .body(json!({ "error": error }).to_string())
    }
}

/// A request-validation problem: the field path (as in `google.rpc.BadRequest`) and what is
/// wrong with it.
struct Bad {
    field: String,
    description: String,
}

fn bad(field: impl Into<String>, description: impl Into<String>) -> Bad {
    Bad {
        field: field.into(),
        description: description.into(),
    }
}

impl Bad {
    fn into_error(self) -> ApiError {
        let message = if self.field.is_empty() {
            format!("* GenerateContentRequest: {}", self.description)
        } else {
            format!(
                "* GenerateContentRequest.{}: {}",
                self.field, self.description
            )
        };
        ApiError::invalid(message).details(vec![json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": self.field, "description": self.description}],
        })])
    }
}

fn api_key_invalid() -> ApiError {
    let message = "API key not valid. Please pass a valid API key.";
    ApiError::invalid(message).details(vec![
        json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }),
        json!({
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": message,
        }),
    ])
}

fn quota_exceeded(model: &str, per_day: bool) -> ApiError {
    let (metric, quota_id, value, delay) = if per_day {
        (
            "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            "250",
            "56000s",
        )
    } else {
        (
            "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
            "GenerateContentInputTokensPerModelPerMinute-FreeTier",
            "250000",
            "1s",
        )
    };
    ApiError::new(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE).details(vec![
        json!({
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{
                "quotaMetric": metric,
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": model},
                "quotaValue": value,
            }],
        }),
        json!({
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
            }],
        }),
        json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": delay,
        }),
    ])
}

async fn unknown_route() -> HttpResponse {
    ApiError::new(404, "NOT_FOUND", "Requested entity was not found.").response()
}

// ---------------------------------------------------------------------------------------
// The handler

struct Body {
    bytes: Vec<u8>,
    total: usize,
    over_limit: bool,
}

/// Reads the whole body, keeping at most `limit` bytes (the rest is read and dropped, so
/// the client gets the answer instead of a reset connection).
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Body, String> {
    let mut body = Body {
        bytes: Vec::new(),
        total: 0,
        over_limit: false,
    };
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        body.total = body.total.saturating_add(chunk.len());
        if body.over_limit {
            continue;
        }
        if body.total > limit {
            body.over_limit = true;
            body.bytes = Vec::new();
        } else {
            body.bytes.extend_from_slice(&chunk);
        }
    }
    Ok(body)
}

async fn generate_content(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let opts = &shared.opts;
    let call = req.match_info().get("call").unwrap_or_default().to_string();
    let body = match read_body(payload, opts.max_request_bytes).await {
        Ok(body) => body,
        Err(e) => return ApiError::invalid(format!("Could not read the request: {e}")).response(),
    };
    let parsed: Result<Value, String> = if body.over_limit {
        Err(format!("<too large: {} bytes>", body.total))
    } else {
        serde_json::from_slice(&body.bytes).map_err(|e| e.to_string())
    };

    let checked = check_request(&req, &call, opts, &body, &parsed);

    let recorded = match parsed {
        Ok(mut value) => {
            if opts.keep_images {
                let mut images = Vec::new();
                inline_images(&value, &mut images);
                shared.lock().images.extend(images);
            }
            elide_inline_data(&mut value);
            value
        }
        Err(_) if body.over_limit => Value::String(format!("<too large: {} bytes>", body.total)),
        Err(_) => Value::String(format!("<invalid JSON: {} bytes>", body.total)),
    };
    shared.lock().requests.push(recorded);

    let (model, info) = match checked {
        Ok(ok) => ok,
        Err(e) => return e.response(),
    };
    let counts = {
        let mut inner = shared.lock();
        info.names()
            .into_iter()
            .map(|name| {
                let n = inner.per_name.entry(name.clone()).or_insert(0);
                *n += 1;
                (name, *n)
            })
            .collect::<Vec<_>>()
    };
    if let Some(e) = scripted_error(&model, &info, &counts) {
        return e.response();
    }
    if !opts.latency.is_zero() {
        actix_web::rt::time::sleep(opts.latency).await;
    }
    let answer = answer(&model, &info, &opts.answers, &opts.totals);
    HttpResponse::Ok()
        .content_type("application/json; charset=UTF-8")
        .body(answer.to_string())
}

/// Auth, model, size, JSON and body checks, in that order.
fn check_request(
    req: &HttpRequest,
    call: &str,
    opts: &FakeOptions,
    body: &Body,
    parsed: &Result<Value, String>,
) -> Result<(String, RequestInfo), ApiError> {
    let key = req
        .headers()
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok());
    if key != Some(opts.api_key.as_str()) {
        return Err(api_key_invalid());
    }
    let Some((model, method)) = call.split_once(':') else {
        return Err(ApiError::new(404, "NOT_FOUND", "Method not found."));
    };
    if method != "generateContent" {
        return Err(ApiError::new(404, "NOT_FOUND", "Method not found."));
    }
    if !opts.models.iter().any(|m| m == model) {
        return Err(ApiError::new(
            404,
            "NOT_FOUND",
            format!(
                "models/{model} is not found for API version v1beta, or is not supported for \
                 generateContent."
            ),
        ));
    }
    if body.over_limit {
        return Err(ApiError::invalid(format!(
            "Request payload size exceeds the limit: {} bytes.",
            opts.max_request_bytes
        )));
    }
    let value = match parsed {
        Ok(value) => value,
        Err(e) => {
            return Err(ApiError::invalid(format!(
                "Invalid JSON payload received. {e}"
            )))
        }
    };
    let info = validate(value, opts, model).map_err(Bad::into_error)?;
    Ok((model.to_string(), info))
}

// ---------------------------------------------------------------------------------------
// Validation: field names, generation config, sizes

/// What the answer needs from a valid request.
#[derive(Debug, Default)]
struct RequestInfo {
    /// `Page N of NAME` headers, in order.
    headers: Vec<(u32, String)>,
    images: usize,
    documents: usize,
    text_chars: usize,
}

impl RequestInfo {
    /// The distinct document names, in order of appearance.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (_, name) in &self.headers {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    fn name_has(&self, token: &str) -> bool {
        self.headers.iter().any(|(_, name)| name.contains(token))
    }
}

const REQUEST_FIELDS: &[&str] = &[
    "model",
    "contents",
    "systemInstruction",
    "generationConfig",
    "safetySettings",
    "tools",
    "toolConfig",
    "cachedContent",
];
const CONTENT_FIELDS: &[&str] = &["role", "parts"];
const PART_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "mediaResolution",
    "partMetadata",
];
/// The part's `data` oneof.
const PART_DATA_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
];
const BLOB_FIELDS: &[&str] = &["mimeType", "data", "displayName"];
const GENERATION_CONFIG_FIELDS: &[&str] = &[
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
];
const THINKING_CONFIG_FIELDS: &[&str] = &["includeThoughts", "thinkingBudget", "thinkingLevel"];

/// `inlineData` → `inline_data` (proto3 JSON accepts both).
fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Refuses unknown names and a field given in both spellings.
fn check_fields(obj: &Map<String, Value>, known: &[&str], path: &str) -> Result<(), Bad> {
    for key in obj.keys() {
        if !known.iter().any(|k| *k == key || snake(k) == *key) {
            let at = if path.is_empty() {
                String::new()
            } else {
                format!(" at '{path}'")
            };
            return Err(bad(
                path,
                format!(
                    "Invalid JSON payload received. Unknown name \"{key}\"{at}: Cannot find field."
                ),
            ));
        }
    }
    for k in known {
        let s = snake(k);
        if s != *k && obj.contains_key(*k) && obj.contains_key(&s) {
            return Err(bad(
                join(path, &s),
                format!("Invalid JSON payload received. Field \"{k}\" is given twice (as \"{k}\" and \"{s}\")."),
            ));
        }
    }
    Ok(())
}

/// The value of field `camel`, spelled either way.
fn field<'a>(obj: &'a Map<String, Value>, camel: &str) -> Option<&'a Value> {
    obj.get(camel).or_else(|| obj.get(&snake(camel)))
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Bad> {
    v.as_object().ok_or_else(|| {
        bad(
            path,
            format!("Invalid JSON payload received. Expected an object at '{path}'."),
        )
    })
}

fn validate(body: &Value, opts: &FakeOptions, model: &str) -> Result<RequestInfo, Bad> {
    let root = body.as_object().ok_or_else(|| {
        bad(
            "",
            "Invalid JSON payload received. The request body must be a JSON object.",
        )
    })?;
    check_fields(root, REQUEST_FIELDS, "")?;
    let mut info = RequestInfo::default();

    let contents = match field(root, "contents") {
        None | Some(Value::Null) => return Err(bad("contents", "contents is not specified")),
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(bad("contents", "contents is not specified"))
        }
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad("contents", "contents must be an array")),
    };
    for (i, content) in contents.iter().enumerate() {
        let path = format!("contents[{i}]");
        let content = object(content, &path)?;
        check_fields(content, CONTENT_FIELDS, &path)?;
        match field(content, "role") {
            None => {}
            Some(Value::String(r)) if r == "user" || r == "model" => {}
            Some(_) => {
                return Err(bad(
                    format!("{path}.role"),
                    "Please use a valid role: user, model.",
                ))
            }
        }
        validate_parts(content, &path, opts, &mut info, true)?;
    }

    if let Some(system) = field(root, "systemInstruction") {
        let path = "system_instruction";
        let system = object(system, path)?;
        check_fields(system, CONTENT_FIELDS, path)?;
        validate_parts(system, path, opts, &mut info, false)?;
    }

    if let Some(config) = field(root, "generationConfig") {
        validate_generation_config(object(config, "generation_config")?, model)?;
    }
    Ok(info)
}

fn validate_parts(
    content: &Map<String, Value>,
    path: &str,
    opts: &FakeOptions,
    info: &mut RequestInfo,
    headers: bool,
) -> Result<(), Bad> {
    let parts_path = format!("{path}.parts");
    let parts = match field(content, "parts") {
        Some(Value::Array(parts)) if !parts.is_empty() => parts,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err(bad(parts_path, "contents.parts must not be empty."))
        }
        Some(_) => return Err(bad(parts_path, "parts must be an array")),
    };
    for (j, part) in parts.iter().enumerate() {
        let path = format!("{parts_path}[{j}]");
        let part = object(part, &path)?;
        check_fields(part, PART_FIELDS, &path)?;
        let data: Vec<&str> = PART_DATA_FIELDS
            .iter()
            .copied()
            .filter(|k| field(part, k).is_some())
            .collect();
        match data.as_slice() {
            [] => {
                return Err(bad(
                    path,
                    "A part must have exactly one of text or inline_data; it has none.",
                ))
            }
            ["text"] => {
                let Some(Value::String(text)) = field(part, "text") else {
                    return Err(bad(format!("{path}.text"), "text must be a string"));
                };
                if text.is_empty() {
                    return Err(bad(
                        format!("{path}.text"),
                        "Unable to submit request because it has an empty text parameter.",
                    ));
                }
                info.text_chars += text.chars().count();
                if headers {
                    if let Some(header) = page_header(text) {
                        info.headers.push(header);
                    }
                }
            }
            ["inlineData"] => {
                let blob_path = format!("{path}.inline_data");
                let blob = field(part, "inlineData").unwrap_or(&Value::Null);
                let mime = validate_blob(object(blob, &blob_path)?, &blob_path, opts)?;
                if mime == "application/pdf" {
                    info.documents += 1;
                } else {
                    info.images += 1;
                }
            }
            [one] => {
                return Err(bad(
                    format!("{path}.{}", snake(one)),
                    format!(
                        "This fake accepts only text and inline_data parts, not {}.",
                        snake(one)
                    ),
                ))
            }
            many => {
                let names: Vec<String> = many.iter().map(|k| snake(k)).collect();
                return Err(bad(
                    path,
                    format!(
                        "A part must have exactly one of text or inline_data; it has {}.",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks an inline blob; returns its mime type.
fn validate_blob<'a>(
    blob: &'a Map<String, Value>,
    path: &str,
    opts: &FakeOptions,
) -> Result<&'a str, Bad> {
    check_fields(blob, BLOB_FIELDS, path)?;
    let mime_path = format!("{path}.mime_type");
    let mime = match field(blob, "mimeType") {
        Some(Value::String(m)) if !m.is_empty() => m.as_str(),
        _ => return Err(bad(mime_path, "mime_type is required.")),
    };
    if !INLINE_MIME_TYPES.contains(&mime) {
        return Err(bad(
            mime_path,
            format!(
                "Unsupported MIME type: {mime}. This fake accepts {}.",
                INLINE_MIME_TYPES.join(", ")
            ),
        ));
    }
    let data_path = format!("{path}.data");
    let data = match field(blob, "data") {
        Some(Value::String(d)) if !d.is_empty() => d,
        _ => return Err(bad(data_path, "data is required.")),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| {
            let start: String = data.chars().take(20).collect();
            bad(
                data_path.clone(),
                format!(
                    "Invalid value at '{data_path}' (TYPE_BYTES), Base64 decoding failed for \
                     \"{start}…\": {e}"
                ),
            )
        })?;
    let signature: &[u8] = match mime {
        "image/jpeg" => &[0xFF, 0xD8, 0xFF],
        "image/png" => b"\x89PNG\r\n\x1a\n",
        _ => b"%PDF-",
    };
    if !bytes.starts_with(signature) {
        return Err(bad(
            data_path,
            format!("Unable to process input image: the data is not a valid {mime} file."),
        ));
    }
    if mime == "application/pdf" && bytes.len() > opts.max_inline_pdf_bytes {
        return Err(bad(
            data_path,
            format!(
                "The inline document is too large: {} bytes, the limit is {} bytes.",
                bytes.len(),
                opts.max_inline_pdf_bytes
            ),
        ));
    }
    Ok(mime)
}

/// `Page 3 of scan.pdf` (or a photo's `Photo 2 of this upload: check.jpg`) on the first line
/// of a text part → (3, "scan.pdf").
fn page_header(text: &str) -> Option<(u32, String)> {
    let line = text.lines().next()?.trim_end();
    let (number, name) = match line.strip_prefix("Photo ") {
        Some(rest) => rest.split_once(" of this upload: ")?,
        None => line.strip_prefix("Page ")?.split_once(" of ")?,
    };
    let number: u32 = number.parse().ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| (number, name.to_string()))
}

fn validate_generation_config(config: &Map<String, Value>, model: &str) -> Result<(), Bad> {
    let path = "generation_config";
    check_fields(config, GENERATION_CONFIG_FIELDS, path)?;

    let mime = match field(config, "responseMimeType") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(m.as_str()),
        Some(_) => {
            return Err(bad(
                "generation_config.response_mime_type",
                "response_mime_type must be a string",
            ))
        }
    };
    if let Some(m) = mime {
        if !["text/plain", "application/json", "text/x.enum"].contains(&m) {
            return Err(bad(
                "generation_config.response_mime_type",
                format!(
                    "Unsupported response mime type: {m}. Allowed: text/plain, application/json, \
                     text/x.enum."
                ),
            ));
        }
    }
    let schema = field(config, "responseSchema").filter(|v| !v.is_null());
    let json_schema = field(config, "responseJsonSchema").filter(|v| !v.is_null());
    if schema.is_some() && json_schema.is_some() {
        return Err(bad(
            "generation_config",
            "response_schema and response_json_schema are mutually exclusive; set only one.",
        ));
    }
    if (schema.is_some() || json_schema.is_some()) && mime != Some("application/json") {
        return Err(bad(
            "generation_config.response_mime_type",
            "A response schema needs response_mime_type \"application/json\".",
        ));
    }
    if let Some(schema) = schema {
        if !schema.is_object() {
            return Err(bad(
                "generation_config.response_schema",
                "response_schema must be an object",
            ));
        }
    }
    if let Some(schema) = json_schema {
        if !schema.is_object() {
            return Err(bad(
                "generation_config.response_json_schema",
                "response_json_schema must be an object",
            ));
        }
        check_json_schema(schema, schema, "generation_config.response_json_schema")?;
    }

    if let Some(tokens) = field(config, "maxOutputTokens") {
        match tokens.as_u64() {
            Some(n) if (1..=65_536).contains(&n) => {}
            _ => {
                return Err(bad(
                    "generation_config.max_output_tokens",
                    format!(
                        "The specified max_output_tokens value {tokens} is out of range: [1, \
                         65537)."
                    ),
                ))
            }
        }
    }
    if let Some(t) = field(config, "temperature") {
        if !t.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t)) {
            return Err(bad(
                "generation_config.temperature",
                format!("temperature {t} is out of range: [0, 2]."),
            ));
        }
    }

    if let Some(thinking) = field(config, "thinkingConfig") {
        let path = "generation_config.thinking_config";
        let thinking = object(thinking, path)?;
        check_fields(thinking, THINKING_CONFIG_FIELDS, path)?;
        if let Some(level) = field(thinking, "thinkingLevel") {
            let level_path = "generation_config.thinking_config.thinking_level";
            let Some(level) = level.as_str() else {
                return Err(bad(level_path, "thinking_level must be a string"));
            };
            match level.to_ascii_lowercase().as_str() {
                "low" | "medium" | "high" => {}
                "minimal" => {
                    return Err(bad(
                        level_path,
                        format!("Thinking level MINIMAL is not supported for models/{model}."),
                    ))
                }
                _ => {
                    return Err(bad(
                        level_path,
                        format!(
                            "Invalid value at '{level_path}' (type.googleapis.com/\
                             google.ai.generativelanguage.v1beta.ThinkingConfig.ThinkingLevel), \
                             \"{level}\""
                        ),
                    ))
                }
            }
        }
    }
    Ok(())
}

const SCHEMA_TYPES: &[&str] = &[
    "string", "number", "integer", "boolean", "array", "object", "null",
];

/// Walks a `responseJsonSchema`, allowing only the JSON Schema keywords Gemini supports.
fn check_json_schema(root: &Value, schema: &Value, path: &str) -> Result<(), Bad> {
    let map = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(map) => map,
        _ => return Err(bad(path, "a JSON schema must be an object (or true/false)")),
    };
    if map.contains_key("$ref") {
        if let Some(other) = map.keys().find(|k| !k.starts_with('$')) {
            return Err(bad(
                path,
                format!(
                    "a sub-schema with $ref may carry only keys starting with $, not \"{other}\""
                ),
            ));
        }
    }
    for (key, value) in map {
        let at = format!("{path}.{key}");
        let ok = match key.as_str() {
            "$id" | "$anchor" | "title" | "description" | "format" => value.is_string(),
            "$ref" => {
                let Some(target) = value.as_str() else {
                    return Err(bad(at, "$ref must be a string"));
                };
                if let Some(pointer) = target.strip_prefix('#') {
                    if pointer.starts_with('/') && root.pointer(pointer).is_none() {
                        return Err(bad(at, format!("$ref \"{target}\" does not resolve")));
                    }
                }
                true
            }
            "type" => match value {
                Value::String(t) => SCHEMA_TYPES.contains(&t.as_str()),
                Value::Array(ts) => ts
                    .iter()
                    .all(|t| t.as_str().is_some_and(|t| SCHEMA_TYPES.contains(&t))),
                _ => false,
            },
            "enum" => value.is_array(),
            "minItems" | "maxItems" => value.is_u64(),
            "minimum" | "maximum" => value.is_number(),
            "required" | "propertyOrdering" => value
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string)),
            "items" | "additionalProperties" => {
                check_json_schema(root, value, &at)?;
                true
            }
            "prefixItems" | "anyOf" | "oneOf" => {
                let Some(list) = value.as_array() else {
                    return Err(bad(at, format!("{key} must be an array of schemas")));
                };
                for (i, s) in list.iter().enumerate() {
                    check_json_schema(root, s, &format!("{at}[{i}]"))?;
                }
                true
            }
            "properties" | "$defs" => {
                let Some(named) = value.as_object() else {
                    return Err(bad(at, format!("{key} must map names to schemas")));
                };
                for (name, s) in named {
                    check_json_schema(root, s, &format!("{at}.{name}"))?;
                }
                true
            }
            other => {
                return Err(bad(
                    path,
                    format!(
                        "response_json_schema uses the unsupported keyword \"{other}\"; supported: \
                         $id $defs $ref $anchor type format title description enum items \
                         prefixItems minItems maxItems minimum maximum anyOf oneOf properties \
                         additionalProperties required propertyOrdering."
                    ),
                ))
            }
        };
        if !ok {
            return Err(bad(at, format!("invalid value for \"{key}\": {value}")));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Answers (the `candidates` envelope) and scripts

fn scripted_error(model: &str, info: &RequestInfo, counts: &[(String, u32)]) -> Option<ApiError> {
    let first_n = |token: &str, n: u32| {
        counts
            .iter()
            .any(|(name, count)| name.contains(token) && *count <= n)
    };
    if info.name_has("500-always") {
        return Some(ApiError::new(500, "INTERNAL", INTERNAL_MESSAGE));
    }
    if info.name_has("perday") {
        return Some(quota_exceeded(model, true));
    }
    if first_n("429-once", 1) {
        return Some(quota_exceeded(model, false));
    }
    if first_n("503-twice", 2) {
        return Some(ApiError::new(503, "UNAVAILABLE", OVERLOADED_MESSAGE));
    }
    if info.name_has("p3-500") && info.headers.iter().any(|(page, _)| *page == 3) {
        return Some(ApiError::new(500, "INTERNAL", INTERNAL_MESSAGE));
    }
    None
}

fn response_id() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(22)
        .collect()
}

fn answer(
    model: &str,
    info: &RequestInfo,
    scripted: &[(String, Vec<Value>)],
    scripted_totals: &[(String, Vec<Value>)],
) -> Value {
    let text_tokens = info.text_chars / 4;
    let prompt_tokens = TOKENS_PER_IMAGE * (info.images + info.documents) + text_tokens;
    let mut prompt_details = vec![json!({"modality": "TEXT", "tokenCount": text_tokens})];
    if info.images > 0 {
        prompt_details
            .push(json!({"modality": "IMAGE", "tokenCount": TOKENS_PER_IMAGE * info.images}));
    }
    if info.documents > 0 {
        prompt_details
            .push(json!({"modality": "DOCUMENT", "tokenCount": TOKENS_PER_IMAGE * info.documents}));
    }

    if info.name_has("blocked") {
        return json!({
            "promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "totalTokenCount": prompt_tokens,
                "promptTokensDetails": prompt_details,
            },
            "modelVersion": model,
            "responseId": response_id(),
        });
    }

    let records: Vec<Value> = if info.name_has("empty") {
        Vec::new()
    } else {
        info.headers
            .iter()
            .flat_map(|(page, name)| {
                match scripted.iter().find(|(key, _)| name.contains(key.as_str())) {
                    Some((_, records)) => records
                        .iter()
                        .map(|r| {
                            let mut r = r.clone();
                            r["pages"] = json!([page]);
                            r
                        })
                        .collect(),
                    None => vec![default_record(*page)],
                }
            })
            .collect()
    };
    let totals: Vec<Value> = info
        .headers
        .iter()
        .flat_map(|(page, name)| {
            scripted_totals
                .iter()
                .filter(|(key, _)| name.contains(key.as_str()))
                .flat_map(|(_, totals)| totals.iter().cloned())
                .map(|mut t| {
                    t["pages"] = json!([page]);
                    t
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let json_text = if totals.is_empty() {
        json!({ "records": records })
    } else {
        json!({ "records": records, "totals": totals })
    }
    .to_string();
    let mut finish = "STOP";
    let text = if info.name_has("malformed") {
        MALFORMED_TEXT.to_string()
    } else if info.name_has("maxtokens") && info.headers.len() > 1 {
        finish = "MAX_TOKENS";
        let mut cut = json_text.len() / 2;
        while !json_text.is_char_boundary(cut) {
            cut -= 1;
        }
        json_text[..cut].to_string()
    } else if info.name_has("fenced") {
        format!("```json\n{json_text}\n```")
    } else {
        json_text
    };

    let signature = base64::engine::general_purpose::STANDARD.encode(
        std::iter::repeat_with(|| fastrand::u8(..))
            .take(24)
            .collect::<Vec<u8>>(),
    );
    let mut parts = Vec::new();
    let mut thoughts_tokens = 0;
    if info.name_has("thought") {
        let thinking = "thinking...";
        thoughts_tokens = thinking.len() / 4;
        parts.push(json!({"text": thinking, "thought": true}));
    }
    let candidates_tokens = text.chars().count() / 4;
    parts.push(json!({"text": text, "thoughtSignature": signature}));

    let mut usage = json!({
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidates_tokens,
        "totalTokenCount": prompt_tokens + candidates_tokens + thoughts_tokens,
        "promptTokensDetails": prompt_details,
    });
    if thoughts_tokens > 0 {
        usage["thoughtsTokenCount"] = json!(thoughts_tokens);
    }
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": parts},
            "finishReason": finish,
            "index": 0,
        }],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": response_id(),
    })
}

/// Every inline `data` string that decodes as base64.
fn inline_images(value: &Value, out: &mut Vec<Vec<u8>>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "inline_data" || key == "inlineData" {
                    if let Some(Value::String(data)) = child.get("data") {
                        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) {
                            out.push(bytes);
                        }
                    }
                }
                inline_images(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| inline_images(v, out)),
        _ => {}
    }
}

/// Replaces every inline `data` string with `"<elided: N base64 chars>"`.
pub fn elide_inline_data(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "inline_data" || key == "inlineData" {
                    if let Some(Value::String(data)) = child.get_mut("data") {
                        *data = format!("<elided: {} base64 chars>", data.len());
                    }
                }
                elide_inline_data(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(elide_inline_data),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, 1];

    fn jpeg_b64() -> String {
        base64::engine::general_purpose::STANDARD.encode(JPEG)
    }

    fn start() -> FakeGemini {
        FakeGemini::start(FakeOptions::default()).unwrap()
    }

    /// A request like our client's: per page a header text part then the image, the
    /// question last.
    fn body_for(name: &str, pages: &[u32]) -> Value {
        let mut parts = Vec::new();
        for p in pages {
            parts.push(json!({"text": format!("Page {p} of {name}\n(no text layer)")}));
            parts.push(json!({"inline_data": {"mime_type": "image/jpeg", "data": jpeg_b64()}}));
        }
        parts.push(json!({"text": format!("Extract every payment on pages of {name}.")}));
        json!({
            "systemInstruction": {"parts": [{"text": "You extract donation data."}]},
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseJsonSchema": {
                    "type": "object",
                    "properties": {"records": {"type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "pages": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                            "amount": {"type": ["string", "null"]},
                            "source_kind": {"anyOf": [
                                {"type": "string", "enum": ["check", "envelope"]},
                                {"type": "null"}
                            ]}
                        },
                        "required": ["pages"]
                    }}},
                    "required": ["records"]
                },
                "maxOutputTokens": 8192,
                "thinkingConfig": {"thinkingLevel": "low"}
            }
        })
    }

    async fn post_raw(
        fake: &FakeGemini,
        model: &str,
        key: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let url = format!("{}/v1beta/models/{model}:generateContent", fake.base_url());
        let mut req = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            req = req.header("x-goog-api-key", key);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap())
    }

    async fn post(fake: &FakeGemini, body: &Value) -> (u16, Value) {
        post_raw(
            fake,
            DEFAULT_MODEL,
            Some(DEFAULT_KEY),
            body.to_string().into_bytes(),
        )
        .await
    }

    fn answer_text(res: &Value) -> &str {
        res.pointer("/candidates/0/content/parts/0/text")
            .and_then(Value::as_str)
            .unwrap()
    }

    fn answer_json(res: &Value) -> Value {
        serde_json::from_str(answer_text(res)).unwrap()
    }

    fn assert_invalid(status: u16, res: &Value, needle: &str) {
        assert_eq!(status, 400, "{res}");
        assert_eq!(res["error"]["code"], 400);
        assert_eq!(res["error"]["status"], "INVALID_ARGUMENT");
        let message = res["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }

    #[tokio::test]
    async fn gemini_default_answer_has_one_record_per_page() {
        let fake = start();
        let (status, res) = post(&fake, &body_for("scan.pdf", &[3, 4])).await;
        assert_eq!(status, 200, "{res}");
        assert_eq!(
            answer_json(&res),
            json!({"records": [default_record(3), default_record(4)]})
        );
        let candidate = &res["candidates"][0];
        assert_eq!(candidate["finishReason"], "STOP");
        assert_eq!(candidate["content"]["role"], "model");
        assert_eq!(candidate["content"]["parts"].as_array().unwrap().len(), 1);
        assert_eq!(res["modelVersion"], DEFAULT_MODEL);
        assert!(res["responseId"].as_str().is_some_and(|s| !s.is_empty()));

        let usage = &res["usageMetadata"];
        let text_chars = "You extract donation data.".len()
            + "Page 3 of scan.pdf\n(no text layer)".len() * 2
            + "Extract every payment on pages of scan.pdf.".len();
        let prompt = 258 * 2 + text_chars / 4;
        let candidates = answer_text(&res).len() / 4;
        assert_eq!(usage["promptTokenCount"], prompt);
        assert_eq!(usage["candidatesTokenCount"], candidates);
        assert_eq!(usage["totalTokenCount"], prompt + candidates);

        let r = default_record(3);
        assert_eq!(r["payment_ref"], "1003");
        assert_eq!(r["amount"], "30.00");
        assert_eq!(r["check_date"], "11/04/2026");
        assert_eq!(r["address_line_1"], "3 Main St");
        assert_eq!(default_record(9)["check_date"], "11/01/2026");
        assert_eq!(fake.request_count(), 1);
        assert_eq!(fake.requests_for("scan.pdf"), 1);
    }

    #[tokio::test]
    async fn gemini_unknown_model_is_404() {
        let fake = start();
        let body = body_for("scan.pdf", &[1]).to_string().into_bytes();
        let (status, res) = post_raw(&fake, "gemini-2.0-flash", Some(DEFAULT_KEY), body).await;
        assert_eq!(status, 404);
        assert_eq!(res["error"]["status"], "NOT_FOUND");
        assert_eq!(
            res["error"]["message"],
            "models/gemini-2.0-flash is not found for API version v1beta, or is not supported \
             for generateContent."
        );
    }

    #[tokio::test]
    async fn gemini_missing_or_wrong_key_is_api_key_invalid() {
        let fake = start();
        let body = body_for("scan.pdf", &[1]).to_string().into_bytes();
        for key in [None, Some("wrong")] {
            let (status, res) = post_raw(&fake, DEFAULT_MODEL, key, body.clone()).await;
            assert_invalid(status, &res, "API key not valid");
            let details = res["error"]["details"].as_array().unwrap();
            assert!(details
                .iter()
                .any(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
                    && d["reason"] == "API_KEY_INVALID"));
        }
    }

    #[tokio::test]
    async fn gemini_payload_too_large_is_400() {
        let fake = FakeGemini::start(FakeOptions {
            max_request_bytes: 1000,
            ..FakeOptions::default()
        })
        .unwrap();
        let pages: Vec<u32> = (1..=40).collect();
        let body = body_for("scan.pdf", &pages).to_string().into_bytes();
        assert!(body.len() > 1000);
        let (status, res) = post_raw(&fake, DEFAULT_MODEL, Some(DEFAULT_KEY), body.clone()).await;
        assert_invalid(
            status,
            &res,
            "Request payload size exceeds the limit: 1000 bytes.",
        );
        assert_eq!(
            fake.requests(),
            vec![json!(format!("<too large: {} bytes>", body.len()))]
        );
        // A large body (several MB) is read to the end, so the client gets the answer.
        let big = vec![b' '; 8 * 1024 * 1024];
        let (status, res) = post_raw(&fake, DEFAULT_MODEL, Some(DEFAULT_KEY), big).await;
        assert_invalid(status, &res, "Request payload size exceeds the limit");
        // Small enough is fine.
        let (status, _) = post(&fake, &body_for("s.pdf", &[1])).await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn gemini_bad_bodies_are_400_naming_the_problem() {
        let fake = start();
        let cases: Vec<(Value, &str)> = vec![
            (json!({}), "contents is not specified"),
            (json!({"contents": []}), "contents is not specified"),
            (
                json!({"contents": [{"parts": []}]}),
                "contents.parts must not be empty",
            ),
            (
                json!({"contents": [{"parts": [{"text": "a", "inline_data": {"mime_type": "image/jpeg", "data": jpeg_b64()}}]}]}),
                "exactly one of text or inline_data",
            ),
            (json!({"contents": [{"parts": [{}]}]}), "exactly one"),
            (
                json!({"contents": [{"parts": [{"inline_data": {"mime_type": "image/jpeg", "data": "not base64!"}}]}]}),
                "Base64 decoding failed",
            ),
            (
                json!({"contents": [{"parts": [{"inline_data": {"mime_type": "image/jpeg", "data": "aGVsbG8="}}]}]}),
                "not a valid image/jpeg",
            ),
            (
                json!({"contents": [{"parts": [{"inline_data": {"mime_type": "image/gif", "data": jpeg_b64()}}]}]}),
                "Unsupported MIME type: image/gif",
            ),
            (
                json!({"contents": [{"role": "system", "parts": [{"text": "a"}]}]}),
                "valid role",
            ),
            (
                json!({"contents": [{"parts": [{"text": "a"}]}], "generation_config": {"bogus": 1}}),
                "Unknown name \"bogus\"",
            ),
        ];
        for (body, needle) in cases {
            let (status, res) = post(&fake, &body).await;
            assert_invalid(status, &res, needle);
        }
        let (status, res) = post_raw(
            &fake,
            DEFAULT_MODEL,
            Some(DEFAULT_KEY),
            b"{not json".to_vec(),
        )
        .await;
        assert_invalid(status, &res, "Invalid JSON payload received");
        assert_eq!(
            fake.requests().last(),
            Some(&json!("<invalid JSON: 9 bytes>"))
        );
    }

    #[tokio::test]
    async fn gemini_schema_rules() {
        let fake = start();
        let with_config = |config: Value| {
            let mut body = body_for("scan.pdf", &[1]);
            body["generationConfig"] = config;
            body
        };
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let cases = vec![
            (
                json!({"responseMimeType": "application/json",
                       "responseJsonSchema": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}}),
                "unsupported keyword \"$schema\"",
            ),
            (
                json!({"responseMimeType": "application/json",
                       "responseJsonSchema": {"type": "object", "properties": {"a": {"type": "string", "default": "x"}}}}),
                "unsupported keyword \"default\"",
            ),
            (
                json!({"responseMimeType": "application/json",
                       "responseJsonSchema": {"$ref": "#/$defs/A", "type": "object", "$defs": {"A": {}}}}),
                "may carry only keys starting with $",
            ),
            (
                json!({"responseMimeType": "application/json", "responseJsonSchema": schema,
                       "responseSchema": {"type": "OBJECT"}}),
                "mutually exclusive",
            ),
            (json!({"responseJsonSchema": schema}), "application/json"),
            (
                json!({"responseMimeType": "text/plain", "responseSchema": {"type": "OBJECT"}}),
                "application/json",
            ),
            (
                json!({"thinkingConfig": {"thinkingLevel": "minimal"}}),
                "MINIMAL is not supported",
            ),
            (
                json!({"thinkingConfig": {"thinkingLevel": "extreme"}}),
                "thinking_level",
            ),
        ];
        for (config, needle) in cases {
            let (status, res) = post(&fake, &with_config(config)).await;
            assert_invalid(status, &res, needle);
        }
        let fine = vec![
            json!({"responseMimeType": "application/json", "responseSchema": {"type": "OBJECT"}}),
            json!({"response_mime_type": "application/json",
                   "response_json_schema": {"$defs": {"A": {"type": "string"}},
                                            "type": "object",
                                            "properties": {"a": {"$ref": "#/$defs/A"}},
                                            "propertyOrdering": ["a"]}}),
            json!({"thinking_config": {"thinking_level": "HIGH"}}),
        ];
        for config in fine {
            let (status, res) = post(&fake, &with_config(config)).await;
            assert_eq!(status, 200, "{res}");
        }
    }

    #[tokio::test]
    async fn gemini_camel_and_snake_case_are_both_accepted() {
        let fake = start();
        let camel = json!({
            "systemInstruction": {"parts": [{"text": "x"}]},
            "contents": [{"parts": [
                {"text": "Page 1 of a.pdf"},
                {"inlineData": {"mimeType": "image/jpeg", "data": jpeg_b64()}}]}],
            "generationConfig": {"responseMimeType": "application/json",
                                 "responseJsonSchema": {"type": "object"},
                                 "maxOutputTokens": 100,
                                 "thinkingConfig": {"thinkingLevel": "medium"}}
        });
        let snake = json!({
            "system_instruction": {"parts": [{"text": "x"}]},
            "contents": [{"parts": [
                {"text": "Page 1 of a.pdf"},
                {"inline_data": {"mime_type": "image/jpeg", "data": jpeg_b64()}}]}],
            "generation_config": {"response_mime_type": "application/json",
                                  "response_json_schema": {"type": "object"},
                                  "max_output_tokens": 100,
                                  "thinking_config": {"thinking_level": "medium"}}
        });
        for body in [camel, snake] {
            let (status, res) = post(&fake, &body).await;
            assert_eq!(status, 200, "{res}");
            assert_eq!(answer_json(&res), json!({"records": [default_record(1)]}));
        }
        let both = json!({"contents": [{"parts": [{"text": "a"}]}],
                          "generationConfig": {}, "generation_config": {}});
        let (status, res) = post(&fake, &both).await;
        assert_invalid(status, &res, "given twice");
    }

    #[tokio::test]
    async fn gemini_429_once_then_ok() {
        let fake = start();
        let body = body_for("batch-429-once.pdf", &[1]);
        let (status, res) = post(&fake, &body).await;
        assert_eq!(status, 429, "{res}");
        assert_eq!(res["error"]["code"], 429);
        assert_eq!(res["error"]["status"], "RESOURCE_EXHAUSTED");
        let details = res["error"]["details"].as_array().unwrap();
        assert!(details.contains(&json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"
        })));
        let quota = details
            .iter()
            .find(|d| d["@type"] == "type.googleapis.com/google.rpc.QuotaFailure")
            .unwrap();
        assert_eq!(
            quota["violations"][0]["quotaId"],
            "GenerateContentInputTokensPerModelPerMinute-FreeTier"
        );
        let (status, res) = post(&fake, &body).await;
        assert_eq!(status, 200, "{res}");
        assert_eq!(answer_json(&res), json!({"records": [default_record(1)]}));
        assert_eq!(fake.request_count(), 2);
        // Other names have their own counters.
        let (status, _) = post(&fake, &body_for("other-429-once.pdf", &[1])).await;
        assert_eq!(status, 429);
    }

    #[tokio::test]
    async fn gemini_error_scripts() {
        let fake = start();
        let twice = body_for("x-503-twice.pdf", &[1]);
        for _ in 0..2 {
            let (status, res) = post(&fake, &twice).await;
            assert_eq!(status, 503);
            assert_eq!(res["error"]["status"], "UNAVAILABLE");
            assert_eq!(
                res["error"]["message"],
                "The model is overloaded. Please try again later."
            );
        }
        assert_eq!(post(&fake, &twice).await.0, 200);

        for _ in 0..3 {
            let (status, res) = post(&fake, &body_for("x-500-always.pdf", &[1])).await;
            assert_eq!(status, 500);
            assert_eq!(res["error"]["status"], "INTERNAL");
        }

        let (status, res) = post(&fake, &body_for("perday.pdf", &[1])).await;
        assert_eq!(status, 429);
        let details = res["error"]["details"].as_array().unwrap();
        assert!(details.iter().any(|d| d["violations"][0]["quotaId"]
            == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"));
        assert!(details.iter().any(|d| d["retryDelay"] == "56000s"));
    }

    #[tokio::test]
    async fn gemini_p3_500_only_for_batches_with_page_3() {
        let fake = start();
        let (status, _) = post(&fake, &body_for("scan-p3-500.pdf", &[1, 2])).await;
        assert_eq!(status, 200);
        let (status, res) = post(&fake, &body_for("scan-p3-500.pdf", &[3, 4])).await;
        assert_eq!(status, 500);
        assert_eq!(res["error"]["status"], "INTERNAL");
        let (status, res) = post(&fake, &body_for("scan-p3-500.pdf", &[4])).await;
        assert_eq!(status, 200);
        assert_eq!(answer_json(&res), json!({"records": [default_record(4)]}));
        let (status, _) = post(&fake, &body_for("scan-p3-500.pdf", &[3])).await;
        assert_eq!(status, 500);
    }

    #[tokio::test]
    async fn gemini_answer_scripts() {
        let fake = start();
        let expected = json!({"records": [default_record(1), default_record(2)]});

        let (_, res) = post(&fake, &body_for("fenced.pdf", &[1, 2])).await;
        let text = answer_text(&res);
        let inner = text
            .strip_prefix("```json\n")
            .and_then(|t| t.strip_suffix("\n```"))
            .unwrap();
        assert_eq!(serde_json::from_str::<Value>(inner).unwrap(), expected);

        let (_, res) = post(&fake, &body_for("thought.pdf", &[1, 2])).await;
        let parts = res["candidates"][0]["content"]["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0]["thought"], true);
        assert_eq!(
            serde_json::from_str::<Value>(parts[1]["text"].as_str().unwrap()).unwrap(),
            expected
        );

        let (status, res) = post(&fake, &body_for("blocked.pdf", &[1])).await;
        assert_eq!(status, 200);
        assert!(res.get("candidates").is_none());
        assert_eq!(res["promptFeedback"]["blockReason"], "SAFETY");

        let (_, res) = post(&fake, &body_for("maxtokens.pdf", &[1, 2])).await;
        assert_eq!(res["candidates"][0]["finishReason"], "MAX_TOKENS");
        let cut = answer_text(&res);
        assert!(serde_json::from_str::<Value>(cut).is_err());
        assert!(expected.to_string().starts_with(cut));
        let (_, res) = post(&fake, &body_for("maxtokens.pdf", &[2])).await;
        assert_eq!(res["candidates"][0]["finishReason"], "STOP");
        assert_eq!(answer_json(&res), json!({"records": [default_record(2)]}));

        let (_, res) = post(&fake, &body_for("malformed.pdf", &[1])).await;
        assert_eq!(answer_text(&res), MALFORMED_TEXT);

        let (_, res) = post(&fake, &body_for("empty.pdf", &[1])).await;
        assert_eq!(answer_json(&res), json!({"records": []}));
    }

    #[tokio::test]
    async fn gemini_requests_elide_image_data() {
        let fake = start();
        let body = body_for("scan.pdf", &[1, 2]);
        post(&fake, &body).await;
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let mut expected = body.clone();
        let marker = json!(format!("<elided: {} base64 chars>", jpeg_b64().len()));
        expected["contents"][0]["parts"][1]["inline_data"]["data"] = marker.clone();
        expected["contents"][0]["parts"][3]["inline_data"]["data"] = marker;
        assert_eq!(requests[0], expected);
        assert!(!requests[0].to_string().contains(&jpeg_b64()));
    }

    #[tokio::test]
    async fn gemini_latency_delays_answers() {
        let fake = FakeGemini::start(FakeOptions {
            latency: Duration::from_millis(300),
            ..FakeOptions::default()
        })
        .unwrap();
        let started = std::time::Instant::now();
        let (status, _) = post(&fake, &body_for("scan.pdf", &[1])).await;
        assert_eq!(status, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn gemini_page_headers() {
        assert_eq!(
            page_header("Page 3 of scan.pdf\ntext"),
            Some((3, "scan.pdf".into()))
        );
        assert_eq!(
            page_header("Page 12 of my file.pdf"),
            Some((12, "my file.pdf".into()))
        );
        assert_eq!(
            page_header("Extract every payment on pages 1, 2 of a.pdf"),
            None
        );
        assert_eq!(
            page_header("Photo 2 of this upload: envelope.jpg\n(no text layer)"),
            Some((2, "envelope.jpg".into()))
        );
        assert_eq!(page_header("Photo 2 of a.jpg"), None);
        assert_eq!(page_header("Page x of a.pdf"), None);
        assert_eq!(page_header("Page 1 of "), None);
    }

    #[test]
    fn gemini_stops_on_drop() {
        let fake = start();
        let port = fake.port();
        drop(fake);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
