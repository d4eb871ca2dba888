//! Sign-in for one organisation: one password (`APP_PASSWORD`), compared in constant time; a
//! signed session cookie whose session lives in Redis (so sign-out and restarts behave, and
//! every web dyno sees it); failed attempts limited per client address.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, CookieJar, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{get, post, web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use fom_core::audit::AuditKind;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error_code::ErrorCode;
use crate::http::ApiError;
use crate::pages;
use crate::state::AppState;

pub const COOKIE: &str = "fom_session";

/// The signed-in session of this request (put there by [`require_session`]).
#[derive(Clone, Debug)]
pub struct Session;

/// The client's address: Heroku's router appends the address it saw as the last
/// `X-Forwarded-For` entry (earlier entries are whatever the client claimed).
pub fn client_addr(req: &HttpRequest, trust_proxy: bool) -> String {
    if trust_proxy {
        if let Some(last) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            return last.to_string();
        }
    }
    req.peer_addr()
        .map_or_else(|| "unknown".into(), |a| a.ip().to_string())
}

/// The session id in the request's cookie, when its signature holds.
pub fn signed_session_id(req: &HttpRequest, state: &AppState) -> Option<String> {
    let cookie = req.cookie(COOKIE)?;
    let mut jar = CookieJar::new();
    jar.add_original(cookie.into_owned());
    let verified = jar.signed(&state.cfg.session_key).get(COOKIE)?;
    Some(verified.value().to_string())
}

/// The live session of a request, renewing its expiry (sliding).
pub async fn current_session(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<Session>, ApiError> {
    let Some(id) = signed_session_id(req, state) else {
        return Ok(None);
    };
    Ok(state.sessions.touch(&id).await?.then_some(Session))
}

/// Every route behind it needs a session: API paths answer 401, pages redirect to sign-in.
pub async fn require_session(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        let e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "no state",
        );
        return Ok(req.into_response(e.error_response()));
    };
    let session = match current_session(req.request(), &state).await {
        Ok(s) => s,
        Err(e) => return Ok(req.into_response(e.error_response())),
    };
    match session {
        Some(s) => {
            req.extensions_mut().insert(s);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        None if req.path().starts_with("/api/") => {
            let e = ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::SignInRequired,
                "sign in first (POST /login)",
            );
            Ok(req.into_response(e.error_response()))
        }
        None => {
            let target = format!("/login?next={}", url_escape(req.path()));
            let res = HttpResponse::SeeOther()
                .insert_header((header::LOCATION, target))
                .finish();
            Ok(req.into_response(res))
        }
    }
}

fn url_escape(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Only a local path may follow sign-in: one leading `/`, and no control character, whitespace
/// or backslash anywhere, since browsers drop tabs and newlines from a `Location` and read `\`
/// as `/` (`/<TAB>/evil.example` would become `//evil.example`, another site). Anything else
/// goes to `/`; a CR or LF can no longer reach the header either.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.len() <= 2048
                && !n
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || c == '\\') =>
        {
            n.into()
        }
        _ => "/".into(),
    }
}

fn password_matches(given: &str, expected: &str) -> bool {
    // Equal-length digests: the comparison time reveals neither content nor length.
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[get("/login")]
pub async fn login_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<NextQuery>,
) -> Result<HttpResponse, ApiError> {
    if current_session(&req, &state).await?.is_some() {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, safe_next(q.next.as_deref())))
            .finish());
    }
    Ok(pages::login(StatusCode::OK, None, q.next.as_deref()))
}

#[derive(Deserialize)]
pub struct LoginForm {
    password: String,
    next: Option<String>,
}

#[post("/login")]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ApiError> {
    let client = client_addr(&req, state.cfg.trust_proxy);
    if let Some(wait) = state.sign_in.attempt(&client).await? {
        let wait = wait.as_secs();
        tracing::warn!("sign-in refused: too many failed attempts from one address");
        let details = serde_json::json!({"reason": "too many failed attempts"});
        crate::audit::record(&req, &state, AuditKind::SignInFailed, details).await;
        let mut page = pages::login(
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many wrong passwords. Try again in {} minutes.",
                wait.div_ceil(60)
            )),
            form.next.as_deref(),
        );
        if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
            page.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(page);
    }
    if !password_matches(&form.password, &state.cfg.app_password) {
        tracing::warn!("sign-in failed: wrong password");
        let details = serde_json::json!({"reason": "wrong password"});
        crate::audit::record(&req, &state, AuditKind::SignInFailed, details).await;
        return Ok(pages::login(
            StatusCode::UNAUTHORIZED,
            Some("That password is not right."),
            form.next.as_deref(),
        ));
    }
    state.sign_in.succeeded(&client).await?;
    let id = state.sessions.create().await?;
    let ttl = state.sessions.ttl().as_secs();
    tracing::info!("signed in");
    let actor = fom_core::audit::Actor {
        session: Some(fom_core::audit::session_digest(&id)),
        ..crate::audit::actor(&req, &state)
    };
    let details = serde_json::json!({});
    state
        .services
        .audit
        .record(AuditKind::SignIn, &actor, details)
        .await;
    let mut jar = CookieJar::new();
    jar.signed_mut(&state.cfg.session_key).add(
        Cookie::build(COOKIE, id)
            .path("/")
            .http_only(true)
            .secure(!state.cfg.insecure_cookies)
            .same_site(SameSite::Lax)
            .max_age(actix_web::cookie::time::Duration::seconds(
                i64::try_from(ttl).unwrap_or(i64::MAX),
            ))
            .finish(),
    );
    let mut res = HttpResponse::SeeOther();
    res.insert_header((header::LOCATION, safe_next(form.next.as_deref())));
    for c in jar.delta() {
        res.cookie(c.clone());
    }
    Ok(res.finish())
}

#[post("/logout")]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(id) = signed_session_id(&req, &state) {
        crate::audit::record(&req, &state, AuditKind::SignOut, serde_json::json!({})).await;
        state.sessions.end(&id).await?;
    }
    let mut gone = Cookie::build(COOKIE, "")
        .path("/")
        .http_only(true)
        .secure(!state.cfg.insecure_cookies)
        .same_site(SameSite::Lax)
        .finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .cookie(gone)
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_follow_sign_in() {
        assert_eq!(safe_next(Some("/deposits/abc")), "/deposits/abc");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
        // What the attack run sent (%09 and %0d%0a decoded by the form parser).
        for bad in [
            "/\t/evil.example/phish",
            "/\n/evil.example",
            "/deposits\r\nSet-Cookie: x=1",
            "/ /evil.example",
            "/\u{2028}/evil.example",
            "/\u{0}",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(Some("/deposits/abc?x=1")), "/deposits/abc?x=1");
    }

    #[test]
    fn password_comparison() {
        assert!(password_matches("correct horse", "correct horse"));
        assert!(!password_matches("correct hors", "correct horse"));
        assert!(!password_matches("", "correct horse"));
    }
}
