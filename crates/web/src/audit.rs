//! The audit log on the web side: who did it (from the request) and `GET /api/audit`.

use actix_web::{get, web, HttpMessage, HttpRequest, HttpResponse};
use fom_core::audit::{session_digest, Actor, AuditKind};
use serde::Deserialize;

use crate::error_code::ErrorCode;
use crate::http::{ApiError, RequestId};
use crate::state::AppState;

/// The actor of a request: client address (`TRUST_PROXY` aware), a digest of its session (never
/// the id) and its request id.
pub fn actor(req: &HttpRequest, state: &AppState) -> Actor {
    Actor {
        client: Some(crate::auth::client_addr(req, state.cfg.trust_proxy)),
        session: crate::auth::signed_session_id(req, state).map(|id| session_digest(&id)),
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
    }
}

/// Records an event for a request.
pub async fn record(
    req: &HttpRequest,
    state: &AppState,
    kind: AuditKind,
    details: serde_json::Value,
) {
    state
        .services
        .audit
        .record(kind, &actor(req, state), details)
        .await;
}

#[derive(Deserialize)]
pub struct AuditQuery {
    kind: Option<String>,
    /// A stream id from an earlier page's `next`.
    before: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/audit?kind=&before=&limit=`: newest first, `{"events": [...], "next": "..."}`.
#[get("/api/audit")]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let kind = match q.kind.as_deref().filter(|k| !k.is_empty()) {
        None => None,
        Some(k) => Some(AuditKind::parse(k).ok_or_else(|| {
            ApiError::bad_request(ErrorCode::BadBody, format!("unknown event kind {k:?}"))
        })?),
    };
    // Stream ids only: `<ms>-<n>`.
    let before = q.before.as_deref().filter(|b| !b.is_empty());
    if let Some(b) = before {
        let ok = b.split_once('-').is_some_and(|(ms, n)| {
            !ms.is_empty()
                && !n.is_empty()
                && ms.len() <= 20
                && n.len() <= 20
                && ms.bytes().all(|c| c.is_ascii_digit())
                && n.bytes().all(|c| c.is_ascii_digit())
        });
        if !ok {
            return Err(ApiError::bad_request(
                ErrorCode::BadBody,
                "before must be an event id from an earlier page",
            ));
        }
    }
    let page = state
        .services
        .audit
        .list(kind, before, q.limit.unwrap_or(50))
        .await
        .map_err(ApiError::storage)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(page))
}
