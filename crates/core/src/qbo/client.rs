//! The QuickBooks Accounting API v3 client: `minorversion=75` on every call, a
//! `requestid` on every write, faults parsed from any answer (a 200 included), one token
//! refresh after a 401, 429/3001 and 5xx retried with backoff, at most `QBO_MAX_CONCURRENT`
//! requests in flight per process and Intuit's per-company limits over all processes
//! ([`crate::qbo::gate`]).

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::qbo::connection::Connection;
use crate::qbo::entities::{Attachable, Entity};
use crate::qbo::fault::{self, Action};
use crate::qbo::gate::RealmGate;
use crate::qbo::query::{next_start, Query, MAX_PAGE};
use crate::qbo::QboError;

pub const MINOR_VERSION: &str = "75";

/// A `requestid` (Intuit answers a repeated id with the original response instead of writing
/// again) that is the same every time the same logical write is retried: the operation, the
/// record and the exact body. A changed body (the treasurer fixed something)
/// is a new operation and must not replay the old answer. 32 hex characters (limit 50).
pub fn request_id(operation: &str, subject: &str, body: &Value) -> String {
    let mut h = Sha256::new();
    h.update(operation.as_bytes());
    h.update([0]);
    h.update(subject.as_bytes());
    h.update([0]);
    h.update(body.to_string().as_bytes());
    let d = h.finalize();
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone)]
pub struct QboClient {
    conn: Connection,
    /// Calls in flight in this process.
    local: Arc<tokio::sync::Semaphore>,
    /// Calls in flight and the request rate for the company, over all processes.
    realm: RealmGate,
}

impl QboClient {
    pub fn new(conn: Connection) -> Self {
        let local = Arc::new(tokio::sync::Semaphore::new(
            conn.settings().max_concurrent.max(1),
        ));
        let realm = RealmGate::new(conn.settings(), conn.redis().clone(), conn.keys().clone());
        Self { conn, local, realm }
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// One API call with the retry rules. `path` is relative to `/v3/company/{realm}/`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
        body: Option<&Value>,
        request_id: Option<&str>,
    ) -> Result<Value, QboError> {
        let tries = self.conn.settings().max_attempts;
        self.call_tries(method, path, params, body, request_id, tries)
            .await
    }

    /// [`Self::call`] with its own number of tries for 429/5xx/timeouts (1: no retry, for a
    /// create whose caller checks for the created entity before trying again).
    pub async fn call_tries(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
        body: Option<&Value>,
        request_id: Option<&str>,
        max_attempts: u32,
    ) -> Result<Value, QboError> {
        let payload = body.map_or(Payload::None, Payload::Json);
        self.call_traced(method, path, params, payload, request_id, max_attempts)
            .await
            .map(|(answer, _)| answer)
    }

    /// [`Self::call_tries`], with the `intuit_tid` of the answer (Intuit's id of the request,
    /// which its support asks for).
    async fn call_traced(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
        body: Payload<'_>,
        request_id: Option<&str>,
        max_attempts: u32,
    ) -> Result<(Value, Option<String>), QboError> {
        let s = self.conn.settings();
        let mut refreshed = false;
        let mut attempt = 0u32;
        // Throttles are waited out apart from `max_attempts`: QuickBooks refused the request
        // before doing anything, so even a one-try write may be sent again.
        let mut throttled_for = Duration::ZERO;
        loop {
            attempt += 1;
            let tokens = self.conn.access().await?;
            let url = format!(
                "{}/v3/company/{}/{path}",
                s.api_base.trim_end_matches('/'),
                tokens.realm_id
            );
            let mut query: Vec<(&str, &str)> = vec![("minorversion", MINOR_VERSION)];
            query.extend_from_slice(params);
            if let Some(id) = request_id {
                query.push(("requestid", id));
            }
            let mut req = self
                .conn
                .http()
                .request(method.clone(), &url)
                .query(&query)
                .bearer_auth(&tokens.access_token)
                .header("Accept", "application/json");
            match body {
                Payload::None => {}
                Payload::Json(b) => req = req.json(b),
                // Built again for every try: a form is consumed by sending it (the bytes are
                // shared, not copied).
                Payload::Upload(u) => req = req.multipart(u.form()?),
            }
            let (status, tid, text) = match self.exchange(&tokens.realm_id, req, path).await? {
                Ok(answer) => answer,
                Err(why) => {
                    self.pause_or_fail(attempt, max_attempts, why).await?;
                    continue;
                }
            };
            let json: Option<Value> = serde_json::from_str(&text).ok();
            let fault = json.as_ref().and_then(fault::parse);
            if status == 401 && !refreshed {
                // Expired or revoked access token: refresh once and try again (not counted).
                tracing::info!(
                    path,
                    intuit_tid = tid.as_deref().unwrap_or(""),
                    "qbo: 401, refreshing"
                );
                refreshed = true;
                attempt -= 1;
                self.conn.refresh(&tokens.access_token).await?;
                continue;
            }
            if let Some(fault) = fault {
                let action = fault.action(status);
                let codes: Vec<&str> = fault.codes().collect();
                tracing::warn!(
                    path,
                    status,
                    codes = %codes.join(","),
                    intuit_tid = tid.as_deref().unwrap_or(""),
                    "qbo: fault"
                );
                if action == Action::RetryLater && (status == 429 || codes.contains(&"3001")) {
                    attempt -= 1;
                    self.wait_out_throttle(&mut throttled_for, path).await?;
                    continue;
                }
                if action == Action::RetryLater {
                    self.pause_or_fail(attempt, max_attempts, fault.describe())
                        .await
                        .map_err(|_| QboError::Fault {
                            status,
                            action,
                            fault: fault.clone(),
                            intuit_tid: tid.clone(),
                        })?;
                    continue;
                }
                return Err(QboError::Fault {
                    status,
                    action,
                    fault,
                    intuit_tid: tid,
                });
            }
            if status == 429 {
                attempt -= 1;
                self.wait_out_throttle(&mut throttled_for, path).await?;
                continue;
            }
            if status >= 500 {
                tracing::warn!(
                    path,
                    status,
                    intuit_tid = tid.as_deref().unwrap_or(""),
                    "qbo: retryable status"
                );
                self.pause_or_fail(
                    attempt,
                    max_attempts,
                    format!("QuickBooks answered HTTP {status}"),
                )
                .await?;
                continue;
            }
            if status == 401 {
                return Err(QboError::ReconnectNeeded(
                    "QuickBooks refused the refreshed authorization; reconnect QuickBooks".into(),
                ));
            }
            if !(200..300).contains(&status) {
                return Err(QboError::Unavailable(format!(
                    "QuickBooks answered HTTP {status} (intuit_tid {})",
                    tid.as_deref().unwrap_or("-")
                )));
            }
            return json.map(|j| (j, tid)).ok_or_else(|| {
                QboError::Decode("QuickBooks answered with something that is not JSON".into())
            });
        }
    }

    /// Sends one request inside both gates (a slot of this process, then one of the company
    /// across all processes) and reads the whole answer. `Ok(Err(why))`: no answer (timeout,
    /// unreachable, cut off), worth another try.
    async fn exchange(
        &self,
        realm: &str,
        req: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<Result<(u16, Option<String>, String), String>, QboError> {
        let _local = self
            .local
            .acquire()
            .await
            .map_err(|_| QboError::Unavailable("the QuickBooks client is closing".into()))?;
        let lease = self.realm.acquire(realm).await?;
        let answer = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let tid = resp
                    .headers()
                    .get("intuit_tid")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                resp.text()
                    .await
                    .map(|text| (status, tid, text))
                    .map_err(|e| format!("answer cut off: {e}"))
            }
            Err(e) => {
                let what = if e.is_timeout() {
                    "QuickBooks did not answer in time".to_string()
                } else {
                    // Without the URL: its query string holds search text.
                    format!("QuickBooks cannot be reached: {}", e.without_url())
                };
                tracing::warn!(path, "qbo: {what}");
                Err(what)
            }
        };
        self.realm.release(lease).await;
        Ok(answer)
    }

    /// Waits before the next attempt, or fails with `why` when attempts are used up.
    async fn pause_or_fail(
        &self,
        attempt: u32,
        max_attempts: u32,
        why: String,
    ) -> Result<(), QboError> {
        if attempt >= max_attempts {
            return Err(QboError::Unavailable(format!(
                "{why} (after {attempt} tries; try again later)"
            )));
        }
        tokio::time::sleep(self.backoff(attempt)).await;
        Ok(())
    }

    /// QuickBooks asked us to slow down (429, fault 3001): waits `QBO_THROTTLE_WAIT_MS`, each
    /// wait logged (under the caller's span: the job's id), until this request has waited
    /// `QBO_THROTTLE_PATIENCE_SECS`; then, or at once where throttles are not waited out (the
    /// web), [`QboError::Throttled`], which says when to ask again.
    async fn wait_out_throttle(&self, waited: &mut Duration, path: &str) -> Result<(), QboError> {
        let s = self.conn.settings();
        let wait = s.throttle_wait;
        if !s.wait_throttles || *waited + wait > s.throttle_patience {
            tracing::warn!(
                path,
                waited_secs = waited.as_secs(),
                "qbo: throttled; giving up for now"
            );
            return Err(QboError::Throttled { wait });
        }
        tracing::warn!(
            path,
            wait_ms = wait.as_millis() as u64,
            waited_secs = waited.as_secs(),
            "qbo: throttled; waiting"
        );
        tokio::time::sleep(wait).await;
        *waited += wait;
        Ok(())
    }

    /// The wait after failed try `attempt` (1-based): `QBO_RETRY_BASE_MS` doubling, with
    /// jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self.conn.settings().retry_base.as_millis() as u64;
        let exp = base.saturating_mul(1 << attempt.saturating_sub(1).min(6));
        Duration::from_millis(exp + fastrand::u64(0..=base / 4 + 1))
    }

    /// One page of a query.
    pub async fn query_page<T: Entity>(
        &self,
        q: &Query,
        start: u32,
        size: u32,
    ) -> Result<Vec<T>, QboError> {
        let sql = q.page(start, size);
        let answer = self
            .call(Method::GET, "query", &[("query", &sql)], None, None)
            .await?;
        let rows = answer
            .get("QueryResponse")
            .and_then(|r| r.get(T::NAME))
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        serde_json::from_value(rows)
            .map_err(|e| QboError::Decode(format!("QuickBooks {} rows: {e}", T::NAME)))
    }

    /// Every row of a query, a page of 1000 at a time.
    pub async fn query_all<T: Entity>(&self, q: &Query) -> Result<Vec<T>, QboError> {
        let mut out = Vec::new();
        let mut start = 1;
        loop {
            let page: Vec<T> = self.query_page(q, start, MAX_PAGE).await?;
            let n = page.len();
            out.extend(page);
            match next_start(start, MAX_PAGE, n) {
                Some(next) => start = next,
                None => return Ok(out),
            }
        }
    }

    pub async fn read<T: Entity>(&self, id: &str) -> Result<T, QboError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(QboError::Refused(format!(
                "{id:?} is not a QuickBooks {} id",
                T::NAME
            )));
        }
        let answer = self
            .call(Method::GET, &format!("{}/{id}", T::PATH), &[], None, None)
            .await?;
        unwrap_entity(answer)
    }

    /// Create (or a sparse update when `body` has `Id`, `SyncToken` and `"sparse": true`).
    pub async fn write<T: Entity>(&self, body: &Value, request_id: &str) -> Result<T, QboError> {
        let answer = self
            .call(Method::POST, T::PATH, &[], Some(body), Some(request_id))
            .await?;
        unwrap_entity(answer)
    }

    /// One try of a write (a 401 still refreshes once): the caller looks for the entity
    /// before trying again, in case QuickBooks made it and the answer was lost.
    pub async fn write_once<T: Entity>(
        &self,
        body: &Value,
        request_id: &str,
    ) -> Result<T, QboError> {
        self.write_once_traced(body, request_id)
            .await
            .map(|(entity, _)| entity)
    }

    /// [`Self::write_once`] with the answer's `intuit_tid`.
    pub async fn write_once_traced<T: Entity>(
        &self,
        body: &Value,
        request_id: &str,
    ) -> Result<(T, Option<String>), QboError> {
        let (answer, tid) = self
            .call_traced(
                Method::POST,
                T::PATH,
                &[],
                Payload::Json(body),
                Some(request_id),
                1,
            )
            .await?;
        Ok((unwrap_entity(answer)?, tid))
    }

    /// One try of a file upload to the attachments endpoint (a 401 still refreshes once, and
    /// throttles are waited out): the caller looks for the attachment before trying again.
    /// A fault QuickBooks reports for the file itself, inside `AttachableResponse`, is a
    /// [`QboError::Fault`] like any other.
    pub async fn upload_once(
        &self,
        upload: &Upload,
        request_id: &str,
    ) -> Result<Attachable, QboError> {
        let (answer, tid) = self
            .call_traced(
                Method::POST,
                "upload",
                &[],
                Payload::Upload(upload),
                Some(request_id),
                1,
            )
            .await?;
        let first = answer
            .get("AttachableResponse")
            .and_then(Value::as_array)
            .and_then(|items| items.first())
            .ok_or_else(|| {
                QboError::Decode("the upload answer has no AttachableResponse".into())
            })?;
        if let Some(fault) = fault::parse(first) {
            let action = fault.action(400);
            return Err(QboError::Fault {
                status: 400,
                action,
                fault,
                intuit_tid: tid,
            });
        }
        unwrap_entity(first.clone())
    }
}

/// What a request carries.
#[derive(Clone, Copy)]
enum Payload<'a> {
    None,
    Json(&'a Value),
    Upload(&'a Upload),
}

/// A file for QuickBooks's attachments endpoint: the Attachable that links it (to a sales
/// receipt) and its bytes, held once and shared by every try.
#[derive(Debug, Clone)]
pub struct Upload {
    pub metadata: Value,
    pub file_name: String,
    pub content_type: String,
    pub content: bytes::Bytes,
}

impl Upload {
    /// Intuit's multipart framing: `file_metadata_01` (the Attachable as JSON) and
    /// `file_content_01` (the file), paired by their suffix.
    fn form(&self) -> Result<reqwest::multipart::Form, QboError> {
        let bad = |e: reqwest::Error| QboError::Refused(format!("the file cannot be sent: {e}"));
        let meta = reqwest::multipart::Part::text(self.metadata.to_string())
            .mime_str("application/json")
            .map_err(bad)?;
        let file = reqwest::multipart::Part::stream(self.content.clone())
            .file_name(self.file_name.clone())
            .mime_str(&self.content_type)
            .map_err(bad)?;
        Ok(reqwest::multipart::Form::new()
            .part("file_metadata_01", meta)
            .part("file_content_01", file))
    }
}

fn unwrap_entity<T: Entity>(mut answer: Value) -> Result<T, QboError> {
    let inner = answer
        .get_mut(T::NAME)
        .map(Value::take)
        .ok_or_else(|| QboError::Decode(format!("QuickBooks's answer has no {}", T::NAME)))?;
    serde_json::from_value(inner).map_err(|e| QboError::Decode(format!("{}: {e}", T::NAME)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_stable_per_operation_and_body() {
        let body = serde_json::json!({"Line": [1]});
        let a = request_id("receipt", "r1", &body);
        assert_eq!(a, request_id("receipt", "r1", &body));
        assert_eq!(a.len(), 32);
        assert_ne!(a, request_id("receipt", "r2", &body));
        assert_ne!(
            a,
            request_id("receipt", "r1", &serde_json::json!({"Line": [2]}))
        );
    }
}
