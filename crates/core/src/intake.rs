//! Intake: files into a deposit. A file's type is read from its first bytes, it is streamed into
//! the upload store, and it gets a job record, a place in the deposit's file list and a push
//! onto the documents queue, each undone if a later step fails, so nothing is left
//! half-registered: a file reported as accepted is queued, and a refused one left nothing
//! behind. The upload route and `fom-worker enqueue` both take files in here.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::deposits::{DepositError, DepositFile};
use crate::filetype::{sniff, FileKind, SniffError, SNIFF_LEN};
use crate::jobs::{now_ms, Job, JobError, JobFile, JobRecord};
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

/// A file in the upload store, not yet anyone's job: [`Services::queue_files`] gives it one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub file_id: String,
    pub name: String,
    pub kind: FileKind,
    pub size: u64,
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
        let stored = self.store_file(name, reader).await?;
        let job_id = self
            .queue_files(deposit_id, std::slice::from_ref(&stored))
            .await?;
        Ok(Accepted {
            file_id: stored.file_id,
            job_id,
            kind: stored.kind,
            size: stored.size,
        })
    }

    /// Reads one file's type from its first bytes and streams it into the upload store. It is
    /// no one's job yet: [`Services::queue_files`] must follow (an upload left without a job
    /// expires with the store's TTL).
    pub async fn store_file<R: AsyncRead + Unpin>(
        &self,
        name: &str,
        reader: &mut R,
    ) -> Result<Stored, IntakeError> {
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
        Ok(Stored {
            file_id: stored.id,
            name: name.to_string(),
            kind,
            size: stored.size,
        })
    }

    /// Gives stored files one job of deposit `deposit_id`: a job record, a place for each file
    /// in the deposit's list and a push onto the documents queue, each undone if a later step
    /// fails (the files are then deleted from the store). Several files make one job only as
    /// photos read together (the photos of one upload). Returns the job's id.
    pub async fn queue_files(
        &self,
        deposit_id: &str,
        files: &[Stored],
    ) -> Result<String, IntakeError> {
        let Some(first) = files.first() else {
            return Err(IntakeError::NotRegistered);
        };
        let job_id = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        let mut job = JobRecord::new(&job_id, deposit_id, &first.file_id, &first.name, now);
        job.more_files = files[1..]
            .iter()
            .map(|f| JobFile {
                file_id: f.file_id.clone(),
                file_name: f.name.clone(),
            })
            .collect();
        let listed: Vec<DepositFile> = files
            .iter()
            .map(|f| DepositFile {
                id: f.file_id.clone(),
                name: f.name.clone(),
                size: f.size,
                kind: f.kind.as_str().to_string(),
                job_id: job_id.clone(),
                uploaded_at: now,
            })
            .collect();
        match self.register(deposit_id, &job, listed).await {
            Ok(true) => {}
            found => {
                if let Err(e) = &found {
                    tracing::error!(error = %e, "file not registered");
                }
                // The deposit vanished or storage failed: leave nothing half-registered.
                self.delete_stored(files).await;
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
            self.take_back(deposit_id, &job_id, files).await;
            return Err(IntakeError::NotQueued);
        }
        for f in files {
            tracing::info!(job = %job_id, kind = f.kind.as_str(), size = f.size, "file accepted");
        }
        Ok(job_id)
    }

    /// Deletes files from the store that will not be read (a failed intake).
    pub async fn delete_stored(&self, files: &[Stored]) {
        for f in files {
            if let Err(e) = self.store.delete(&f.file_id).await {
                tracing::warn!(error = %e, "stored file not removed after a failed intake");
            }
        }
    }

    /// Undoes a registration whose push failed: the file leaves the deposit, its job record
    /// and its stored bytes go. Each step is tried even if another fails; what could not be
    /// undone is logged (a job record left behind shows as failed with a retry).
    async fn take_back(&self, deposit_id: &str, job_id: &str, files: &[Stored]) {
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
        self.delete_stored(files).await;
    }

    /// The job record, then the file on the deposit; false when the deposit is gone.
    async fn register(
        &self,
        deposit_id: &str,
        job: &JobRecord,
        files: Vec<DepositFile>,
    ) -> Result<bool, RegisterError> {
        self.jobs.create(job).await?;
        let added = self
            .deposits
            .update(deposit_id, |d| {
                d.files.extend(files.iter().cloned());
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
