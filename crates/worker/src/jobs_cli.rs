//! `fom-worker enqueue` and `fom-worker jobs ...`: the operator's view of the queue, read from
//! our own job records (docs/REDIS.md), not from the queue library's listing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use fom_core::jobs::{now_ms, JobRecord, JobState};

use crate::queue::{Queue, QueueSettings};

#[derive(clap::Args)]
pub struct EnqueueArgs {
    /// Deposit the files belong to (default: a new one).
    #[arg(long)]
    pub deposit: Option<String>,
    /// Files to store and queue, one job each.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum JobsCommand {
    /// Jobs, newest first.
    List {
        /// Only jobs in this state: queued, running, done, failed, dead.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One job in full.
    Show { id: String },
    /// Queue a failed or dead job again (crash count reset).
    Retry { id: String },
    /// Delete done and dead jobs older than this many hours.
    Purge {
        #[arg(long, default_value_t = 24 * 7)]
        older_than_hours: u64,
    },
}

pub async fn enqueue(qs: &QueueSettings, args: &EnqueueArgs) -> anyhow::Result<ExitCode> {
    let mut queue = Queue::connect(qs).await?;
    let deposit = args
        .deposit
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut failed = false;
    for path in &args.files {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let file = match tokio::fs::File::open(path).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{name}: cannot read it: {e}");
                failed = true;
                continue;
            }
        };
        let stored = match queue.store.put(&name, file, qs.max_file_bytes).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{name}: {e}");
                failed = true;
                continue;
            }
        };
        let job_id = uuid::Uuid::new_v4().simple().to_string();
        queue
            .jobs
            .create(&JobRecord::new(
                &job_id,
                &deposit,
                &stored.id,
                &name,
                now_ms(),
            ))
            .await?;
        queue.push(&job_id).await?;
        println!("{job_id}\t{name}");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn jobs(qs: &QueueSettings, cmd: &JobsCommand) -> anyhow::Result<ExitCode> {
    let mut queue = Queue::connect(qs).await?;
    match cmd {
        JobsCommand::List { state, limit, json } => {
            let state = match state.as_deref() {
                Some(s) => Some(JobState::parse(s).with_context(|| {
                    format!("unknown state {s:?}; use queued, running, done, failed or dead")
                })?),
                None => None,
            };
            let list = queue.jobs.list(state, *limit).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for j in &list {
                    println!(
                        "{}  {:<8} {:<8} page {:>3}/{:<3} crashes {} {}  {}",
                        j.id,
                        j.state.as_str(),
                        j.stage.as_deref().unwrap_or("-"),
                        j.page,
                        j.pages,
                        j.crashes,
                        j.file_name,
                        j.last_error.as_deref().unwrap_or("")
                    );
                }
                if list.is_empty() {
                    println!("no jobs");
                }
            }
        }
        JobsCommand::Show { id } => match queue.jobs.get(id).await? {
            Some(j) => println!("{}", serde_json::to_string_pretty(&j)?),
            None => {
                eprintln!("no job {id}");
                return Ok(ExitCode::FAILURE);
            }
        },
        JobsCommand::Retry { id } => {
            if !queue.jobs.reset_for_retry(id).await? {
                eprintln!("job {id} is not failed or dead (or does not exist); nothing to retry");
                return Ok(ExitCode::FAILURE);
            }
            // The first push's idempotency key is still held, so push without one.
            requeue_fresh(&mut queue, id).await?;
            println!("{id} queued again");
        }
        JobsCommand::Purge { older_than_hours } => {
            let n = queue
                .jobs
                .purge(Duration::from_secs(older_than_hours * 3600))
                .await?;
            println!("purged {n} job(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Pushes a task for `id` that bypasses the idempotency key of the first push.
async fn requeue_fresh(queue: &mut Queue, id: &str) -> anyhow::Result<()> {
    Ok(queue.queue.push_again(id).await?)
}
