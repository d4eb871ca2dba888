//! Settings of the receipts (`/settings` and its API): the layout of Description, DocNumber
//! and customer memo, with a live preview of one receipt.

use actix_web::http::StatusCode;
use actix_web::{get, post, put, web, HttpRequest, HttpResponse};
use fom_core::qbo::layout::{example_check, ReceiptLayout, FIELDS};
use serde_json::json;

use crate::api::json_no_store;
use crate::error_code::ErrorCode;
use crate::http::ApiError;
use crate::state::AppState;

fn qbo(state: &AppState) -> Result<&fom_core::qbo::sync::Qbo, ApiError> {
    state
        .services
        .qbo
        .as_ref()
        .ok_or_else(|| fom_core::qbo::QboError::NotConfigured.into())
}

/// The layout, the fields a template may name, and the default layout.
#[get("/api/settings/receipt")]
pub async fn get_layout(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let layout = qbo(&state)?.layout().await?;
    let fields: Vec<_> = FIELDS
        .iter()
        .map(|(name, about)| json!({"name": name, "about": about}))
        .collect();
    Ok(json_no_store(
        StatusCode::OK,
        &json!({"layout": layout, "default": ReceiptLayout::default(), "fields": fields}),
    ))
}

/// Saves a layout; a template that names an unknown field or leaves a bracket open is refused
/// (422) with what is wrong.
#[put("/api/settings/receipt")]
pub async fn put_layout(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<ReceiptLayout>,
) -> Result<HttpResponse, ApiError> {
    checked(&body)?;
    qbo(&state)?.set_layout(&body).await?;
    crate::audit::record(
        &req,
        &state,
        fom_core::audit::AuditKind::ReceiptLayoutChanged,
        json!({"layout": &*body}),
    )
    .await;
    Ok(json_no_store(StatusCode::OK, &json!({"layout": &*body})))
}

/// What a layout (saved or not) makes of an example check, for the settings page's preview.
/// A template that does not parse is an answer here, not a failed request (the page asks on
/// every keystroke): `problems` says what is wrong.
#[post("/api/settings/receipt/preview")]
pub async fn preview_layout(body: web::Json<ReceiptLayout>) -> Result<HttpResponse, ApiError> {
    if let Err(e) = body.validate() {
        return Ok(json_no_store(
            StatusCode::OK,
            &json!({"problems": [{"field": e.field(), "message": e.to_string()}]}),
        ));
    }
    let today = chrono::Local::now().date_naive();
    let example = example_check(today);
    let r = body.render(&example, today);
    let gift_date = example
        .payment_date
        .map(|d| d.format("%Y-%m-%d").to_string());
    Ok(json_no_store(
        StatusCode::OK,
        &json!({
            "description": r.description,
            "doc_number": r.doc_number,
            "customer_memo": r.customer_memo,
            "txn_date": gift_date,
            "service_date": if body.service_date { gift_date } else { None },
            "example": "a check of $125.00 from Jane O'Brien, no. 1043, memo \"In memory of Ann\"",
        }),
    ))
}

fn checked(layout: &ReceiptLayout) -> Result<(), ApiError> {
    layout.validate().map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidFields,
            e.to_string(),
        )
        .with_details(json!([{"field": e.field(), "message": e.to_string()}]))
    })
}
