//! The JSON API: deposits, their records, files and progress, and a read-only jobs view.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use actix_web::http::{header, StatusCode};
use actix_web::{delete, get, patch, post, web, HttpMessage, HttpRequest, HttpResponse};
use bytes::Bytes;
use fom_core::audit::AuditKind;
use fom_core::deposits::{apply_patch, Deposit, FieldProblem};
use fom_core::extract::ExtractError;
use fom_core::jobs::{queue_of, JobRecord, JobState, Stage};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::auth::Session;
use crate::error_code::ErrorCode;
use crate::http::ApiError;
use crate::ids::{DepositId, FileId, JobId, RecordId};
use crate::state::AppState;
use crate::streams::{Full, StreamSlot};

/// Polling interval of event streams (they read the same records a poll would).
const STREAM_POLL: Duration = Duration::from_millis(500);
/// A comment line at least this often keeps proxies (Heroku's router) from closing a stream;
/// the stream's session is checked at each.
const STREAM_HEARTBEAT: Duration = Duration::from_secs(15);
/// When a refused stream may try again.
const STREAM_RETRY_AFTER_SECS: u64 = 30;

#[derive(Deserialize, Default)]
pub struct NewDeposit {
    name: Option<String>,
}

#[post("/api/deposits")]
pub async fn create_deposit(
    state: web::Data<AppState>,
    body: Option<web::Json<NewDeposit>>,
) -> Result<HttpResponse, ApiError> {
    let name = body.and_then(|b| b.into_inner().name);
    if let Some(n) = &name {
        fom_core::limits::check(fom_core::limits::Scope::Deposit, "name", n.trim())
            .map_err(|p| ApiError::invalid_fields(&[p]))?;
    }
    let name = name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("Deposit of {}", chrono::Local::now().format("%m/%d/%Y")));
    let d = state.services.deposits.create(&name).await?;
    tracing::info!(deposit = %d.id, "deposit created");
    let view = deposit_view(&state, d).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/deposits/{}", view.id)))
        .json(view))
}

/// One line of the deposits list.
#[derive(Serialize)]
struct DepositSummary {
    id: String,
    name: String,
    created_at: i64,
    updated_at: i64,
    files: usize,
    records: usize,
    #[serde(with = "rust_decimal::serde::str")]
    total: Decimal,
    sent: usize,
    unsent: usize,
    errors: usize,
}

#[get("/api/deposits")]
pub async fn list_deposits(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let deposits = state.services.deposits.list(500).await?;
    let out: Vec<DepositSummary> = deposits
        .into_iter()
        .map(|d| {
            let sent = d
                .records
                .iter()
                .filter(|r| r.qbo.sync_status == fom_core::donation::SyncStatus::Sent)
                .count();
            DepositSummary {
                total: d.records.iter().filter_map(|r| r.amount).sum(),
                files: d.files.len(),
                records: d.records.len(),
                unsent: d.records.len() - sent,
                sent,
                errors: d.errors.len(),
                id: d.id,
                name: d.name,
                created_at: d.created_at,
                updated_at: d.updated_at,
            }
        })
        .collect();
    Ok(json_no_store(
        StatusCode::OK,
        &serde_json::json!({ "deposits": out }),
    ))
}

/// A file with its job's progress, as people see it.
#[derive(Serialize, Clone, PartialEq)]
pub struct FileView {
    id: String,
    name: String,
    size: u64,
    kind: String,
    uploaded_at: i64,
    job_id: String,
    /// queued, running, done, failed, dead, or expired (the job record is gone)
    state: String,
    stage: Option<Stage>,
    page: u32,
    pages: u32,
    rss_mb: f64,
    error: Option<String>,
    /// How many other photos of the same upload are read with this one (one job).
    #[serde(skip_serializing_if = "is_zero")]
    together: usize,
    /// True in done, failed, dead and expired: nothing more will happen without a retry.
    finished: bool,
    /// A CSV file: how it was read ("Read as: Stripe payments export"), what was skipped,
    /// and its columns when the treasurer must or may choose them.
    #[serde(skip_serializing_if = "Option::is_none")]
    csv: Option<CsvView>,
}

#[derive(Serialize, Clone, PartialEq)]
pub struct CsvView {
    #[serde(flatten)]
    summary: fom_core::extract::csv::ReadSummary,
    /// "12 gifts read; skipped: 1 refund, 1 totals line".
    sentence: String,
    /// The columns were not recognised: nothing is read until they are chosen.
    needs_columns: bool,
}

/// Why a row is kept out of QuickBooks.
#[derive(Serialize)]
pub struct KeptOut {
    /// `treasurer` (kept out by hand) or `online` (the rule for online gifts).
    by: &'static str,
    message: &'static str,
}

#[derive(Serialize)]
pub struct DepositView {
    id: String,
    name: String,
    created_at: i64,
    updated_at: i64,
    files: Vec<FileView>,
    records: Vec<fom_core::donation::Donation>,
    /// Pages that yielded no records, and files whose job failed.
    errors: Vec<ExtractError>,
    #[serde(with = "rust_decimal::serde::str")]
    total: Decimal,
    /// True while any file is still queued or running.
    processing: bool,
    /// How the deposit's files are read (the treasurer's choices).
    options: fom_core::deposits::DepositOptions,
    /// Where its papers' stated totals and counts differ from its rows.
    warnings: Vec<fom_core::deposits::DepositWarning>,
    /// How its online gifts are handled (its own choice, else `ONLINE_GIFTS`); none without
    /// QuickBooks set up.
    #[serde(skip_serializing_if = "Option::is_none")]
    online_gifts: Option<fom_core::qbo::config::OnlineGifts>,
    /// Rows kept out of QuickBooks, by id, with why (they stay in the report).
    kept_out: std::collections::BTreeMap<uuid::Uuid, KeptOut>,
    /// The bank deposit in QuickBooks ([`crate::qbo::bank_view`]); none without QuickBooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    bank: Option<serde_json::Value>,
}

fn is_finished(state: &str) -> bool {
    !matches!(state, "queued" | "running")
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

async fn file_views(state: &AppState, d: &Deposit) -> Result<Vec<FileView>, ApiError> {
    let ids: Vec<String> = d.files.iter().map(|f| f.job_id.clone()).collect();
    let jobs = state.services.jobs.get_many(&ids).await?;
    Ok(d.files
        .iter()
        .zip(jobs)
        .map(|(f, job)| {
            let csv = job
                .as_ref()
                .and_then(|j| j.csv.clone())
                .map(|summary| CsvView {
                    sentence: summary.sentence(),
                    needs_columns: summary.gifts == 0
                        && summary.skipped.is_empty()
                        && job
                            .as_ref()
                            .is_some_and(|j| matches!(j.state, JobState::Failed | JobState::Dead)),
                    summary,
                });
            let together = job.as_ref().map_or(0, |j| j.more_files.len());
            let (st, stage, page, pages, rss, error) = match job {
                Some(j) => (
                    j.state.as_str().to_string(),
                    j.stage,
                    j.page,
                    j.pages,
                    j.rss_mb,
                    // A queued job's last error is history (a hand-back), not a verdict.
                    j.last_error
                        .filter(|_| matches!(j.state, JobState::Failed | JobState::Dead)),
                ),
                None => (
                    "expired".to_string(),
                    None,
                    0,
                    0,
                    0.0,
                    Some("the job record expired; upload the file again".to_string()),
                ),
            };
            FileView {
                id: f.id.clone(),
                name: f.name.clone(),
                size: f.size,
                kind: f.kind.clone(),
                uploaded_at: f.uploaded_at,
                job_id: f.job_id.clone(),
                finished: is_finished(&st),
                state: st,
                stage,
                page,
                pages,
                rss_mb: rss,
                together,
                error,
                csv,
            }
        })
        .collect())
}

async fn deposit_view(state: &AppState, d: Deposit) -> Result<DepositView, ApiError> {
    let files = file_views(state, &d).await?;
    let options = state.services.deposits.options(&d.id).await?;
    let warnings = d.warnings();
    let online_gifts = state.services.qbo.as_ref().map(|q| {
        options
            .online_gifts
            .unwrap_or(q.client.connection().settings().online_gifts)
    });
    let kept_out = online_gifts
        .map(|online| {
            d.records
                .iter()
                .filter(|r| r.qbo.sales_receipt_id.is_none())
                .filter_map(|r| {
                    fom_core::qbo::receipts::kept_out(r, online).map(|message| {
                        let by = if r.qbo.keep_out == Some(true) {
                            "treasurer"
                        } else {
                            "online"
                        };
                        (r.id, KeptOut { by, message })
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let bank = crate::qbo::bank_view(state, &d).await?;
    let mut errors = d.errors;
    for f in &files {
        if let (Some(e), true) = (&f.error, f.finished) {
            errors.push(ExtractError {
                file: f.name.clone(),
                pages: Vec::new(),
                reason: e.clone(),
            });
        }
    }
    Ok(DepositView {
        total: d.records.iter().filter_map(|r| r.amount).sum(),
        processing: files.iter().any(|f| !f.finished),
        id: d.id,
        name: d.name,
        created_at: d.created_at,
        updated_at: d.updated_at,
        files,
        records: d.records,
        errors,
        options,
        warnings,
        online_gifts,
        kept_out,
        bank,
    })
}

pub fn json_no_store(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

pub async fn load(state: &AppState, id: &str) -> Result<Deposit, ApiError> {
    state
        .services
        .deposits
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found("deposit"))
}

#[get("/api/deposits/{id}")]
pub async fn get_deposit(
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
) -> Result<HttpResponse, ApiError> {
    let d = load(&state, &id).await?;
    Ok(json_no_store(
        StatusCode::OK,
        &deposit_view(&state, d).await?,
    ))
}

/// What `PATCH` and `DELETE` of a record found.
enum RecordEdit {
    Missing,
    Invalid(Vec<FieldProblem>),
    Done(Box<fom_core::donation::Donation>),
}

#[patch("/api/deposits/{id}/records/{record_id}")]
pub async fn patch_record(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(DepositId, RecordId)>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let (id, record_id) = path.into_inner();
    let record_id = record_id.uuid();
    let serde_json::Value::Object(fields) = body.into_inner() else {
        return Err(ApiError::bad_request(
            ErrorCode::BadBody,
            "send a JSON object of the fields to change",
        ));
    };
    let mut rules = state.cfg.rules;
    rules.today = chrono::Local::now().date_naive();
    let outcome = state
        .services
        .deposits
        .update(&id, |d| {
            let Some(r) = d.records.iter_mut().find(|r| r.id == record_id) else {
                return ControlFlow::Break(RecordEdit::Missing);
            };
            match apply_patch(r, &fields, &rules) {
                Ok(_) => ControlFlow::Continue(RecordEdit::Done(Box::new(r.clone()))),
                Err(p) => ControlFlow::Break(RecordEdit::Invalid(p)),
            }
        })
        .await?
        .ok_or_else(|| ApiError::not_found("deposit"))?;
    match outcome {
        RecordEdit::Missing => Err(ApiError::not_found("record")),
        RecordEdit::Invalid(problems) => Err(ApiError::invalid_fields(&problems)),
        RecordEdit::Done(r) => {
            // Which fields changed, never their values (names, addresses, amounts of donors).
            let changed: Vec<&String> = fields.keys().collect();
            let details =
                serde_json::json!({"deposit_id": id, "record_id": record_id, "fields": changed});
            crate::audit::record(&req, &state, AuditKind::RecordEdit, details).await;
            Ok(json_no_store(StatusCode::OK, &r))
        }
    }
}

/// Deletes a deposit with its files and job records (not its receipts in QuickBooks). Refused
/// while a file is still being read or sent, so no job writes into a deposit that is gone.
#[delete("/api/deposits/{id}")]
pub async fn delete_deposit(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
) -> Result<HttpResponse, ApiError> {
    let d = load(&state, &id).await?;
    let mut job_ids: Vec<String> = d.files.iter().map(|f| f.job_id.clone()).collect();
    for latest in [
        fom_core::jobs::send_all::latest(&state.services, &d.id).await,
        fom_core::jobs::bank::latest(&state.services, &d.id).await,
        fom_core::jobs::attach::latest(&state.services, &d.id).await,
    ] {
        job_ids.extend(latest.map_err(ApiError::storage)?);
    }
    let jobs = state.services.jobs.get_many(&job_ids).await?;
    if jobs
        .iter()
        .flatten()
        .any(|j| matches!(j.state, JobState::Queued | JobState::Running))
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::BadState,
            "files of this deposit are still being read or sent; delete it once they are done",
        ));
    }
    for f in &d.files {
        if let Err(e) = state.services.store.delete(&f.id).await {
            tracing::warn!(error = %e, "a deleted deposit's upload was not removed");
        }
    }
    for j in &job_ids {
        state.services.jobs.discard(j).await?;
    }
    state.services.deposits.delete(&d.id).await?;
    let details = serde_json::json!({"deposit_id": d.id, "files": d.files.len(),
                                     "records": d.records.len()});
    crate::audit::record(&req, &state, AuditKind::DepositDeleted, details).await;
    Ok(HttpResponse::NoContent().finish())
}

#[delete("/api/deposits/{id}/records/{record_id}")]
pub async fn delete_record(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(DepositId, RecordId)>,
) -> Result<HttpResponse, ApiError> {
    let (id, record_id) = path.into_inner();
    let record_uuid = record_id.uuid();
    let outcome = state
        .services
        .deposits
        .update(&id, |d| {
            match d.records.iter().position(|r| r.id == record_uuid) {
                Some(i) => ControlFlow::Continue(RecordEdit::Done(Box::new(d.records.remove(i)))),
                None => ControlFlow::Break(RecordEdit::Missing),
            }
        })
        .await?
        .ok_or_else(|| ApiError::not_found("deposit"))?;
    match outcome {
        RecordEdit::Done(r) => {
            let details = serde_json::json!({"deposit_id": id, "record_id": record_id,
                "amount": r.amount.map(|a| a.to_string())});
            crate::audit::record(&req, &state, AuditKind::RecordDeleted, details).await;
            Ok(HttpResponse::NoContent().finish())
        }
        _ => Err(ApiError::not_found("record")),
    }
}

/// Progress of every file of a deposit, for polling.
#[derive(Serialize, PartialEq, Clone)]
pub struct Progress {
    deposit_id: String,
    files: Vec<FileView>,
    records: usize,
    /// True when no file is queued or running.
    finished: bool,
}

async fn progress(state: &AppState, id: &str) -> Result<Progress, ApiError> {
    let d = load(state, id).await?;
    let files = file_views(state, &d).await?;
    Ok(Progress {
        deposit_id: d.id,
        records: d.records.len(),
        finished: files.iter().all(|f| f.finished),
        files,
    })
}

#[get("/api/deposits/{id}/progress")]
pub async fn get_progress(
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
) -> Result<HttpResponse, ApiError> {
    Ok(json_no_store(StatusCode::OK, &progress(&state, &id).await?))
}

/// Takes a place for an event stream of the request's session, or answers 429.
fn stream_slot(req: &HttpRequest, state: &AppState) -> Result<StreamSlot, ApiError> {
    let session = req
        .extensions()
        .get::<Session>()
        .map(|s| s.id.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::SignInRequired,
                "sign in first (POST /login)",
            )
        })?;
    state.streams.take(&session).map_err(|full| {
        let message = match full {
            Full::Session => {
                "this sign-in already follows as many deposits live as it may; \
                              close another tab, or reload later"
            }
            Full::Server => "the server follows as many deposits live as it can; reload later",
        };
        tracing::warn!(?full, "event stream refused");
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyStreams,
            message,
        )
        .with_retry_after(STREAM_RETRY_AFTER_SECS)
    })
}

/// Server-sent events: `progress` whenever a file's state, stage or page changes, a comment
/// every 15 s while nothing changes, and a final `done` event when every file is finished,
/// after which the stream ends. An unknown deposit is 404 before any event. Limited per
/// session and per process (429 beyond); the session is re-checked at every heartbeat and a
/// sign-out ends the stream with `signed_out`.
#[get("/api/deposits/{id}/events")]
pub async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
) -> Result<HttpResponse, ApiError> {
    let slot = stream_slot(&req, &state)?;
    let first = progress(&state, &id).await?;
    let id = id.into_inner().to_string();
    struct S {
        state: web::Data<AppState>,
        id: String,
        last: Option<Progress>,
        pending: Option<Progress>,
        quiet_since: Instant,
        ended: bool,
        /// Held for as long as the stream lives; dropping it gives the place back.
        slot: StreamSlot,
    }
    let init = S {
        state,
        id,
        last: None,
        pending: Some(first),
        quiet_since: Instant::now(),
        ended: false,
        slot,
    };
    let stream = futures_util::stream::unfold(init, |mut s| async move {
        if s.ended {
            return None;
        }
        loop {
            if let Some(p) = s.pending.take() {
                if s.last.as_ref() != Some(&p) {
                    let name = if p.finished { "done" } else { "progress" };
                    let frame = sse(name, &p);
                    s.ended = p.finished;
                    s.last = Some(p);
                    s.quiet_since = Instant::now();
                    return Some((Ok::<_, actix_web::Error>(frame), s));
                }
            }
            if s.quiet_since.elapsed() >= STREAM_HEARTBEAT {
                s.quiet_since = Instant::now();
                // Signed out elsewhere, or timed out: end. (Storage trouble is not a sign-out.)
                let alive = s.state.sessions.alive(s.slot.session()).await;
                if matches!(alive, Ok(false)) {
                    s.ended = true;
                    return Some((Ok(signed_out(&s.id)), s));
                }
                return Some((Ok(Bytes::from_static(b": heartbeat\n\n")), s));
            }
            let ended = s.slot.ended.clone();
            tokio::select! {
                () = tokio::time::sleep(STREAM_POLL) => {}
                () = ended.cancelled() => {
                    s.ended = true;
                    return Some((Ok(signed_out(&s.id)), s));
                }
            }
            match progress(&s.state, &s.id).await {
                Ok(p) => s.pending = Some(p),
                Err(e) if e.status == StatusCode::NOT_FOUND => {
                    // The deposit expired or was removed: say so, and end.
                    s.ended = true;
                    let frame = sse(
                        "gone",
                        &serde_json::json!({ "deposit_id": s.id, "message": e.message }),
                    );
                    return Some((Ok(frame), s));
                }
                // Storage trouble: keep the stream and try again on the next tick.
                Err(_) => {}
            }
        }
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        // Never compressed: a gzip encoder would hold events back until its buffer fills.
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .content_type("text/event-stream")
        .streaming(stream))
}

/// The last event of a stream whose session ended.
fn signed_out(deposit_id: &str) -> Bytes {
    sse(
        "signed_out",
        &serde_json::json!({ "deposit_id": deposit_id, "message": "signed out" }),
    )
}

fn sse(event: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

#[derive(Deserialize)]
pub struct JobsQuery {
    state: Option<String>,
    limit: Option<usize>,
}

/// A jobs list's `state` filter: none (all states), or one of the states.
pub(crate) fn state_filter(state: Option<&str>) -> Result<Option<JobState>, ApiError> {
    match state {
        None | Some("") => Ok(None),
        Some(s) => JobState::parse(s).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::BadState,
                "state must be queued, running, done, failed or dead",
            )
        }),
    }
}

/// The operators' read-only view of jobs, newest first, with counts by state.
#[get("/api/jobs")]
pub async fn list_jobs(
    state: web::Data<AppState>,
    q: web::Query<JobsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = state_filter(q.state.as_deref())?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let jobs = state.services.jobs.list(filter, limit).await?;
    let counts = state.services.jobs.counts().await?;
    Ok(json_no_store(
        StatusCode::OK,
        &serde_json::json!({ "counts": counts, "jobs": jobs }),
    ))
}

#[get("/api/jobs/{id}")]
pub async fn get_job(
    state: web::Data<AppState>,
    id: web::Path<JobId>,
) -> Result<HttpResponse, ApiError> {
    let job: JobRecord = state
        .services
        .jobs
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    Ok(json_no_store(StatusCode::OK, &job))
}

/// The options a request changes; what it leaves out stays as it was.
#[derive(Deserialize)]
pub struct OptionsBody {
    keep_pending: Option<bool>,
    /// `report`, `send`, or `default` (follow `ONLINE_GIFTS`).
    online_gifts: Option<String>,
}

/// Sets the deposit's options: `{"keep_pending": true}` makes pending payments in CSV exports
/// rows with a warning instead of skipped lines; `{"online_gifts": "send" | "report" |
/// "default"}` says whether its online gifts are sent as receipts.
#[post("/api/deposits/{id}/options")]
pub async fn set_options(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
    body: web::Json<OptionsBody>,
) -> Result<HttpResponse, ApiError> {
    use fom_core::qbo::config::OnlineGifts;
    let mut opts = state.services.deposits.options(&id).await?;
    let mut fields = Vec::new();
    if let Some(k) = body.keep_pending {
        opts.keep_pending = k;
        fields.push("keep_pending");
    }
    if let Some(o) = &body.online_gifts {
        opts.online_gifts = match o.as_str() {
            "send" => Some(OnlineGifts::Send),
            "report" => Some(OnlineGifts::Report),
            "default" => None,
            _ => {
                return Err(ApiError::invalid_fields(&[
                    fom_core::deposits::FieldProblem {
                        field: "online_gifts".into(),
                        message: "must be send, report or default".into(),
                    },
                ]))
            }
        };
        fields.push("online_gifts");
    }
    if !state.services.deposits.set_options(&id, &opts).await? {
        return Err(ApiError::not_found("deposit"));
    }
    let details = serde_json::json!({ "deposit_id": &*id, "fields": fields });
    crate::audit::record(&req, &state, AuditKind::RecordEdit, details).await;
    Ok(json_no_store(StatusCode::OK, &opts))
}

#[derive(Deserialize)]
pub struct ColumnsBody {
    /// Per column of the file's header, its role (`amount`, `date`, `name`, ...) or null.
    roles: Vec<Option<String>>,
}

/// Saves which column of a CSV file's layout holds what, for this file and every later file
/// with the same header; a file that failed for want of them is read again at once.
#[post("/api/deposits/{id}/files/{file_id}/columns")]
pub async fn choose_columns(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(DepositId, FileId)>,
    body: web::Json<ColumnsBody>,
) -> Result<HttpResponse, ApiError> {
    use fom_core::extract::csv::Mapping;
    use fom_core::extract::profiles::Role;
    use fom_core::imports::ColumnsError;

    let (id, file_id) = path.into_inner();
    let (file, job) = file_and_job(&state, &id, &file_id).await?;
    let Some(layout) = job.csv.clone().and_then(|c| c.layout) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NotRetryable,
            "this file has no columns to choose",
        ));
    };
    let invalid = |m: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidFields,
            m,
        )
    };
    let mut roles = Vec::with_capacity(body.roles.len());
    for r in &body.roles {
        match r.as_deref() {
            None | Some("") => roles.push(None),
            Some(name) => roles
                .push(Some(Role::parse(name).ok_or_else(|| {
                    invalid(format!("{name:?} is not a kind of column"))
                })?)),
        }
    }
    let mapping = Mapping { roles };
    match state
        .services
        .columns
        .save(&layout.signature, layout.columns.len(), &mapping)
        .await
    {
        Ok(()) => {}
        Err(ColumnsError::Invalid(m)) => return Err(invalid(m)),
        Err(e @ ColumnsError::Full) => return Err(invalid(e.to_string())),
        Err(ColumnsError::Redis(e)) => return Err(e.into()),
    }
    let named: Vec<String> = layout
        .columns
        .iter()
        .zip(&mapping.roles)
        .filter_map(|(c, r)| r.map(|r| format!("{} = {c}", r.as_str())))
        .collect();
    let details = serde_json::json!({
        "deposit_id": &*id, "file": file.name, "roles": named,
    });
    crate::audit::record(&req, &state, AuditKind::ColumnsChosen, details).await;
    // A file that waited for its columns is read again now; a file already read is read again
    // with them, its rows replaced, while its upload is kept and none of its rows is sent.
    let (reread, why) = read_file_again(&state, &id, &file, &job).await?;
    let status = if reread {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(json_no_store(
        status,
        &serde_json::json!({
            "saved": true, "reread": reread, "why": why, "job_id": file.job_id,
        }),
    ))
}

/// Reads a file again with the deposit's current options and saved columns (after "Also read
/// pending payments" was ticked, say): its rows are replaced.
#[post("/api/deposits/{id}/files/{file_id}/reread")]
pub async fn reread_file(
    state: web::Data<AppState>,
    path: web::Path<(DepositId, FileId)>,
) -> Result<HttpResponse, ApiError> {
    let (id, file_id) = path.into_inner();
    let (file, job) = file_and_job(&state, &id, &file_id).await?;
    let (reread, why) = read_file_again(&state, &id, &file, &job).await?;
    if !reread {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NotRetryable,
            why.unwrap_or("the file is being read right now"),
        ));
    }
    Ok(json_no_store(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "reread": true, "job_id": file.job_id }),
    ))
}

/// Reads a file again, whether it was read (its rows replaced) or failed: whether it was
/// queued, and why not.
async fn read_file_again(
    state: &AppState,
    deposit_id: &str,
    file: &fom_core::deposits::DepositFile,
    job: &JobRecord,
) -> Result<(bool, Option<&'static str>), ApiError> {
    if job.state == JobState::Done {
        read_done_again(state, deposit_id, file, &job.file_id).await
    } else {
        Ok((read_again(state, &file.job_id).await?, None))
    }
}

/// Reads a file that was read already again: its rows leave the deposit and its job runs
/// anew. Not when its upload is gone or a row of it is in QuickBooks (then why not).
async fn read_done_again(
    state: &AppState,
    deposit_id: &str,
    file: &fom_core::deposits::DepositFile,
    upload_id: &str,
) -> Result<(bool, Option<&'static str>), ApiError> {
    if !state
        .services
        .store
        .exists(upload_id)
        .await
        .map_err(ApiError::storage)?
    {
        return Ok((
            false,
            Some("this file is no longer kept; upload it again to read it with these columns"),
        ));
    }
    match state
        .services
        .deposits
        .forget_job(deposit_id, &file.job_id, &file.name)
        .await?
    {
        None => return Err(ApiError::not_found("deposit")),
        Some(Err(fom_core::deposits::AlreadySent)) => {
            return Ok((
                false,
                Some("a row of this file is in QuickBooks already, so its rows stay as read"),
            ))
        }
        Some(Ok(_)) => {}
    }
    if !state.services.jobs.reset_for_reread(&file.job_id).await? {
        return Ok((false, Some("the file is being read right now")));
    }
    push_again(state, &file.job_id).await?;
    Ok((true, None))
}

/// A file of a deposit, by their ids.
async fn deposit_file(
    state: &AppState,
    id: &str,
    file_id: &str,
) -> Result<fom_core::deposits::DepositFile, ApiError> {
    load(state, id)
        .await?
        .files
        .into_iter()
        .find(|f| f.id == file_id)
        .ok_or_else(|| ApiError::not_found("file"))
}

/// A file of a deposit and its job record.
async fn file_and_job(
    state: &AppState,
    id: &str,
    file_id: &str,
) -> Result<(fom_core::deposits::DepositFile, JobRecord), ApiError> {
    let file = deposit_file(state, id, file_id).await?;
    let job = state
        .services
        .jobs
        .get(&file.job_id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    Ok((file, job))
}

/// Queues a failed or dead job again; false when it has not failed.
pub(crate) async fn read_again(state: &AppState, job_id: &str) -> Result<bool, ApiError> {
    use fom_core::services::RetryError;
    state.services.retry_job(job_id).await.map_err(|e| match e {
        RetryError::Record(e) => e.into(),
        RetryError::Queue(e) => {
            tracing::error!(error = %e, "job not queued again");
            ApiError::storage(e)
        }
    })
}

/// Puts a job whose record says queued back on its queue.
async fn push_again(state: &AppState, job_id: &str) -> Result<(), ApiError> {
    state
        .services
        .queue
        .push_again(queue_of(job_id), job_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "file not queued again");
            ApiError::storage(e)
        })
}

/// Queues a failed or dead file's job again (the treasurer's retry button).
#[post("/api/deposits/{id}/files/{file_id}/retry")]
pub async fn retry_file(
    state: web::Data<AppState>,
    path: web::Path<(DepositId, FileId)>,
) -> Result<HttpResponse, ApiError> {
    let (id, file_id) = path.into_inner();
    let file = deposit_file(&state, &id, &file_id).await?;
    if !read_again(&state, &file.job_id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NotRetryable,
            "only a failed file can be retried",
        ));
    }
    let counts: HashMap<&str, &str> = HashMap::from([("job_id", file.job_id.as_str())]);
    Ok(json_no_store(StatusCode::ACCEPTED, &counts))
}
