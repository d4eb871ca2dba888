//! The year-end statements job (`stmt-…` on the `qbo` queue): the period's gifts read from
//! QuickBooks, one letter per donor written one at a time, the print file, the ZIP and the
//! CSV put into the upload store for the statements page to offer. One run at a time: a second
//! start while one is queued or running answers that one.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::send_all::{claim, latest_at, push_claimed, Claim, SendStart, StartError};
use super::{progress_writer, JobContext, JobEnd, JobFault, Stage};
use crate::keys::JOB_TTL;
use crate::qbo::sync::Qbo;
use crate::services::Services;
use crate::statements::pdf::Fonts;
use crate::statements::run::{self, Outputs, RunParams, CUSTOMERS_PER_QUERY};
use crate::statements::LARGE_GIFT;

/// Statements job ids start with this ([`super::queue_of`]).
pub const ID_PREFIX: &str = "stmt-";

/// How long the letters stay downloadable (the Redis store keeps files at most 48 hours).
pub const KEEP_FILES: Duration = Duration::from_secs(30 * 24 * 3600);

/// Queues a statements run, or answers the one already queued or running.
pub async fn start(s: &Services, params: &RunParams) -> Result<SendStart, StartError> {
    let pointer = s.keys.statements_latest();
    match claim(s, "", &pointer, ID_PREFIX, "Year-end statements").await? {
        Claim::Running(running) => Ok(running),
        Claim::Started(job) => {
            // The run's choices are in place before the job can be fetched.
            let json = serde_json::to_string(params).unwrap_or_default();
            let _: () = redis::AsyncCommands::set_ex(
                &mut s.redis.get().await?,
                s.keys.statements_run(&job.id),
                json,
                JOB_TTL.as_secs(),
            )
            .await?;
            push_claimed(s, &job, "Year-end statements").await
        }
    }
}

/// The latest run's job id, if any.
pub async fn latest(s: &Services) -> Result<Option<String>, redis::RedisError> {
    latest_at(s, &s.keys.statements_latest()).await
}

/// The choices a run was started with.
pub async fn params(s: &Services, id: &str) -> Result<Option<RunParams>, redis::RedisError> {
    let raw: Option<String> =
        redis::AsyncCommands::get(&mut s.redis.get().await?, s.keys.statements_run(id)).await?;
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

/// A file a run wrote, in the upload store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OutputFile {
    pub id: String,
    pub name: String,
    pub size: u64,
}

pub(super) async fn run(id: &str, ctx: &JobContext, qbo: &Qbo) -> Result<JobEnd, JobFault> {
    let s = &ctx.services;
    let Some(params) = params(s, id)
        .await
        .map_err(|e| JobFault::Record(e.into()))?
    else {
        return Ok(JobEnd::Dead(
            "this run's choices are gone (kept a week); start it again".into(),
        ));
    };
    let settings = s.statements.settings().await.map_err(other)?;
    if let Some(p) = settings.problems().first() {
        return Ok(JobEnd::Failed(format!(
            "the statements settings are not complete: {}; fill them in on the statements page",
            p.message
        )));
    }
    let excluded = s.statements.excluded().await.map_err(other)?;

    let (tx, writer) = progress_writer(s.jobs.clone(), id.to_string(), Stage::Gather);
    let gathered = run::gather(&qbo.client, &params, &excluded, |n| {
        let _ = tx.try_send((u32::try_from(n).unwrap_or(u32::MAX), 0));
    })
    .await;
    drop(tx);
    let _ = writer.await;
    let gathered = match gathered {
        Ok(g) => g,
        Err(e) => return super::bank::qbo_end(e),
    };

    // Alphabetical, as the treasurer files and mails them.
    let mut donors: Vec<(String, String)> = gathered
        .donors
        .iter()
        .filter(|(_, d)| !params.only_large || d.largest() >= LARGE_GIFT)
        .map(|(cid, d)| (d.name.to_lowercase(), cid.clone()))
        .collect();
    donors.sort();
    let below_large = gathered.donors.len() - donors.len();
    let n = donors.len();
    tracing::info!(
        receipts = gathered.receipts,
        donors = n,
        rss_mb = crate::memory::rss_mb(),
        peak_mb = crate::memory::peak_rss_mb(),
        "statements: gifts read; writing letters"
    );

    let dir = tempfile::tempdir().map_err(|e| JobFault::Other(e.to_string()))?;
    let label = params.label();
    let names = [
        format!("donor-statements-{label}.pdf"),
        format!("donor-statements-{label}.zip"),
        format!("donor-statements-{label}.csv"),
    ];
    let paths: Vec<std::path::PathBuf> = names.iter().map(|n| dir.path().join(n)).collect();
    let fonts = Arc::new(Fonts::load().map_err(other)?);
    let mut outputs = Outputs::create(&paths[0], &paths[1], &paths[2]).map_err(other)?;
    outputs.written.below_large = below_large;
    let gathered = Arc::new(gathered);
    let settings = Arc::new(settings);
    let today = chrono::Local::now().date_naive();

    let (tx, writer) = progress_writer(s.jobs.clone(), id.to_string(), Stage::Letters);
    let total = u32::try_from(n).unwrap_or(u32::MAX);
    let _ = tx.try_send((0, total));
    let mut done = 0_usize;
    for chunk in donors.chunks(CUSTOMERS_PER_QUERY) {
        if ctx.stop.load(Ordering::SeqCst) {
            drop(tx);
            let _ = writer.await;
            return Ok(JobEnd::HandedBack {
                why: "the worker stopped mid-way; the letters are written again from the start"
                    .into(),
                memory: false,
            });
        }
        let ids: Vec<&str> = chunk.iter().map(|(_, cid)| cid.as_str()).collect();
        let customers = match run::customers(&qbo.client, &ids).await {
            Ok(c) => c,
            Err(e) => {
                drop(tx);
                let _ = writer.await;
                return super::bank::qbo_end(e);
            }
        };
        // Laying out and compressing letters is CPU work: off the async threads.
        let chunk: Vec<String> = chunk.iter().map(|(_, cid)| cid.clone()).collect();
        let (fonts, settings, gathered, params, tx) = (
            fonts.clone(),
            settings.clone(),
            gathered.clone(),
            params.clone(),
            tx.clone(),
        );
        let start = done;
        outputs = tokio::task::spawn_blocking(move || {
            for (i, cid) in chunk.iter().enumerate() {
                let run = run::LetterRun {
                    fonts: &fonts,
                    settings: &settings,
                    params: &params,
                    today,
                };
                if let Some(donor) = gathered.donors.get(cid) {
                    outputs.letter(&run, cid, donor, customers.get(cid))?;
                }
                let _ = tx.try_send((u32::try_from(start + i + 1).unwrap_or(u32::MAX), total));
            }
            Ok::<_, crate::statements::pdf::PdfError>(outputs)
        })
        .await
        .map_err(|e| JobFault::Other(e.to_string()))?
        .map_err(other)?;
        done += ids.len();
    }
    drop(tx);
    let _ = writer.await;
    let title = format!("{}: statements of gifts, {label}", settings.organization);
    let written = {
        let fonts = fonts.clone();
        tokio::task::spawn_blocking(move || outputs.finish(&fonts, &title))
            .await
            .map_err(|e| JobFault::Other(e.to_string()))?
            .map_err(other)?
    };

    tracing::info!(
        rss_mb = crate::memory::rss_mb(),
        peak_mb = crate::memory::peak_rss_mb(),
        "statements: letters written; storing them"
    );
    // The print file and the summary first: they are what the treasurer needs most, and small
    // (a few KB a letter). The ZIP repeats the fonts in every letter (about 28 KB each), so on
    // the Redis store a large run may find no room for it: the others are still offered.
    let mut files: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
    let mut zip_error = None;
    for (kind, at) in [("pdf", 0), ("csv", 2), ("zip", 1)] {
        let (name, path) = (&names[at], &paths[at]);
        match keep(s, name, path).await {
            Ok(file) => {
                files.insert(kind.into(), serde_json::to_value(file).unwrap_or_default());
            }
            Err(why) if kind == "zip" => {
                tracing::warn!(error = %why, "statements: the ZIP was not kept");
                zip_error = Some(why);
            }
            Err(why) => {
                for f in files.values() {
                    if let Some(id) = f.get("id").and_then(|v| v.as_str()) {
                        let _ = s.store.delete(id).await;
                    }
                }
                return Ok(JobEnd::Failed(why));
            }
        }
    }
    let body = serde_json::json!({
        "params": params,
        "receipts": gathered.receipts,
        "excluded_receipts": gathered.excluded_receipts,
        "skipped_receipts": gathered.skipped_receipts,
        "donors_found": gathered.donors.len(),
        "written": written,
        "files": files,
        "zip_error": zip_error,
    });
    s.jobs.finish(id, &ctx.worker, &body).await?;
    tracing::info!(
        letters = written.letters,
        pages = written.pages,
        "statements written"
    );
    Ok(JobEnd::Done)
}

/// Puts one written file into the upload store, kept [`KEEP_FILES`]; the reason, in words,
/// when the store refuses it (room runs out on the Redis store: waiting does not make the
/// letters smaller).
async fn keep(s: &Services, name: &str, path: &std::path::Path) -> Result<OutputFile, String> {
    let size = tokio::fs::metadata(path).await.map_or(0, |m| m.len());
    let refused = |e: &dyn std::fmt::Display| {
        format!(
            "{name} ({:.1} MB) could not be kept in the upload store: {e}. The Redis store may \
             lack the room; an S3 store (UPLOAD_STORE=s3://…) has no such limit",
            size as f64 / 1e6
        )
    };
    let file = tokio::fs::File::open(path).await.map_err(|e| refused(&e))?;
    let stored = s
        .store
        .put(name, file, u64::MAX)
        .await
        .map_err(|e| refused(&e))?;
    if let Err(e) = s.store.release_after(&stored.id, KEEP_FILES).await {
        tracing::warn!(error = %e, "statements file not scheduled for deletion");
    }
    Ok(OutputFile {
        id: stored.id,
        name: stored.name,
        size: stored.size,
    })
}

fn other(e: impl std::fmt::Display) -> JobFault {
    JobFault::Other(e.to_string())
}
