//! The accounting API's front door (`/v3/company/{realm}/...`): the bearer check, the realm,
//! the 429 gate, injected faults and the `requestid` memory, then the company's answer.

use actix_web::{web, HttpRequest, HttpResponse};

use super::fault::{forbidden, unauthorized, Fault};
use super::gate::admit;
use super::http::{bearer, header, json_response, param, parse_form};
use super::oauth::access_grant;
use super::state::{delta, Inner, Shared, Stored};
use super::Inject;

/// The first live injection whose filter the path matches, counted down by one.
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

/// Every request under `/v3/company/{realm}/`.
pub(super) async fn handle(
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

    // Authentication, then the realm, then the 429 gate.
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
        match admit(&shared, &mut g, now) {
            Some(in_flight) => in_flight,
            None => return Fault::throttle().response(now),
        }
    };

    if !opts.latency.is_zero() {
        actix_web::rt::time::sleep(opts.latency).await;
    }

    let injected = take_injection(&mut shared.lock(), req.path());
    let mut after_write = false;
    let mut hold_answer = None;
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
        Some(Inject::DelayAfterWrite(d)) => hold_answer = Some(d),
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
    if let Some(d) = hold_answer {
        actix_web::rt::time::sleep(d).await;
    }
    if after_write && status == 200 {
        return Fault::system().response(shared.lock().now());
    }
    json_response(status, text)
}
