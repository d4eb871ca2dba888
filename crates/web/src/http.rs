//! Cross-cutting HTTP pieces: errors people can act on (JSON for the API, HTML pages for
//! people, one handler for both), request ids and logs, security headers, cross-site request
//! refusal and request time limits.

use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use fom_core::redis_conn::RedisError;
use serde::Serialize;
use tracing::Instrument;

use crate::error_code::ErrorCode;
use crate::state::AppState;

/// An error answer: `{"error": {"code", "message", "details"?}}` on `/api/` paths, an HTML
/// page elsewhere ([`error_pages`]).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<u64>,
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} not found (it may have expired)"),
        )
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn with_details(mut self, details: impl Serialize) -> Self {
        self.details = serde_json::to_value(details).ok();
        self
    }

    /// 422 naming each field and why (`details`: `[{field, message}]`).
    pub fn invalid_fields(problems: &[fom_core::deposits::FieldProblem]) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidFields,
            problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
        .with_details(problems)
    }

    /// The same error as a page for a person (sign-in, the deposit pages, QuickBooks's
    /// round trip).
    pub fn page_response(&self) -> HttpResponse {
        let mut res = crate::pages::error_page(self.status, &self.message);
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }

    /// Storage trouble: logged in full, answered without internals.
    pub fn storage(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "storage error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::StorageUnavailable,
            "the server cannot reach its storage right now; try again in a minute",
        )
        .with_retry_after(30)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        r.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(s) = self.retry_after {
            r.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        r.json(ErrorBody {
            error: ErrorInner {
                code: self.code,
                message: &self.message,
                details: self.details.as_ref(),
            },
        })
    }
}

impl From<fom_core::deposits::DepositError> for ApiError {
    fn from(e: fom_core::deposits::DepositError) -> Self {
        match e {
            fom_core::deposits::DepositError::Busy(_) => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::Busy,
                "the deposit is being updated; try again",
            ),
            e => Self::storage(e),
        }
    }
}

impl From<fom_core::jobs::JobError> for ApiError {
    fn from(e: fom_core::jobs::JobError) -> Self {
        Self::storage(e)
    }
}

impl From<RedisError> for ApiError {
    fn from(e: RedisError) -> Self {
        Self::storage(e)
    }
}

/// An [`ApiError`] answered as a page.
#[derive(Debug)]
struct AsPage(ApiError);

impl std::fmt::Display for AsPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for AsPage {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        self.0.page_response()
    }
}

/// True for paths whose errors are JSON: the API. Everything else is a page or a form a
/// person sees.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The one error handler: every error below it (handlers, extractors, the session check, the
/// time limit) is an [`ApiError`]; on an API path it stays JSON, anywhere else it becomes a
/// page, so a person never sees raw JSON, Redis down included.
pub async fn error_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if is_api(req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    match next.call(req).await {
        Ok(res) => {
            let page = res
                .response()
                .error()
                .and_then(|e| e.as_error::<ApiError>())
                .map(|e| HttpResponse::from_error(AsPage(e.clone())));
            Ok(match page {
                Some(p) => res.into_response(p),
                None => res.map_into_boxed_body(),
            })
        }
        Err(e) => match e.as_error::<ApiError>() {
            Some(api) => Err(AsPage(api.clone()).into()),
            None => Err(e),
        },
    }
}

/// What answers an address no route takes.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "there is nothing at this address",
    ))
}

/// A JSON body the route could not take.
pub fn json_error(e: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match e {
        E::ContentType => unsupported_media_type("send the body as JSON (application/json)"),
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => too_large(limit),
        E::Deserialize(e) => ApiError::bad_request(
            ErrorCode::BadBody,
            format!("the body is not the JSON this request takes: {e}"),
        ),
        _ => ApiError::bad_request(ErrorCode::BadBody, "the request body could not be read"),
    }
    .into()
}

/// A form body (sign-in) the route could not take.
pub fn form_error(e: actix_web::error::UrlencodedError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::UrlencodedError as E;
    match e {
        E::ContentType => unsupported_media_type("send the form as a web form would"),
        E::Overflow { limit, .. } => too_large(limit),
        _ => ApiError::bad_request(ErrorCode::BadBody, "the form could not be read"),
    }
    .into()
}

/// A query string the route could not take.
pub fn query_error(e: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(
        ErrorCode::BadBody,
        format!("the address's query could not be read: {e}"),
    )
    .into()
}

/// A path whose ids are malformed ([`crate::ids`]): 404, as for an unknown id, before any
/// Redis key is built from it.
pub fn path_error(e: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    let what = match e {
        actix_web::error::PathError::Deserialize(e) => {
            crate::ids::kind_in_message(&e.to_string()).map_or("page", |k| k.noun())
        }
        _ => "page",
    };
    ApiError::not_found(what).into()
}

fn unsupported_media_type(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedMediaType,
        message,
    )
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BodyTooLarge,
        format!("the request body is over {} KiB", limit / 1024),
    )
}

/// This request's id, in its extensions (the audit log records it).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The request id: Heroku's router's `X-Request-ID` when it is sane, else a new one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 200
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

/// Gives every request an id (in its log lines and the `X-Request-ID` answer header) and logs
/// one line per request: method, path (never the query: OAuth codes travel there), status, ms.
pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", id = %id);
    let method = req.method().clone();
    let path = req.path().to_string();
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let _enter = span.enter();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(mut res) => {
            let status = res.status().as_u16();
            if let Ok(v) = HeaderValue::from_str(&id) {
                res.headers_mut()
                    .insert(header::HeaderName::from_static("x-request-id"), v);
            }
            if status >= 500 {
                tracing::warn!(%method, %path, status, ms = format!("{ms:.1}"), "request");
            } else {
                tracing::info!(%method, %path, status, ms = format!("{ms:.1}"), "request");
            }
            Ok(res)
        }
        Err(e) => {
            tracing::warn!(%method, %path, error = %e, "request failed");
            Err(e)
        }
    }
}

/// Headers every answer carries. HSTS only when cookies are secure (the site is on HTTPS).
pub fn security_headers(hsts: bool) -> actix_web::middleware::DefaultHeaders {
    let mut h = actix_web::middleware::DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
             frame-ancestors 'none'; form-action 'self'",
        ))
        .add((
            header::HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ))
        .add((
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ));
    if hsts {
        h = h.add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"));
    }
    h
}

/// Why a state-changing request is refused as cross-site, or `None` when it may proceed.
pub fn cross_site_reason(req: &actix_web::HttpRequest) -> Option<&'static str> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let h = req.headers();
    let text = |name: header::HeaderName| h.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        if !matches!(site, "same-origin" | "none") {
            return Some("the request came from another site");
        }
    }
    let host = text(header::HOST)?;
    let authority = |url: &str| -> Option<String> {
        let rest = url.split_once("://")?.1;
        Some(rest.split(['/', '?', '#']).next()?.to_ascii_lowercase())
    };
    let from = match (text(header::ORIGIN), text(header::REFERER)) {
        (Some(o), _) => o,
        (None, Some(r)) => r,
        (None, None) => return Some("the request carries neither Origin nor Referer"),
    };
    match authority(from) {
        Some(a) if a == host.to_ascii_lowercase() => None,
        _ => Some("the request came from another site"),
    }
}

/// Refuses cross-site state-changing requests (CSRF): `Sec-Fetch-Site` when the browser sends
/// it, and `Origin` (or `Referer` when `Origin` is absent) must be this site.
pub async fn same_site_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some(why) = cross_site_reason(req.request()) {
        tracing::warn!(path = %req.path(), why, "cross-site request refused");
        let e = ApiError::new(StatusCode::FORBIDDEN, ErrorCode::CrossSite, why);
        return Ok(req.error_response(e));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Ends a handler that takes longer than `REQUEST_TIMEOUT_SECS` (under Heroku's 30 s router
/// limit) with a clear 503, so the user sees our message rather than the router's. Uploads
/// and event streams are exempt: they stream for as long as data flows.
pub async fn time_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let exempt = req.path().ends_with("/events") || req.path().ends_with("/files");
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(Duration::from_secs(15), |s| s.cfg.request_timeout);
    if exempt {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(res) => Ok(res?.map_into_boxed_body()),
        // (The request cannot be kept for the answer: a cloned request breaks routing.)
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout,
            "the server took too long to answer; try again",
        )
        .with_retry_after(5)
        .into()),
    }
}
