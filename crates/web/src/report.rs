//! The deposit report: FoM's text layout (to edit and paste into the deposit e-mail) and the
//! CSV export of every field, as a download.

use actix_web::http::{header, StatusCode};
use actix_web::{get, web, HttpRequest, HttpResponse};
use fom_core::audit::AuditKind;
use fom_core::report::{csv_export, report_date_for, text_report, total};
use serde::Serialize;

use crate::api::{json_no_store, load};
use crate::error_code::ErrorCode;
use crate::http::ApiError;
use crate::ids::DepositId;
use crate::state::AppState;

#[derive(Serialize)]
struct Report {
    /// The report's date (the latest deposit date of its records), `YYYY-MM-DD`.
    date: String,
    #[serde(with = "rust_decimal::serde::str")]
    total: rust_decimal::Decimal,
    text: String,
}

#[get("/api/deposits/{id}/report")]
pub async fn report(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
) -> Result<HttpResponse, ApiError> {
    let d = load(&state, &id).await?;
    let details = serde_json::json!({"deposit_id": d.id, "format": "text"});
    crate::audit::record(&req, &state, AuditKind::ReportDownloaded, details).await;
    let date = report_date_for(&d.records, chrono::Local::now().date_naive());
    Ok(json_no_store(
        StatusCode::OK,
        &Report {
            date: date.format("%Y-%m-%d").to_string(),
            total: total(&d.records),
            text: text_report(&d.records, date),
        },
    ))
}

#[get("/api/deposits/{id}/report.csv")]
pub async fn report_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
) -> Result<HttpResponse, ApiError> {
    let d = load(&state, &id).await?;
    let details = serde_json::json!({"deposit_id": d.id, "format": "csv"});
    crate::audit::record(&req, &state, AuditKind::ReportDownloaded, details).await;
    let date = report_date_for(&d.records, chrono::Local::now().date_naive());
    let csv = csv_export(&d.records).map_err(|e| {
        tracing::error!(error = %e, "csv export failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ReportFailed,
            "the CSV could not be made; try again",
        )
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"deposit-{}.csv\"",
                date.format("%Y-%m-%d")
            ),
        ))
        .content_type("text/csv; charset=utf-8")
        .body(csv))
}
