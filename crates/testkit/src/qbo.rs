//! A local contract fake of Intuit OAuth 2.0 and the QuickBooks Online Accounting API v3
//! (CONTRACTS.md parts A, B and C, checklist F.1–F.2).
//!
//! [`FakeQbo::start`] runs an actix-web server on a free 127.0.0.1 port in a background
//! thread; it stops when dropped. One server plays every Intuit host:
//!
//! | route | role |
//! |---|---|
//! | `GET /.well-known/openid_sandbox_configuration`, `.../openid_configuration` | discovery (A.1) |
//! | `GET /connect/oauth2` | authorization request, redirects to `redirect_uri` (A.2, A.3) |
//! | `POST /oauth2/v1/tokens/bearer` | token endpoint, both grants, rotation with a grace window (A.4) |
//! | `POST /v2/oauth2/tokens/revoke` | revoke, JSON or form body (A.5) |
//! | `GET /v1/openid_connect/userinfo`, `GET /op/v1/jwks` | OpenID odds and ends |
//! | `/v3/company/{realm}/...` | the accounting API: query, create, read, update (B, C) |
//!
//! Every answer carries an `intuit_tid` header. The fake has its own clock (real time plus an
//! offset that [`FakeQbo::advance`] moves forward); token lifetimes, authorization codes,
//! the rate limiter and the `requestid` memory all run on it.
//!
//! Misbehaviour is injected with [`FakeQbo::inject`]: each injection consumes one API call
//! (a request under `/v3/company/` whose path contains the filter, after the bearer check
//! and the rate limiter) and counts down `times`:
//!
//! | [`Inject`] | effect |
//! |---|---|
//! | `Throttle` | 429, `Fault` type `SERVICE`, code 3001 |
//! | `ServerError` | 500, `Fault` type `SystemFault`, code 10000; nothing is done |
//! | `FaultIn200` | HTTP 200 whose body is a `ValidationFault` (code 6000); nothing is done |
//! | `Delay(d)` | sleeps `d`, then answers normally |
//! | `ServerErrorAfterWrite` | performs the request, remembers the success under its `requestid`, answers 500/10000 |

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse};

use crate::server::FakeServer;
use base64::Engine;
use chrono::{DateTime, FixedOffset, Offset, TimeDelta, Utc};
use serde_json::{json, Map, Value};

/// The client id the fake accepts by default.
pub const CLIENT_ID: &str = "fake-client-id";
/// The client secret the fake accepts by default.
pub const CLIENT_SECRET: &str = "fake-client-secret";
/// The company (realm) id of the fake by default.
pub const REALM_ID: &str = "9130355377388096";

const ACCOUNTING_SCOPE: &str = "com.intuit.quickbooks.accounting";
const CODE_TTL_SECS: i64 = 300;
const HARD_EXPIRY_SECS: i64 = 5 * 365 * 24 * 3600;
const DUPLICATE_DETAIL: &str = "The name supplied already exists. : Another customer is already \
                                using this name. Please use a different name.";
const THROTTLE_MESSAGE: &str = "message=ThrottleExceeded; errorCode=003001; statusCode=429";
const THROTTLE_DETAIL: &str = "The request limit was reached.  Try again later";
const JSON_TYPE: &str = "application/json;charset=UTF-8";

/// How the fake is set up.
#[derive(Debug, Clone)]
pub struct FakeQboOptions {
    pub client_id: String,
    pub client_secret: String,
    /// The only company; every grant is for it.
    pub realm_id: String,
    /// When set, `/connect/oauth2` and the token endpoint require exactly this `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// Access-token lifetime (A.4: 3600 s).
    pub access_ttl: Duration,
    /// Refresh-token lifetime, rolling (A.4: 8 726 400 s).
    pub refresh_ttl: Duration,
    /// How long a rotated refresh token keeps working after its replacement is issued (24 h).
    pub rotation_grace: Duration,
    /// How long a `requestid` is remembered (UNCONFIRMED upstream; 24 h).
    pub requestid_ttl: Duration,
    /// Token bucket per realm, per minute (B.6: 500).
    pub per_minute: u32,
    /// Token bucket per realm, per second (B.6: 10).
    pub per_second: u32,
    /// Concurrent API requests per realm; more get 429/3001 (B.6: 10).
    pub max_concurrent: usize,
    /// Every API request waits this long (while counted as in flight) before it is handled.
    pub latency: Duration,
}

impl Default for FakeQboOptions {
    fn default() -> Self {
        Self {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            realm_id: REALM_ID.into(),
            redirect_uri: None,
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(8_726_400),
            rotation_grace: Duration::from_secs(24 * 3600),
            requestid_ttl: Duration::from_secs(24 * 3600),
            per_minute: 500,
            per_second: 10,
            max_concurrent: 10,
            latency: Duration::ZERO,
        }
    }
}

/// Tokens of a grant made by [`FakeQbo::issue_grant`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub realm_id: String,
}

/// What the token endpoint would make of a refresh token now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshStatus {
    /// The grant's newest refresh token.
    Current,
    /// Replaced, but still inside the rotation grace window.
    Grace,
    /// Unknown, expired, revoked or past the grace window: `invalid_grant`.
    Invalid,
}

/// A failure to inject into API calls (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    Throttle,
    ServerError,
    FaultIn200,
    Delay(Duration),
    ServerErrorAfterWrite,
}

/// One request the fake answered (every route, OAuth included), in order of completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string.
    pub query: String,
    pub status: u16,
    pub requestid: Option<String>,
    pub minorversion: Option<String>,
}

// ---------------------------------------------------------------------------------------
// State

struct AuthCode {
    redirect_uri: String,
    expires_at: DateTime<Utc>,
}

struct Grant {
    realm: String,
    current_refresh: String,
    revoked: bool,
    hard_expires_at: DateTime<Utc>,
}

struct RefreshInfo {
    grant: u64,
    expires_at: DateTime<Utc>,
    superseded_at: Option<DateTime<Utc>>,
}

struct AccessInfo {
    grant: u64,
    expires_at: DateTime<Utc>,
}

struct Injection {
    fault: Inject,
    remaining: usize,
    path_contains: Option<String>,
}

struct Stored {
    status: u16,
    body: String,
    at: DateTime<Utc>,
}

struct Inner {
    offset: TimeDelta,
    codes: HashMap<String, AuthCode>,
    grants: HashMap<u64, Grant>,
    next_grant: u64,
    refresh: HashMap<String, RefreshInfo>,
    access: HashMap<String, AccessInfo>,
    token_calls: usize,
    revoked: usize,
    deny_next: bool,
    injections: Vec<Injection>,
    dedupe: bool,
    requestids: HashMap<String, Stored>,
    company: Company,
    log: Vec<LoggedRequest>,
    in_flight: usize,
    max_seen: usize,
    minute_bucket: f64,
    second_bucket: f64,
    bucket_time: DateTime<Utc>,
}

impl Inner {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

struct Shared {
    opts: FakeQboOptions,
    base: String,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

fn random_hex(len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
        .collect()
}

fn pacific(now: DateTime<Utc>) -> DateTime<FixedOffset> {
    let offset = FixedOffset::west_opt(8 * 3600).unwrap_or_else(|| Utc.fix());
    now.with_timezone(&offset)
}

/// The `time` member of API answers: ISO-8601 with milliseconds and the -08:00 offset.
fn api_time(now: DateTime<Utc>) -> String {
    pacific(now).format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
}

/// `MetaData` times: ISO-8601 with the -08:00 offset, whole seconds.
fn meta_time(now: DateTime<Utc>) -> String {
    pacific(now).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

// ---------------------------------------------------------------------------------------
// The server

/// A running fake; stops when dropped.
pub struct FakeQbo {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakeQbo {
    /// Starts on a free port.
    pub fn start(opts: FakeQboOptions) -> io::Result<FakeQbo> {
        Self::start_on(0, opts)
    }

    /// Starts on `port` of 127.0.0.1 (0: a free one).
    pub fn start_on(port: u16, opts: FakeQboOptions) -> io::Result<FakeQbo> {
        let listener = FakeServer::bind(port)?;
        let port = listener.local_addr()?.port();
        let now = Utc::now();
        let inner = Inner {
            offset: TimeDelta::zero(),
            codes: HashMap::new(),
            grants: HashMap::new(),
            next_grant: 1,
            refresh: HashMap::new(),
            access: HashMap::new(),
            token_calls: 0,
            revoked: 0,
            deny_next: false,
            injections: Vec::new(),
            dedupe: true,
            requestids: HashMap::new(),
            company: Company::seeded(now),
            log: Vec::new(),
            in_flight: 0,
            max_seen: 0,
            minute_bucket: f64::from(opts.per_minute),
            second_bucket: f64::from(opts.per_second),
            bucket_time: now,
        };
        let shared = Arc::new(Shared {
            opts,
            base: format!("http://127.0.0.1:{port}"),
            inner: Mutex::new(inner),
        });
        let data = web::Data::from(shared.clone());
        let server = FakeServer::start("fake-qbo", listener, move || {
            let logger = data.clone();
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .wrap_fn(move |req, srv| {
                    let shared = logger.clone();
                    let method = req.method().as_str().to_string();
                    let path = req.path().to_string();
                    let query = req.query_string().to_string();
                    let fut = srv.call(req);
                    async move {
                        let mut res = fut.await?;
                        if let Ok(tid) = HeaderValue::from_str(&random_hex(32)) {
                            res.headers_mut()
                                .insert(HeaderName::from_static("intuit_tid"), tid);
                        }
                        let params = parse_form(&query);
                        let entry = LoggedRequest {
                            method,
                            path,
                            status: res.status().as_u16(),
                            requestid: param(&params, "requestid").map(String::from),
                            minorversion: param(&params, "minorversion").map(String::from),
                            query,
                        };
                        shared.lock().log.push(entry);
                        Ok(res)
                    }
                })
                .route(
                    "/.well-known/openid_sandbox_configuration",
                    web::get().to(discovery),
                )
                .route(
                    "/.well-known/openid_sandbox_configuration/",
                    web::get().to(discovery),
                )
                .route(
                    "/.well-known/openid_configuration",
                    web::get().to(discovery),
                )
                .route(
                    "/.well-known/openid_configuration/",
                    web::get().to(discovery),
                )
                .route("/connect/oauth2", web::get().to(authorize))
                .route("/oauth2/v1/tokens/bearer", web::post().to(token))
                .route("/v2/oauth2/tokens/revoke", web::post().to(revoke))
                .route("/v1/openid_connect/userinfo", web::get().to(userinfo))
                .route("/op/v1/jwks", web::get().to(jwks))
                .route("/v3/company/{realm}/{tail:.*}", web::route().to(api))
                .default_service(web::to(unknown_route))
        })?;
        Ok(FakeQbo { shared, server })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.shared.base.clone()
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `{base}/.well-known/openid_sandbox_configuration`.
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid_sandbox_configuration",
            self.shared.base
        )
    }

    /// The API base: clients call `{api_base}/v3/company/{realm}/...`.
    pub fn api_base(&self) -> String {
        self.shared.base.clone()
    }

    pub fn realm_id(&self) -> String {
        self.shared.opts.realm_id.clone()
    }

    /// The fake's clock: real time plus everything [`advance`](Self::advance)d.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.lock().now()
    }

    /// Moves the fake's clock forward.
    pub fn advance(&self, by: Duration) {
        let mut g = self.shared.lock();
        g.offset += delta(by);
    }

    /// Every access token issued so far is expired from now on.
    pub fn expire_access_tokens(&self) {
        let mut g = self.shared.lock();
        let now = g.now();
        for info in g.access.values_mut() {
            info.expires_at = info.expires_at.min(now);
        }
    }

    /// A new grant for the realm, as if the authorization-code flow had run.
    pub fn issue_grant(&self) -> GrantTokens {
        let mut g = self.shared.lock();
        let now = g.now();
        let (access_token, refresh_token) = new_grant(&mut g, &self.shared.opts, now);
        GrantTokens {
            access_token,
            refresh_token,
            realm_id: self.shared.opts.realm_id.clone(),
        }
    }

    pub fn refresh_token_status(&self, token: &str) -> RefreshStatus {
        let g = self.shared.lock();
        refresh_status(&g, &self.shared.opts, token, g.now())
    }

    /// POSTs to the token endpoint (both grants, failures included).
    pub fn token_calls(&self) -> usize {
        self.shared.lock().token_calls
    }

    /// Successful revokes.
    pub fn revoked(&self) -> usize {
        self.shared.lock().revoked
    }

    /// The next `/connect/oauth2` redirects with `error=access_denied`.
    pub fn deny_next_authorization(&self) {
        self.shared.lock().deny_next = true;
    }

    /// Injects `fault` into the next `times` API calls whose path contains `path_contains`
    /// (`None`: any API call). Injections are consumed in the order they were added.
    pub fn inject(&self, fault: Inject, times: usize, path_contains: Option<&str>) {
        if times == 0 {
            return;
        }
        self.shared.lock().injections.push(Injection {
            fault,
            remaining: times,
            path_contains: path_contains.map(String::from),
        });
    }

    /// On (the default): a repeated `requestid` gets the stored answer. Off: it runs again.
    pub fn set_requestid_dedupe(&self, on: bool) {
        self.shared.lock().dedupe = on;
    }

    /// Stores a customer the way a create would, minus the validation (duplicates and
    /// nameless customers are allowed here); returns its Id ("" when `customer` is not an
    /// object with string name fields).
    pub fn add_customer(&self, customer: Value) -> String {
        let mut g = self.shared.lock();
        let now = g.now();
        let body = match customer {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        match g.company.create(Kind::Customer, body, now, false) {
            Ok(v) => v
                .get("Id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            Err(_) => String::new(),
        }
    }

    /// A Vendor or Employee display name: customers cannot use it (6240).
    pub fn add_vendor_name(&self, name: &str) {
        self.shared
            .lock()
            .company
            .other_names
            .push(name.trim().to_string());
    }

    pub fn customers(&self) -> Vec<Value> {
        self.entities(Kind::Customer)
    }

    pub fn customer(&self, id: &str) -> Option<Value> {
        let g = self.shared.lock();
        g.company.get(Kind::Customer, id).cloned()
    }

    pub fn sales_receipts(&self) -> Vec<Value> {
        self.entities(Kind::SalesReceipt)
    }

    pub fn items(&self) -> Vec<Value> {
        self.entities(Kind::Item)
    }

    pub fn accounts(&self) -> Vec<Value> {
        self.entities(Kind::Account)
    }

    pub fn payment_methods(&self) -> Vec<Value> {
        self.entities(Kind::PaymentMethod)
    }

    fn entities(&self, kind: Kind) -> Vec<Value> {
        let g = self.shared.lock();
        g.company.table(kind).values().cloned().collect()
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.lock().log.clone()
    }

    /// The most API requests that were in flight at once (never above `max_concurrent`).
    pub fn max_concurrency_seen(&self) -> usize {
        self.shared.lock().max_seen
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers: forms, headers

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => {
                let hi = char::from(b[i + 1]).to_digit(16);
                let lo = char::from(b[i + 2]).to_digit(16);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `a=1&b=x+y` → pairs, decoded (`+` and `%20` are both a space).
fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(p), String::new()),
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn basic_ok(req: &HttpRequest, opts: &FakeQboOptions) -> bool {
    let Some(value) = header(req, "authorization") else {
        return false;
    };
    let Some((scheme, cred)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(cred.trim()) else {
        return false;
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return false;
    };
    let Some((id, secret)) = text.split_once(':') else {
        return false;
    };
    (id == opts.client_id && secret == opts.client_secret)
        || (url_decode(id) == opts.client_id && url_decode(secret) == opts.client_secret)
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = header(req, "authorization")?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

fn json_response(status: u16, body: String) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .content_type(JSON_TYPE)
        .body(body)
}

fn plain(status: StatusCode, text: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(text.into())
}

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    let mut body = json!({ "error": error });
    if !description.is_empty() {
        body["error_description"] = Value::String(description.to_string());
    }
    json_response(status, body.to_string())
}

async fn unknown_route(req: HttpRequest) -> HttpResponse {
    plain(
        StatusCode::NOT_FOUND,
        format!("the fake QBO has no route {} {}", req.method(), req.path()),
    )
}

// ---------------------------------------------------------------------------------------
// OAuth (part A)

async fn discovery(shared: web::Data<Shared>) -> HttpResponse {
    let base = &shared.base;
    let doc = json!({
        "issuer": format!("{base}/op/v1"),
        "authorization_endpoint": format!("{base}/connect/oauth2"),
        "token_endpoint": format!("{base}/oauth2/v1/tokens/bearer"),
        "userinfo_endpoint": format!("{base}/v1/openid_connect/userinfo"),
        "revocation_endpoint": format!("{base}/v2/oauth2/tokens/revoke"),
        "jwks_uri": format!("{base}/op/v1/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile", "address", "phone", ACCOUNTING_SCOPE],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
    });
    json_response(200, doc.to_string())
}

async fn jwks() -> HttpResponse {
    json_response(200, json!({ "keys": [] }).to_string())
}

async fn userinfo(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let g = shared.lock();
    let now = g.now();
    let ok = bearer(&req).is_some_and(|t| access_grant(&g, &t, now).is_ok());
    if !ok {
        return oauth_error(401, "invalid_token", "");
    }
    let body = json!({
        "sub": "fake-user-1",
        "email": "owner@example.org",
        "emailVerified": true,
        "givenName": "Fake",
        "familyName": "Owner",
    });
    json_response(200, body.to_string())
}

async fn authorize(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let params = parse_form(req.query_string());
    let opts = &shared.opts;
    let bad = |why: &str| plain(StatusCode::BAD_REQUEST, format!("invalid request: {why}"));
    match param(&params, "client_id") {
        None | Some("") => return bad("client_id is missing"),
        Some(id) if id != opts.client_id => return bad("client_id is unknown"),
        Some(_) => {}
    }
    if param(&params, "response_type") != Some("code") {
        return bad("response_type must be code");
    }
    let scope = param(&params, "scope").unwrap_or("");
    if !scope.split_whitespace().any(|s| s == ACCOUNTING_SCOPE) {
        return bad("scope must contain com.intuit.quickbooks.accounting");
    }
    let redirect = match param(&params, "redirect_uri") {
        None | Some("") => return bad("redirect_uri is missing"),
        Some(r) => r.to_string(),
    };
    if let Some(registered) = &opts.redirect_uri {
        if *registered != redirect {
            return bad("redirect_uri is not registered for this app");
        }
    }
    let state = match param(&params, "state") {
        None | Some("") => return bad("state is missing"),
        Some(s) => s.to_string(),
    };
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let mut g = shared.lock();
    let location = if std::mem::take(&mut g.deny_next) {
        format!(
            "{redirect}{sep}error=access_denied&state={}",
            url_encode(&state)
        )
    } else {
        let code = format!("AB11{}", random_hex(48));
        let expires_at = g.now() + TimeDelta::seconds(CODE_TTL_SECS);
        g.codes.insert(
            code.clone(),
            AuthCode {
                redirect_uri: redirect.clone(),
                expires_at,
            },
        );
        format!(
            "{redirect}{sep}code={code}&state={}&realmId={}",
            url_encode(&state),
            url_encode(&opts.realm_id)
        )
    };
    HttpResponse::Found()
        .insert_header(("location", location))
        .finish()
}

/// Creates a grant; returns (access token, refresh token).
fn new_grant(g: &mut Inner, opts: &FakeQboOptions, now: DateTime<Utc>) -> (String, String) {
    let id = g.next_grant;
    g.next_grant += 1;
    let refresh = new_refresh(g, opts, id, now);
    g.grants.insert(
        id,
        Grant {
            realm: opts.realm_id.clone(),
            current_refresh: refresh.clone(),
            revoked: false,
            hard_expires_at: now + TimeDelta::seconds(HARD_EXPIRY_SECS),
        },
    );
    let access = new_access(g, opts, id, now);
    (access, refresh)
}

fn new_refresh(g: &mut Inner, opts: &FakeQboOptions, grant: u64, now: DateTime<Utc>) -> String {
    let token = format!("RT1-{grant}-H0-{}", random_hex(32));
    g.refresh.insert(
        token.clone(),
        RefreshInfo {
            grant,
            expires_at: now + delta(opts.refresh_ttl),
            superseded_at: None,
        },
    );
    token
}

fn new_access(g: &mut Inner, opts: &FakeQboOptions, grant: u64, now: DateTime<Utc>) -> String {
    let token = format!("eyJ{}", random_hex(96));
    g.access.insert(
        token.clone(),
        AccessInfo {
            grant,
            expires_at: now + delta(opts.access_ttl),
        },
    );
    token
}

fn refresh_status(
    g: &Inner,
    opts: &FakeQboOptions,
    token: &str,
    now: DateTime<Utc>,
) -> RefreshStatus {
    let Some(info) = g.refresh.get(token) else {
        return RefreshStatus::Invalid;
    };
    let Some(grant) = g.grants.get(&info.grant) else {
        return RefreshStatus::Invalid;
    };
    if grant.revoked || now >= grant.hard_expires_at || now >= info.expires_at {
        return RefreshStatus::Invalid;
    }
    match info.superseded_at {
        None => RefreshStatus::Current,
        Some(at) if now < at + delta(opts.rotation_grace) => RefreshStatus::Grace,
        Some(_) => RefreshStatus::Invalid,
    }
}

/// The grant of a live access token.
fn access_grant<'a>(g: &'a Inner, token: &str, now: DateTime<Utc>) -> Result<&'a Grant, ()> {
    let info = g.access.get(token).ok_or(())?;
    let grant = g.grants.get(&info.grant).ok_or(())?;
    if grant.revoked || now >= info.expires_at {
        return Err(());
    }
    Ok(grant)
}

fn token_answer(
    g: &Inner,
    access: String,
    refresh: String,
    opts: &FakeQboOptions,
    hard: bool,
    now: DateTime<Utc>,
) -> HttpResponse {
    let info = g.refresh.get(&refresh);
    let refresh_left = info.map_or(0, |i| (i.expires_at - now).num_seconds().max(0));
    let mut body = json!({
        "token_type": "bearer",
        "access_token": access,
        "expires_in": opts.access_ttl.as_secs(),
        "refresh_token": refresh,
        "x_refresh_token_expires_in": refresh_left,
    });
    if hard {
        let left = info
            .and_then(|i| g.grants.get(&i.grant))
            .map_or(0, |gr| (gr.hard_expires_at - now).num_seconds().max(0));
        body["x_refresh_token_hard_expires_in"] = json!(left);
    }
    json_response(200, body.to_string())
}

async fn token(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let opts = &shared.opts;
    shared.lock().token_calls += 1;
    // The token endpoint is slow too: refresh races need the time to overlap.
    if !opts.latency.is_zero() {
        actix_web::rt::time::sleep(opts.latency).await;
    }
    if !basic_ok(&req, opts) {
        return oauth_error(401, "invalid_client", "");
    }
    let content_type = header(&req, "content-type").unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return oauth_error(
            400,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let form = parse_form(&String::from_utf8_lossy(&body));
    let hard = header(&req, "x-include-refresh-token-hard-expires-in")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let invalid_grant = || oauth_error(400, "invalid_grant", "Token invalid");
    let mut g = shared.lock();
    let now = g.now();
    match param(&form, "grant_type") {
        Some("authorization_code") => {
            let (Some(code), Some(redirect)) = (param(&form, "code"), param(&form, "redirect_uri"))
            else {
                return oauth_error(400, "invalid_request", "code and redirect_uri are required");
            };
            let usable = g.codes.get(code).is_some_and(|c| {
                c.expires_at > now
                    && c.redirect_uri == redirect
                    && opts.redirect_uri.as_deref().is_none_or(|r| r == redirect)
            });
            if !usable {
                return invalid_grant();
            }
            g.codes.remove(code);
            let (access, refresh) = new_grant(&mut g, opts, now);
            token_answer(&g, access, refresh, opts, hard, now)
        }
        Some("refresh_token") => {
            let Some(presented) = param(&form, "refresh_token") else {
                return oauth_error(400, "invalid_request", "refresh_token is required");
            };
            let status = refresh_status(&g, opts, presented, now);
            let Some(grant_id) = g.refresh.get(presented).map(|i| i.grant) else {
                return invalid_grant();
            };
            match status {
                RefreshStatus::Invalid => invalid_grant(),
                RefreshStatus::Current => {
                    if let Some(info) = g.refresh.get_mut(presented) {
                        info.superseded_at = Some(now);
                    }
                    let refresh = new_refresh(&mut g, opts, grant_id, now);
                    if let Some(grant) = g.grants.get_mut(&grant_id) {
                        grant.current_refresh = refresh.clone();
                    }
                    let access = new_access(&mut g, opts, grant_id, now);
                    token_answer(&g, access, refresh, opts, hard, now)
                }
                RefreshStatus::Grace => {
                    let current = g
                        .grants
                        .get(&grant_id)
                        .map(|gr| gr.current_refresh.clone())
                        .unwrap_or_default();
                    if let Some(info) = g.refresh.get_mut(&current) {
                        info.expires_at = now + delta(opts.refresh_ttl);
                    }
                    let access = new_access(&mut g, opts, grant_id, now);
                    token_answer(&g, access, current, opts, hard, now)
                }
            }
        }
        None => oauth_error(400, "invalid_request", "grant_type is required"),
        Some(_) => oauth_error(400, "unsupported_grant_type", ""),
    }
}

async fn revoke(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    if !basic_ok(&req, &shared.opts) {
        return oauth_error(401, "invalid_client", "");
    }
    let text = String::from_utf8_lossy(&body);
    let token = if text.trim_start().starts_with('{') {
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("token").and_then(Value::as_str).map(String::from))
    } else {
        param(&parse_form(&text), "token").map(String::from)
    };
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return oauth_error(400, "invalid_request", "token is required");
    };
    let mut g = shared.lock();
    let grant = g
        .refresh
        .get(&token)
        .map(|i| i.grant)
        .or_else(|| g.access.get(&token).map(|i| i.grant));
    let Some(grant) = grant.and_then(|id| g.grants.get_mut(&id)) else {
        return oauth_error(400, "invalid_request", "Token invalid");
    };
    grant.revoked = true;
    g.revoked += 1;
    HttpResponse::Ok().finish()
}

// ---------------------------------------------------------------------------------------
// Faults (B.4)

#[derive(Debug, Clone)]
struct Fault {
    status: u16,
    kind: &'static str,
    code: String,
    message: String,
    detail: String,
    element: String,
}

impl Fault {
    fn new(status: u16, kind: &'static str, code: &str, message: &str, detail: String) -> Self {
        Self {
            status,
            kind,
            code: code.to_string(),
            message: message.to_string(),
            detail,
            element: String::new(),
        }
    }

    fn validation(code: &str, message: &str, detail: impl Into<String>) -> Self {
        Self::new(400, "ValidationFault", code, message, detail.into())
    }

    fn element(mut self, element: &str) -> Self {
        self.element = element.to_string();
        self
    }

    fn required(field: &str) -> Self {
        Self::validation(
            "2020",
            "Required Param Missing",
            format!("Required parameter {field} is missing in the request"),
        )
        .element(field)
    }

    fn invalid_property(detail: impl Into<String>) -> Self {
        Self::validation(
            "2010",
            "Request has invalid or unsupported property",
            detail,
        )
    }

    fn business(detail: impl Into<String>) -> Self {
        Self::validation(
            "6000",
            "A business validation error has occurred while processing your request",
            format!("Business Validation Error: {}", detail.into()),
        )
    }

    fn invalid_ref(element: &str, detail: String) -> Self {
        Self::validation("2500", "Invalid Reference Id", detail).element(element)
    }

    fn not_found(kind: Kind, id: &str) -> Self {
        Self::validation(
            "610",
            "Object Not Found",
            format!(
                "Object Not Found : Something you're trying to use has been made inactive. \
                 Check the fields with accounts, customers, items, vendors or employees. \
                 ({} Id {id})",
                kind.name()
            ),
        )
    }

    fn duplicate(detail: &str) -> Self {
        Self::validation("6240", "Duplicate Name Exists Error", detail.to_string())
    }

    fn parser(detail: impl Into<String>) -> Self {
        Self::validation(
            "4000",
            "Error parsing query",
            format!("QueryParserError: {}", detail.into()),
        )
    }

    fn invalid_query(detail: impl Into<String>) -> Self {
        Self::validation(
            "4001",
            "Invalid query",
            format!("QueryValidationError: {}", detail.into()),
        )
    }

    fn unsupported(detail: impl Into<String>) -> Self {
        Self::validation("500", "Unsupported Operation", detail)
    }

    fn throttle() -> Self {
        Self::new(
            429,
            "SERVICE",
            "3001",
            THROTTLE_MESSAGE,
            THROTTLE_DETAIL.to_string(),
        )
    }

    fn system() -> Self {
        Self::new(
            500,
            "SystemFault",
            "10000",
            "An application error has occurred while processing your request",
            "System Failure Error: An unexpected error occurred while accessing or saving \
             your data. Please wait a few minutes and try again. If the problem persists, \
             contact customer support."
                .to_string(),
        )
    }

    fn body(&self, now: DateTime<Utc>) -> String {
        json!({
            "Fault": {
                "Error": [{
                    "Message": self.message,
                    "Detail": self.detail,
                    "code": self.code,
                    "element": self.element,
                }],
                "type": self.kind,
            },
            "time": api_time(now),
        })
        .to_string()
    }

    fn response(&self, now: DateTime<Utc>) -> HttpResponse {
        json_response(self.status, self.body(now))
    }
}

/// The lower-case 401 body (B.4).
fn unauthorized(token: Option<&str>, now: DateTime<Utc>) -> HttpResponse {
    let shown: String = token.unwrap_or("").chars().take(8).collect();
    let body = json!({
        "warnings": null,
        "intuitObject": null,
        "fault": {
            "error": [{
                "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "detail": format!("Token expired: {shown}..."),
                "code": "3200",
                "element": null,
            }],
            "type": "AUTHENTICATION",
        },
        "report": null,
        "queryResponse": null,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": null,
        "requestId": null,
        "time": now.timestamp_millis(),
        "status": null,
        "cdcresponse": [],
    });
    json_response(401, body.to_string())
}

fn forbidden(realm: &str) -> Fault {
    Fault::new(
        403,
        "SERVICE",
        "3100",
        "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
        format!("The application is not authorized for company {realm}"),
    )
}

// ---------------------------------------------------------------------------------------
// The accounting API (part B)

struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut g = self.0.lock();
        g.in_flight = g.in_flight.saturating_sub(1);
    }
}

fn take_rate_token(g: &mut Inner, opts: &FakeQboOptions, now: DateTime<Utc>) -> bool {
    let elapsed = (now - g.bucket_time).num_milliseconds().max(0) as f64 / 1000.0;
    g.bucket_time = g.bucket_time.max(now);
    let per_minute = f64::from(opts.per_minute);
    let per_second = f64::from(opts.per_second);
    g.minute_bucket = (g.minute_bucket + elapsed * per_minute / 60.0).min(per_minute);
    g.second_bucket = (g.second_bucket + elapsed * per_second).min(per_second);
    if g.minute_bucket >= 1.0 && g.second_bucket >= 1.0 {
        g.minute_bucket -= 1.0;
        g.second_bucket -= 1.0;
        true
    } else {
        false
    }
}

fn take_injection(g: &mut Inner, path: &str) -> Option<Inject> {
    let hit = g.injections.iter_mut().find(|i| {
        i.remaining > 0
            && i.path_contains
                .as_deref()
                .is_none_or(|needle| path.contains(needle))
    })?;
    hit.remaining -= 1;
    let fault = hit.fault;
    g.injections.retain(|i| i.remaining > 0);
    Some(fault)
}

async fn api(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let shared = shared.into_inner();
    let opts = &shared.opts;
    let (realm, tail) = path.into_inner();
    let params = parse_form(req.query_string());
    let token = bearer(&req);

    // Authentication, then the realm.
    let guard = {
        let mut g = shared.lock();
        let now = g.now();
        let grant_realm = match token.as_deref().map(|t| access_grant(&g, t, now)) {
            Some(Ok(grant)) => grant.realm.clone(),
            _ => return unauthorized(token.as_deref(), now),
        };
        if grant_realm != realm {
            return forbidden(&realm).response(now);
        }
        // The concurrency gate, then the token buckets.
        if g.in_flight >= opts.max_concurrent {
            return Fault::throttle().response(now);
        }
        if !take_rate_token(&mut g, opts, now) {
            return Fault::throttle().response(now);
        }
        g.in_flight += 1;
        g.max_seen = g.max_seen.max(g.in_flight);
        InFlight(shared.clone())
    };

    if !opts.latency.is_zero() {
        actix_web::rt::time::sleep(opts.latency).await;
    }

    let injected = take_injection(&mut shared.lock(), req.path());
    let mut after_write = false;
    match injected {
        Some(Inject::Throttle) => return Fault::throttle().response(shared.lock().now()),
        Some(Inject::ServerError) => return Fault::system().response(shared.lock().now()),
        Some(Inject::FaultIn200) => {
            let mut fault = Fault::business("injected fault inside an HTTP 200 answer");
            fault.status = 200;
            return fault.response(shared.lock().now());
        }
        Some(Inject::Delay(d)) => actix_web::rt::time::sleep(d).await,
        Some(Inject::ServerErrorAfterWrite) => after_write = true,
        None => {}
    }

    let requestid = param(&params, "requestid").map(String::from);
    let (status, text) = {
        let mut g = shared.lock();
        let now = g.now();
        if let Some(rid) = &requestid {
            if rid.chars().count() > 50 {
                let fault = Fault::validation(
                    "2050",
                    "String length is either shorter or longer than supported by specification",
                    "requestid must be at most 50 characters",
                )
                .element("requestid");
                return fault.response(now);
            }
        }
        let dedupe = g.dedupe && requestid.is_some();
        if dedupe {
            let ttl = delta(opts.requestid_ttl);
            g.requestids.retain(|_, s| now < s.at + ttl);
            if let Some(stored) = requestid.as_ref().and_then(|r| g.requestids.get(r)) {
                return json_response(stored.status, stored.body.clone());
            }
        }
        let content_type = header(&req, "content-type").unwrap_or("");
        let result = g.company.dispatch(
            req.method().as_str(),
            &tail,
            &params,
            &body,
            content_type,
            now,
        );
        let (status, text) = match result {
            Ok(v) => (200, v.to_string()),
            Err(f) => (f.status, f.body(now)),
        };
        if let (true, Some(rid)) = (dedupe && status < 500, &requestid) {
            g.requestids.insert(
                rid.clone(),
                Stored {
                    status,
                    body: text.clone(),
                    at: now,
                },
            );
        }
        (status, text)
    };
    drop(guard);
    if after_write && status == 200 {
        return Fault::system().response(shared.lock().now());
    }
    json_response(status, text)
}

// ---------------------------------------------------------------------------------------
// Entities (part C)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Customer,
    SalesReceipt,
    Item,
    Account,
    PaymentMethod,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Customer,
        Kind::SalesReceipt,
        Kind::Item,
        Kind::Account,
        Kind::PaymentMethod,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Customer => "Customer",
            Kind::SalesReceipt => "SalesReceipt",
            Kind::Item => "Item",
            Kind::Account => "Account",
            Kind::PaymentMethod => "PaymentMethod",
        }
    }

    fn from_path(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().to_ascii_lowercase() == s)
    }

    fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Properties a WHERE or ORDERBY may name.
    fn queryable(self) -> &'static [&'static str] {
        match self {
            Kind::Customer => &[
                "Id",
                "DisplayName",
                "Title",
                "GivenName",
                "MiddleName",
                "FamilyName",
                "Suffix",
                "CompanyName",
                "PrintOnCheckName",
                "FullyQualifiedName",
                "PrimaryEmailAddr",
                "Active",
                "Balance",
                "SyncToken",
                "MetaData.CreateTime",
                "MetaData.LastUpdatedTime",
            ],
            Kind::SalesReceipt => &[
                "Id",
                "DocNumber",
                "TxnDate",
                "CustomerRef",
                "PaymentRefNum",
                "PrivateNote",
                "TotalAmt",
                "DepositToAccountRef",
                "PaymentMethodRef",
                "SyncToken",
                "MetaData.CreateTime",
                "MetaData.LastUpdatedTime",
            ],
            Kind::Item => &[
                "Id",
                "Name",
                "Type",
                "Active",
                "FullyQualifiedName",
                "IncomeAccountRef",
                "SyncToken",
                "MetaData.CreateTime",
                "MetaData.LastUpdatedTime",
            ],
            Kind::Account => &[
                "Id",
                "Name",
                "AcctNum",
                "AccountType",
                "AccountSubType",
                "Classification",
                "Active",
                "FullyQualifiedName",
                "SyncToken",
                "MetaData.CreateTime",
                "MetaData.LastUpdatedTime",
            ],
            Kind::PaymentMethod => &[
                "Id",
                "Name",
                "Type",
                "Active",
                "SyncToken",
                "MetaData.CreateTime",
                "MetaData.LastUpdatedTime",
            ],
        }
    }
}

const SYSTEM_KEYS: [&str; 5] = ["Id", "SyncToken", "sparse", "domain", "MetaData"];

fn usd() -> Value {
    json!({"value": "USD", "name": "United States Dollar"})
}

fn str_of<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

/// `Ref.value` (a string, or a number sent as one).
fn ref_value(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)?.get("value")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

fn json_amount(cents: i64) -> Value {
    json!(cents as f64 / 100.0)
}

/// Trims a string field; drops it when it ends up empty.
fn trim_field(m: &mut Map<String, Value>, key: &str) {
    if let Some(Value::String(s)) = m.get_mut(key) {
        let t = s.trim().to_string();
        if t.is_empty() {
            m.remove(key);
        } else {
            *s = t;
        }
    }
}

struct Company {
    next_id: u64,
    next_addr: u64,
    next_doc: u64,
    tables: HashMap<Kind, BTreeMap<u64, Value>>,
    /// Vendor and Employee display names.
    other_names: Vec<String>,
}

impl Company {
    fn seeded(now: DateTime<Utc>) -> Company {
        let mut c = Company {
            next_id: 1,
            next_addr: 1,
            next_doc: 1001,
            tables: Kind::ALL
                .into_iter()
                .map(|k| (k, BTreeMap::new()))
                .collect(),
            other_names: Vec::new(),
        };
        let mut seed = |kind: Kind, v: Value| {
            if let Value::Object(m) = v {
                let _ = c.create(kind, m, now, false);
            }
        };
        seed(
            Kind::Account,
            json!({"Name": "Checking", "AccountType": "Bank", "AccountSubType": "Checking",
                   "Classification": "Asset"}),
        );
        seed(
            Kind::Account,
            json!({"Name": "Donation Income", "AccountType": "Income",
                   "AccountSubType": "NonProfitIncome", "Classification": "Revenue"}),
        );
        let fillers = [
            ("Expense", "OfficeGeneralAdministrativeExpenses"),
            ("Other Expense", "Depreciation"),
            ("Cost of Goods Sold", "SuppliesMaterialsCogs"),
            ("Other Current Asset", "OtherCurrentAssets"),
            ("Expense", "Travel"),
            ("Fixed Asset", "MachineryAndEquipment"),
            ("Other Current Liability", "OtherCurrentLiabilities"),
        ];
        for n in 0..110u32 {
            let (account_type, sub_type) = fillers[n as usize % fillers.len()];
            let number = 6001 + n;
            seed(
                Kind::Account,
                json!({"Name": format!("Expense {number}"), "AcctNum": number.to_string(),
                       "AccountType": account_type, "AccountSubType": sub_type}),
            );
        }
        seed(
            Kind::Account,
            json!({"Name": "12000 Undeposited Funds", "AcctNum": "12000",
                   "AccountType": "Other Current Asset", "AccountSubType": "UndepositedFunds",
                   "Classification": "Asset"}),
        );
        let income = c
            .find_by_name(Kind::Account, "Donation Income")
            .unwrap_or_default();
        let mut seed = |kind: Kind, v: Value| {
            if let Value::Object(m) = v {
                let _ = c.create(kind, m, now, false);
            }
        };
        seed(
            Kind::Item,
            json!({"Name": "Donations", "Type": "Service", "Description": "Donation",
                   "IncomeAccountRef": {"value": income}}),
        );
        seed(
            Kind::Item,
            json!({"Name": "Services", "Type": "Service",
                   "IncomeAccountRef": {"value": income}}),
        );
        seed(
            Kind::PaymentMethod,
            json!({"Name": "Cash", "Type": "NON_CREDIT_CARD"}),
        );
        seed(
            Kind::PaymentMethod,
            json!({"Name": "Check", "Type": "NON_CREDIT_CARD"}),
        );
        seed(
            Kind::PaymentMethod,
            json!({"Name": "Visa", "Type": "CREDIT_CARD"}),
        );
        c
    }

    fn table(&self, kind: Kind) -> &BTreeMap<u64, Value> {
        static EMPTY: BTreeMap<u64, Value> = BTreeMap::new();
        self.tables.get(&kind).unwrap_or(&EMPTY)
    }

    fn table_mut(&mut self, kind: Kind) -> &mut BTreeMap<u64, Value> {
        self.tables.entry(kind).or_default()
    }

    fn get(&self, kind: Kind, id: &str) -> Option<&Value> {
        let id: u64 = id.trim().parse().ok()?;
        self.table(kind).get(&id)
    }

    fn find_by_name(&self, kind: Kind, name: &str) -> Option<String> {
        self.table(kind).values().find_map(|v| {
            let n = v.get("Name").and_then(Value::as_str)?;
            n.eq_ignore_ascii_case(name)
                .then(|| v.get("Id").and_then(Value::as_str).map(String::from))
                .flatten()
        })
    }

    /// Whether `name` is taken by another entity of `kind` (field `field`), ASCII-case-insensitive.
    fn name_taken(&self, kind: Kind, field: &str, name: &str, except: Option<&str>) -> bool {
        self.table(kind).values().any(|v| {
            v.get("Id").and_then(Value::as_str) != except
                && v.get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
        })
    }

    fn ref_name(&self, kind: Kind, id: &str, field: &str) -> Option<String> {
        self.get(kind, id).map(|v| {
            v.get(field)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
    }

    fn undeposited_funds(&self) -> Option<(String, String)> {
        self.table(Kind::Account).values().find_map(|v| {
            (v.get("AccountSubType").and_then(Value::as_str) == Some("UndepositedFunds")).then(
                || {
                    (
                        v.get("Id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        v.get("Name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    )
                },
            )
        })
    }

    fn dispatch(
        &mut self,
        method: &str,
        tail: &str,
        params: &[(String, String)],
        body: &[u8],
        _content_type: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, Fault> {
        let segs: Vec<&str> = tail.trim_end_matches('/').split('/').collect();
        match (method, segs.as_slice()) {
            ("GET", ["query"]) | ("POST", ["query"]) => {
                let sql = match param(params, "query") {
                    Some(q) => q.to_string(),
                    None if method == "POST" => String::from_utf8_lossy(body).into_owned(),
                    None => return Err(Fault::parser("the query parameter is missing")),
                };
                let answer = self.query(&sql)?;
                Ok(json!({"QueryResponse": answer, "time": api_time(now)}))
            }
            ("GET", [entity, id]) => {
                let kind = Kind::from_path(entity)
                    .ok_or_else(|| Fault::unsupported(format!("Unsupported entity {entity}")))?;
                let found = self
                    .get(kind, id)
                    .cloned()
                    .ok_or_else(|| Fault::not_found(kind, id))?;
                Ok(json!({ kind.name(): found, "time": api_time(now) }))
            }
            ("POST", [entity]) => {
                let kind = Kind::from_path(entity)
                    .ok_or_else(|| Fault::unsupported(format!("Unsupported entity {entity}")))?;
                let parsed: Value = serde_json::from_slice(body).map_err(|e| {
                    Fault::invalid_property(format!("Unable to parse the request body: {e}"))
                })?;
                let Value::Object(obj) = parsed else {
                    return Err(Fault::invalid_property(
                        "The request body must be a JSON object",
                    ));
                };
                let entity = match param(params, "operation") {
                    None | Some("create") | Some("update") => {
                        if param(params, "include") == Some("void") {
                            self.void(kind, obj, now)?
                        } else if obj.contains_key("Id") {
                            self.update(kind, obj, now)?
                        } else {
                            self.create(kind, obj, now, true)?
                        }
                    }
                    Some("delete") => self.delete(kind, obj)?,
                    Some(other) => {
                        return Err(Fault::unsupported(format!(
                            "Operation {other} is not supported"
                        )))
                    }
                };
                Ok(json!({ kind.name(): entity, "time": api_time(now) }))
            }
            _ => Err(Fault::unsupported(format!(
                "Operation {method} {tail} is not supported"
            ))),
        }
    }

    fn create(
        &mut self,
        kind: Kind,
        mut obj: Map<String, Value>,
        now: DateTime<Utc>,
        strict: bool,
    ) -> Result<Value, Fault> {
        for key in SYSTEM_KEYS {
            obj.remove(key);
        }
        self.prepare(kind, &mut obj, None, now, strict)?;
        let id = self.next_id;
        self.next_id += 1;
        let ts = meta_time(now);
        obj.insert("Id".into(), json!(id.to_string()));
        obj.insert("SyncToken".into(), json!("0"));
        obj.insert(
            "MetaData".into(),
            json!({"CreateTime": ts, "LastUpdatedTime": ts}),
        );
        obj.insert("domain".into(), json!("QBO"));
        obj.insert("sparse".into(), json!(false));
        let value = Value::Object(obj);
        self.table_mut(kind).insert(id, value.clone());
        Ok(value)
    }

    /// The stored entity an update or delete names, after the SyncToken check.
    fn target(&self, kind: Kind, obj: &Map<String, Value>) -> Result<(u64, Value), Fault> {
        let id = obj.get("Id").and_then(id_of).unwrap_or_default();
        let old = self
            .get(kind, &id)
            .cloned()
            .ok_or_else(|| Fault::not_found(kind, &id))?;
        let sent = obj
            .get("SyncToken")
            .and_then(id_of)
            .ok_or_else(|| Fault::required("SyncToken"))?;
        let current = old.get("SyncToken").and_then(Value::as_str).unwrap_or("0");
        if sent != current {
            return Err(Fault::validation(
                "5010",
                "Stale Object Error",
                format!(
                    "Stale Object Error : You and another user were working on the same \
                     {} at the same time. (SyncToken {sent} sent, {current} current)",
                    kind.name()
                ),
            ));
        }
        let numeric: u64 = id.parse().unwrap_or_default();
        Ok((numeric, old))
    }

    fn store_revision(
        &mut self,
        kind: Kind,
        id: u64,
        old: &Value,
        mut new: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Value {
        let sync: u64 = old
            .get("SyncToken")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let created = old
            .pointer("/MetaData/CreateTime")
            .cloned()
            .unwrap_or_else(|| json!(meta_time(now)));
        new.insert("Id".into(), json!(id.to_string()));
        new.insert("SyncToken".into(), json!((sync + 1).to_string()));
        new.insert(
            "MetaData".into(),
            json!({"CreateTime": created, "LastUpdatedTime": meta_time(now)}),
        );
        new.insert("domain".into(), json!("QBO"));
        new.insert("sparse".into(), json!(false));
        let value = Value::Object(new);
        self.table_mut(kind).insert(id, value.clone());
        value
    }

    fn update(
        &mut self,
        kind: Kind,
        obj: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Value, Fault> {
        let (id, old) = self.target(kind, &obj)?;
        let sparse = obj.get("sparse").and_then(Value::as_bool).unwrap_or(false);
        let mut new = if sparse {
            match &old {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            }
        } else {
            Map::new()
        };
        for (k, v) in obj {
            if !SYSTEM_KEYS.contains(&k.as_str()) {
                new.insert(k, v);
            }
        }
        // Read-only figures survive a full update.
        for key in [
            "Balance",
            "BalanceWithJobs",
            "CurrentBalance",
            "CurrentBalanceWithSubAccounts",
        ] {
            if let Some(v) = old.get(key) {
                new.insert(key.to_string(), v.clone());
            }
        }
        let old_id = id.to_string();
        if kind == Kind::SalesReceipt {
            // An update keeps the number unless it sends a new one.
            let keep = matches!(str_of(&new, "DocNumber"), None | Some("AUTO_GENERATE"));
            if let (true, Some(doc)) = (keep, old.get("DocNumber")) {
                new.insert("DocNumber".into(), doc.clone());
            }
        }
        self.prepare(kind, &mut new, Some(&old_id), now, true)?;
        Ok(self.store_revision(kind, id, &old, new, now))
    }

    fn delete(&mut self, kind: Kind, obj: Map<String, Value>) -> Result<Value, Fault> {
        if kind != Kind::SalesReceipt {
            return Err(Fault::unsupported(format!(
                "Operation delete is not supported for {}; set Active to false",
                kind.name()
            )));
        }
        let (id, _) = self.target(kind, &obj)?;
        self.table_mut(kind).remove(&id);
        Ok(json!({"Id": id.to_string(), "status": "Deleted", "domain": "QBO"}))
    }

    fn void(
        &mut self,
        kind: Kind,
        obj: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Value, Fault> {
        if kind != Kind::SalesReceipt {
            return Err(Fault::unsupported(format!(
                "Operation void is not supported for {}",
                kind.name()
            )));
        }
        let (id, old) = self.target(kind, &obj)?;
        let mut new = match &old {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        if let Some(Value::Array(lines)) = new.get_mut("Line") {
            for line in lines.iter_mut() {
                line["Amount"] = json!(0);
                if let Some(detail) = line.get_mut("SalesItemLineDetail") {
                    if detail.get("Qty").is_some() {
                        detail["Qty"] = json!(0);
                    }
                }
            }
        }
        new.insert("TotalAmt".into(), json!(0));
        new.insert("PrivateNote".into(), json!("Voided"));
        Ok(self.store_revision(kind, id, &old, new, now))
    }

    fn prepare(
        &mut self,
        kind: Kind,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
        now: DateTime<Utc>,
        strict: bool,
    ) -> Result<(), Fault> {
        match kind {
            Kind::Customer => self.prepare_customer(obj, self_id, strict),
            Kind::SalesReceipt => self.prepare_receipt(obj, now),
            Kind::Item => self.prepare_item(obj, self_id, strict),
            Kind::Account => self.prepare_account(obj, self_id, strict),
            Kind::PaymentMethod => self.prepare_payment_method(obj, self_id, strict),
        }
    }

    fn prepare_customer(
        &mut self,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
        strict: bool,
    ) -> Result<(), Fault> {
        let name_parts = ["Title", "GivenName", "MiddleName", "FamilyName", "Suffix"];
        for key in name_parts
            .iter()
            .chain(&["DisplayName", "CompanyName", "PrintOnCheckName"])
        {
            if obj
                .get(*key)
                .is_some_and(|v| !v.is_string() && !v.is_null())
            {
                return Err(Fault::invalid_property(format!("{key} must be a string")));
            }
            trim_field(obj, key);
        }
        if str_of(obj, "DisplayName").is_none() {
            let parts: Vec<&str> = name_parts.iter().filter_map(|k| str_of(obj, k)).collect();
            if parts.is_empty() {
                if strict {
                    return Err(Fault::required("DisplayName"));
                }
            } else {
                let built = parts.join(" ");
                obj.insert("DisplayName".into(), json!(built));
            }
        }
        let display = str_of(obj, "DisplayName").unwrap_or("").to_string();
        if strict {
            for key in ["GivenName", "MiddleName", "FamilyName"] {
                if str_of(obj, key).is_some_and(|s| s.chars().count() > 100) {
                    return Err(Fault::business(format!(
                        "String length exceeds max: {key} may have at most 100 characters"
                    ))
                    .element(key));
                }
            }
            if display.chars().count() > 500 {
                return Err(Fault::business(
                    "String length exceeds max: DisplayName may have at most 500 characters",
                )
                .element("DisplayName"));
            }
            if display.contains(':') {
                return Err(Fault::business(
                    "DisplayName cannot contain a colon (:); QuickBooks uses it to separate \
                     parent and sub-customer names",
                )
                .element("DisplayName"));
            }
            let taken = self.name_taken(Kind::Customer, "DisplayName", &display, self_id)
                || self
                    .other_names
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&display));
            if taken {
                return Err(Fault::duplicate(DUPLICATE_DETAIL));
            }
        }
        obj.insert("FullyQualifiedName".into(), json!(display));
        if str_of(obj, "PrintOnCheckName").is_none() {
            obj.insert("PrintOnCheckName".into(), json!(display));
        }
        obj.entry("Active").or_insert(json!(true));
        obj.entry("Job").or_insert(json!(false));
        obj.entry("Level").or_insert(json!(0));
        obj.entry("Balance").or_insert(json!(0));
        obj.entry("BalanceWithJobs").or_insert(json!(0));
        obj.entry("Taxable").or_insert(json!(true));
        obj.entry("CurrencyRef").or_insert_with(usd);
        for addr in ["BillAddr", "ShipAddr"] {
            if let Some(Value::Object(a)) = obj.get_mut(addr) {
                if !a.contains_key("Id") {
                    a.insert("Id".into(), json!(self.next_addr.to_string()));
                    self.next_addr += 1;
                }
            }
        }
        Ok(())
    }

    fn prepare_receipt(
        &mut self,
        obj: &mut Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        let customer =
            ref_value(obj, "CustomerRef").ok_or_else(|| Fault::required("CustomerRef"))?;
        let lines = match obj.get("Line") {
            Some(Value::Array(lines)) => lines.clone(),
            _ => return Err(Fault::required("Line")),
        };
        let mut out = Vec::new();
        let mut total = 0i64;
        let mut sales_lines = 0;
        for line in lines {
            let Value::Object(mut line) = line else {
                return Err(Fault::invalid_property("Each Line must be an object"));
            };
            match str_of(&line, "DetailType") {
                Some("SalesItemLineDetail") => {
                    sales_lines += 1;
                    let amount = line
                        .get("Amount")
                        .and_then(number)
                        .ok_or_else(|| Fault::required("Line.Amount"))?;
                    let Some(Value::Object(mut detail)) = line.get("SalesItemLineDetail").cloned()
                    else {
                        return Err(Fault::required("Line.SalesItemLineDetail"));
                    };
                    if let Some(item) = ref_value(&detail, "ItemRef") {
                        let name = self.ref_name(Kind::Item, &item, "Name").ok_or_else(|| {
                            Fault::invalid_ref(
                                "ItemRef",
                                format!("Invalid Reference Id : Item elements id {item} not found"),
                            )
                        })?;
                        detail.insert("ItemRef".into(), json!({"value": item, "name": name}));
                    }
                    let qty = detail.get("Qty").and_then(number);
                    let price = detail.get("UnitPrice").and_then(number);
                    if let (Some(qty), Some(price)) = (qty, price) {
                        let expected = cents(qty * price);
                        if expected != cents(amount) {
                            return Err(Fault::validation(
                                "6070",
                                "Amount calculation incorrect",
                                format!(
                                    "Amount calculation incorrect in the request. Amount \
                                     should equal Qty * UnitPrice: {qty} * {price} = {:.2}, \
                                     but Amount is {amount:.2}",
                                    expected as f64 / 100.0
                                ),
                            )
                            .element("Line.Amount"));
                        }
                    }
                    total += cents(amount);
                    line.insert("Amount".into(), json_amount(cents(amount)));
                    line.insert("SalesItemLineDetail".into(), Value::Object(detail));
                    out.push(line);
                }
                Some("SubTotalLineDetail") => {}
                Some(_) => out.push(line),
                None => return Err(Fault::required("Line.DetailType")),
            }
        }
        if sales_lines == 0 {
            return Err(Fault::required("Line.SalesItemLineDetail"));
        }
        let customer_name = self
            .get(Kind::Customer, &customer)
            .filter(|c| c.get("Active").and_then(Value::as_bool).unwrap_or(true))
            .map(|c| {
                c.get("DisplayName")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            })
            .ok_or_else(|| {
                Fault::invalid_ref(
                    "CustomerRef",
                    format!("Invalid Reference Id : Customer id {customer} not found"),
                )
            })?;
        obj.insert(
            "CustomerRef".into(),
            json!({"value": customer, "name": customer_name}),
        );
        let deposit = match ref_value(obj, "DepositToAccountRef") {
            Some(id) => {
                let name = self.ref_name(Kind::Account, &id, "Name").ok_or_else(|| {
                    Fault::invalid_ref(
                        "DepositToAccountRef",
                        format!("Invalid Reference Id : Accounts element id {id} not found"),
                    )
                })?;
                (id, name)
            }
            None => self.undeposited_funds().ok_or_else(|| {
                Fault::invalid_ref(
                    "DepositToAccountRef",
                    "Invalid Reference Id : the company has no Undeposited Funds account"
                        .to_string(),
                )
            })?,
        };
        obj.insert(
            "DepositToAccountRef".into(),
            json!({"value": deposit.0, "name": deposit.1}),
        );
        if let Some(id) = ref_value(obj, "PaymentMethodRef") {
            let name = self
                .ref_name(Kind::PaymentMethod, &id, "Name")
                .ok_or_else(|| {
                    Fault::invalid_ref(
                        "PaymentMethodRef",
                        format!("Invalid Reference Id : PaymentMethod id {id} not found"),
                    )
                })?;
            obj.insert(
                "PaymentMethodRef".into(),
                json!({"value": id, "name": name}),
            );
        }
        let doc = match obj.get("DocNumber") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim() == "AUTO_GENERATE" => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(_) => return Err(Fault::invalid_property("DocNumber must be a string")),
        };
        if let Some(doc) = &doc {
            if doc.chars().count() > 21 {
                return Err(Fault::business(
                    "String length exceeds max: DocNumber may have at most 21 characters",
                )
                .element("DocNumber"));
            }
        }
        let doc = doc.unwrap_or_else(|| {
            let n = self.next_doc;
            self.next_doc += 1;
            n.to_string()
        });
        obj.insert("DocNumber".into(), json!(doc));
        if str_of(obj, "TxnDate").is_none() {
            let today = pacific(now).format("%Y-%m-%d").to_string();
            obj.insert("TxnDate".into(), json!(today));
        }
        for (i, line) in out.iter_mut().enumerate() {
            line.insert("Id".into(), json!((i + 1).to_string()));
            line.insert("LineNum".into(), json!(i + 1));
        }
        let mut lines: Vec<Value> = out.into_iter().map(Value::Object).collect();
        lines.push(
            json!({"Amount": json_amount(total), "DetailType": "SubTotalLineDetail",
                          "SubTotalLineDetail": {}}),
        );
        obj.insert("Line".into(), Value::Array(lines));
        obj.insert("TotalAmt".into(), json_amount(total));
        obj.insert("Balance".into(), json!(0));
        obj.entry("PrintStatus").or_insert(json!("NotSet"));
        obj.entry("EmailStatus").or_insert(json!("NotSet"));
        obj.entry("CurrencyRef").or_insert_with(usd);
        Ok(())
    }

    /// Name required, trimmed, no colon, unique within `kind`.
    fn check_name(
        &self,
        kind: Kind,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
        strict: bool,
        duplicate_detail: &str,
    ) -> Result<String, Fault> {
        trim_field(obj, "Name");
        let name = str_of(obj, "Name").unwrap_or("").to_string();
        if strict {
            if name.is_empty() {
                return Err(Fault::required("Name"));
            }
            if name.contains(':') {
                return Err(Fault::business("Name cannot contain a colon (:)").element("Name"));
            }
            if self.name_taken(kind, "Name", &name, self_id) {
                return Err(Fault::duplicate(duplicate_detail));
            }
        }
        Ok(name)
    }

    fn prepare_item(
        &mut self,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
        strict: bool,
    ) -> Result<(), Fault> {
        let name = self.check_name(
            Kind::Item,
            obj,
            self_id,
            strict,
            "The name supplied already exists. : Another product or service is already \
             using this name. Please use a different name.",
        )?;
        let item_type = str_of(obj, "Type").unwrap_or("Service").to_string();
        if !["Service", "NonInventory", "Inventory", "Category", "Group"]
            .contains(&item_type.as_str())
        {
            return Err(
                Fault::business(format!("Unsupported item Type {item_type}")).element("Type"),
            );
        }
        obj.insert("Type".into(), json!(item_type));
        for key in ["IncomeAccountRef", "ExpenseAccountRef", "AssetAccountRef"] {
            if let Some(id) = ref_value(obj, key) {
                let account = self.ref_name(Kind::Account, &id, "Name").ok_or_else(|| {
                    Fault::invalid_ref(
                        key,
                        format!("Invalid Reference Id : Accounts element id {id} not found"),
                    )
                })?;
                obj.insert(key.into(), json!({"value": id, "name": account}));
            }
        }
        obj.insert("FullyQualifiedName".into(), json!(name));
        obj.entry("Active").or_insert(json!(true));
        obj.entry("Taxable").or_insert(json!(false));
        obj.entry("UnitPrice").or_insert(json!(0));
        Ok(())
    }

    fn prepare_account(
        &mut self,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
        strict: bool,
    ) -> Result<(), Fault> {
        let name = self.check_name(
            Kind::Account,
            obj,
            self_id,
            strict,
            "The name supplied already exists. : Another account is already using this \
             name. Please use a different name.",
        )?;
        let account_type = str_of(obj, "AccountType").map(String::from);
        let Some(account_type) = account_type else {
            return Err(Fault::required("AccountType"));
        };
        let classification = match account_type.as_str() {
            "Bank"
            | "Other Current Asset"
            | "Fixed Asset"
            | "Other Asset"
            | "Accounts Receivable" => "Asset",
            "Income" | "Other Income" => "Revenue",
            "Expense" | "Other Expense" | "Cost of Goods Sold" => "Expense",
            "Equity" => "Equity",
            _ => "Liability",
        };
        obj.entry("Classification").or_insert(json!(classification));
        obj.insert("FullyQualifiedName".into(), json!(name));
        obj.entry("Active").or_insert(json!(true));
        obj.entry("SubAccount").or_insert(json!(false));
        obj.entry("CurrentBalance").or_insert(json!(0));
        obj.entry("CurrentBalanceWithSubAccounts")
            .or_insert(json!(0));
        obj.entry("CurrencyRef").or_insert_with(usd);
        Ok(())
    }

    fn prepare_payment_method(
        &mut self,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
        strict: bool,
    ) -> Result<(), Fault> {
        self.check_name(
            Kind::PaymentMethod,
            obj,
            self_id,
            strict,
            "The name supplied already exists. : Another payment method is already using \
             this name. Please use a different name.",
        )?;
        let method_type = str_of(obj, "Type").unwrap_or("NON_CREDIT_CARD").to_string();
        if method_type != "CREDIT_CARD" && method_type != "NON_CREDIT_CARD" {
            return Err(Fault::business(format!(
                "PaymentMethod Type must be CREDIT_CARD or NON_CREDIT_CARD, not {method_type}"
            ))
            .element("Type"));
        }
        obj.insert("Type".into(), json!(method_type));
        obj.entry("Active").or_insert(json!(true));
        Ok(())
    }

    fn query(&self, sql: &str) -> Result<Value, Fault> {
        let q = parse_query(sql)?;
        let mut rows: Vec<&Value> = self
            .table(q.kind)
            .values()
            .filter(|row| q.conds.iter().all(|c| c.matches(row)))
            .collect();
        if q.count {
            return Ok(json!({"totalCount": rows.len()}));
        }
        if let Some((prop, desc)) = &q.order {
            let numeric = numeric_prop(prop);
            rows.sort_by(|a, b| {
                let o = cmp_fields(
                    resolve(a, prop).as_ref(),
                    resolve(b, prop).as_ref(),
                    numeric,
                );
                if *desc {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        let page: Vec<Value> = rows
            .into_iter()
            .skip(q.start.saturating_sub(1) as usize)
            .take(q.max as usize)
            .cloned()
            .collect();
        if page.is_empty() {
            return Ok(json!({}));
        }
        let n = page.len();
        Ok(json!({ q.kind.name(): page, "startPosition": q.start, "maxResults": n }))
    }
}

// ---------------------------------------------------------------------------------------
// The query language (B.3)

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    /// A string literal: its value and its LIKE pattern (`None` = an unescaped `%`).
    Str(String, Vec<Option<char>>),
    Num(String),
    Star,
    LParen,
    RParen,
    Comma,
    Op(&'static str),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("\"{w}\""),
            Tok::Str(s, _) => format!("string '{s}'"),
            Tok::Num(n) => format!("number {n}"),
            Tok::Star => "\"*\"".into(),
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::Comma => "\",\"".into(),
            Tok::Op(o) => format!("\"{o}\""),
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

fn tokenize(sql: &str) -> Result<Vec<Tok>, Fault> {
    let chars: Vec<char> = sql.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '\'' => {
                i += 1;
                let mut value = String::new();
                let mut pattern = Vec::new();
                let mut closed = false;
                while i < chars.len() {
                    match chars[i] {
                        '\\' => {
                            let Some(&next) = chars.get(i + 1) else {
                                return Err(Fault::parser("a backslash ends the query"));
                            };
                            value.push(next);
                            pattern.push(Some(next));
                            i += 2;
                        }
                        '\'' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        ch => {
                            value.push(ch);
                            pattern.push((ch != '%').then_some(ch));
                            i += 1;
                        }
                    }
                }
                if !closed {
                    return Err(Fault::parser("unterminated string literal"));
                }
                toks.push(Tok::Str(value, pattern));
            }
            '*' => {
                toks.push(Tok::Star);
                i += 1;
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            '=' => {
                toks.push(Tok::Op("="));
                i += 1;
            }
            '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let op = match (c, next) {
                    ('<', Some('=')) => "<=",
                    ('>', Some('=')) => ">=",
                    ('<', Some('>')) => {
                        return Err(Fault::parser("operator <> is not supported"));
                    }
                    ('<', _) => "<",
                    _ => ">",
                };
                i += op.len();
                toks.push(Tok::Op(op));
            }
            '!' => return Err(Fault::parser("operator != is not supported")),
            '"' => {
                return Err(Fault::parser(
                    "double quotes are not allowed; quote strings with single quotes",
                ))
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                toks.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                toks.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => {
                return Err(Fault::parser(format!(
                    "unexpected character '{other}' at column {}",
                    i + 1
                )))
            }
        }
    }
    Ok(toks)
}

#[derive(Debug, Clone)]
enum Lit {
    Str(String, Vec<Option<char>>),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CondOp {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
    In,
    Like,
}

#[derive(Debug, Clone)]
struct Cond {
    prop: String,
    op: CondOp,
    values: Vec<Lit>,
}

#[derive(Debug)]
struct Query {
    count: bool,
    kind: Kind,
    conds: Vec<Cond>,
    order: Option<(String, bool)>,
    start: u64,
    max: u64,
}

const RESERVED: [&str; 14] = [
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "ORDERBY",
    "ORDER",
    "ASC",
    "DESC",
    "STARTPOSITION",
    "MAXRESULTS",
    "IN",
    "LIKE",
    "JOIN",
];

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.peek().is_some_and(|t| t.is_kw(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), Fault> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected {kw}")))
        }
    }

    fn expect(&mut self, tok: Tok) -> Result<(), Fault> {
        if self.peek() == Some(&tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected {}", tok.describe())))
        }
    }

    fn unexpected(&self, wanted: &str) -> Fault {
        match self.peek() {
            Some(t) => Fault::parser(format!("Encountered {} ({wanted})", t.describe())),
            None => Fault::parser(format!("Encountered the end of the query ({wanted})")),
        }
    }

    fn integer(&mut self, clause: &str) -> Result<u64, Fault> {
        match self.next() {
            Some(Tok::Num(n)) => n
                .parse::<u64>()
                .map_err(|_| Fault::parser(format!("{clause} needs a whole number, not {n}"))),
            _ => {
                self.pos -= 1;
                Err(self.unexpected(&format!("{clause} needs a number")))
            }
        }
    }

    fn property(&mut self, kind: Kind) -> Result<String, Fault> {
        match self.next() {
            Some(Tok::Word(w)) if !RESERVED.iter().any(|r| w.eq_ignore_ascii_case(r)) => kind
                .queryable()
                .iter()
                .find(|p| p.eq_ignore_ascii_case(&w))
                .map(|p| p.to_string())
                .ok_or_else(|| {
                    Fault::invalid_query(format!(
                        "property {w} is not queryable for entity {}",
                        kind.name()
                    ))
                }),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("expected a property name"))
            }
        }
    }

    fn literal(&mut self) -> Result<Lit, Fault> {
        match self.next() {
            Some(Tok::Str(s, p)) => Ok(Lit::Str(s, p)),
            Some(Tok::Num(n)) => n
                .parse()
                .map(Lit::Num)
                .map_err(|_| Fault::parser(format!("bad number {n}"))),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Lit::Bool(true)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Lit::Bool(false)),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("expected a value: 'string', number, true or false"))
            }
        }
    }

    fn condition(&mut self, kind: Kind) -> Result<Cond, Fault> {
        let prop = self.property(kind)?;
        let op = match self.next() {
            Some(Tok::Op("=")) => CondOp::Eq,
            Some(Tok::Op("<")) => CondOp::Lt,
            Some(Tok::Op(">")) => CondOp::Gt,
            Some(Tok::Op("<=")) => CondOp::Le,
            Some(Tok::Op(">=")) => CondOp::Ge,
            Some(t) if t.is_kw("IN") => CondOp::In,
            Some(t) if t.is_kw("LIKE") => CondOp::Like,
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("expected an operator: = < > <= >= IN LIKE"));
            }
        };
        let mut values = Vec::new();
        if op == CondOp::In {
            self.expect(Tok::LParen)?;
            loop {
                values.push(self.literal()?);
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    continue;
                }
                self.expect(Tok::RParen)?;
                break;
            }
        } else {
            let value = self.literal()?;
            if op == CondOp::Like && !matches!(value, Lit::Str(..)) {
                return Err(Fault::parser("LIKE needs a quoted string"));
            }
            values.push(value);
        }
        Ok(Cond { prop, op, values })
    }
}

fn parse_query(sql: &str) -> Result<Query, Fault> {
    let mut p = Parser {
        toks: tokenize(sql)?,
        pos: 0,
    };
    if let Some(t) = p.toks.iter().find(|t| t.is_kw("JOIN")) {
        return Err(Fault::parser(format!("{} is not supported", t.describe())));
    }
    if let Some(t) = p.toks.iter().find(|t| t.is_kw("OR")) {
        return Err(Fault::parser(format!(
            "{} is not supported; conditions combine with AND only",
            t.describe()
        )));
    }
    p.expect_kw("SELECT")?;
    let count = if p.eat_kw("COUNT") {
        p.expect(Tok::LParen)?;
        p.expect(Tok::Star)?;
        p.expect(Tok::RParen)?;
        true
    } else if p.peek() == Some(&Tok::Star) {
        p.pos += 1;
        false
    } else {
        return Err(p.unexpected("only SELECT * and SELECT COUNT(*) are supported"));
    };
    p.expect_kw("FROM")?;
    let kind = match p.next() {
        Some(Tok::Word(w)) => {
            Kind::from_name(&w).ok_or_else(|| Fault::parser(format!("unknown entity \"{w}\"")))?
        }
        _ => {
            p.pos -= 1;
            return Err(p.unexpected("expected an entity name"));
        }
    };
    let mut conds = Vec::new();
    if p.eat_kw("WHERE") {
        conds.push(p.condition(kind)?);
        while p.eat_kw("AND") {
            conds.push(p.condition(kind)?);
        }
    }
    let mut order = None;
    let ordered = if p.eat_kw("ORDERBY") {
        true
    } else if p.eat_kw("ORDER") {
        p.expect_kw("BY")?;
        true
    } else {
        false
    };
    if ordered {
        let prop = p.property(kind)?;
        let desc = if p.eat_kw("DESC") {
            true
        } else {
            p.eat_kw("ASC");
            false
        };
        order = Some((prop, desc));
    }
    let mut start = None;
    let mut max = None;
    loop {
        if start.is_none() && p.eat_kw("STARTPOSITION") {
            start = Some(p.integer("STARTPOSITION")?);
        } else if max.is_none() && p.eat_kw("MAXRESULTS") {
            max = Some(p.integer("MAXRESULTS")?);
        } else {
            break;
        }
    }
    if p.peek().is_some() {
        return Err(p.unexpected("expected the end of the query"));
    }
    let start = start.unwrap_or(1);
    if start == 0 {
        return Err(Fault::invalid_query("STARTPOSITION starts at 1"));
    }
    let max = max.unwrap_or(100);
    if max == 0 {
        return Err(Fault::invalid_query("MAXRESULTS must be at least 1"));
    }
    Ok(Query {
        count,
        kind,
        conds,
        order,
        start,
        max: max.min(1000),
    })
}

/// Ids and `Ref`s compare numerically when both sides are numbers.
fn numeric_prop(prop: &str) -> bool {
    prop == "Id" || prop == "SyncToken" || prop.ends_with("Ref")
}

/// The value a property path names; a `Ref` gives its `value`, an email its `Address`.
fn resolve(row: &Value, prop: &str) -> Option<Value> {
    let mut cur = row;
    for part in prop.split('.') {
        let obj = cur.as_object()?;
        cur = obj.get(part).or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(part))
                .map(|(_, v)| v)
        })?;
    }
    match cur {
        Value::Object(m) => m.get("value").or_else(|| m.get("Address")).cloned(),
        Value::Null => None,
        v => Some(v.clone()),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Orders two property values: numbers numerically, times as instants, text
/// ASCII-case-insensitively; a missing value sorts first.
fn cmp_fields(a: Option<&Value>, b: Option<&Value>, numeric: bool) -> Ordering {
    let (a, b) = match (a, b) {
        (None, None) => return Ordering::Equal,
        (None, Some(_)) => return Ordering::Less,
        (Some(_), None) => return Ordering::Greater,
        (Some(a), Some(b)) => (a, b),
    };
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(_), _) | (_, Value::Number(_)) => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => cmp_text(&text_of(a), &text_of(b), numeric),
        },
        _ => cmp_text(&text_of(a), &text_of(b), numeric),
    }
}

fn cmp_text(a: &str, b: &str, numeric: bool) -> Ordering {
    if numeric {
        if let (Ok(x), Ok(y)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
            return x.partial_cmp(&y).unwrap_or(Ordering::Equal);
        }
    }
    if let (Ok(x), Ok(y)) = (
        DateTime::parse_from_rfc3339(a),
        DateTime::parse_from_rfc3339(b),
    ) {
        return x.cmp(&y);
    }
    a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase())
}

fn like(text: &str, pattern: &[Option<char>]) -> bool {
    let text: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let pat: Vec<Option<char>> = pattern
        .iter()
        .map(|p| p.map(|c| c.to_ascii_lowercase()))
        .collect();
    // Greedy matching with backtracking to the last `%`.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(Some(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(None) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(Option::is_none)
}

impl Cond {
    fn matches(&self, row: &Value) -> bool {
        let Some(field) = resolve(row, &self.prop) else {
            return false;
        };
        let numeric = numeric_prop(&self.prop);
        let ord = |lit: &Lit| -> Option<Ordering> {
            match (lit, &field) {
                (Lit::Bool(b), Value::Bool(f)) => Some(f.cmp(b)),
                (Lit::Bool(b), Value::String(s)) => Some(s.as_str().cmp(&b.to_string()[..])),
                (Lit::Bool(_), _) => None,
                (Lit::Num(n), f) => number(f).and_then(|x| x.partial_cmp(n)),
                (Lit::Str(s, _), Value::Bool(f)) => Some(f.to_string()[..].cmp(s.as_str())),
                (Lit::Str(s, _), f) => Some(cmp_fields(
                    Some(f),
                    Some(&Value::String(s.clone())),
                    numeric,
                )),
            }
        };
        match self.op {
            CondOp::Like => match self.values.first() {
                Some(Lit::Str(_, pattern)) => like(&text_of(&field), pattern),
                _ => false,
            },
            CondOp::Eq | CondOp::In => self.values.iter().any(|v| ord(v) == Some(Ordering::Equal)),
            CondOp::Lt => self.values.iter().any(|v| ord(v) == Some(Ordering::Less)),
            CondOp::Gt => self
                .values
                .iter()
                .any(|v| ord(v) == Some(Ordering::Greater)),
            CondOp::Le => self
                .values
                .iter()
                .any(|v| matches!(ord(v), Some(Ordering::Less | Ordering::Equal))),
            CondOp::Ge => self
                .values
                .iter()
                .any(|v| matches!(ord(v), Some(Ordering::Greater | Ordering::Equal))),
        }
    }
}
