//! Intake: one file into a deposit. Its type is read from its first bytes, it is streamed into
//! the upload store, and it gets a job record, a place in the deposit's file list and a push
//! onto the documents queue, each undone if a later step fails, so nothing is left
//! half-registered: a file reported as accepted is queued, and a refused one left nothing
//! behind. The upload route and `fom-worker enqueue` both take files in here.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::deposits::{DepositError, DepositFile};
use crate::filetype::{sniff, FileKind, SniffError, SNIFF_LEN};
use crate::jobs::{now_ms, Job, JobError, JobRecord};
use crate::services::Services;
use crate::store::StoreError;

/// A file taken in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub file_id: String,
    pub job_id: String,
    pub kind: FileKind,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The file's first bytes could not be read (the upload broke off).
    #[error("the file could not be read: {0}")]
    Unreadable(std::io::Error),
    /// Empty, or not a PDF, JPEG, PNG or CSV file.
    #[error(transparent)]
    Type(SniffError),
    /// The store refused it: too large, broken off mid-way, or the store is down. Nothing of
    /// the file is kept.
    #[error(transparent)]
    Store(StoreError),
    #[error("no deposit {0}")]
    NoDeposit(String),
    /// Job record or deposit storage failed; the stored file was removed again.
    #[error("the file could not be registered; try again")]
    NotRegistered,
    /// The queue could not be reached (Redis restarting); the file was taken back out of the
    /// deposit and the store.
    #[error("the file could not be queued; try again in a minute")]
    NotQueued,
}

impl Services {
    /// Takes one file into deposit `deposit_id` (see the module docs). `reader` is read to the
    /// end of the file when it is accepted; after a refusal the caller drains what is left.
    pub async fn take_in<R: AsyncRead + Unpin>(
        &self,
        deposit_id: &str,
        name: &str,
        reader: &mut R,
    ) -> Result<Accepted, IntakeError> {
        // The first bytes decide the type, whatever the name or the browser claims.
        let mut head = Vec::with_capacity(SNIFF_LEN);
        (&mut *reader)
            .take(SNIFF_LEN as u64)
            .read_to_end(&mut head)
            .await
            .map_err(IntakeError::Unreadable)?;
        let kind = sniff(&head).map_err(IntakeError::Type)?;
        let body = std::io::Cursor::new(head).chain(reader);
        let stored = self
            .store
            .put(name, body, self.max_file_bytes)
            .await
            .map_err(IntakeError::Store)?;
        let job_id = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        let job = JobRecord::new(&job_id, deposit_id, &stored.id, name, now);
        let file = DepositFile {
            id: stored.id.clone(),
            name: name.to_string(),
            size: stored.size,
            kind: kind.as_str().to_string(),
            job_id: job_id.clone(),
            uploaded_at: now,
        };
        match self.register(deposit_id, &job, file).await {
            Ok(true) => {}
            found => {
                if let Err(e) = &found {
                    tracing::error!(error = %e, "file not registered");
                }
                // The deposit vanished or storage failed: leave nothing half-registered.
                if let Err(e) = self.store.delete(&stored.id).await {
                    tracing::warn!(error = %e, "stored file not removed after a failed intake");
                }
                let _ = self
                    .jobs
                    .mark_unqueued(&job, "the file could not be registered; try again")
                    .await;
                return Err(match found {
                    Ok(false) => IntakeError::NoDeposit(deposit_id.to_string()),
                    _ => IntakeError::NotRegistered,
                });
            }
        }
        if let Err(e) = self
            .queue
            .push(crate::jobs::DocumentJob::QUEUE, &job_id)
            .await
        {
            tracing::error!(error = %e, "job not queued; the file is taken back");
            self.take_back(deposit_id, &job_id, &stored.id).await;
            return Err(IntakeError::NotQueued);
        }
        tracing::info!(job = %job_id, kind = kind.as_str(), size = stored.size, "file accepted");
        Ok(Accepted {
            file_id: stored.id,
            job_id,
            kind,
            size: stored.size,
        })
    }

    /// Undoes a registration whose push failed: the file leaves the deposit, its job record
    /// and its stored bytes go. Each step is tried even if another fails; what could not be
    /// undone is logged (a job record left behind shows as failed with a retry).
    async fn take_back(&self, deposit_id: &str, job_id: &str, file_id: &str) {
        let removed = self
            .deposits
            .update(deposit_id, |d| {
                let before = d.files.len();
                d.files.retain(|f| f.job_id != job_id);
                if d.files.len() == before {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            })
            .await;
        if let Err(e) = &removed {
            tracing::error!(error = %e, job = %job_id, "unqueued file not removed from its deposit");
        }
        let job_gone = if removed.is_ok() {
            self.jobs.discard(job_id).await
        } else {
            // Still listed on the deposit: its record must say why it will not run.
            match self.jobs.get(job_id).await {
                Ok(Some(job)) => {
                    self.jobs
                        .mark_unqueued(&job, "the file could not be queued; press retry")
                        .await
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            }
        };
        if let Err(e) = job_gone {
            tracing::error!(error = %e, job = %job_id, "unqueued job record not cleared");
        }
        if let Err(e) = self.store.delete(file_id).await {
            tracing::warn!(error = %e, "stored file not removed after a failed push");
        }
    }

    /// The job record, then the file on the deposit; false when the deposit is gone.
    async fn register(
        &self,
        deposit_id: &str,
        job: &JobRecord,
        file: DepositFile,
    ) -> Result<bool, RegisterError> {
        self.jobs.create(job).await?;
        let added = self
            .deposits
            .update(deposit_id, |d| {
                d.files.push(file.clone());
                std::ops::ControlFlow::Continue(())
            })
            .await?;
        Ok(added.is_some())
    }
}

#[derive(Debug, thiserror::Error)]
enum RegisterError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Deposit(#[from] DepositError),
}
