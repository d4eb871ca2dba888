//! Sign-in for one organisation: one password (`APP_PASSWORD`), compared in constant time; a
//! signed session cookie whose session lives in Redis (so sign-out and restarts behave, and
//! every web dyno sees it) for at most `SESSION_MAX_HOURS`; attempts limited per client
//! address, counted atomically before the password is checked.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, CookieJar, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{get, post, web, HttpMessage, HttpRequest, HttpResponse};
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
pub struct Session {
    pub id: String,
}

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
    Ok(state.sessions.touch(&id).await?.then_some(Session { id }))
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
        return Ok(req.error_response(e));
    };
    let session = match current_session(req.request(), &state).await {
        Ok(s) => s,
        Err(e) => return Ok(req.error_response(e)),
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
            Ok(req.error_response(e))
        }
        None => {
            let res = to_sign_in(req.path());
            Ok(req.into_response(res))
        }
    }
}

/// A redirect to the sign-in page that comes back to `next` (a local path, query included)
/// afterwards.
pub fn to_sign_in(next: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!("/login?next={}", url_escape(next)),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
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

/// Decodes `%XX` escapes (bytes that do not decode are kept as they are).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One form of `next` is a same-site path: a single leading `/`, then no `/` or `\` (which
/// browsers read as another host), and nowhere a control character (a header split, or a TAB
/// browsers drop), whitespace or backslash.
fn local_path(n: &str) -> bool {
    let mut chars = n.chars();
    n.len() <= 2048
        && chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !n
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
}

/// The path to go to after sign-in: `next` when it is a same-site path in every decoding
/// (escapes are undone until nothing changes, so `%2F%2F` or `%2509` cannot smuggle a host or
/// a TAB through), else `/`. The answer is written so a `Location` header can carry it.
fn safe_next(next: Option<&str>) -> String {
    let Some(n) = next else {
        return "/".into();
    };
    let mut form = n.to_string();
    for _ in 0..4 {
        if !local_path(&form) {
            return "/".into();
        }
        let decoded = percent_decode(&form);
        if decoded == form {
            // Letters outside ASCII are escaped: a header value holds visible ASCII only.
            return n
                .bytes()
                .map(|b| {
                    if b.is_ascii_graphic() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
        }
        form = decoded;
    }
    // Still changing after four decodings: nobody means that.
    "/".into()
}

/// What the sign-in form carries on: `next` only when it is a same-site path.
fn form_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| safe_next(Some(n)) != "/")
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
    Ok(pages::login(
        StatusCode::OK,
        None,
        form_next(q.next.as_deref()),
    ))
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
    // The attempt is taken (checked and counted in one step) before the password is compared.
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
            form_next(form.next.as_deref()),
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
            form_next(form.next.as_deref()),
        ));
    }
    state.sign_in.succeeded(&client).await?;
    let id = state.sessions.create().await?;
    // The cookie lasts as long as the session can (its absolute lifetime): the idle timeout
    // is the server's, renewed by every request, so an active treasurer keeps the session.
    let lifetime = state.sessions.lifetime().as_secs();
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
                i64::try_from(lifetime).unwrap_or(i64::MAX),
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
        // This process's event streams of the session end now; other processes' at their
        // next heartbeat.
        state.streams.end_session(&id);
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
        assert_eq!(
            safe_next(Some("/qbo/callback?code=a%2Bb&state=s")),
            "/qbo/callback?code=a%2Bb&state=s"
        );
        assert_eq!(safe_next(Some("/dépôts")), "/d%C3%A9p%C3%B4ts");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/%09/evil.example",
            "/%2509/evil.example",
            "/%252509/evil.example",
            "/%2F%2Fevil.example",
            "/%2f/evil.example",
            "/%5cevil.example",
            "/\r\nSet-Cookie: a=b",
            "/%0D%0ASet-Cookie:a=b",
            "/a b",
            "/\u{00a0}x",
            "/%25252525252509",
            "",
            "evil.example",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

        /// Whatever `next` holds, sign-in goes to a same-site path: one that stays one in
        /// every decoding, written in visible ASCII only (a header value), of bounded length.
        #[test]
        fn any_next_leads_to_a_same_site_path(
            next in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[/\\\\%0-9a-fA-F.:?=&\t\r\n \u{a0}\u{2028}é]{0,40}",
                "/[a-z0-9/%]{0,30}",
            ],
        ) {
            let to = safe_next(Some(&next));
            proptest::prop_assert!(to.bytes().all(|b| b.is_ascii_graphic()), "{to:?}");
            proptest::prop_assert!(to.len() <= 3 * 2048);
            let mut form = to.clone();
            for _ in 0..6 {
                proptest::prop_assert!(local_path(&form), "{next:?} -> {to:?} -> {form:?}");
                form = percent_decode(&form);
            }
            // A plain path goes through unchanged.
            if local_path(&next) && !next.contains('%') && next.is_ascii() {
                proptest::prop_assert_eq!(&to, &next);
            }
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%2Fb%zz%4"), "/a/b%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[test]
    fn password_comparison() {
        assert!(password_matches("correct horse", "correct horse"));
        assert!(!password_matches("correct hors", "correct horse"));
        assert!(!password_matches("", "correct horse"));
    }
}
