//! A local contract fake of Intuit OAuth 2.0 and the QuickBooks Online Accounting API v3:
//! the OAuth endpoints, the accounting API's envelopes and faults, its query subset and the
//! rules of the entities this app writes, as Intuit's services behave.
//!
//! [`FakeQbo::start`] runs an actix-web server on a free 127.0.0.1 port in a background
//! thread; it stops when dropped. One server plays every Intuit host:
//!
//! | route | role |
//! |---|---|
//! | `GET /.well-known/openid_sandbox_configuration`, `.../openid_configuration` | discovery (either spelling, trailing `/` or not) |
//! | `GET /connect/oauth2` | authorization request, redirects to `redirect_uri` with `code`, `state`, `realmId` |
//! | `POST /oauth2/v1/tokens/bearer` | token endpoint, both grants, rotation with a grace window |
//! | `POST /v2/oauth2/tokens/revoke` | revoke, JSON or form body |
//! | `GET /v1/openid_connect/userinfo`, `GET /op/v1/jwks` | OpenID odds and ends |
//! | `/v3/company/{realm}/...` | the accounting API: query, create, read, update, delete, void |
//! | `POST /v3/company/{realm}/upload` | multipart attachment upload (`file_metadata_NN` + `file_content_NN` pairs) |
//! | `GET /attachments/{id}` | an uploaded file's bytes: where its `TempDownloadUri` points |
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
//! | `DelayAfterWrite(d)` | performs the request, then holds the answer back `d` (a client that dies meanwhile never learns it was done) |
//!
//! Where things are:
//! - this file: the public types, start-up and the routes; `control`: [`FakeQbo`]'s test
//!   controls; `state`: the shared state and the fake's clock; `http`: forms, headers, answers;
//! - `oauth`: the Intuit OAuth endpoints;
//! - `api`: the accounting API's front door (bearer, realm, injections, `requestid` memory);
//!   `gate`: its 429 gate (concurrency and rate buckets); `fault`: the error bodies;
//! - `entity`: the entity kinds; `company`: the store and its read, create, update, delete
//!   and void; `seed`: the starting data; `customer`, `receipt`, `lists` (Item, Account,
//!   PaymentMethod), `deposit` (Deposit; it freezes the receipts it holds): each entity's
//!   rules; `attachable`: Attachable's rules, the multipart upload and the download link;
//! - `query`: parsing the query language; `query_run`: running a query over the store.

mod api;
mod attachable;
mod company;
mod control;
mod customer;
mod deposit;
mod entity;
mod fault;
mod gate;
mod http;
mod lists;
mod oauth;
mod query;
mod query_run;
mod receipt;
mod seed;
mod state;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse};

use crate::server::FakeServer;
use http::{param, parse_form, plain};
use state::{random_hex, Shared};

/// The client id the fake accepts by default.
pub const CLIENT_ID: &str = "fake-client-id";
/// The client secret the fake accepts by default.
pub const CLIENT_SECRET: &str = "fake-client-secret";
/// The company (realm) id of the fake by default.
pub const REALM_ID: &str = "9130355377388096";

/// How the fake is set up.
#[derive(Debug, Clone)]
pub struct FakeQboOptions {
    pub client_id: String,
    pub client_secret: String,
    /// The only company; every grant is for it.
    pub realm_id: String,
    /// When set, `/connect/oauth2` and the token endpoint require exactly this `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// Access-token lifetime (Intuit's: 3600 s, one hour).
    pub access_ttl: Duration,
    /// Refresh-token lifetime, rolling: each use pushes it forward (Intuit's SDK mocks:
    /// 8 726 400 s, 101 days).
    pub refresh_ttl: Duration,
    /// How long a rotated refresh token keeps working after its replacement is issued (24 h).
    pub rotation_grace: Duration,
    /// How long a `requestid` is remembered (UNCONFIRMED upstream; 24 h).
    pub requestid_ttl: Duration,
    /// Token bucket per realm, per minute (Intuit's limit: 500).
    pub per_minute: u32,
    /// Token bucket per realm, per second (Intuit's limit: 10).
    pub per_second: u32,
    /// Concurrent API requests per realm; more get 429/3001 (Intuit's limit: 10).
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
    DelayAfterWrite(Duration),
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
        let shared = Arc::new(Shared::new(opts, format!("http://127.0.0.1:{port}")));
        let data = web::Data::from(shared.clone());
        let server = FakeServer::start("fake-qbo", listener, move || {
            let logger = data.clone();
            App::new()
                .app_data(data.clone())
                // Room for a 100 MB attachment plus its framing, so the upload's own size
                // check answers rather than the payload limit.
                .app_data(web::PayloadConfig::new(110 * 1024 * 1024))
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
                    web::get().to(oauth::discovery),
                )
                .route(
                    "/.well-known/openid_sandbox_configuration/",
                    web::get().to(oauth::discovery),
                )
                .route(
                    "/.well-known/openid_configuration",
                    web::get().to(oauth::discovery),
                )
                .route(
                    "/.well-known/openid_configuration/",
                    web::get().to(oauth::discovery),
                )
                .route("/connect/oauth2", web::get().to(oauth::authorize))
                .route("/oauth2/v1/tokens/bearer", web::post().to(oauth::token))
                .route("/v2/oauth2/tokens/revoke", web::post().to(oauth::revoke))
                .route(
                    "/v1/openid_connect/userinfo",
                    web::get().to(oauth::userinfo),
                )
                .route("/op/v1/jwks", web::get().to(oauth::jwks))
                .route(
                    "/v3/company/{realm}/{tail:.*}",
                    web::route().to(api::handle),
                )
                .route("/attachments/{id}", web::get().to(attachable::download))
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
}

async fn unknown_route(req: HttpRequest) -> HttpResponse {
    plain(
        StatusCode::NOT_FOUND,
        format!("the fake QBO has no route {} {}", req.method(), req.path()),
    )
}
