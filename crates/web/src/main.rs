//! fom-web: the thin web process. It takes uploads (streamed into the upload store, one job
//! per file), answers the treasurer's page and API, and reports health. It never renders a
//! PDF: that is the worker's job.

mod api;
mod audit;
mod auth;
mod body_guard;
mod config;
mod error_code;
mod health;
mod http;
mod ids;
mod legal;
mod operations;
mod pages;
mod qbo;
mod report;
mod settings;
mod state;
mod statements;
mod streams;
mod upload;

use std::time::Duration;

use actix_web::middleware::{from_fn, Compress};
use actix_web::{web, App, HttpServer};
use anyhow::Context;

fn main() -> std::process::ExitCode {
    if let Err(e) = fom_core::runtime::init_logs("info") {
        eprint!("fom-web: {e}");
        return std::process::ExitCode::from(2);
    }
    let cfg = match config::Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprint!("fom-web: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match serve(cfg) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fom-web: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[actix_web::main]
async fn serve(cfg: config::Config) -> anyhow::Result<()> {
    let port = cfg.port;
    let workers = cfg.workers;
    let hsts = !cfg.insecure_cookies;
    let max_json = 256 * 1024;
    let state = web::Data::new(state::AppState::connect(cfg).await?);
    state.cfg.monitor.log("web start");
    tracing::info!(port, workers, "listening");
    let app_state = state.clone();
    // actix-web stops accepting and drains in-flight requests on SIGTERM/SIGINT.
    HttpServer::new(move || {
        let protected = web::scope("")
            .wrap(from_fn(auth::require_session))
            .service(pages::index)
            .service(pages::deposit)
            .service(api::create_deposit)
            .service(api::list_deposits)
            .service(api::get_deposit)
            .service(api::patch_record)
            .service(api::delete_record)
            .service(api::delete_deposit)
            .service(api::get_progress)
            .service(api::events)
            .service(api::list_jobs)
            .service(api::get_job)
            .service(api::retry_file)
            .service(api::choose_columns)
            .service(api::set_options)
            .service(api::reread_file)
            .service(upload::upload)
            .service(qbo::connect)
            .service(qbo::qbo_status)
            .service(qbo::disconnect)
            .service(qbo::customers)
            .service(qbo::items)
            .service(qbo::create_item)
            .service(qbo::accounts)
            .service(qbo::create_account)
            .service(qbo::payment_methods)
            .service(qbo::create_payment_method)
            .service(qbo::get_defaults)
            .service(qbo::set_defaults)
            .service(qbo::match_deposit)
            .service(qbo::match_record)
            .service(qbo::unmatch_record)
            .service(qbo::create_customer)
            .service(qbo::customer_draft)
            .service(qbo::accept_address)
            .service(qbo::keep_address)
            .service(qbo::add_contact)
            .service(qbo::preview)
            .service(qbo::set_choices)
            .service(qbo::send_one)
            .service(qbo::update_receipt)
            .service(qbo::send_all)
            .service(qbo::send_status)
            .service(qbo::bank_accounts)
            .service(qbo::record_bank_deposit)
            .service(qbo::attach_sources)
            .service(report::report)
            .service(report::report_csv)
            .service(report::export_csv)
            .service(pages::audit)
            .service(pages::settings)
            .service(settings::get_layout)
            .service(settings::put_layout)
            .service(settings::preview_layout)
            .service(legal::get_texts)
            .service(legal::put_text)
            .service(audit::list)
            .service(pages::operations)
            .service(operations::overview)
            .service(operations::purge)
            .service(operations::retry)
            .service(pages::statements)
            .service(statements::overview)
            .service(statements::put_settings)
            .service(statements::exclude)
            .service(statements::include)
            .service(statements::start)
            .service(statements::download);
        App::new()
            .app_data(app_state.clone())
            // Extractor errors become our errors, so the one handler answers them.
            .app_data(
                web::JsonConfig::default()
                    .limit(max_json)
                    .error_handler(http::json_error),
            )
            .app_data(
                web::FormConfig::default()
                    .limit(16 * 1024)
                    .error_handler(http::form_error),
            )
            .app_data(web::QueryConfig::default().error_handler(http::query_error))
            .app_data(web::PathConfig::default().error_handler(http::path_error))
            // Outermost last: the request log sees every answer, including refusals.
            .wrap(from_fn(http::time_limit))
            .wrap(from_fn(http::same_site_only))
            .wrap(from_fn(http::error_pages))
            .wrap(http::security_headers(hsts))
            .wrap(Compress::default())
            .wrap(from_fn(http::request_log))
            .service(health::health)
            .service(auth::login_page)
            .service(auth::login)
            .service(auth::logout)
            .service(pages::css)
            .service(pages::js)
            .service(pages::js_module)
            .service(pages::icon)
            .service(pages::favicon)
            // Intuit's redirect: it handles a missing session itself (sign in, then back).
            .service(qbo::callback)
            // What Intuit's developer portal links to: read without signing in.
            .service(legal::eula)
            .service(legal::privacy)
            .service(legal::disconnected)
            .service(protected)
            .default_service(web::to(http::not_found))
    })
    .workers(workers)
    .shutdown_timeout(25)
    .client_request_timeout(Duration::from_secs(20))
    .client_disconnect_timeout(Duration::from_secs(5))
    .keep_alive(Duration::from_secs(75))
    .bind(("0.0.0.0", port))
    .with_context(|| format!("cannot bind 0.0.0.0:{port}"))?
    .run()
    .await
    .context("web server failed")
}
