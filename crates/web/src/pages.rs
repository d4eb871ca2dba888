//! Server-rendered pages: sign-in, and the shells of the deposits list and the deposit page,
//! whose data the page script (`app.js` and its modules) loads from the JSON API. No inline
//! script or style (the content security policy forbids them); assets are embedded at compile
//! time and served by this process, never a CDN.

use actix_web::http::header::{self, EntityTag, IfNoneMatch};
use actix_web::http::StatusCode;
use actix_web::{get, web, HttpMessage, HttpRequest, HttpResponse};

use crate::http::ApiError;
use crate::state::AppState;

const CSS: &str = include_str!("../assets/app.css");
pub(crate) const JS: &str = include_str!("../assets/app.js");
const ICON: &str = include_str!("../assets/icon.svg");

/// The native ES modules `app.js` imports (`./js/<name>`), served at `/static/js/{name}`: only
/// these names, no build step.
pub(crate) const MODULES: &[(&str, &str)] = &[
    ("api.js", include_str!("../assets/js/api.js")),
    ("audit.js", include_str!("../assets/js/audit.js")),
    ("bank.js", include_str!("../assets/js/bank.js")),
    ("columns.js", include_str!("../assets/js/columns.js")),
    ("deposit.js", include_str!("../assets/js/deposit.js")),
    ("dom.js", include_str!("../assets/js/dom.js")),
    ("donors.js", include_str!("../assets/js/donors.js")),
    ("format.js", include_str!("../assets/js/format.js")),
    ("legal.js", include_str!("../assets/js/legal.js")),
    ("list.js", include_str!("../assets/js/list.js")),
    ("operations.js", include_str!("../assets/js/operations.js")),
    ("preview.js", include_str!("../assets/js/preview.js")),
    ("qbo.js", include_str!("../assets/js/qbo.js")),
    ("report.js", include_str!("../assets/js/report.js")),
    ("review.js", include_str!("../assets/js/review.js")),
    ("sending.js", include_str!("../assets/js/sending.js")),
    ("settings.js", include_str!("../assets/js/settings.js")),
    ("setup.js", include_str!("../assets/js/setup.js")),
    ("shrink.js", include_str!("../assets/js/shrink.js")),
    ("statements.js", include_str!("../assets/js/statements.js")),
    ("state.js", include_str!("../assets/js/state.js")),
    ("upload.js", include_str!("../assets/js/upload.js")),
    ("validate.js", include_str!("../assets/js/validate.js")),
];

/// FNV-1a of an asset, so its URL changes whenever its content does (long caching is safe).
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

const CSS_VERSION: u64 = fnv1a(CSS.as_bytes());
const JS_VERSION: u64 = fnv1a(JS.as_bytes());

/// Each module's content hash, its ETag.
const MODULE_VERSIONS: [u64; MODULES.len()] = {
    let mut versions = [0; MODULES.len()];
    let mut i = 0;
    while i < MODULES.len() {
        versions[i] = fnv1a(MODULES[i].1.as_bytes());
        i += 1;
    }
    versions
};

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

/// A whole page. `page_kind` (the `data-page` of `<body>`) tells `app.js` what to load; pages
/// without one carry no script.
pub(crate) fn page(
    status: StatusCode,
    title: &str,
    page_kind: Option<&str>,
    body: &str,
) -> HttpResponse {
    let (body_attrs, script) = match page_kind {
        Some(kind) => {
            // The modules are announced up front, so the browser fetches them side by side
            // rather than one import level after another.
            let preload: String = MODULES
                .iter()
                .map(|(name, _)| format!("<link rel=\"modulepreload\" href=\"/static/js/{name}\">"))
                .collect();
            (
                format!(" data-page=\"{}\"", esc(kind)),
                format!(
                    "<script type=\"module\" src=\"/static/app.js?v={JS_VERSION:x}\"></script>{preload}"
                ),
            )
        }
        None => (String::new(), String::new()),
    };
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{} · fom-qbo</title>\
             <link rel=\"icon\" href=\"/static/icon.svg\" type=\"image/svg+xml\">\
             <link rel=\"stylesheet\" href=\"/static/app.css?v={CSS_VERSION:x}\">{script}\
             </head><body{body_attrs}>{body}</body></html>\n",
            esc(title)
        ))
}

/// The bar at the top of signed-in pages: home link, QuickBooks badge, sign out.
fn top_bar() -> &'static str {
    "<header class=\"topbar\"><a class=\"brand\" href=\"/\">FoM deposits</a>\
     <nav class=\"topnav\"><a href=\"/audit\" data-testid=\"nav-audit\">Activity</a>\
     <a href=\"/statements\" data-testid=\"nav-statements\">Statements</a>\
     <a href=\"/settings\" data-testid=\"nav-settings\">Settings</a>\
     <a href=\"/operations\" data-testid=\"nav-operations\">Operations</a></nav>\
     <div class=\"qbo-status\" id=\"qbo-status\" data-testid=\"qbo-badge\" aria-live=\"polite\">\
     <span class=\"badge muted\">QuickBooks: checking…</span></div>\
     <form method=\"post\" action=\"/logout\" class=\"signout\">\
     <button type=\"submit\" class=\"secondary\">Sign out</button></form></header>"
}

/// An error as a page (the JSON API's errors stay JSON): what went wrong in the server's
/// words, and the way back.
pub fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let title = match status.as_u16() {
        404 => "Not found",
        400 | 413 | 415 | 422 => "That request could not be used",
        401 | 403 => "Not allowed",
        429 => "Too many requests",
        503 => "Please try again shortly",
        _ => "Something went wrong",
    };
    message_page(status, title, message)
}

/// A page of one message (as a sentence) and the way back to the deposits.
pub fn message_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let mut sentence: String = message.to_string();
    if let Some(first) = sentence.get(..1) {
        sentence.replace_range(..1, &first.to_uppercase());
    }
    if !sentence.ends_with('.') {
        sentence.push('.');
    }
    page(
        status,
        title,
        None,
        &format!(
            "<main class=\"narrow\"><h1>{}</h1><p>{}</p>\
             <p><a href=\"/\">Back to deposits</a></p></main>",
            esc(title),
            esc(&sentence)
        ),
    )
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
        None,
        &format!(
            "<main class=\"narrow\"><h1>Friends of the Mission deposits</h1>{alert}\
             <form method=\"post\" action=\"/login\" class=\"card\">\
             <label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
             {next}<button type=\"submit\">Sign in</button></form></main>"
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

#[get("/static/app.js")]
pub async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .content_type("text/javascript; charset=utf-8")
        .body(JS)
}

/// One module of the page script.
///
/// Caching: a module's URL cannot carry a version. An import's URL is fixed in the importing
/// module's text (a relative import drops the importer's `?v=`), and an import map, which
/// could add one, would be an inline script, which the CSP forbids. So modules are served
/// `no-cache` with an ETag of their content: the browser asks again on every page load and
/// gets a bodiless 304 while the module is unchanged, or the new text as soon as it changed.
/// The entry keeps its versioned URL and long caching: its own text is all that URL serves,
/// and what it imports is revalidated as just said.
#[get("/static/js/{name}")]
pub async fn js_module(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(i) = MODULES.iter().position(|(n, _)| *n == name.as_str()) else {
        return HttpResponse::NotFound().finish();
    };
    // Weak: the compression middleware may change the bytes on the wire, not the module.
    let tag = EntityTag::new_weak(format!("{:x}", MODULE_VERSIONS[i]));
    let fresh = match req.get_header::<IfNoneMatch>() {
        Some(IfNoneMatch::Any) => true,
        Some(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&tag)),
        None => false,
    };
    let status = if fresh {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(header::ETag(tag));
    if fresh {
        res.finish()
    } else {
        res.content_type("text/javascript; charset=utf-8")
            .body(MODULES[i].1)
    }
}

fn icon_response() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .content_type("image/svg+xml")
        .body(ICON)
}

/// Browsers ask for `/favicon.ico` on their own; answer with the same icon.
#[get("/favicon.ico")]
pub async fn favicon() -> HttpResponse {
    icon_response()
}

#[get("/static/icon.svg")]
pub async fn icon() -> HttpResponse {
    icon_response()
}

/// The deposits list (signed in); the page script (`js/list.js`) fills the table.
#[get("/")]
pub async fn index() -> HttpResponse {
    page(
        StatusCode::OK,
        "Deposits",
        Some("deposits"),
        &format!(
            "{}<main>\
             <div class=\"page-head\"><h1>Deposits</h1>\
             <form id=\"new-deposit\" class=\"inline-form\">\
             <label for=\"new-deposit-name\">Name (optional)</label>\
             <input id=\"new-deposit-name\" name=\"name\" maxlength=\"120\" placeholder=\"Deposit of today\">\
             <button type=\"submit\" data-testid=\"new-deposit\">New deposit</button></form></div>\
             <p id=\"notice\" class=\"notice\" role=\"status\" aria-live=\"polite\"></p>\
             <div id=\"deposits\" data-testid=\"deposits\"><p class=\"empty\">Loading deposits…</p></div>\
             </main>",
            top_bar()
        ),
    )
}

/// The activity (audit) log: sign-ins, uploads, edits, receipts; the page script loads
/// `/api/audit` (`js/audit.js`).
#[get("/audit")]
pub async fn audit() -> HttpResponse {
    page(
        StatusCode::OK,
        "Activity",
        Some("audit"),
        &format!(
            "{}<main>\
             <div class=\"page-head\"><h1>Activity</h1>\
             <form id=\"audit-filter\" class=\"inline-form\">\
             <label for=\"audit-kind\">Show</label>\
             <select id=\"audit-kind\" name=\"kind\" data-testid=\"audit-kind\">\
             <option value=\"\">Everything</option></select></form></div>\
             <p id=\"notice\" class=\"notice\" role=\"status\" aria-live=\"polite\"></p>\
             <div id=\"audit\" data-testid=\"audit\"><p class=\"empty\">Loading activity…</p></div>\
             <p><button type=\"button\" id=\"audit-more\" class=\"secondary\" hidden>Older events</button></p>\
             </main>",
            top_bar()
        ),
    )
}

/// The operator's page (signed in): worker dynos and children with their memory over the
/// last hour, the queues, and the jobs with retry and purge (`js/operations.js`, which polls
/// `/api/operations`).
#[get("/operations")]
pub async fn operations() -> HttpResponse {
    page(
        StatusCode::OK,
        "Operations",
        Some("operations"),
        &format!(
            "{}<main class=\"wide\">\
             <div class=\"page-head\"><h1>Operations</h1>\
             <p class=\"muted\" id=\"ops-updated\" data-testid=\"ops-updated\" aria-live=\"polite\"></p></div>\
             <p id=\"notice\" class=\"notice\" role=\"status\" aria-live=\"polite\"></p>\
             <section class=\"card\"><h2>Worker dynos</h2>\
             <div id=\"ops-dynos\" data-testid=\"ops-dynos\"><p class=\"empty\">Loading…</p></div></section>\
             <section class=\"card\"><h2>Worker processes <small class=\"muted\">live, and stopped in the last hour</small></h2>\
             <div id=\"ops-children\" data-testid=\"ops-children\"><p class=\"empty\">Loading…</p></div></section>\
             <section class=\"card\"><h2>Queues</h2>\
             <div id=\"ops-queues\" data-testid=\"ops-queues\"></div></section>\
             <section class=\"card\"><div class=\"page-head\"><h2>Jobs</h2>\
             <form id=\"ops-filter\" class=\"inline-form\">\
             <label for=\"ops-state\">Show</label>\
             <select id=\"ops-state\" data-testid=\"ops-state\"><option value=\"\">All</option>\
             <option value=\"queued\">Queued</option><option value=\"running\">Running</option>\
             <option value=\"done\">Done</option><option value=\"failed\">Failed</option>\
             <option value=\"dead\">Dead</option></select></form></div>\
             <div id=\"ops-jobs\" data-testid=\"ops-jobs\"></div>\
             <form id=\"ops-purge\" class=\"inline-form\">\
             <label for=\"ops-purge-days\">Delete finished and dead jobs older than</label>\
             <input id=\"ops-purge-days\" type=\"number\" min=\"0\" max=\"366\" value=\"7\" \
             data-testid=\"ops-purge-days\"> days \
             <button type=\"submit\" class=\"secondary\" data-testid=\"ops-purge\">Purge</button></form>\
             </section></main>",
            top_bar()
        ),
    )
}

/// Year-end donor statements (signed in): start a run and follow it, download the letters,
/// the letters' settings and the customers left out (`js/statements.js`).
#[get("/statements")]
pub async fn statements() -> HttpResponse {
    let field = |id: &str, label: &str, kind: &str, hint: &str| {
        let input = if kind == "textarea" {
            format!(
                "<textarea id=\"st-{id}\" name=\"{id}\" rows=\"3\" maxlength=\"2000\" \
                 data-testid=\"st-{id}\"></textarea>"
            )
        } else {
            format!(
                "<input id=\"st-{id}\" name=\"{id}\" type=\"text\" maxlength=\"200\" \
                 autocomplete=\"off\" data-testid=\"st-{id}\">"
            )
        };
        format!(
            "<div class=\"field\"><label for=\"st-{id}\">{label}</label>{input}\
             <small>{hint}</small>\
             <span class=\"field-error\" id=\"st-{id}-error\" role=\"alert\"></span></div>"
        )
    };
    let fields = [
        field(
            "organization",
            "Organization",
            "input",
            "As on your IRS determination letter.",
        ),
        field("address", "Address", "textarea", "The letterhead's lines."),
        field(
            "ein",
            "EIN",
            "input",
            "Employer Identification Number, 12-3456789.",
        ),
        field("signer_name", "Signed by", "input", ""),
        field("signer_title", "Title", "input", ""),
        field("opening", "Opening paragraph", "textarea", ""),
        field(
            "acknowledgement",
            "Acknowledgement",
            "textarea",
            "The IRS asks that it say no goods or services were given for the gifts (or what was).",
        ),
        field("closing", "Closing paragraph", "textarea", ""),
    ]
    .concat();
    page(
        StatusCode::OK,
        "Year-end statements",
        Some("statements"),
        &format!(
            "{}<main>\
             <div class=\"page-head\"><h1>Year-end statements</h1></div>\
             <p id=\"notice\" class=\"notice\" role=\"status\" aria-live=\"polite\"></p>\
             <section class=\"card settings-card\"><h2>Write the letters</h2>\
             <p>One letter per donor, listing each gift in the period from QuickBooks' sales \
             receipts, with the total and the acknowledgement donors need for their taxes.</p>\
             <form id=\"st-run\" class=\"stack-form\">\
             <div class=\"inline-form\"><label for=\"st-from\">From</label>\
             <input id=\"st-from\" type=\"date\" data-testid=\"st-from\">\
             <label for=\"st-to\">to</label><input id=\"st-to\" type=\"date\" data-testid=\"st-to\"></div>\
             <div class=\"field\"><label><input type=\"checkbox\" id=\"st-only-large\" \
             data-testid=\"st-only-large\"> Only donors who gave a single gift of $250 or more</label></div>\
             <p class=\"actions\"><button type=\"submit\" data-testid=\"st-start\">Write the letters</button></p>\
             </form>\
             <div id=\"st-progress\" data-testid=\"st-progress\" aria-live=\"polite\"></div>\
             <div id=\"st-result\" data-testid=\"st-result\"></div></section>\
             <section class=\"card settings-card\"><h2>What the letters say</h2>\
             <p>Paragraphs may use <code>{{organization}}</code>, <code>{{ein}}</code>, \
             <code>{{from}}</code>, <code>{{to}}</code>, <code>{{year}}</code> and <code>{{donor}}</code>.</p>\
             <form id=\"st-settings\" class=\"stack-form\">{fields}\
             <p class=\"actions\"><button type=\"submit\" data-testid=\"st-save\">Save</button></p>\
             </form></section>\
             <section class=\"card settings-card\"><h2>Not donors</h2>\
             <p>Customers left out of every run (a bank, a vendor).</p>\
             <div id=\"st-excluded\" data-testid=\"st-excluded\"></div>\
             <form id=\"st-find\" class=\"inline-form\"><label for=\"st-find-q\">Find a customer</label>\
             <input id=\"st-find-q\" type=\"search\" maxlength=\"100\" data-testid=\"st-find-q\">\
             <button type=\"submit\" class=\"secondary\">Find</button></form>\
             <div id=\"st-found\" data-testid=\"st-found\"></div></section>\
             </main>",
            top_bar()
        ),
    )
}

/// Settings (signed in): the receipt layout with a live preview (`js/settings.js`).
#[get("/settings")]
pub async fn settings() -> HttpResponse {
    let template = |id: &str, label: &str, hint: &str| {
        format!(
            "<div class=\"field\"><label for=\"layout-{id}\">{label}</label>\
             <input id=\"layout-{id}\" name=\"{id}\" type=\"text\" maxlength=\"400\" \
             spellcheck=\"false\" autocomplete=\"off\" data-testid=\"layout-{id}\">\
             <small>{hint}</small>\
             <span class=\"field-error\" id=\"layout-{id}-error\" data-testid=\"layout-{id}-error\" role=\"alert\"></span></div>"
        )
    };
    page(
        StatusCode::OK,
        "Settings",
        Some("settings"),
        &format!(
            "{}<main>\
             <div class=\"page-head\"><h1>Settings</h1></div>\
             <p id=\"notice\" class=\"notice\" role=\"status\" aria-live=\"polite\"></p>\
             <section class=\"card settings-card\"><h2>What each receipt says</h2>\
             <p>Write <code>{{field}}</code> for a field; a part in <code>[ ]</code> is left out \
             when a field in it is empty.</p>\
             <form id=\"layout-form\" class=\"stack-form\">{}{}{}\
             <div class=\"field\"><label><input type=\"checkbox\" id=\"layout-service_date\" \
             data-testid=\"layout-service_date\"> The gift date as the line's service date too</label></div>\
             <p class=\"actions\"><button type=\"submit\" data-testid=\"layout-save\">Save</button> \
             <button type=\"button\" class=\"secondary\" id=\"layout-reset\" data-testid=\"layout-reset\">Back to the usual layout</button></p>\
             </form></section>\
             <section class=\"card settings-card\"><h2>Preview</h2><p id=\"layout-example\" class=\"muted\"></p>\
             <dl id=\"layout-preview\" class=\"preview\" data-testid=\"layout-preview\"></dl></section>\
             <section class=\"card settings-card\"><h2>Fields</h2><dl id=\"layout-fields\" class=\"fields\"></dl></section>\
             <section class=\"card settings-card\"><h2>Licence agreement and privacy policy</h2>\
             <p class=\"muted\">Intuit's developer portal asks for links to these before it issues \
             production keys; anyone can read them without signing in.</p>\
             <div id=\"legal-texts\" data-testid=\"legal-texts\"></div></section>\
             </main>",
            top_bar(),
            template(
                "description",
                "Description (the receipt's line)",
                "At most 1,000 characters are kept."
            ),
            template(
                "doc_number",
                "Receipt number (DocNumber)",
                "QuickBooks keeps 21 characters; longer numbers are cut. Empty: QuickBooks numbers it."
            ),
            template(
                "customer_memo",
                "Message on the receipt (customer memo)",
                "Empty: no message."
            ),
        ),
    )
}

/// One deposit (signed in): upload, review, fix donors, send, report; the page script does the
/// work (`js/deposit.js` and the modules it starts).
#[get("/deposits/{id}")]
pub async fn deposit(
    state: web::Data<AppState>,
    id: web::Path<crate::ids::DepositId>,
) -> Result<HttpResponse, ApiError> {
    let Some(d) = state.services.deposits.get(&id).await? else {
        return Ok(page(
            StatusCode::NOT_FOUND,
            "Deposit not found",
            None,
            &format!(
                "{}<main><h1>Deposit not found</h1><p>This deposit does not exist or has \
                 expired.</p><p><a href=\"/\">Back to all deposits</a></p></main>",
                top_bar()
            ),
        ));
    };
    Ok(page(
        StatusCode::OK,
        &d.name,
        Some("deposit"),
        &format!(
            "{top}<main id=\"deposit\" data-deposit-id=\"{id}\" data-photo-max-long=\"{photo}\">\
             <p class=\"crumbs\"><a href=\"/\">All deposits</a></p>\
             <h1 id=\"deposit-name\">{name}</h1>\
             <div id=\"deposit-warnings\" data-testid=\"deposit-warnings\" role=\"alert\"></div>\
             <p id=\"notice\" class=\"notice\" role=\"status\" aria-live=\"polite\"></p>\
             <section aria-labelledby=\"files-title\" class=\"panel\">\
             <h2 id=\"files-title\">Files</h2>\
             <div id=\"dropzone\" class=\"dropzone\" data-testid=\"dropzone\">\
             <p>Drop PDFs, photos (JPEG, PNG) or CSV files here, or</p>\
             <input id=\"file-input\" data-testid=\"file-input\" type=\"file\" multiple \
              accept=\".pdf,.csv,.jpg,.jpeg,.png,application/pdf,text/csv,image/jpeg,image/png\" class=\"visually-hidden\">\
             <label for=\"file-input\" class=\"button\">Choose files…</label>\
             </div>\
             <p class=\"option\"><input type=\"checkbox\" id=\"keep-pending\" data-testid=\"keep-pending\">\
              <label for=\"keep-pending\">Also read pending payments from CSV exports (each marked \
              for a check before sending)</label></p>\
             <p class=\"option\" id=\"online-gifts-option\" hidden><label for=\"online-gifts\">Online gifts</label> \
              <select id=\"online-gifts\" data-testid=\"online-gifts\">\
              <option value=\"report\">listed in the report only (they reach the books another way)</option>\
              <option value=\"send\">sent to QuickBooks as receipts</option></select></p>\
             <ul id=\"files\" class=\"files\" data-testid=\"file-list\" aria-live=\"polite\"></ul>\
             </section>\
             <section aria-labelledby=\"records-title\" class=\"panel\">\
             <div class=\"panel-head\"><h2 id=\"records-title\">Records</h2>\
             <p id=\"totals\" class=\"totals\" data-testid=\"totals\"></p></div>\
             <div id=\"records\" class=\"records\"><p class=\"empty\">Loading…</p></div>\
             </section>\
             <section aria-labelledby=\"send-title\" class=\"panel\" id=\"send-panel\">\
             <h2 id=\"send-title\">Send to QuickBooks</h2>\
             <div id=\"send\"><p class=\"empty\">Checking QuickBooks…</p></div>\
             </section>\
             <section aria-labelledby=\"bank-title\" class=\"panel\" id=\"bank-panel\" hidden>\
             <h2 id=\"bank-title\">Bank deposit</h2>\
             <div id=\"bank\" data-testid=\"bank\"></div>\
             </section>\
             <section aria-labelledby=\"report-title\" class=\"panel\">\
             <h2 id=\"report-title\">Deposit report</h2>\
             <div id=\"report\"><button type=\"button\" id=\"report-open\" data-testid=\"report-open\">\
             Show the report</button></div>\
             </section>\
             <section aria-labelledby=\"delete-title\" class=\"panel\">\
             <h2 id=\"delete-title\">Delete this deposit</h2>\
             <p class=\"muted\">Its rows, files and reading history go; receipts already in \
             QuickBooks stay there.</p>\
             <p><button type=\"button\" class=\"secondary\" id=\"deposit-delete\" \
             data-testid=\"deposit-delete\">Delete this deposit…</button> \
             <span id=\"deposit-delete-status\" role=\"status\"></span></p>\
             </section>\
             <dialog id=\"donor-dialog\" aria-labelledby=\"donor-dialog-title\" data-testid=\"donor-dialog\"></dialog>\
             <dialog id=\"customer-dialog\" class=\"wide\" aria-labelledby=\"customer-dialog-title\" data-testid=\"customer-dialog\"></dialog>\
             <dialog id=\"setup-dialog\" aria-labelledby=\"setup-dialog-title\" data-testid=\"setup-dialog\"></dialog>\
             <dialog id=\"columns-dialog\" class=\"wide\" aria-labelledby=\"columns-dialog-title\" data-testid=\"columns-dialog\"></dialog>\
             </main>",
            top = top_bar(),
            id = esc(&d.id),
            name = esc(&d.name),
            photo = state.cfg.photo_max_long,
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::MODULES;

    /// The Activity page names every kind of event the log can hold (its filter lists them).
    #[test]
    fn the_activity_page_names_every_audit_kind() {
        let audit_js = MODULES
            .iter()
            .find(|(name, _)| *name == "audit.js")
            .map(|(_, text)| *text)
            .unwrap_or_default();
        for kind in fom_core::audit::AuditKind::ALL {
            assert!(
                audit_js.contains(&format!("  {}: '", kind.as_str())),
                "js/audit.js does not name {}",
                kind.as_str()
            );
        }
    }
}
