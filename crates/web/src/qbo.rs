//! QuickBooks routes: connect (OAuth), status, lookups and the per-record actions (match,
//! create customer, accept an address, preview, send), plus "send all" as a worker job.

use actix_web::cookie::{Cookie, CookieJar, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use fom_core::audit::AuditKind;
use fom_core::jobs::send_all as send_job;
use fom_core::limits::{self, Scope};
use fom_core::qbo::sync::{CreateOutcome, Qbo, SendDefaults};
use fom_core::qbo::{ErrorKind, QboError};
use serde::Deserialize;
use serde_json::json;

use crate::api::{json_no_store, load};
use crate::audit;
use crate::error_code::ErrorCode;
use crate::http::ApiError;
use crate::ids::{DepositId, RecordId};
use crate::state::AppState;

/// The cookie that binds an OAuth `state` to the browser that asked for it: a random secret
/// whose digest the state is stored with. Not the session: the session may end while the
/// person is at Intuit, and the callback must still complete after a new sign-in.
const OAUTH_COOKIE: &str = "fom_oauth";

impl From<QboError> for ApiError {
    fn from(e: QboError) -> Self {
        let kind = e.kind();
        let (status, code) = match kind {
            ErrorKind::NotConfigured => {
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::QboNotConfigured)
            }
            ErrorKind::NotConnected => (StatusCode::CONFLICT, ErrorCode::QboNotConnected),
            ErrorKind::ReconnectNeeded => (StatusCode::CONFLICT, ErrorCode::QboReconnectNeeded),
            ErrorKind::BadState => (StatusCode::BAD_REQUEST, ErrorCode::BadState),
            ErrorKind::Denied => (StatusCode::BAD_REQUEST, ErrorCode::QboDenied),
            ErrorKind::Unavailable => (StatusCode::BAD_GATEWAY, ErrorCode::QboUnavailable),
            ErrorKind::Throttled => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::QboBusy),
            ErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::QboInvalid),
            ErrorKind::DuplicateName => (StatusCode::CONFLICT, ErrorCode::QboDuplicateName),
            ErrorKind::ChooseReference => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::QboChooseReference,
            ),
            ErrorKind::Conflict => (StatusCode::CONFLICT, ErrorCode::QboConflict),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ErrorKind::Internal => return ApiError::storage(e),
        };
        let mut err = ApiError::new(status, code, e.user_message());
        if let Some(reference) = e.reference() {
            err = err.with_details(json!({"choose": reference}));
        }
        if kind == ErrorKind::Unavailable {
            err = err.with_retry_after(30);
        }
        if let QboError::Throttled { wait } = &e {
            err = err.with_retry_after(wait.as_secs().max(1));
        }
        err
    }
}

fn qbo(state: &AppState) -> Result<&Qbo, ApiError> {
    state
        .services
        .qbo
        .as_ref()
        .ok_or_else(|| QboError::NotConfigured.into())
}

fn ok(body: &impl serde::Serialize) -> HttpResponse {
    json_no_store(StatusCode::OK, body)
}

/// The OAuth cookie, signed like the session's; removed (`gone`) once the callback is done.
fn oauth_cookie(state: &AppState, value: String, gone: bool) -> Option<Cookie<'static>> {
    let mut c = Cookie::build(OAUTH_COOKIE, value)
        .path("/qbo/callback")
        .http_only(true)
        .secure(!state.cfg.insecure_cookies)
        // Lax: Intuit sends the browser back with a top-level GET, which carries it.
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(
            fom_core::qbo::connection::STATE_TTL_SECS as i64,
        ))
        .finish();
    if gone {
        c.make_removal();
        return Some(c);
    }
    let mut jar = CookieJar::new();
    jar.signed_mut(&state.cfg.session_key).add(c);
    jar.delta().next().cloned()
}

/// The OAuth binding secret of this browser, when its cookie's signature holds.
fn oauth_binding(req: &HttpRequest, state: &AppState) -> Option<String> {
    let cookie = req.cookie(OAUTH_COOKIE)?;
    let mut jar = CookieJar::new();
    jar.add_original(cookie.into_owned());
    let verified = jar.signed(&state.cfg.session_key).get(OAUTH_COOKIE)?;
    Some(verified.value().to_string())
}

/// Sends the signed-in person to Intuit's consent page, remembering the `state` for this
/// browser.
#[get("/qbo/connect")]
pub async fn connect(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let q = qbo(&state)?;
    let binding = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let url = q.client.connection().authorize_url(&binding).await?;
    let mut res = HttpResponse::Found();
    res.insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(c) = oauth_cookie(&state, binding, false) {
        res.cookie(c);
    }
    Ok(res.finish())
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    #[serde(rename = "realmId")]
    realm_id: Option<String>,
    error: Option<String>,
}

/// Intuit's redirect back. Outside the session check: without a live session (it ended while
/// the person was at Intuit) the whole callback, code and state, becomes the `next` of the
/// sign-in page, so it completes after signing in. The state is then checked once (consumed
/// either way) against this browser's OAuth cookie.
#[get("/qbo/callback")]
pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<Callback>,
) -> Result<HttpResponse, ApiError> {
    let qb = qbo(&state)?;
    if crate::auth::current_session(&req, &state).await?.is_none() {
        let back = req
            .uri()
            .path_and_query()
            .map_or("/qbo/callback", |p| p.as_str());
        return Ok(crate::auth::to_sign_in(back));
    }
    let binding = oauth_binding(&req, &state).unwrap_or_default();
    let done = qb
        .client
        .connection()
        .complete(
            &binding,
            q.state.as_deref(),
            q.code.as_deref(),
            q.realm_id.as_deref(),
            q.error.as_deref(),
        )
        .await;
    match done {
        Ok(_) => {
            let details = json!({"realm_id": q.realm_id});
            audit::record(&req, &state, AuditKind::QboConnect, details).await;
            let mut res = HttpResponse::SeeOther();
            res.insert_header((header::LOCATION, "/?qbo=connected"));
            if let Some(c) = oauth_cookie(&state, String::new(), true) {
                res.cookie(c);
            }
            Ok(res.finish())
        }
        Err(e) => {
            tracing::warn!(kind = ?e.kind(), "qbo: connection not completed");
            let status = match e.kind() {
                ErrorKind::BadState | ErrorKind::Denied => StatusCode::BAD_REQUEST,
                ErrorKind::Internal => return Err(e.into()),
                _ => StatusCode::BAD_GATEWAY,
            };
            Ok(crate::pages::message_page(
                status,
                "QuickBooks was not connected",
                &e.user_message(),
            ))
        }
    }
}

#[get("/api/qbo/status")]
pub async fn qbo_status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match &state.services.qbo {
        None => Ok(ok(&fom_core::qbo::connection::Status::not_configured())),
        Some(q) => Ok(ok(&q.client.connection().status().await?)),
    }
}

#[post("/api/qbo/disconnect")]
pub async fn disconnect(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = qbo(&state)?;
    let revoked = q.client.connection().disconnect().await?;
    audit::record(
        &req,
        &state,
        AuditKind::QboDisconnect,
        json!({"revoked": revoked}),
    )
    .await;
    Ok(ok(&json!({"disconnected": true, "revoked": revoked})))
}

#[derive(Deserialize)]
pub struct Search {
    q: Option<String>,
}

#[get("/api/qbo/customers")]
pub async fn customers(
    state: web::Data<AppState>,
    s: web::Query<Search>,
) -> Result<HttpResponse, ApiError> {
    let q = s.q.as_deref().unwrap_or("");
    limits::check(Scope::Search, "q", q).map_err(|p| ApiError::invalid_fields(&[p]))?;
    let found = qbo(&state)?.search_customers(q).await?;
    Ok(ok(&json!({ "customers": found })))
}

#[get("/api/qbo/items")]
pub async fn items(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(ok(&json!({ "items": qbo(&state)?.items().await? })))
}

#[get("/api/qbo/accounts")]
pub async fn accounts(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(ok(&json!({ "accounts": qbo(&state)?.accounts().await? })))
}

#[get("/api/qbo/payment-methods")]
pub async fn payment_methods(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(ok(
        &json!({ "payment_methods": qbo(&state)?.payment_methods().await? }),
    ))
}

#[derive(Deserialize)]
pub struct NewName {
    name: String,
    income_account_id: Option<String>,
}

impl NewName {
    fn check(&self) -> Result<(), ApiError> {
        limits::check_all(
            Scope::QboList,
            [
                ("name", Some(self.name.as_str())),
                ("income_account_id", self.income_account_id.as_deref()),
            ],
        )
        .map_err(|p| ApiError::invalid_fields(&p))
    }
}

#[post("/api/qbo/items")]
pub async fn create_item(
    state: web::Data<AppState>,
    body: web::Json<NewName>,
) -> Result<HttpResponse, ApiError> {
    body.check()?;
    let item = qbo(&state)?
        .create_item(&body.name, body.income_account_id.as_deref())
        .await?;
    Ok(json_no_store(StatusCode::CREATED, &item))
}

#[post("/api/qbo/accounts")]
pub async fn create_account(
    state: web::Data<AppState>,
    body: web::Json<NewName>,
) -> Result<HttpResponse, ApiError> {
    body.check()?;
    let account = qbo(&state)?.create_account(&body.name).await?;
    Ok(json_no_store(StatusCode::CREATED, &account))
}

#[post("/api/qbo/payment-methods")]
pub async fn create_payment_method(
    state: web::Data<AppState>,
    body: web::Json<NewName>,
) -> Result<HttpResponse, ApiError> {
    body.check()?;
    let method = qbo(&state)?.create_payment_method(&body.name).await?;
    Ok(json_no_store(StatusCode::CREATED, &method))
}

#[get("/api/qbo/defaults")]
pub async fn get_defaults(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(ok(&qbo(&state)?.defaults().await?))
}

#[put("/api/qbo/defaults")]
pub async fn set_defaults(
    state: web::Data<AppState>,
    body: web::Json<SendDefaults>,
) -> Result<HttpResponse, ApiError> {
    let d = &*body;
    limits::check_all(
        Scope::Defaults,
        [
            ("item_id", d.item_id.as_deref()),
            ("item_name", d.item_name.as_deref()),
            ("deposit_account_id", d.deposit_account_id.as_deref()),
            ("deposit_account_name", d.deposit_account_name.as_deref()),
            ("payment_method_id", d.payment_method_id.as_deref()),
            ("payment_method_name", d.payment_method_name.as_deref()),
        ],
    )
    .map_err(|p| ApiError::invalid_fields(&p))?;
    Ok(ok(&qbo(&state)?.set_defaults(&body).await?))
}

#[post("/api/deposits/{id}/match")]
pub async fn match_deposit(
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
) -> Result<HttpResponse, ApiError> {
    load(&state, &id).await?;
    Ok(ok(&qbo(&state)?.match_deposit(&id, false).await?))
}

#[derive(Deserialize)]
pub struct MatchBody {
    customer_id: String,
}

#[post("/api/deposits/{id}/records/{record_id}/match")]
pub async fn match_record(
    state: web::Data<AppState>,
    path: web::Path<(DepositId, RecordId)>,
    body: web::Json<MatchBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, rid) = path.into_inner();
    limits::check(Scope::Customer, "customer_id", body.customer_id.trim())
        .map_err(|p| ApiError::invalid_fields(&[p]))?;
    let r = qbo(&state)?
        .manual_match(&id, &rid.uuid(), body.customer_id.trim())
        .await?;
    Ok(ok(&r))
}

#[delete("/api/deposits/{id}/records/{record_id}/match")]
pub async fn unmatch_record(
    state: web::Data<AppState>,
    path: web::Path<(DepositId, RecordId)>,
) -> Result<HttpResponse, ApiError> {
    let (id, rid) = path.into_inner();
    Ok(ok(&qbo(&state)?.unmatch(&id, &rid.uuid()).await?))
}

/// The new customer a row would make, prefilled, for the page's form: the display name in the
/// pattern the company's customer list follows.
#[get("/api/deposits/{id}/records/{record_id}/customer")]
pub async fn customer_draft(
    state: web::Data<AppState>,
    path: web::Path<(DepositId, RecordId)>,
) -> Result<HttpResponse, ApiError> {
    let (id, rid) = path.into_inner();
    let (draft, pattern) = qbo(&state)?.customer_draft(&id, &rid.uuid()).await?;
    Ok(ok(&json!({"draft": draft, "pattern": pattern})))
}

#[post("/api/deposits/{id}/records/{record_id}/customer")]
pub async fn create_customer(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(DepositId, RecordId)>,
    body: Option<web::Json<fom_core::qbo::customers::CustomerDraft>>,
) -> Result<HttpResponse, ApiError> {
    let (id, rid) = path.into_inner();
    let edits = body.map(web::Json::into_inner).unwrap_or_default();
    limits::check_all(
        Scope::Customer,
        [
            ("display_name", edits.display_name.as_deref()),
            ("given_name", edits.given_name.as_deref()),
            ("family_name", edits.family_name.as_deref()),
            ("company_name", edits.company_name.as_deref()),
            ("email", edits.email.as_deref()),
            ("phone", edits.phone.as_deref()),
            ("address_line_1", edits.address_line_1.as_deref()),
            ("city", edits.city.as_deref()),
            ("state", edits.state.as_deref()),
            ("zip", edits.zip.as_deref()),
        ],
    )
    .map_err(|p| ApiError::invalid_fields(&p))?;
    let (outcome, record) = qbo(&state)?
        .create_customer(&id, &rid.uuid(), &edits)
        .await?;
    if let Some(customer) = record.as_ref().and_then(|r| r.qbo.customer_id.clone()) {
        if matches!(outcome, CreateOutcome::Created { .. }) {
            let details = json!({"deposit_id": id, "record_id": rid, "customer_id": customer});
            audit::record(&req, &state, AuditKind::CustomerCreated, details).await;
        }
    }
    match &outcome {
        CreateOutcome::Created { .. } => Ok(json_no_store(
            StatusCode::CREATED,
            &json!({"result": outcome, "record": record}),
        )),
        CreateOutcome::NameTaken { display_name, .. } => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::QboDuplicateName,
            format!(
                "QuickBooks already has a customer, vendor or employee named \"{display_name}\". \
                 Match this row to that customer, or create it under another name."
            ),
        )
        .with_details(&outcome)),
    }
}

#[post("/api/deposits/{id}/records/{record_id}/address")]
pub async fn accept_address(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(DepositId, RecordId)>,
) -> Result<HttpResponse, ApiError> {
    let (id, rid) = path.into_inner();
    let record = qbo(&state)?.accept_address(&id, &rid.uuid()).await?;
    let details = json!({"deposit_id": id, "record_id": rid,
                         "customer_id": record.qbo.customer_id, "fields": ["address"]});
    audit::record(&req, &state, AuditKind::CustomerUpdated, details).await;
    Ok(ok(&record))
}

#[delete("/api/deposits/{id}/records/{record_id}/address")]
pub async fn keep_address(
    state: web::Data<AppState>,
    path: web::Path<(DepositId, RecordId)>,
) -> Result<HttpResponse, ApiError> {
    let (id, rid) = path.into_inner();
    Ok(ok(&qbo(&state)?.keep_address(&id, &rid.uuid()).await?))
}

#[post("/api/deposits/{id}/records/{record_id}/contact")]
pub async fn add_contact(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(DepositId, RecordId)>,
) -> Result<HttpResponse, ApiError> {
    let (id, rid) = path.into_inner();
    let added = qbo(&state)?.add_contact(&id, &rid.uuid()).await?;
    if !added.is_empty() {
        let details = json!({"deposit_id": id, "record_id": rid, "fields": added});
        audit::record(&req, &state, AuditKind::CustomerUpdated, details).await;
    }
    Ok(ok(&json!({ "added": added })))
}

#[get("/api/deposits/{id}/records/{record_id}/preview")]
pub async fn preview(
    state: web::Data<AppState>,
    path: web::Path<(DepositId, RecordId)>,
) -> Result<HttpResponse, ApiError> {
    let (id, rid) = path.into_inner();
    Ok(ok(&qbo(&state)?.preview(&id, &rid.uuid()).await?))
}

/// A row's own item, deposit account and payment method for its receipt (`null`: the
/// deployment's); answers the row.
#[put("/api/deposits/{id}/records/{record_id}/choices")]
pub async fn set_choices(
    state: web::Data<AppState>,
    path: web::Path<(DepositId, RecordId)>,
    body: web::Json<fom_core::donation::RowChoices>,
) -> Result<HttpResponse, ApiError> {
    let (id, rid) = path.into_inner();
    let c = &*body;
    limits::check_all(
        Scope::Defaults,
        [
            ("item_id", c.item_id.as_deref()),
            ("deposit_account_id", c.deposit_account_id.as_deref()),
            ("payment_method_id", c.payment_method_id.as_deref()),
        ],
    )
    .map_err(|p| ApiError::invalid_fields(&p))?;
    let row = qbo(&state)?
        .set_choices(&id, &rid.uuid(), body.into_inner())
        .await?;
    Ok(ok(&row))
}

#[post("/api/deposits/{id}/records/{record_id}/send")]
pub async fn send_one(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(DepositId, RecordId)>,
) -> Result<HttpResponse, ApiError> {
    let (id, rid) = path.into_inner();
    let q = qbo(&state)?;
    // Before any send: receipts may have been entered in QuickBooks meanwhile.
    q.check_duplicates(&id).await?;
    let defaults = q.defaults().await?;
    let actor = audit::actor(&req, &state);
    let result = q.send_one(&id, &rid.uuid(), &defaults, &actor).await?;
    use fom_core::qbo::receipts::SendOutcome;
    if matches!(
        result.outcome,
        SendOutcome::Sent | SendOutcome::FoundExisting
    ) {
        fom_core::jobs::attach::after_sending(&state.services, &id).await;
    }
    let status = match result.outcome {
        SendOutcome::Sent => StatusCode::CREATED,
        SendOutcome::Refused => StatusCode::UNPROCESSABLE_ENTITY,
        SendOutcome::Error if result.choose.is_some() => StatusCode::UNPROCESSABLE_ENTITY,
        SendOutcome::Error => StatusCode::BAD_GATEWAY,
        SendOutcome::FoundExisting | SendOutcome::AlreadySent => StatusCode::OK,
        SendOutcome::KeptOut | SendOutcome::Duplicate => StatusCode::CONFLICT,
    };
    Ok(json_no_store(status, &result))
}

/// Updates a sent row's receipt after the row was edited (a sparse update; the receipt keeps
/// its number). Answers the row.
#[post("/api/deposits/{id}/records/{record_id}/receipt")]
pub async fn update_receipt(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(DepositId, RecordId)>,
) -> Result<HttpResponse, ApiError> {
    let (id, rid) = path.into_inner();
    let actor = audit::actor(&req, &state);
    let row = qbo(&state)?
        .update_receipt(&id, &rid.uuid(), &actor)
        .await?;
    Ok(ok(&row))
}

/// Starts "send all" on the worker's `qbo` queue, or answers the one already running.
#[post("/api/deposits/{id}/send")]
pub async fn send_all(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
) -> Result<HttpResponse, ApiError> {
    let q = qbo(&state)?;
    let d = load(&state, &id).await?;
    // Fail fast, with the reason, when QuickBooks cannot be used at all.
    let status = q.client.connection().status().await?;
    if !status.connected {
        return Err(if status.reconnect_needed {
            QboError::ReconnectNeeded(status.message.unwrap_or_default()).into()
        } else {
            QboError::NotConnected.into()
        });
    }
    let started = send_job::start(&state.services, &d.id)
        .await
        .map_err(ApiError::storage)?;
    if !started.already_running {
        let details = json!({"deposit_id": d.id, "job_id": started.job_id});
        audit::record(&req, &state, AuditKind::SendAllStarted, details).await;
    }
    Ok(json_no_store(StatusCode::ACCEPTED, &started))
}

/// The deposit's latest send-all job: its progress and, when done, the per-row results.
#[get("/api/deposits/{id}/send")]
pub async fn send_status(
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
) -> Result<HttpResponse, ApiError> {
    let d = load(&state, &id).await?;
    let Some(job_id) = send_job::latest(&state.services, &d.id).await? else {
        return Ok(ok(&json!({"job": null, "results": null})));
    };
    let job = state.services.jobs.get(&job_id).await?;
    let results = state.services.jobs.result(&job_id).await?;
    Ok(ok(&json!({"job": job, "results": results})))
}

/// The accounts a bank deposit can go into (Bank and Other Current Asset, not Undeposited
/// Funds), banks first.
#[get("/api/qbo/bank-accounts")]
pub async fn bank_accounts(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(ok(&qbo(&state)?.bank_accounts().await?))
}

#[derive(Deserialize)]
pub struct BankDepositAsk {
    account_id: String,
    /// YYYY-MM-DD or MM/DD/YYYY; none: the deposit date its rows carry.
    #[serde(default)]
    date: Option<String>,
}

/// "Record the bank deposit in QuickBooks": checks it can be made (every row sent or kept
/// out, not made yet), keeps the account and date on the deposit and queues the job that
/// makes it, or answers the one already running.
#[post("/api/deposits/{id}/bank-deposit")]
pub async fn record_bank_deposit(
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
    body: web::Json<BankDepositAsk>,
) -> Result<HttpResponse, ApiError> {
    let q = qbo(&state)?;
    let d = load(&state, &id).await?;
    let date = match body
        .date
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(text) => Some(
            fom_core::donation::parse_date(text)
                .map_err(|e| ApiError::bad_request(ErrorCode::BadBody, format!("date: {e}")))?,
        ),
    };
    let asked = q
        .ask_bank_deposit(&d.id, body.account_id.trim(), date)
        .await?;
    let started = fom_core::jobs::bank::start(&state.services, &d.id)
        .await
        .map_err(ApiError::storage)?;
    tracing::info!(deposit = %d.id, job = %started.job_id, "bank deposit asked");
    Ok(json_no_store(
        StatusCode::ACCEPTED,
        &json!({"job_id": started.job_id, "state": started.state,
                "already_running": started.already_running, "bank_deposit": asked}),
    ))
}

/// The deposit's bank deposit as the page shows it (none without QuickBooks): what was
/// recorded, the total of its receipts beside the total its slip states, the date and account
/// it would get, whether it can be made now (and why not), and its latest job.
pub async fn bank_view(
    state: &AppState,
    d: &fom_core::deposits::Deposit,
) -> Result<Option<serde_json::Value>, ApiError> {
    use fom_core::qbo::bank;
    let Some(q) = state.services.qbo.as_ref() else {
        return Ok(None);
    };
    let online = q.online_gifts(&d.id).await?;
    let ready = bank::receipts_to_deposit(d, online);
    let receipts_total: rust_decimal::Decimal = d
        .records
        .iter()
        .filter(|r| r.qbo.sales_receipt_id.is_some())
        .filter_map(|r| r.amount)
        .sum();
    let job = match fom_core::jobs::bank::latest(&state.services, &d.id)
        .await
        .map_err(ApiError::storage)?
    {
        Some(j) => state.services.jobs.get(&j).await?,
        None => None,
    };
    // The deposit was read before the job: a job that ended in between recorded its result on
    // a newer deposit than `d`. Read that one, or the page would see the job over and nothing
    // recorded, and offer the form again instead of the result.
    let ended = job.as_ref().is_some_and(|j| {
        !matches!(
            j.state,
            fom_core::jobs::JobState::Queued | fom_core::jobs::JobState::Running
        )
    });
    let unrecorded = d.bank_deposit.as_ref().is_none_or(|b| b.qbo_id.is_none());
    let recorded = if ended && unrecorded {
        state
            .services
            .deposits
            .get(&d.id)
            .await?
            .and_then(|fresh| fresh.bank_deposit)
    } else {
        d.bank_deposit.clone()
    };
    let attach_on = fom_core::jobs::attach::enabled(&state.services);
    let attach_job = if attach_on {
        match fom_core::jobs::attach::latest(&state.services, &d.id)
            .await
            .map_err(ApiError::storage)?
        {
            Some(j) => state.services.jobs.get(&j).await?,
            None => None,
        }
    } else {
        None
    };
    Ok(Some(json!({
        "recorded": recorded,
        "stated_total": bank::stated_total(d).map(|t| t.to_string()),
        "receipts_total": receipts_total.to_string(),
        "receipts": d.records.iter().filter(|r| r.qbo.sales_receipt_id.is_some()).count(),
        "default_date": bank::default_date(d),
        "ready": ready.is_ok(),
        "why_not": ready.err().map(|e| e.to_string()),
        "job": job,
        "attach_sources": attach_on,
        "attach_job": attach_job,
    })))
}

/// Attaches the scans to the deposit's receipts again (rows whose attachment failed, or sent
/// while no attach job ran), on the worker.
#[post("/api/deposits/{id}/attach")]
pub async fn attach_sources(
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
) -> Result<HttpResponse, ApiError> {
    qbo(&state)?;
    let d = load(&state, &id).await?;
    if !fom_core::jobs::attach::enabled(&state.services) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::BadState,
            "scans are not attached to receipts on this server (ATTACH_SOURCES is off)",
        ));
    }
    let started = fom_core::jobs::attach::start(&state.services, &d.id)
        .await
        .map_err(ApiError::storage)?;
    Ok(json_no_store(StatusCode::ACCEPTED, &started))
}
