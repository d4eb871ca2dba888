//! The attach job (`ATTACH_SOURCES=1`): each sent row's receipt gets the image it was read
//! from as a QuickBooks attachment ([`crate::qbo::attach`]): the page of a PDF, rendered (or
//! passed through) one page at a time, or the photo. Queued after a send-all and after a row
//! is sent alone; a row sent while it runs is picked up before it ends. An upload is let go
//! once every row read from it has its attachment or is kept out of QuickBooks.

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use uuid::Uuid;

use super::bank::qbo_end;
use super::send_all::{latest_at, start_pointed, SendStart, StartError};
use super::{progress_writer, JobContext, JobEnd, JobFault, Stage};
use crate::deposits::{Deposit, DepositFile};
use crate::donation::{Donation, SourceKind};
use crate::pdf::{PageError, PageSkip, PdfConfig, PdfPages};
use crate::qbo::attach::{upload_for, SourceImage};
use crate::qbo::sync::Qbo;
use crate::services::Services;
use crate::store::StoreError;

/// Attach job ids start with this ([`super::queue_of`]).
pub const ID_PREFIX: &str = "attach-";

/// How long uploads are kept for their attachments when `ATTACH_SOURCES` is on (as long as a
/// deposit is kept); the attach job lets them go as soon as they are attached.
pub const KEEP_FOR_ATTACHING: std::time::Duration = crate::deposits::DEPOSIT_TTL;

/// A photo larger than this is attached as the shrunk JPEG the reader saw, not as it is.
const PHOTO_AS_IS_BYTES: u64 = 10 * 1024 * 1024;

/// Rounds of "pick up rows sent meanwhile" in one run.
const ROUNDS: usize = 3;

/// Queues the attach job of the deposit, or answers the one already queued or running.
pub async fn start(s: &Services, deposit_id: &str) -> Result<SendStart, StartError> {
    let pointer = s.keys.deposit_attach(deposit_id);
    start_pointed(
        s,
        deposit_id,
        &pointer,
        ID_PREFIX,
        "Attach the scans to their receipts",
    )
    .await
}

/// The id of the deposit's latest attach job, if any.
pub async fn latest(s: &Services, deposit_id: &str) -> Result<Option<String>, redis::RedisError> {
    latest_at(s, &s.keys.deposit_attach(deposit_id)).await
}

/// Whether this deployment attaches scans to receipts.
pub fn enabled(s: &Services) -> bool {
    s.qbo
        .as_ref()
        .is_some_and(|q| q.client.connection().settings().attach_sources)
}

/// After receipts were sent: queues the attach job when scans are attached. A failure to
/// queue is logged, never the send's failure (the page can start it again).
pub async fn after_sending(s: &Services, deposit_id: &str) {
    if !enabled(s) {
        return;
    }
    if let Err(e) = start(s, deposit_id).await {
        tracing::warn!(deposit_id, error = %e, "attach job not queued");
    }
}

/// What a run did, for the job's result.
#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    attached: usize,
    found_existing: usize,
    failed: usize,
}

pub(super) async fn run(
    id: &str,
    ctx: &JobContext,
    deposit_id: &str,
    qbo: &Qbo,
) -> Result<JobEnd, JobFault> {
    let s = &ctx.services;
    let (tx, writer) = progress_writer(s.jobs.clone(), id.to_string(), Stage::Attach);
    let mut run = Run {
        ctx,
        qbo,
        deposit_id,
        summary: Summary::default(),
        done: 0,
        total: 0,
        progress: tx,
    };
    let ended = run.rounds().await;
    let summary = std::mem::take(&mut run.summary);
    drop(run);
    let _ = writer.await;
    match ended? {
        ControlFlow::Break(end) => Ok(end),
        ControlFlow::Continue(d) => {
            release_attached(s, &d).await;
            tracing::info!(
                attached = summary.attached,
                found = summary.found_existing,
                failed = summary.failed,
                "attach finished"
            );
            let body = serde_json::json!({"deposit_id": deposit_id, "attachments": summary});
            s.jobs.finish(id, &ctx.worker, &body).await?;
            Ok(JobEnd::Done)
        }
    }
}

/// One run of the job over a deposit.
struct Run<'a> {
    ctx: &'a JobContext,
    qbo: &'a Qbo,
    deposit_id: &'a str,
    summary: Summary,
    done: u32,
    total: u32,
    progress: tokio::sync::mpsc::Sender<(u32, u32)>,
}

/// `Break`: the job ends now, as it says. `Continue`: go on.
type Step<T = ()> = Result<ControlFlow<JobEnd, T>, JobFault>;

impl Run<'_> {
    /// Attaches every row that needs it, then looks again for rows sent meanwhile; ends with
    /// the deposit as last read.
    async fn rounds(&mut self) -> Step<Deposit> {
        let mut tried: HashSet<Uuid> = HashSet::new();
        let mut last = None;
        for _ in 0..ROUNDS {
            let Some(d) = self.ctx.services.deposits.get(self.deposit_id).await? else {
                return Ok(ControlFlow::Break(JobEnd::Dead(
                    "the deposit is gone".into(),
                )));
            };
            let todo: Vec<Donation> = d
                .records
                .iter()
                .filter(|r| needs_attaching(r) && !tried.contains(&r.id))
                .cloned()
                .collect();
            if todo.is_empty() {
                last = Some(d);
                break;
            }
            tried.extend(todo.iter().map(|r| r.id));
            self.total += u32::try_from(todo.len()).unwrap_or(u32::MAX);
            if let ControlFlow::Break(end) = self.round(&d, todo).await? {
                return Ok(ControlFlow::Break(end));
            }
            last = Some(d);
        }
        match last {
            Some(d) => Ok(ControlFlow::Continue(d)),
            None => Ok(ControlFlow::Break(JobEnd::Dead(
                "the deposit is gone".into(),
            ))),
        }
    }

    async fn round(&mut self, d: &Deposit, todo: Vec<Donation>) -> Step {
        // Found first: a run that died mid-way (kill -9, a deploy) made some already.
        let pairs: Vec<(String, Uuid)> = todo
            .iter()
            .filter_map(|r| r.qbo.sales_receipt_id.clone().map(|x| (x, r.id)))
            .collect();
        let found = match self.qbo.attached_already(&pairs).await {
            Ok(f) => f,
            Err(e) => return qbo_end(e).map(ControlFlow::Break),
        };
        for (row, attachable) in &found {
            self.note(row, Ok(attachable.clone())).await?;
            self.summary.found_existing += 1;
        }
        let mut by_file: BTreeMap<String, (DepositFile, Vec<Donation>)> = BTreeMap::new();
        for r in todo.into_iter().filter(|r| !found.contains_key(&r.id)) {
            match file_of(d, &r) {
                Some(f) => by_file
                    .entry(f.id.clone())
                    .or_insert_with(|| (f.clone(), Vec::new()))
                    .1
                    .push(r),
                None => {
                    self.fail(
                        &r.id,
                        "the file this row was read from is no longer in the deposit; attach \
                         the scan by hand in QuickBooks",
                    )
                    .await?
                }
            }
        }
        for (_, (file, rows)) in by_file {
            if let ControlFlow::Break(end) = self.file(&file, &rows).await? {
                return Ok(ControlFlow::Break(end));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The rows read from one upload: fetched to disk once, then each row's image.
    async fn file(&mut self, file: &DepositFile, rows: &[Donation]) -> Step {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("source");
        match self.ctx.services.store.fetch_to(&file.id, &path).await {
            Ok(_) => {}
            Err(StoreError::NotFound(_) | StoreError::Incomplete(_)) => {
                for r in rows {
                    self.fail(
                        &r.id,
                        &format!(
                            "the upload {} is no longer stored (the upload store keeps files \
                             only so long); attach the scan by hand in QuickBooks",
                            file.name
                        ),
                    )
                    .await?;
                }
                return Ok(ControlFlow::Continue(()));
            }
            Err(e) => return Err(e.into()),
        }
        if file.kind == "pdf" {
            self.pdf(file, &path, rows).await
        } else {
            self.photo(file, &path, rows).await
        }
    }

    /// A PDF's rows, each with the first page it was read from: the pages walked in order,
    /// the pages no row needs skipped unrendered, one page image held at a time.
    async fn pdf(&mut self, file: &DepositFile, path: &Path, rows: &[Donation]) -> Step {
        let mut wanted: BTreeMap<u32, Vec<&Donation>> = BTreeMap::new();
        for r in rows {
            let page = r.provenance.pages.first().copied().unwrap_or(1).max(1);
            wanted.entry(page).or_default().push(r);
        }
        let last = wanted.keys().next_back().copied().unwrap_or(1);
        let mut cfg: PdfConfig = self.ctx.pipeline.pdf.clone();
        cfg.images = true;
        cfg.skip = PageSkip {
            pages: (1..last).filter(|p| !wanted.contains_key(p)).collect(),
            reason: "not needed".into(),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<crate::pdf::Page, PageError>>(1);
        let source = path.to_path_buf();
        let walker = tokio::task::spawn_blocking(move || {
            let pages = PdfPages::open(&source, &cfg)?;
            for page in pages {
                let end = matches!(&page, Ok(p) if p.number >= last);
                if tx.blocking_send(page).is_err() || end {
                    break;
                }
            }
            Ok::<(), crate::pdf::PdfError>(())
        });
        while let Some(page) = rx.recv().await {
            match page {
                Ok(page) => {
                    let Some(rows) = wanted.remove(&page.number) else {
                        continue;
                    };
                    let bytes = Bytes::from(page.jpeg);
                    for r in rows {
                        let image = SourceImage {
                            file_name: page_file_name(&file.name, page.number),
                            content_type: "image/jpeg".into(),
                            bytes: bytes.clone(),
                            what: format!("page {} of {}", page.number, file.name),
                        };
                        if let ControlFlow::Break(end) = self.attach(r, image).await? {
                            return Ok(ControlFlow::Break(end));
                        }
                    }
                }
                Err(e) => {
                    for n in e.first_page..=e.last_page {
                        for r in wanted.remove(&n).unwrap_or_default() {
                            self.fail(
                                &r.id,
                                &format!("page {n} could not be made into an image: {}", e.reason),
                            )
                            .await?;
                        }
                    }
                }
            }
        }
        let walked = walker
            .await
            .map_err(|e| JobFault::Other(format!("the page walk stopped: {e}")))?;
        let why = match walked {
            Err(e) => format!("the PDF could not be read again: {e}"),
            Ok(()) => "the page was not found in the PDF".into(),
        };
        for r in wanted.into_values().flatten() {
            self.fail(&r.id, &why).await?;
        }
        Ok(ControlFlow::Continue(()))
    }

    /// A photo's rows: the photo as it was taken, or the shrunk JPEG the reader saw when the
    /// photo is large.
    async fn photo(&mut self, file: &DepositFile, path: &Path, rows: &[Donation]) -> Step {
        let size = tokio::fs::metadata(path).await?.len();
        let (bytes, content_type, name) = if size <= PHOTO_AS_IS_BYTES {
            let kind = if file.kind == "png" { "png" } else { "jpeg" };
            (
                Bytes::from(tokio::fs::read(path).await?),
                format!("image/{kind}"),
                file.name.clone(),
            )
        } else {
            let cfg = self.ctx.pipeline.pdf.clone();
            let source = path.to_path_buf();
            let page = tokio::task::spawn_blocking(move || crate::photo::load_page(&source, &cfg))
                .await
                .map_err(|e| JobFault::Other(format!("the photo reader stopped: {e}")))?;
            match page {
                Ok(p) => (
                    Bytes::from(p.jpeg),
                    "image/jpeg".into(),
                    page_file_name(&file.name, 1),
                ),
                Err(e) => {
                    for r in rows {
                        self.fail(&r.id, &format!("the photo could not be read again: {e}"))
                            .await?;
                    }
                    return Ok(ControlFlow::Continue(()));
                }
            }
        };
        for r in rows {
            let image = SourceImage {
                file_name: name.clone(),
                content_type: content_type.clone(),
                bytes: bytes.clone(),
                what: format!("photo {}", file.name),
            };
            if let ControlFlow::Break(end) = self.attach(r, image).await? {
                return Ok(ControlFlow::Break(end));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// One row's image to its receipt.
    async fn attach(&mut self, r: &Donation, image: SourceImage) -> Step {
        if self.ctx.stop.load(Ordering::SeqCst) {
            return Ok(ControlFlow::Break(JobEnd::HandedBack {
                why: "the worker stopped mid-way; the rest is attached on the next run".into(),
                memory: self.ctx.memory_critical.load(Ordering::SeqCst),
            }));
        }
        let Some(receipt) = r.qbo.sales_receipt_id.as_deref() else {
            return Ok(ControlFlow::Continue(()));
        };
        let upload = upload_for(receipt, &r.id, image);
        match self.qbo.attach_source(receipt, &r.id, &upload).await {
            Ok((attachable, found)) => {
                self.note(&r.id, Ok(attachable.clone())).await?;
                if found {
                    self.summary.found_existing += 1;
                } else {
                    self.summary.attached += 1;
                }
                self.qbo
                    .audit_attached(self.deposit_id, &r.id, receipt, &attachable)
                    .await;
                Ok(ControlFlow::Continue(()))
            }
            Err(e) => match qbo_end(e) {
                // The row's own trouble (a fault QuickBooks has about this file): noted, the
                // run goes on.
                Ok(JobEnd::Failed(why)) => {
                    self.fail(&r.id, &why).await?;
                    Ok(ControlFlow::Continue(()))
                }
                Ok(end) => Ok(ControlFlow::Break(end)),
                Err(fault) => Err(fault),
            },
        }
    }

    async fn note(&mut self, row: &Uuid, outcome: Result<String, String>) -> Result<(), JobFault> {
        match self
            .qbo
            .note_attachment(self.deposit_id, row, outcome)
            .await
        {
            Ok(()) | Err(crate::qbo::QboError::NotFound(_)) => {}
            Err(e) => return Err(JobFault::Other(e.to_string())),
        }
        self.done += 1;
        let _ = self.progress.try_send((self.done, self.total));
        Ok(())
    }

    async fn fail(&mut self, row: &Uuid, why: &str) -> Result<(), JobFault> {
        tracing::warn!(record_id = %row, "attach: {why}");
        self.summary.failed += 1;
        self.note(row, Err(why.to_string())).await
    }
}

/// A sent row with no attachment yet, read from a scan or photo (a CSV line has none).
fn needs_attaching(r: &Donation) -> bool {
    r.qbo.sales_receipt_id.is_some()
        && r.qbo.attachment_id.is_none()
        && r.provenance.kind != SourceKind::Csv
}

/// The upload a row was read from: the file of the row's job with the row's file name.
fn file_of<'a>(d: &'a Deposit, r: &Donation) -> Option<&'a DepositFile> {
    let src = &r.provenance;
    let of_job = |f: &&DepositFile| src.job.as_deref().is_none_or(|j| f.job_id == j);
    d.files
        .iter()
        .filter(of_job)
        .find(|f| f.name == src.file)
        .or_else(|| d.files.iter().find(|f| f.name == src.file))
        .filter(|f| f.kind != "csv")
}

/// "scan.pdf", page 3 → "scan-p3.jpg".
fn page_file_name(name: &str, page: u32) -> String {
    let stem = name
        .rsplit_once('.')
        .map_or(name, |(stem, _)| stem)
        .chars()
        .take(80)
        .collect::<String>();
    format!("{stem}-p{page}.jpg")
}

/// Lets go of each upload whose rows are all attached or kept out of QuickBooks.
async fn release_attached(s: &Services, d: &Deposit) {
    let online = s
        .qbo
        .as_ref()
        .map(|q| q.client.connection().settings().online_gifts)
        .unwrap_or_default();
    for f in d.files.iter().filter(|f| f.kind != "csv") {
        let rows: Vec<&Donation> = d
            .records
            .iter()
            .filter(|r| file_of(d, r).is_some_and(|x| x.id == f.id))
            .collect();
        let settled = !rows.is_empty()
            && rows.iter().all(|r| {
                r.qbo.attachment_id.is_some() || crate::qbo::receipts::kept_out(r, online).is_some()
            });
        drop(rows);
        if settled {
            if let Err(e) = s.store.release(&f.id).await {
                tracing::warn!(error = %e, "attached upload not released");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_images_are_named_after_their_file_and_page() {
        assert_eq!(page_file_name("Sunday scan.pdf", 3), "Sunday scan-p3.jpg");
        assert_eq!(page_file_name("noext", 1), "noext-p1.jpg");
    }

    #[test]
    fn only_sent_rows_from_scans_need_attaching() {
        let mut r = Donation::new("scan.pdf");
        assert!(!needs_attaching(&r));
        r.qbo.sales_receipt_id = Some("311".into());
        assert!(needs_attaching(&r));
        r.qbo.attachment_id = Some("9".into());
        assert!(!needs_attaching(&r));
        let mut csv = Donation::new("gifts.csv");
        csv.provenance.kind = SourceKind::Csv;
        csv.qbo.sales_receipt_id = Some("312".into());
        assert!(!needs_attaching(&csv));
    }
}
