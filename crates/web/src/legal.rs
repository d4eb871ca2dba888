//! The pages Intuit's developer portal links to (no sign-in: Intuit's reviewers and the
//! company's administrators read them): the licence agreement, the privacy policy and the page
//! Intuit opens after the app is disconnected from QuickBooks; and the settings API that
//! replaces the two texts.

use actix_web::http::StatusCode;
use actix_web::{get, put, web, HttpRequest, HttpResponse};
use fom_core::legal::{LegalError, LegalPage};
use serde::Deserialize;
use serde_json::json;

use crate::api::json_no_store;
use crate::error_code::ErrorCode;
use crate::http::ApiError;
use crate::pages::{esc, page};
use crate::state::AppState;

impl From<LegalError> for ApiError {
    fn from(e: LegalError) -> Self {
        match e {
            LegalError::Redis(e) => ApiError::storage(e),
            e => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::BadBody,
                e.to_string(),
            ),
        }
    }
}

/// Paragraphs separated by blank lines, each escaped; single line breaks kept.
fn paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{}</p>", esc(p).replace('\n', "<br>")))
        .collect()
}

async fn legal_page(state: &AppState, which: LegalPage) -> Result<HttpResponse, ApiError> {
    let (text, _) = state.services.legal.get(which).await?;
    Ok(page(
        StatusCode::OK,
        which.title(),
        None,
        &format!(
            "<main class=\"narrow legal\" data-testid=\"legal-{}\"><h1>{}</h1>{}</main>",
            which.slug(),
            esc(which.title()),
            paragraphs(&text)
        ),
    ))
}

#[get("/legal/eula")]
pub async fn eula(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    legal_page(&state, LegalPage::Eula).await
}

#[get("/legal/privacy")]
pub async fn privacy(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    legal_page(&state, LegalPage::Privacy).await
}

/// Where Intuit sends a company administrator who disconnected the app in QuickBooks (the
/// portal's "Disconnect URL"). The stored tokens stop working there and then; the site says so
/// at the next call ("reconnect QuickBooks").
#[get("/qbo/disconnected")]
pub async fn disconnected() -> HttpResponse {
    page(
        StatusCode::OK,
        "QuickBooks disconnected",
        None,
        "<main class=\"narrow\" data-testid=\"qbo-disconnected\"><h1>QuickBooks is disconnected</h1>\
         <p>This site can no longer read or write your QuickBooks company. Deposits, their rows \
         and reports stay here; receipts already sent stay in QuickBooks.</p>\
         <p>To send receipts again, sign in and choose <strong>Connect</strong> at the top of \
         the page.</p><p><a href=\"/\">Sign in</a></p></main>",
    )
}

/// Both texts, whether each is the operator's own, and the defaults.
#[get("/api/settings/legal")]
pub async fn get_texts(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut out = serde_json::Map::new();
    for which in LegalPage::ALL {
        let (text, own) = state.services.legal.get(which).await?;
        out.insert(
            which.slug().into(),
            json!({"title": which.title(), "text": text, "own": own,
                   "default": which.default_text(), "url": format!("/legal/{}", which.slug())}),
        );
    }
    Ok(json_no_store(StatusCode::OK, &out))
}

#[derive(Deserialize)]
pub struct TextBody {
    /// The new text; null goes back to the default.
    text: Option<String>,
}

/// Replaces one text (or goes back to the default with `{"text": null}`).
#[put("/api/settings/legal/{page}")]
pub async fn put_text(
    req: HttpRequest,
    state: web::Data<AppState>,
    which: web::Path<LegalPage>,
    body: web::Json<TextBody>,
) -> Result<HttpResponse, ApiError> {
    let which = which.into_inner();
    state
        .services
        .legal
        .set(which, body.text.as_deref())
        .await?;
    crate::audit::record(
        &req,
        &state,
        fom_core::audit::AuditKind::LegalTextChanged,
        json!({"page": which.slug(), "default": body.text.is_none()}),
    )
    .await;
    let (text, own) = state.services.legal.get(which).await?;
    Ok(json_no_store(
        StatusCode::OK,
        &json!({"text": text, "own": own}),
    ))
}
