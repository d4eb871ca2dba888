//! The deposit report: FoM's text layout (to edit and paste into the deposit e-mail), the same
//! deposit in FoM's spreadsheet columns (`report.csv`) and the export of every field
//! (`export.csv`), as downloads.

use actix_web::http::{header, StatusCode};
use actix_web::{get, web, HttpRequest, HttpResponse};
use fom_core::audit::AuditKind;
use fom_core::report::{csv_export, fom_csv, report_date_for, text_report, total};
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
    /// QuickBooks's id of the deposit's bank deposit, once recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    bank_deposit_id: Option<String>,
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
    let mut text = text_report(&d.records, date);
    if let Some(line) = d
        .bank_deposit
        .as_ref()
        .and_then(fom_core::report::bank_deposit_line)
    {
        text.push_str(&line);
    }
    Ok(json_no_store(
        StatusCode::OK,
        &Report {
            date: date.format("%Y-%m-%d").to_string(),
            total: total(&d.records),
            text,
            bank_deposit_id: d.bank_deposit.and_then(|b| b.qbo_id),
        },
    ))
}

/// The deposit in FoM's spreadsheet columns, with a Total line; rows kept out of QuickBooks
/// are listed, marked.
#[get("/api/deposits/{id}/report.csv")]
pub async fn report_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
) -> Result<HttpResponse, ApiError> {
    let d = load(&state, &id).await?;
    let details = serde_json::json!({"deposit_id": d.id, "format": "csv"});
    crate::audit::record(&req, &state, AuditKind::ReportDownloaded, details).await;
    let online = match &state.services.qbo {
        Some(q) => Some(q.online_gifts(&d.id).await?),
        None => None,
    };
    let kept_out = |r: &fom_core::donation::Donation| {
        online.and_then(|o| fom_core::qbo::receipts::kept_out(r, o))
    };
    let csv = fom_csv(&d.records, &kept_out);
    csv_download(&d.records, csv, "deposit")
}

/// Every field of every row, as stored (for spreadsheets and checks).
#[get("/api/deposits/{id}/export.csv")]
pub async fn export_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<DepositId>,
) -> Result<HttpResponse, ApiError> {
    let d = load(&state, &id).await?;
    let details = serde_json::json!({"deposit_id": d.id, "format": "export"});
    crate::audit::record(&req, &state, AuditKind::ReportDownloaded, details).await;
    let csv = csv_export(&d.records);
    csv_download(&d.records, csv, "deposit-all-fields")
}

fn csv_download(
    records: &[fom_core::donation::Donation],
    csv: Result<String, fom_core::report::ReportError>,
    stem: &str,
) -> Result<HttpResponse, ApiError> {
    let date = report_date_for(records, chrono::Local::now().date_naive());
    let csv = csv.map_err(|e| {
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
                "attachment; filename=\"{stem}-{}.csv\"",
                date.format("%Y-%m-%d")
            ),
        ))
        .content_type("text/csv; charset=utf-8")
        .body(csv))
}
