//! Server-rendered pages: sign-in and a plain deposits list. No inline script or style (the
//! content security policy forbids them); assets are served by this process, never a CDN.

use actix_web::http::{header, StatusCode};
use actix_web::{get, web, HttpResponse};

use crate::http::ApiError;
use crate::state::AppState;

const CSS: &str = include_str!("../assets/app.css");

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{} · fom-qbo</title><link rel=\"stylesheet\" href=\"/static/app.css\">\
             </head><body><main>{body}</main></body></html>\n",
            esc(title)
        ))
}

/// The sign-in page, with an optional message (wrong password, too many attempts).
pub fn login(status: StatusCode, message: Option<&str>, next: Option<&str>) -> HttpResponse {
    let alert = message.map_or_else(String::new, |m| {
        format!("<p class=\"alert\" role=\"alert\">{}</p>", esc(m))
    });
    let next = next.map_or_else(String::new, |n| {
        format!("<input type=\"hidden\" name=\"next\" value=\"{}\">", esc(n))
    });
    page(
        status,
        "Sign in",
        &format!(
            "<h1>Friends of the Mission deposits</h1>{alert}\
             <form method=\"post\" action=\"/login\" class=\"card\">\
             <label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
             {next}<button type=\"submit\">Sign in</button></form>"
        ),
    )
}

#[get("/static/app.css")]
pub async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .content_type("text/css; charset=utf-8")
        .body(CSS)
}

/// The deposits list (signed in).
#[get("/")]
pub async fn index(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let deposits = state.deposits.list(200).await?;
    let mut rows = String::new();
    for d in &deposits {
        let total: rust_decimal::Decimal = d.records.iter().filter_map(|r| r.amount).sum();
        rows.push_str(&format!(
            "<tr><td><a href=\"/deposits/{id}\">{name}</a></td><td class=\"num\">{files}</td>\
             <td class=\"num\">{records}</td><td class=\"num\">${total}</td></tr>",
            id = esc(&d.id),
            name = esc(&d.name),
            files = d.files.len(),
            records = d.records.len(),
            total = fom_core::donation::format_amount(total),
        ));
    }
    let table = if deposits.is_empty() {
        "<p>No deposits yet.</p>".to_string()
    } else {
        format!(
            "<table><thead><tr><th>Deposit</th><th>Files</th><th>Records</th><th>Total</th>\
             </tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    Ok(page(
        StatusCode::OK,
        "Deposits",
        &format!(
            "<h1>Deposits</h1>{table}<form method=\"post\" action=\"/logout\">\
             <button type=\"submit\">Sign out</button></form>"
        ),
    ))
}

/// One deposit (signed in): its files and records, read-only here.
#[get("/deposits/{id}")]
pub async fn deposit(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let d = state
        .deposits
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("deposit"))?;
    let mut rows = String::new();
    for r in &d.records {
        rows.push_str(&format!(
            "<tr><td>{name}</td><td>{reference}</td><td class=\"num\">{amount}</td><td>{date}</td></tr>",
            name = esc(r.display_name().unwrap_or("")),
            reference = esc(r.payment_ref.as_deref().unwrap_or("")),
            amount = r
                .amount
                .map(|a| format!("${}", fom_core::donation::format_amount(a)))
                .unwrap_or_default(),
            date = r
                .payment_date
                .map(|d| d.format("%m/%d/%Y").to_string())
                .unwrap_or_default(),
        ));
    }
    Ok(page(
        StatusCode::OK,
        &d.name,
        &format!(
            "<p><a href=\"/\">All deposits</a></p><h1>{}</h1><table><thead><tr><th>Donor</th>\
             <th>Check / ref</th><th>Amount</th><th>Date</th></tr></thead><tbody>{rows}</tbody></table>",
            esc(&d.name)
        ),
    ))
}
