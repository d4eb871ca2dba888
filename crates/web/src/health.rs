//! `GET /health`: for anyone, the status and this process's memory monitor (always live);
//! for a signed-in person or a monitor with `HEALTH_TOKEN`, also the version, Redis, the queue
//! and the workers' heartbeats (pids, RSS, job counts and Redis's error text are not for the
//! public). It never calls QuickBooks or Gemini, answers even over the critical memory
//! threshold, and reads Redis at most once a second however often it is asked.

use std::time::{Duration, Instant};

use actix_web::http::{header, StatusCode};
use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::state::AppState;

const CACHE_FOR: Duration = Duration::from_secs(1);
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize)]
struct Health {
    /// ok, warning or critical (this process's memory), or degraded when Redis is unreachable.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    system: System,
    /// Redis, queue, workers: only for those allowed to see them.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    shared: Option<serde_json::Value>,
}

/// The header a monitor sends `HEALTH_TOKEN` in.
pub const TOKEN_HEADER: &str = "x-health-token";

/// Whether this request may see the details: the right `X-Health-Token` (compared as digests
/// in constant time), or a live session (checked without renewing it: a monitor's poll is no
/// one's activity).
async fn details_allowed(req: &HttpRequest, state: &AppState) -> bool {
    if let (Some(expected), Some(given)) = (
        state.cfg.health_token.as_deref(),
        req.headers().get(TOKEN_HEADER),
    ) {
        let a = Sha256::digest(given.as_bytes());
        let b = Sha256::digest(expected.as_bytes());
        if bool::from(a.ct_eq(&b)) {
            return true;
        }
    }
    match crate::auth::signed_session_id(req, state) {
        Some(id) => matches!(
            tokio::time::timeout(REDIS_TIMEOUT, state.sessions.alive(&id)).await,
            Ok(Ok(true))
        ),
        None => false,
    }
}

#[derive(Serialize)]
struct System {
    memory_monitor: fom_core::memory::Snapshot,
}

#[derive(Serialize)]
struct Shared {
    redis: fom_core::redis_conn::RedisHealth,
    queue: Queue,
    workers: Vec<Worker>,
    /// Each worker dyno's scaling (`WORKER_PROCESSES=auto`): children, estimate, headroom.
    scaling: Vec<fom_core::workers::Scaling>,
}

#[derive(Serialize, Default)]
struct Queue {
    queued: u64,
    running: u64,
    failed: u64,
    dead: u64,
}

#[derive(Serialize)]
struct Worker {
    id: String,
    pid: Option<u32>,
    rss_mb: Option<f64>,
    jobs_done: Option<u64>,
    current_job: Option<String>,
    last_seen_s: Option<f64>,
    /// Beating and fetching jobs: its queue consumers beat within the orphan threshold.
    /// A child that is alive but no longer fetching shows `false` until it is recycled.
    live: bool,
}

async fn shared(state: &AppState) -> serde_json::Value {
    let redis = fom_core::redis_conn::health(&state.services.redis, REDIS_TIMEOUT).await;
    let (queue, workers, scaling) = if redis.ok {
        let queue = match tokio::time::timeout(REDIS_TIMEOUT, state.services.jobs.counts()).await {
            Ok(Ok(c)) => Queue {
                queued: c.queued,
                running: c.running,
                failed: c.failed,
                dead: c.dead,
            },
            _ => Queue::default(),
        };
        let workers = tokio::time::timeout(REDIS_TIMEOUT, workers(state))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let scaling = tokio::time::timeout(REDIS_TIMEOUT, state.services.workers.scalings())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        (queue, workers, scaling)
    } else {
        (Queue::default(), Vec::new(), Vec::new())
    };
    serde_json::to_value(Shared {
        redis,
        queue,
        workers,
        scaling,
    })
    .unwrap_or_default()
}

/// Live worker children from their heartbeats (expired ones are left out).
async fn workers(state: &AppState) -> Result<Vec<Worker>, fom_core::redis_conn::RedisError> {
    let now = fom_core::jobs::now_ms();
    let s = &state.cfg.services;
    let fresh_ms = (s.heartbeat * s.missed_heartbeats as u32).as_millis() as i64;
    Ok(state
        .services
        .workers
        .list()
        .await?
        .into_iter()
        .map(|b| Worker {
            pid: Some(b.pid),
            rss_mb: Some(b.rss_mb),
            jobs_done: Some(b.jobs_done),
            current_job: b.current_job,
            last_seen_s: Some(((now - b.last_seen).max(0) as f64 / 100.0).round() / 10.0),
            live: b.consuming && now - b.last_seen <= fresh_ms,
            id: b.id,
        })
        .collect())
}

#[get("/health")]
pub async fn health(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let snapshot = state.cfg.monitor.snapshot();
    let cached = state.health_cache.lock().ok().and_then(|c| {
        c.as_ref()
            .filter(|(at, _)| at.elapsed() < CACHE_FOR)
            .map(|(_, v)| v.clone())
    });
    let shared = match cached {
        Some(v) => v,
        None => {
            let v = shared(&state).await;
            if let Ok(mut c) = state.health_cache.lock() {
                *c = Some((Instant::now(), v.clone()));
            }
            v
        }
    };
    let redis_ok = shared
        .pointer("/redis/ok")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let status = if !redis_ok {
        "degraded"
    } else {
        match snapshot.status {
            fom_core::memory::Status::Ok => "ok",
            fom_core::memory::Status::Warning => "warning",
            fom_core::memory::Status::Critical => "critical",
        }
    };
    // 503 only when Redis is gone (nothing works without it); memory is reported, not failed.
    let code = if redis_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let details = details_allowed(&req, &state).await;
    HttpResponse::build(code)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Health {
            status,
            version: details.then_some(env!("CARGO_PKG_VERSION")),
            system: System {
                memory_monitor: snapshot,
            },
            shared: details.then_some(shared),
        })
}
