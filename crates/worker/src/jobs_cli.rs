//! `fom-worker enqueue` and `fom-worker jobs ...`: the operator's view of the queue, read from
//! our own job records (docs/REDIS.md), not from the queue library's listing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use fom_core::filetype::FileKind;
use fom_core::jobs::JobState;

use crate::settings::WorkerSettings;

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

pub async fn enqueue(ws: &WorkerSettings, args: &EnqueueArgs) -> anyhow::Result<ExitCode> {
    let services = ws.connect_briefly().await?.services;
    let deposit_id = match &args.deposit {
        Some(id) => {
            if services.deposits.get(id).await?.is_none() {
                anyhow::bail!("no deposit {id}; leave out --deposit to start a new one");
            }
            id.clone()
        }
        None => {
            let name = format!("Deposit {}", chrono::Local::now().format("%Y-%m-%d"));
            services.deposits.create(&name).await?.id
        }
    };
    println!("deposit\t{deposit_id}");
    let mut failed = false;
    let mut photos = Vec::new();
    for path in &args.files {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut file = match tokio::fs::File::open(path).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{name}: cannot read it: {e}");
                failed = true;
                continue;
            }
        };
        let stored = match services.store_file(&name, &mut file).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{name}: {e}");
                failed = true;
                continue;
            }
        };
        // Photos wait for the end and are read together, as from the upload page.
        if matches!(stored.kind, FileKind::Jpeg | FileKind::Png) {
            photos.push(stored);
            continue;
        }
        match services
            .queue_files(&deposit_id, std::slice::from_ref(&stored))
            .await
        {
            Ok(job_id) => println!("{job_id}\t{name}"),
            Err(e) => {
                eprintln!("{name}: {e}");
                failed = true;
            }
        }
    }
    if !photos.is_empty() {
        match services.queue_files(&deposit_id, &photos).await {
            Ok(job_id) => {
                for p in &photos {
                    println!("{job_id}\t{}", p.name);
                }
            }
            Err(e) => {
                for p in &photos {
                    eprintln!("{}: {e}", p.name);
                }
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn jobs(ws: &WorkerSettings, cmd: &JobsCommand) -> anyhow::Result<ExitCode> {
    let services = ws.connect_briefly().await?.services;
    match cmd {
        JobsCommand::List { state, limit, json } => {
            let state = match state.as_deref() {
                Some(s) => Some(JobState::parse(s).with_context(|| {
                    format!("unknown state {s:?}; use queued, running, done, failed or dead")
                })?),
                None => None,
            };
            let list = services.jobs.list(state, *limit).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for j in &list {
                    println!(
                        "{}  {:<8} {:<8} page {:>3}/{:<3} crashes {} {}  {}",
                        j.id,
                        j.state.as_str(),
                        j.stage.map_or("-", |s| s.as_str()),
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
        JobsCommand::Show { id } => match services.jobs.get(id).await? {
            Some(j) => println!("{}", serde_json::to_string_pretty(&j)?),
            None => {
                eprintln!("no job {id}");
                return Ok(ExitCode::FAILURE);
            }
        },
        JobsCommand::Retry { id } => {
            if !services.retry_job(id).await? {
                eprintln!("job {id} is not failed or dead (or does not exist); nothing to retry");
                return Ok(ExitCode::FAILURE);
            }
            println!("{id} queued again");
        }
        JobsCommand::Purge { older_than_hours } => {
            let n = services
                .jobs
                .purge(Duration::from_secs(older_than_hours * 3600))
                .await?;
            println!("purged {n} job(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
