//! The one QuickBooks connection of a deployment (Intuit OAuth 2.0): the authorization-code
//! flow with a `state` bound to the signed-in session, tokens sealed in Redis, refresh by one
//! process at a time, and revoke on disconnect.
//!
//! Refresh rules: Intuit rotates the refresh token and the previous one dies 24 h after
//! its replacement, so two processes must never refresh with the same token and lose the
//! newer one. A Redis lock (`SET NX PX`) admits one refresher; it re-reads the tokens under
//! the lock (another process may have just refreshed), writes the rotated tokens before
//! anyone uses the new access token, and releases the lock only if it still owns it.
//! `invalid_grant` marks the connection "reconnect needed" instead of failing for ever.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::keys::Keys;
use crate::qbo::config::QboSettings;
use crate::qbo::tokens::Tokens;
use crate::qbo::QboError;
use crate::redis_conn::RedisPool;

/// The only scope we ask for: the QuickBooks Accounting API.
pub const SCOPE: &str = "com.intuit.quickbooks.accounting";
/// How long a `state` waits for its callback.
pub const STATE_TTL_SECS: u64 = 600;
/// A refresh waiting on another process's gives up after this long.
const REFRESH_WAIT: Duration = Duration::from_secs(20);

const RELEASE_LOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Intuit's extra token-endpoint field: how long the refresh token lives, in seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IntuitFields {
    #[serde(default)]
    pub x_refresh_token_expires_in: Option<i64>,
}
impl ExtraTokenFields for IntuitFields {}

type TokenAnswer = StandardTokenResponse<IntuitFields, BasicTokenType>;
type OAuthClient = Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The endpoints of Intuit's discovery document; every other OAuth URL is taken from it.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    authorization_endpoint: String,
    token_endpoint: String,
    revocation_endpoint: String,
}

/// What the status endpoint and the badge show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub configured: bool,
    pub connected: bool,
    pub environment: Option<&'static str>,
    pub realm_id: Option<String>,
    pub access_expires_at: Option<String>,
    pub refresh_expires_at: Option<String>,
    pub reconnect_needed: bool,
    /// Why a reconnect is needed, in words.
    pub message: Option<String>,
}

impl Status {
    pub fn not_configured() -> Self {
        Self {
            configured: false,
            connected: false,
            environment: None,
            realm_id: None,
            access_expires_at: None,
            refresh_expires_at: None,
            reconnect_needed: false,
            message: Some(
                "QuickBooks is not set up on this server (QBO_CLIENT_ID is not set)".into(),
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn rfc3339(secs: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.to_rfc3339())
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Runs an OAuth request through our reqwest client (no redirects followed: the token endpoint
/// answers directly, and following one would leak the code).
fn send_oauth(
    http: reqwest::Client,
    req: oauth2::HttpRequest,
) -> Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send>> {
    Box::pin(async move {
        let (parts, body) = req.into_parts();
        let resp = http
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| HttpError(format!("Intuit cannot be reached: {}", e.without_url())))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if !status.is_success() {
            tracing::warn!(
                status = status.as_u16(),
                intuit_tid = headers
                    .get("intuit_tid")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
                "qbo: Intuit OAuth answered with an error"
            );
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| HttpError(format!("Intuit's answer was cut off: {}", e.without_url())))?;
        let mut out = oauth2::http::Response::builder().status(status);
        if let Some(h) = out.headers_mut() {
            *h = headers;
        }
        out.body(bytes.to_vec())
            .map_err(|e| HttpError(format!("Intuit's answer cannot be read: {e}")))
    })
}

/// Our reqwest client as oauth2's HTTP client (a named type keeps the futures `Send`).
struct OAuthHttp(reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp {
    type Error = HttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        send_oauth(self.0.clone(), request)
    }
}

#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    settings: QboSettings,
    http: reqwest::Client,
    redis: RedisPool,
    keys: Keys,
    discovery: tokio::sync::OnceCell<Discovery>,
}

impl Connection {
    pub fn new(settings: QboSettings, redis: impl Into<RedisPool>, keys: Keys) -> Self {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                settings,
                http,
                redis: redis.into(),
                keys,
                discovery: tokio::sync::OnceCell::new(),
            }),
        }
    }

    pub fn settings(&self) -> &QboSettings {
        &self.inner.settings
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn redis(&self) -> &RedisPool {
        &self.inner.redis
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    async fn discovery(&self) -> Result<&Discovery, QboError> {
        self.inner
            .discovery
            .get_or_try_init(|| async {
                let url = &self.inner.settings.discovery_url;
                let resp = self
                    .inner
                    .http
                    .get(url)
                    .header("Accept", "application/json")
                    .send()
                    .await
                    .map_err(|e| {
                        QboError::Unavailable(format!("Intuit's discovery document: {e}"))
                    })?;
                if !resp.status().is_success() {
                    return Err(QboError::Unavailable(format!(
                        "Intuit's discovery document answered {}",
                        resp.status()
                    )));
                }
                resp.json::<Discovery>()
                    .await
                    .map_err(|e| QboError::Decode(format!("Intuit's discovery document: {e}")))
            })
            .await
    }

    async fn oauth(&self) -> Result<OAuthClient, QboError> {
        let d = self.discovery().await?;
        let s = &self.inner.settings;
        let bad = |what: &str, e: oauth2::url::ParseError| {
            QboError::OAuth(format!("{what} is not a valid URL: {e}"))
        };
        Ok(Client::new(ClientId::new(s.client_id.clone()))
            .set_client_secret(ClientSecret::new(s.client_secret.clone()))
            .set_auth_uri(
                AuthUrl::new(d.authorization_endpoint.clone())
                    .map_err(|e| bad("authorization_endpoint", e))?,
            )
            .set_token_uri(
                TokenUrl::new(d.token_endpoint.clone()).map_err(|e| bad("token_endpoint", e))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(s.redirect_uri.clone()).map_err(|e| bad("QBO_REDIRECT_URI", e))?,
            ))
    }

    /// Intuit's authorization URL; the `state` it carries is remembered for 10 minutes, bound
    /// to a digest of `binding` (a secret the browser that asked keeps: the web's OAuth cookie).
    pub async fn authorize_url(&self, binding: &str) -> Result<String, QboError> {
        let client = self.oauth().await?;
        let (url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new(SCOPE.into()))
            .url();
        let mut conn = self.inner.redis.get().await?;
        let _: () = conn
            .set_ex(
                self.inner.keys.qbo_oauth_state(state.secret()),
                digest(binding).to_vec(),
                STATE_TTL_SECS,
            )
            .await?;
        Ok(url.to_string())
    }

    /// The callback: checks `state` against `binding` (one use only), trades the code for
    /// tokens and stores them.
    pub async fn complete(
        &self,
        binding: &str,
        state: Option<&str>,
        code: Option<&str>,
        realm_id: Option<&str>,
        error: Option<&str>,
    ) -> Result<Status, QboError> {
        let state = state.filter(|s| !s.is_empty()).ok_or(QboError::BadState)?;
        // Tokens are base64url; anything else never came from us.
        if state.len() > 128
            || !state
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(QboError::BadState);
        }
        let mut conn = self.inner.redis.get().await?;
        let bound: Option<Vec<u8>> = redis::cmd("GETDEL")
            .arg(self.inner.keys.qbo_oauth_state(state))
            .query_async(&mut conn)
            .await?;
        let expected = digest(binding);
        match bound {
            Some(b) if bool::from(b.as_slice().ct_eq(&expected)) => {}
            _ => return Err(QboError::BadState),
        }
        if let Some(error) = error {
            return Err(QboError::Denied(match error {
                "access_denied" => "the QuickBooks connection was declined in Intuit's page".into(),
                other => format!("Intuit refused the connection ({other})"),
            }));
        }
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| QboError::OAuth("Intuit's callback carried no code".into()))?;
        let realm_id = realm_id
            .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| {
                QboError::OAuth("Intuit's callback carried no company id (realmId)".into())
            })?;
        let client = self.oauth().await?;
        let http = OAuthHttp(self.inner.http.clone());
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .request_async(&http)
            .await
            .map_err(token_error)?;
        let tokens = tokens_from(&answer, realm_id.to_string(), None);
        self.save(&tokens).await?;
        tracing::info!(
            realm_id,
            environment = self.inner.settings.environment.as_str(),
            "qbo: connected"
        );
        Ok(self.status_of(Some(&tokens)))
    }

    pub async fn load(&self) -> Result<Option<Tokens>, QboError> {
        let mut conn = self.inner.redis.get().await?;
        let sealed: Option<String> = conn.get(self.inner.keys.qbo_connection()).await?;
        match sealed {
            None => Ok(None),
            Some(s) => Ok(Some(self.inner.settings.cipher.open(&s)?)),
        }
    }

    async fn save(&self, tokens: &Tokens) -> Result<(), QboError> {
        let sealed = self.inner.settings.cipher.seal(tokens)?;
        let mut conn = self.inner.redis.get().await?;
        let _: () = conn.set(self.inner.keys.qbo_connection(), sealed).await?;
        Ok(())
    }

    pub async fn status(&self) -> Result<Status, QboError> {
        let tokens = match self.load().await {
            Ok(t) => t,
            Err(QboError::Token(e)) => {
                return Ok(Status {
                    reconnect_needed: true,
                    message: Some(e.to_string()),
                    ..self.status_of(None)
                })
            }
            Err(e) => return Err(e),
        };
        Ok(self.status_of(tokens.as_ref()))
    }

    fn status_of(&self, tokens: Option<&Tokens>) -> Status {
        let env = Some(self.inner.settings.environment.as_str());
        match tokens {
            None => Status {
                configured: true,
                connected: false,
                environment: env,
                realm_id: None,
                access_expires_at: None,
                refresh_expires_at: None,
                reconnect_needed: false,
                message: None,
            },
            Some(t) => {
                let expired = t.refresh_expires_at <= now_secs();
                let reconnect = t.reconnect.clone().or_else(|| {
                    expired.then(|| {
                        "the QuickBooks authorization has expired; reconnect QuickBooks".into()
                    })
                });
                Status {
                    configured: true,
                    connected: reconnect.is_none(),
                    environment: env,
                    realm_id: Some(t.realm_id.clone()),
                    access_expires_at: rfc3339(t.access_expires_at),
                    refresh_expires_at: rfc3339(t.refresh_expires_at),
                    reconnect_needed: reconnect.is_some(),
                    message: reconnect,
                }
            }
        }
    }

    /// Tokens good for at least the refresh margin, refreshing first when needed.
    pub async fn access(&self) -> Result<Tokens, QboError> {
        let t = self.load().await?.ok_or(QboError::NotConnected)?;
        if let Some(why) = t.reconnect {
            return Err(QboError::ReconnectNeeded(why));
        }
        if t.needs_refresh(now_secs()) {
            return self.refresh(&t.access_token).await;
        }
        Ok(t)
    }

    /// Refreshes because `stale_access` is (about to be) refused. Only one process refreshes;
    /// the others wait for its result.
    pub async fn refresh(&self, stale_access: &str) -> Result<Tokens, QboError> {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let lock = self.inner.keys.qbo_refresh_lock();
        let lock_ms = self.inner.settings.hold_limit().as_millis() as u64;
        let started = std::time::Instant::now();
        loop {
            let mut conn = self.inner.redis.get().await?;
            let got: Option<String> = redis::cmd("SET")
                .arg(&lock)
                .arg(&owner)
                .arg("NX")
                .arg("PX")
                .arg(lock_ms)
                .query_async(&mut conn)
                .await?;
            drop(conn);
            if got.is_some() {
                let result = self.refresh_locked(stale_access).await;
                let mut conn = self.inner.redis.get().await?;
                let _: i64 = redis::Script::new(RELEASE_LOCK)
                    .key(&lock)
                    .arg(&owner)
                    .invoke_async(&mut conn)
                    .await?;
                return result;
            }
            tokio::time::sleep(Duration::from_millis(50 + fastrand::u64(0..50))).await;
            if let Some(t) = self.load().await? {
                if let Some(why) = t.reconnect {
                    return Err(QboError::ReconnectNeeded(why));
                }
                if t.access_token != stale_access && !t.needs_refresh(now_secs()) {
                    return Ok(t);
                }
            }
            if started.elapsed() > REFRESH_WAIT {
                return Err(QboError::Unavailable(
                    "another process is refreshing the QuickBooks tokens and has not finished"
                        .into(),
                ));
            }
        }
    }

    async fn refresh_locked(&self, stale_access: &str) -> Result<Tokens, QboError> {
        let t = self.load().await?.ok_or(QboError::NotConnected)?;
        if let Some(why) = t.reconnect {
            return Err(QboError::ReconnectNeeded(why));
        }
        if t.access_token != stale_access && !t.needs_refresh(now_secs()) {
            // Another process refreshed while we waited for the lock.
            return Ok(t);
        }
        let client = self.oauth().await?;
        let http = OAuthHttp(self.inner.http.clone());
        let refresh = RefreshToken::new(t.refresh_token.clone());
        let answer = client
            .exchange_refresh_token(&refresh)
            .request_async(&http)
            .await;
        match answer {
            Ok(answer) => {
                let fresh = tokens_from(&answer, t.realm_id.clone(), Some(&t));
                // Persist the rotated refresh token before the new access token is used.
                self.save(&fresh).await?;
                tracing::info!(realm_id = %t.realm_id, "qbo: tokens refreshed");
                Ok(fresh)
            }
            Err(e) => {
                let e = token_error(e);
                if let QboError::ReconnectNeeded(why) = &e {
                    let mut dead = t.clone();
                    dead.reconnect = Some(why.clone());
                    self.save(&dead).await?;
                    tracing::warn!(realm_id = %t.realm_id, "qbo: refresh refused; reconnect needed");
                    crate::audit::AuditLog::untrimmed(
                        self.inner.redis.clone(),
                        self.inner.keys.clone(),
                    )
                    .record(
                        crate::audit::AuditKind::QboReconnectNeeded,
                        &crate::audit::Actor::default(),
                        serde_json::json!({"reason": why}),
                    )
                    .await;
                }
                Err(e)
            }
        }
    }

    /// Revokes the grant at Intuit (best effort) and forgets the tokens. Returns whether
    /// Intuit confirmed the revoke.
    pub async fn disconnect(&self) -> Result<bool, QboError> {
        let tokens = match self.load().await {
            Ok(t) => t,
            Err(QboError::Token(_)) => None,
            Err(e) => return Err(e),
        };
        let mut revoked = false;
        if let Some(t) = tokens {
            // Revoke as Intuit's SDKs send it (JSON body, Basic auth). Done by hand: the oauth2
            // crate refuses a non-https revocation URL, which the local fake has.
            match self.discovery().await {
                Ok(d) => {
                    let s = &self.inner.settings;
                    let answer = self
                        .inner
                        .http
                        .post(&d.revocation_endpoint)
                        .basic_auth(&s.client_id, Some(&s.client_secret))
                        .header("Accept", "application/json")
                        .json(&serde_json::json!({ "token": t.refresh_token }))
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status().is_success() => revoked = true,
                        Ok(r) => tracing::warn!(
                            status = r.status().as_u16(),
                            intuit_tid = r
                                .headers()
                                .get("intuit_tid")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or(""),
                            "qbo: Intuit refused the revoke"
                        ),
                        Err(e) => tracing::warn!("qbo: revoke not sent: {e}"),
                    }
                }
                Err(e) => tracing::warn!("qbo: revoke skipped: {e}"),
            }
        }
        let mut conn = self.inner.redis.get().await?;
        let _: () = conn.del(self.inner.keys.qbo_connection()).await?;
        tracing::info!(revoked, "qbo: disconnected");
        Ok(revoked)
    }
}

fn tokens_from(answer: &TokenAnswer, realm_id: String, previous: Option<&Tokens>) -> Tokens {
    let now = now_secs();
    let access_in = answer
        .expires_in()
        .map_or(3600, |d| d.as_secs().min(i64::MAX as u64) as i64);
    let refresh_token = answer
        .refresh_token()
        .map(|r| r.secret().clone())
        .or_else(|| previous.map(|p| p.refresh_token.clone()))
        .unwrap_or_default();
    let refresh_expires_at = match answer.extra_fields().x_refresh_token_expires_in {
        Some(secs) => now + secs,
        None => previous.map_or(now + 100 * 24 * 3600, |p| p.refresh_expires_at),
    };
    Tokens {
        realm_id,
        access_token: answer.access_token().secret().clone(),
        refresh_token,
        access_expires_at: now + access_in,
        refresh_expires_at,
        reconnect: None,
    }
}

fn token_error(e: RequestTokenError<HttpError, BasicErrorResponse>) -> QboError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::InvalidGrant => QboError::ReconnectNeeded(
                "Intuit no longer accepts the saved QuickBooks authorization (it expired, was \
                 replaced or was revoked); reconnect QuickBooks"
                    .into(),
            ),
            BasicErrorResponseType::InvalidClient => QboError::OAuth(
                "Intuit refused this app's keys (invalid_client); check QBO_CLIENT_ID and \
                 QBO_CLIENT_SECRET"
                    .into(),
            ),
            other => QboError::OAuth(format!("Intuit refused the token request ({other})")),
        },
        RequestTokenError::Request(e) => QboError::Unavailable(e.to_string()),
        RequestTokenError::Parse(e, _) => {
            QboError::Decode(format!("Intuit's token answer cannot be read: {e}"))
        }
        RequestTokenError::Other(e) => QboError::OAuth(e),
    }
}
