//! fom-web: the thin web process. For now: configuration check, `/health` with the memory
//! monitor, graceful shutdown. Uploads, the review API and the pages come with their issues.

use actix_web::{get, middleware, web, App, HttpResponse, HttpServer};
use anyhow::Context;
use fom_core::config::EnvReader;
use fom_core::memory::Monitor;
use serde::Serialize;

struct Config {
    port: u16,
    workers: usize,
    monitor: Monitor,
}

fn config() -> Result<Config, fom_core::config::ConfigError> {
    let mut env = EnvReader::from_process();
    let port = env.number("PORT", 8080u16, 1, 65_535);
    let workers = env.number("WEB_CONCURRENCY", 2usize, 1, 64);
    let monitor = fom_core::runtime::memory_settings(&mut env);
    env.finish()?;
    Ok(Config {
        port,
        workers,
        monitor,
    })
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    system: System,
}

#[derive(Serialize)]
struct System {
    memory_monitor: fom_core::memory::Snapshot,
}

#[get("/health")]
async fn health(monitor: web::Data<Monitor>) -> HttpResponse {
    let snapshot = monitor.snapshot();
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            system: System {
                memory_monitor: snapshot,
            },
        })
}

fn main() -> std::process::ExitCode {
    fom_core::runtime::init_logs("info");
    let cfg = match config() {
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
async fn serve(cfg: Config) -> anyhow::Result<()> {
    let monitor = web::Data::new(cfg.monitor);
    monitor.log("web start");
    tracing::info!(port = cfg.port, workers = cfg.workers, "listening");
    // actix-web stops accepting and drains in-flight requests on SIGTERM/SIGINT.
    HttpServer::new(move || {
        App::new()
            .app_data(monitor.clone())
            // Path only: query strings can carry OAuth codes and must never reach the logs.
            .wrap(middleware::Logger::new("%U %s %Dms"))
            .service(health)
    })
    .workers(cfg.workers)
    .shutdown_timeout(25)
    .client_request_timeout(std::time::Duration::from_secs(20))
    .bind(("0.0.0.0", cfg.port))
    .with_context(|| format!("cannot bind 0.0.0.0:{}", cfg.port))?
    .run()
    .await
    .context("web server failed")
}
