//! Intake: one file into a deposit. Its type is read from its first bytes, it is streamed into
//! the upload store, and it gets a job record, a place in the deposit's file list and a push
//! onto the documents queue, each undone if a later step fails, so nothing is left
//! half-registered. The upload route and `fom-worker enqueue` both take files in here.

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
    /// False when the queue refused the push: the file is on the deposit, its job marked
    /// failed with a retry offered, rather than lost.
    pub queued: bool,
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
        let queued = match self
            .queue
            .push(crate::jobs::DocumentJob::QUEUE, &job_id)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "job not queued");
                // The file stays on the deposit, visibly failed, with a retry available.
                let _ = self
                    .jobs
                    .mark_unqueued(&job, "the file could not be queued; press retry")
                    .await;
                false
            }
        };
        tracing::info!(job = %job_id, kind = kind.as_str(), size = stored.size, "file accepted");
        Ok(Accepted {
            file_id: stored.id,
            job_id,
            kind,
            size: stored.size,
            queued,
        })
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
