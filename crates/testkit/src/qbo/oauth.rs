//! Intuit OAuth 2.0: discovery, the authorization redirect, the token endpoint (both grants,
//! refresh-token rotation with a grace window, the opt-in hard expiry), revoke, userinfo and
//! an empty JWKS.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use super::http::{
    basic_ok, bearer, header, json_response, oauth_error, param, parse_form, plain, url_encode,
};
use super::state::{delta, random_hex, AccessInfo, AuthCode, Grant, Inner, RefreshInfo, Shared};
use super::{FakeQboOptions, RefreshStatus};

const ACCOUNTING_SCOPE: &str = "com.intuit.quickbooks.accounting";
/// How long an authorization code can be exchanged (Intuit does not document it; five minutes).
const CODE_TTL_SECS: i64 = 300;
/// Every grant's absolute cap, however often its refresh token rolls: five years.
const HARD_EXPIRY_SECS: i64 = 5 * 365 * 24 * 3600;

pub(super) async fn discovery(shared: web::Data<Shared>) -> HttpResponse {
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

pub(super) async fn jwks() -> HttpResponse {
    json_response(200, json!({ "keys": [] }).to_string())
}

pub(super) async fn userinfo(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
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

pub(super) async fn authorize(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
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
pub(super) fn new_grant(
    g: &mut Inner,
    opts: &FakeQboOptions,
    now: DateTime<Utc>,
) -> (String, String) {
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

pub(super) fn refresh_status(
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
pub(super) fn access_grant<'a>(
    g: &'a Inner,
    token: &str,
    now: DateTime<Utc>,
) -> Result<&'a Grant, ()> {
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

pub(super) async fn token(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
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

pub(super) async fn revoke(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
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
