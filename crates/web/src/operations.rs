//! The operator's view (`/operations`, signed in): each worker dyno's scaling and total RSS,
//! each worker child with its RSS over the last hour (live or stopped), the queues' depths,
//! and the jobs with retry and purge. The page (`js/operations.js`) polls
//! `GET /api/operations` and draws the charts itself as inline SVG.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use fom_core::audit::AuditKind;
use fom_core::jobs::{now_ms, queue_of, JobRecord};
use fom_core::queue::QueueName;
use fom_core::workers::{Heartbeat, RssSeries, Scaling};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{json_no_store, read_again, state_filter};
use crate::error_code::ErrorCode;
use crate::http::ApiError;
use crate::ids::JobId;
use crate::state::AppState;

/// Points per chart: one hour of 5 s samples thinned to this, keeping each group's peak.
const CHART_POINTS: usize = 240;

#[derive(Deserialize)]
pub struct OperationsQuery {
    state: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct Dyno {
    #[serde(flatten)]
    scaling: Scaling,
    series: Vec<(i64, f64)>,
}

#[derive(Serialize)]
struct Child {
    id: String,
    /// Its heartbeat is current; a stopped child stays listed for the hour its series lasts.
    live: bool,
    #[serde(flatten)]
    beat: Option<Heartbeat>,
    series: Vec<(i64, f64)>,
}

#[derive(Serialize)]
struct Queue {
    name: &'static str,
    /// Jobs the queue holds ready to start.
    waiting: usize,
    /// Jobs a worker is on now (as the live children's heartbeats say).
    running: usize,
}

/// Everything the operations page shows, in one answer.
#[get("/api/operations")]
pub async fn overview(
    state: web::Data<AppState>,
    q: web::Query<OperationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = state_filter(q.state.as_deref())?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let now = now_ms();
    let services = &state.services;
    let registry = &services.workers;

    let mut beats: HashMap<String, Heartbeat> = registry
        .list()
        .await?
        .into_iter()
        .map(|b| (b.id.clone(), b))
        .collect();
    // What runs now is what the live children say they are on: no scan of the job records.
    let running: Vec<QueueName> = beats
        .values()
        .filter_map(|b| b.current_job.as_deref().map(queue_of))
        .collect();
    let mut children: Vec<Child> = registry
        .rss_history(now)
        .await?
        .into_iter()
        .map(|s| {
            let beat = beats.remove(&s.id);
            Child {
                live: beat.is_some(),
                beat,
                id: s.id.clone(),
                series: s.thinned(CHART_POINTS).samples,
            }
        })
        .collect();
    // A child that has beaten but not yet sampled.
    children.extend(beats.into_values().map(|b| Child {
        id: b.id.clone(),
        live: true,
        beat: Some(b),
        series: Vec::new(),
    }));
    // Live children first, then by when they were last heard of.
    let heard = |c: &Child| {
        c.beat
            .as_ref()
            .map(|b| b.last_seen)
            .or_else(|| c.series.last().map(|s| s.0))
            .unwrap_or(0)
    };
    children.sort_by(|a, b| b.live.cmp(&a.live).then(heard(b).cmp(&heard(a))));

    let mut series: HashMap<String, RssSeries> = registry
        .dyno_history(now)
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let mut dynos: Vec<Dyno> = registry
        .scalings()
        .await?
        .into_iter()
        .map(|scaling| Dyno {
            series: series
                .remove(&scaling.dyno)
                .map(|s| s.thinned(CHART_POINTS).samples)
                .unwrap_or_default(),
            scaling,
        })
        .collect();
    dynos.sort_by(|a, b| a.scaling.dyno.cmp(&b.scaling.dyno));

    let mut queues = Vec::new();
    for name in QueueName::ALL {
        queues.push(Queue {
            name: name.as_str(),
            waiting: state.queues.waiting_jobs(name).await?,
            running: running.iter().filter(|q| **q == name).count(),
        });
    }
    let jobs: Vec<JobRecord> = services.jobs.list(filter, limit).await?;
    let counts = services.jobs.counts().await?;
    Ok(json_no_store(
        StatusCode::OK,
        &json!({
            "now": now,
            "dynos": dynos,
            "children": children,
            "queues": queues,
            "counts": counts,
            "jobs": jobs,
        }),
    ))
}

/// Queues a failed or dead job again (crash count reset), as `fom-worker jobs retry` does.
#[post("/api/jobs/{id}/retry")]
pub async fn retry(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<JobId>,
) -> Result<HttpResponse, ApiError> {
    let job = state
        .services
        .jobs
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    if !read_again(&state, &job.id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NotRetryable,
            "only a failed or dead job can be retried",
        ));
    }
    crate::audit::record(
        &req,
        &state,
        AuditKind::JobRetried,
        json!({"job_id": job.id, "deposit_id": job.deposit_id, "file": job.file_name}),
    )
    .await;
    Ok(json_no_store(
        StatusCode::ACCEPTED,
        &json!({"job_id": job.id, "state": "queued"}),
    ))
}

#[derive(Deserialize)]
pub struct PurgeBody {
    /// Done and dead jobs last updated longer ago than this go (default a week).
    older_than_hours: Option<u64>,
}

/// Deletes done and dead jobs older than asked, as `fom-worker jobs purge` does.
#[post("/api/jobs/purge")]
pub async fn purge(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<PurgeBody>,
) -> Result<HttpResponse, ApiError> {
    let hours = body.older_than_hours.unwrap_or(24 * 7);
    if hours > 24 * 366 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidFields,
            "older_than_hours must be at most a year (8784)",
        ));
    }
    let purged = state
        .services
        .jobs
        .purge(Duration::from_secs(hours * 3600))
        .await?;
    crate::audit::record(
        &req,
        &state,
        AuditKind::JobsPurged,
        json!({"jobs": purged, "older_than_hours": hours}),
    )
    .await;
    Ok(json_no_store(StatusCode::OK, &json!({"purged": purged})))
}
