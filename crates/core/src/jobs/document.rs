//! The document job: one uploaded file through detection, pages and extraction, its records
//! merged into its deposit and matched to QuickBooks customers when QuickBooks is connected.
//! Intake ([`crate::intake`]) creates it.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::{progress_writer, Job, JobContext, JobEnd, JobFault, Stage};
use crate::deposits::DepositError;
use crate::donation::Donation;
use crate::extract::gemini::TokenUsage;
use crate::extract::ExtractError;
use crate::memory;
use crate::pdf::{PageSkip, PageWatch, PdfConfig};
use crate::pipeline::{process_file, process_photos, FileOutcome};
use crate::qbo::sync::Qbo;
use crate::queue::QueueName;

/// How long a CSV the treasurer may want read again is kept after it was read.
pub const REREAD_KEEP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The document job kind.
pub struct DocumentJob;

/// What a finished document job stores as its result.
#[derive(Serialize)]
struct JobResult<'a> {
    file: &'a str,
    pages: u32,
    records: &'a [Donation],
    errors: &'a [ExtractError],
    /// Model tokens spent (Gemini).
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<TokenUsage>,
}

impl Job for DocumentJob {
    const NAME: &'static str = "document";
    const QUEUE: QueueName = QueueName::Documents;

    async fn run(id: &str, ctx: &JobContext) -> Result<JobEnd, JobFault> {
        let s = &ctx.services;
        let record = s
            .jobs
            .get(id)
            .await?
            .ok_or_else(|| JobFault::Other("job record vanished".into()))?;
        ctx.pipeline.monitor.log(&format!("job {id} start"));
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("document");
        s.store.fetch_to(&record.file_id, &path).await?;
        // Photos read together: each to its own file on disk, read one at a time later.
        let mut photos = Vec::new();
        if !record.more_files.is_empty() {
            photos.push((path.clone(), record.file_name.clone()));
            for (i, f) in record.more_files.iter().enumerate() {
                let p = tmp.path().join(format!("photo-{}", i + 2));
                s.store.fetch_to(&f.file_id, &p).await?;
                photos.push((p, f.file_name.clone()));
            }
        }
        s.jobs
            .progress(id, Stage::Render, 0, 0, memory::rss_mb())
            .await?;

        // Progress flows from the blocking thread to Redis through a small channel.
        let (tx, writer) = progress_writer(s.jobs.clone(), id.to_string(), Stage::Extract);
        let pipeline = ctx.pipeline.clone();
        let pdf = page_guard(ctx, id, &record.skip_pages);
        // The treasurer's saved column choices, for a CSV layout no profile knows.
        let mut csv_opts = ctx.pipeline.csv_options();
        match s.columns.all().await {
            Ok(m) => csv_opts.mappings = m,
            Err(e) => tracing::warn!(error = %e, "saved column choices not read"),
        }
        if !record.deposit_id.is_empty() {
            csv_opts.keep_pending = s.deposits.options(&record.deposit_id).await?.keep_pending;
        }
        let stop = ctx.stop.clone();
        let critical_hit = ctx.memory_critical.clone();
        let test_hook = ctx.test_hook;
        let name = record.file_name.clone();
        // The blocking thread logs under the job's span too.
        let span = tracing::Span::current();
        let outcome: FileOutcome = tokio::task::spawn_blocking(move || {
            let _in_job = span.enter();
            if let Some(hook) = test_hook {
                hook(&name, &stop);
            }
            let critical = pipeline.monitor.thresholds.critical_mb;
            let on_page = &mut |p: crate::pipeline::Progress| {
                let _ = tx.try_send((p.pages_done, p.page_count));
                if stop.load(Ordering::SeqCst) {
                    return ControlFlow::Break(());
                }
                if memory::rss_mb() >= critical {
                    pipeline
                        .monitor
                        .log("critical RSS mid-job; handing the job back");
                    critical_hit.store(true, Ordering::SeqCst);
                    stop.store(true, Ordering::SeqCst);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            };
            if photos.is_empty() {
                process_file(&path, &name, &pipeline, &pdf, &csv_opts, on_page)
            } else {
                process_photos(&photos, &pipeline, &pdf, on_page)
            }
        })
        .await
        .map_err(|e| JobFault::Other(format!("the document's thread failed: {e}")))?;
        let _ = writer.await;
        ctx.pipeline.monitor.log(&format!(
            "job {id} end (job peak {:.1} MB)",
            memory::peak_rss_mb()
        ));
        if outcome.stopped {
            let memory = ctx.memory_critical.load(Ordering::SeqCst);
            let why = if memory {
                "the worker reached its critical memory threshold mid-document; the job was queued again"
            } else {
                "the worker stopped mid-document; the job was queued again"
            };
            return Ok(JobEnd::HandedBack {
                why: why.into(),
                memory,
            });
        }
        if let Some(summary) = &outcome.csv {
            s.jobs.set_csv_summary(id, summary).await?;
        }
        if let Some(e) = outcome.error {
            if outcome.needs_columns {
                // The upload stays: once the treasurer has chosen the columns, it is read again.
                return Ok(JobEnd::Failed(e));
            }
            if !outcome.refused {
                return Ok(JobEnd::Dead(e));
            }
            // Refused as sent (too many rows): a retry would be refused again, so the upload
            // is not kept taking Redis memory; the message says how to send it instead.
            for (file_id, _) in record.files() {
                release_upload(s, file_id).await;
            }
            return Ok(JobEnd::Failed(e));
        }
        s.jobs
            .progress(
                id,
                Stage::Merge,
                outcome.pages,
                outcome.pages,
                memory::rss_mb(),
            )
            .await?;
        // Into the deposit before the job is marked done: a crash in between re-runs the job,
        // and the deposit takes each job's records once.
        if !record.deposit_id.is_empty() {
            match s
                .deposits
                .merge_job_stating(
                    &record.deposit_id,
                    id,
                    &outcome.records,
                    &outcome.errors,
                    &outcome.totals,
                )
                .await
            {
                Ok(Some(m)) => tracing::info!(
                    added = m.added,
                    merged = m.merged,
                    "records merged into the deposit"
                ),
                Ok(None) => {
                    tracing::warn!("the deposit no longer exists; records kept on the job");
                }
                // The upload is kept: once there is room, a retry of the file succeeds.
                Err(e @ DepositError::NoRoom { .. }) => {
                    return Ok(JobEnd::Failed(format!(
                        "{} was read but its {} record(s) were not added to the deposit; {e}",
                        record.label(),
                        outcome.records.len()
                    )));
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(qbo) = &s.qbo {
                match_after_extraction(ctx, qbo, id, &record.deposit_id, outcome.pages).await;
            }
        }
        let result = JobResult {
            file: &outcome.file,
            pages: outcome.pages,
            records: &outcome.records,
            errors: &outcome.errors,
            usage: outcome.usage,
        };
        // On the record before it says done (the runner writes the final figure after).
        s.jobs.record_peak(id, memory::peak_rss_mb()).await?;
        if !s.jobs.finish(id, &ctx.worker, &result).await? {
            tracing::warn!("job finished elsewhere; this result was not stored");
        }
        // The upload is no longer needed once its records are stored (or after the retention),
        // unless the treasurer may want it read again: a CSV read by column names or chosen
        // columns (the columns can be corrected), or one whose pending payments were skipped.
        let keep = outcome.csv.as_ref().is_some_and(|c| {
            c.skipped
                .contains_key(&crate::extract::profiles::SkipReason::Pending)
                || c.layout
                    .as_ref()
                    .is_some_and(|l| l.read_by == "columns" || l.read_by == "mapping")
        });
        let keep = if keep {
            REREAD_KEEP
        } else if outcome.csv.is_none() && super::attach::enabled(s) {
            // Its pages go to QuickBooks with their receipts; the attach job lets it go then.
            super::attach::KEEP_FOR_ATTACHING
        } else {
            std::time::Duration::ZERO
        };
        for (file_id, _) in record.files() {
            release_upload_after(s, file_id, keep).await;
        }
        Ok(JobEnd::Done)
    }
}

/// Lets the upload go (deleted now, or after `UPLOAD_RETENTION_HOURS`) and sweeps the kept
/// ones that are due; a failure here never fails the job.
async fn release_upload(s: &crate::services::Services, file_id: &str) {
    release_upload_after(s, file_id, std::time::Duration::ZERO).await;
}

/// [`release_upload`], keeping the upload at least `keep`.
async fn release_upload_after(
    s: &crate::services::Services,
    file_id: &str,
    keep: std::time::Duration,
) {
    if let Err(e) = s.store.release_after(file_id, keep).await {
        tracing::warn!(error = %e, "uploaded file not released");
    }
    if let Err(e) = s.store.sweep().await {
        tracing::warn!(error = %e, "upload sweep skipped");
    }
}

/// The PDF settings of this attempt: pages that ended an earlier attempt are left out with a
/// reason, and every page is named in the job record while pdfium loads it (a blocking write
/// from the render thread: the record must say which page it was if the process dies inside
/// it).
fn page_guard(ctx: &JobContext, id: &str, skip: &[u32]) -> PdfConfig {
    let critical = ctx.pipeline.monitor.thresholds.critical_mb;
    let jobs = ctx.services.jobs.clone();
    let job = id.to_string();
    let runtime = tokio::runtime::Handle::current();
    PdfConfig {
        skip: PageSkip {
            pages: skip.to_vec(),
            reason: format!(
                "this page needs more memory than a worker may use ({critical:.0} MB) and was \
                 left out; rescan it or send it as a separate file"
            ),
        },
        watch: PageWatch::new(move |page| {
            if let Err(e) = runtime.block_on(jobs.loading(&job, page)) {
                tracing::warn!(error = %e, "loading page not recorded");
            }
        }),
        ..ctx.pipeline.pdf.clone()
    }
}

/// Matches the deposit's new rows to QuickBooks customers when QuickBooks is connected. A
/// failure here never fails the document: the rows stay unmatched and the treasurer can
/// match them from the page.
async fn match_after_extraction(
    ctx: &JobContext,
    qbo: &Qbo,
    id: &str,
    deposit_id: &str,
    pages: u32,
) {
    match qbo.client.connection().status().await {
        Ok(s) if s.connected => {}
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "qbo: status unknown; matching skipped");
            return;
        }
    }
    if let Err(e) = ctx
        .services
        .jobs
        .progress(id, Stage::Match, pages, pages, memory::rss_mb())
        .await
    {
        tracing::warn!(error = %e, "progress not written");
    }
    if let Err(e) = qbo.match_deposit(deposit_id, false).await {
        tracing::warn!(error = %e, "qbo: matching failed; rows left unmatched");
    }
}
