//! Year-end donor statements (`/statements`, signed in): the letters' settings, the customers
//! left out, starting a run and watching it (donor i of n), and downloading what it wrote
//! (the print PDF, the ZIP of one PDF per donor, the CSV summary). The run itself is the
//! worker's `stmt-…` job (`fom_core::jobs::statements`).

use actix_web::http::{header, StatusCode};
use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use fom_core::jobs::statements::{self as job, OutputFile};
use fom_core::statements::{RunParams, StatementSettings};
use serde::Deserialize;
use serde_json::json;

use crate::api::json_no_store;
use crate::error_code::ErrorCode;
use crate::http::ApiError;
use crate::ids::{CustomerId, JobId};
use crate::state::AppState;

/// The longest period one run covers: two years (a late statement for last year and this one).
const MAX_DAYS: i64 = 731;

impl From<fom_core::statements::settings::SettingsError> for ApiError {
    fn from(e: fom_core::statements::settings::SettingsError) -> Self {
        use fom_core::statements::settings::SettingsError;
        match e {
            SettingsError::BadCustomer(id) => ApiError::bad_request(
                ErrorCode::BadBody,
                format!("{id:?} is not a QuickBooks customer id"),
            ),
            other => ApiError::storage(other),
        }
    }
}

/// Everything the page shows: settings (and what they lack), the customers left out, the
/// default period, and the latest run with its progress and result.
#[get("/api/statements")]
pub async fn overview(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let s = &state.services;
    let settings = s.statements.settings().await?;
    let excluded: Vec<serde_json::Value> = s
        .statements
        .excluded()
        .await?
        .into_iter()
        .map(|(id, name)| json!({"customer_id": id, "name": name}))
        .collect();
    let latest = match job::latest(s).await? {
        Some(id) => match s.jobs.get(&id).await? {
            Some(record) => {
                let params = job::params(s, &id).await?;
                let result = s.jobs.result(&id).await?;
                Some(json!({"job": record, "params": params, "result": result}))
            }
            None => None,
        },
        None => None,
    };
    Ok(json_no_store(
        StatusCode::OK,
        &json!({
            "settings": settings,
            "problems": settings.problems(),
            "defaults": StatementSettings::default(),
            "excluded": excluded,
            "period": RunParams::last_year(chrono::Local::now().date_naive()),
            "qbo": s.qbo.is_some(),
            "latest": latest,
        }),
    ))
}

/// Saves the settings (an incomplete draft too: a run refuses until it is complete) and
/// answers what they still lack.
#[put("/api/statements/settings")]
pub async fn put_settings(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<StatementSettings>,
) -> Result<HttpResponse, ApiError> {
    let settings = body.into_inner();
    let too_long = settings.too_long();
    if !too_long.is_empty() {
        return Err(ApiError::invalid_fields(&too_long));
    }
    state.services.statements.set_settings(&settings).await?;
    crate::audit::record(
        &req,
        &state,
        fom_core::audit::AuditKind::StatementSettingsChanged,
        json!({}),
    )
    .await;
    Ok(json_no_store(
        StatusCode::OK,
        &json!({"settings": settings, "problems": settings.problems()}),
    ))
}

#[derive(Deserialize)]
pub struct ExcludeBody {
    customer_id: String,
    #[serde(default)]
    name: String,
}

/// Marks a QuickBooks customer as not a donor (a bank, a vendor): left out of every run.
#[post("/api/statements/excluded")]
pub async fn exclude(
    state: web::Data<AppState>,
    body: web::Json<ExcludeBody>,
) -> Result<HttpResponse, ApiError> {
    state
        .services
        .statements
        .exclude(body.customer_id.trim(), body.name.trim())
        .await?;
    Ok(json_no_store(
        StatusCode::OK,
        &json!({"customer_id": body.customer_id.trim(), "excluded": true}),
    ))
}

/// A customer counts as a donor again.
#[delete("/api/statements/excluded/{customer_id}")]
pub async fn include(
    state: web::Data<AppState>,
    customer_id: web::Path<CustomerId>,
) -> Result<HttpResponse, ApiError> {
    if !state.services.statements.include(&customer_id).await? {
        return Err(ApiError::not_found("left-out customer"));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct RunBody {
    from: Option<String>,
    to: Option<String>,
    #[serde(default)]
    only_large: bool,
}

fn date(field: &str, text: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        ApiError::invalid_fields(&[fom_core::deposits::FieldProblem {
            field: field.into(),
            message: "a date as YYYY-MM-DD".into(),
        }])
    })
}

/// Starts a run for the period (default: last calendar year), or answers the one already
/// running. Refused (422) while the settings lack what every letter must say.
#[post("/api/statements")]
pub async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RunBody>,
) -> Result<HttpResponse, ApiError> {
    let s = &state.services;
    if s.qbo.is_none() {
        return Err(fom_core::qbo::QboError::NotConfigured.into());
    }
    let mut params = RunParams::last_year(chrono::Local::now().date_naive());
    if let Some(from) = body.from.as_deref().filter(|t| !t.trim().is_empty()) {
        params.from = date("from", from)?;
    }
    if let Some(to) = body.to.as_deref().filter(|t| !t.trim().is_empty()) {
        params.to = date("to", to)?;
    }
    params.only_large = body.only_large;
    let days = (params.to - params.from).num_days();
    if !(0..=MAX_DAYS).contains(&days) {
        return Err(ApiError::invalid_fields(&[
            fom_core::deposits::FieldProblem {
                field: "to".into(),
                message: "the period ends on or after its start, and spans at most two years"
                    .into(),
            },
        ]));
    }
    let problems = s.statements.settings().await?.problems();
    if !problems.is_empty() {
        return Err(ApiError::invalid_fields(&problems));
    }
    let started = job::start(s, &params).await.map_err(ApiError::storage)?;
    tracing::info!(job = %started.job_id, "statements run asked");
    if !started.already_running {
        crate::audit::record(
            &req,
            &state,
            fom_core::audit::AuditKind::StatementsStarted,
            json!({"job_id": started.job_id, "from": params.from, "to": params.to,
                   "only_large": params.only_large}),
        )
        .await;
    }
    Ok(json_no_store(
        StatusCode::ACCEPTED,
        &json!({"job_id": started.job_id, "state": started.state,
                "already_running": started.already_running, "params": params}),
    ))
}

/// The files a run writes.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    Pdf,
    Zip,
    Csv,
}

impl OutputKind {
    fn name(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Zip => "zip",
            Self::Csv => "csv",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Zip => "application/zip",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// One of a run's files: `pdf` (every letter, to print), `zip` (a PDF per donor) or `csv`.
#[get("/api/statements/{id}/files/{kind}")]
pub async fn download(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(JobId, OutputKind)>,
) -> Result<HttpResponse, ApiError> {
    let (id, kind) = path.into_inner();
    let content_type = kind.content_type();
    let kind = kind.name();
    let s = &state.services;
    let file: OutputFile = s
        .jobs
        .result(&id)
        .await?
        .and_then(|r| r.get("files")?.get(kind).cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| ApiError::not_found("statements file"))?;
    // Through a local file: the store may be Redis chunks or S3, and the answer streams.
    let tmp = tempfile::NamedTempFile::new().map_err(ApiError::storage)?;
    match s.store.fetch_to(&file.id, tmp.path()).await {
        Ok(_) => {}
        Err(fom_core::store::StoreError::NotFound(_)) => {
            return Err(ApiError::new(
                StatusCode::GONE,
                ErrorCode::NotFound,
                "these letters are no longer kept; start the run again",
            ))
        }
        Err(e) => return Err(ApiError::storage(e)),
    }
    let (std_file, path) = tmp.into_parts();
    // The name goes now; the open file's space is freed once the answer is sent.
    drop(path);
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(std_file));
    crate::audit::record(
        &req,
        &state,
        fom_core::audit::AuditKind::ReportDownloaded,
        json!({"statements_job": id.to_string(), "format": kind}),
    )
    .await;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", file.name.replace('"', "")),
        ))
        .body(actix_web::body::SizedStream::new(file.size, stream)))
}
