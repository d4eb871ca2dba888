//! The dyno's main process: it never exits because of a budget. It runs worker children (the
//! same binary, `child` subcommand), starts a fresh one at once when a child leaves over its
//! budget, backs off after crashes, and on SIGTERM/SIGINT passes the signal on and waits for its
//! children to drain (within Heroku's 30 s) before exiting. Killed outright, it takes its
//! children with it: each asks for SIGTERM on its parent's death as it starts.
//!
//! On Heroku any exit of the dyno's command is a crash and repeated crashes are restarted only
//! after long cool-offs (docs/RULES.md#crashes-and-restarts), hence recycling children rather
//! than the dyno.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fom_core::ceiling::EXIT_MEMORY;
use fom_core::queue::QueueName;
use fom_core::redis_conn::{RedisSettings, SteadyConnection};
use fom_core::services::Settings;
use fom_core::workers::WorkerRegistry;
use fom_queue::RedisQueues;
use tokio::process::Command;
use tokio::sync::{Notify, OnceCell};

/// Exit code of a child that stopped because it crossed its memory or job budget.
pub const EXIT_BUDGET: i32 = 3;

/// Exit code of a child whose queue consumer stopped (Redis away for longer than
/// `REDIS_OUTAGE_WAIT_SECS`, or the queue library no longer fetching): it handed its jobs
/// back, and a fresh child starts at once.
pub const EXIT_QUEUE: i32 = 5;

/// How long children get to drain after SIGTERM before they are killed (Heroku allows 30 s).
pub const DRAIN: Duration = Duration::from_secs(27);
/// A child that ran this long before crashing resets the crash backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub async fn run(processes: usize, settings: Settings) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(Notify::new());
    let releaser = Arc::new(Releaser {
        settings,
        redis: OnceCell::new(),
    });
    tracing::info!(processes, pid = std::process::id(), "supervisor start");
    let mut slots = Vec::new();
    for slot in 0..processes {
        let (exe, stopping, stop) = (exe.clone(), stopping.clone(), stop.clone());
        let releaser = releaser.clone();
        slots.push(tokio::spawn(async move {
            supervise_slot(slot, exe, stopping, stop, releaser).await
        }));
    }
    crate::child_signal::wait().await;
    tracing::info!("supervisor: shutdown requested; draining children");
    stopping.store(true, Ordering::SeqCst);
    stop.notify_waiters();
    for s in slots {
        let _ = s.await;
    }
    tracing::info!("supervisor: all children stopped");
    Ok(ExitCode::SUCCESS)
}

/// Hands back what a child that died still held, so its jobs go on at once instead of
/// waiting out the queue's orphan threshold. Redis is opened on the first need: a
/// supervisor whose children never die holds no connection.
struct Releaser {
    settings: Settings,
    redis: OnceCell<SteadyConnection>,
}

impl Releaser {
    async fn release(&self, child: &str) {
        let opened = self
            .redis
            .get_or_try_init(|| async {
                RedisSettings::install_tls_provider();
                SteadyConnection::open(&self.settings.redis.url, fom_queue::PUSH_WAIT).await
            })
            .await;
        let conn = match opened {
            Ok(c) => c.clone(),
            Err(e) => {
                tracing::warn!(error = %e, "supervisor: cannot reach Redis to hand back a child's jobs");
                return;
            }
        };
        let keys = self.settings.keys().clone();
        let queues = RedisQueues::new(conn.clone(), keys.clone(), self.settings.heartbeat, 1);
        for (queue, name) in [
            (QueueName::Documents, child.to_string()),
            (QueueName::Qbo, format!("{child}-qbo")),
        ] {
            match fom_queue::release_and_deregister(&queues, queue, &name).await {
                Ok(n) if n > 0 => {
                    tracing::info!(tasks = n, "supervisor: a stopped child's tasks handed back")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "supervisor: a child's tasks not handed back"),
            }
        }
        if let Err(e) = WorkerRegistry::new(conn, keys).remove(child).await {
            tracing::warn!(error = %e, "supervisor: a child's heartbeat not removed");
        }
    }
}

async fn supervise_slot(
    slot: usize,
    exe: std::path::PathBuf,
    stopping: Arc<AtomicBool>,
    stop: Arc<Notify>,
    releaser: Arc<Releaser>,
) {
    let mut backoff = Duration::from_secs(1);
    let dyno = std::env::var("DYNO").unwrap_or_else(|_| "local".into());
    while !stopping.load(Ordering::SeqCst) {
        let started = Instant::now();
        // Named here, so that whatever way the child ends, its queue names are known.
        let id = format!(
            "{dyno}-{slot}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let parent = std::process::id().to_string();
        let spawned = Command::new(&exe)
            .args(["child", "--id", &id, "--parent", &parent])
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(slot, error = %e, "cannot start a worker child");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let pid = child.id().unwrap_or(0);
        tracing::info!(slot, pid, "worker child started");
        let status = tokio::select! {
            s = child.wait() => s,
            _ = stop.notified() => {
                terminate(pid);
                match tokio::time::timeout(DRAIN, child.wait()).await {
                    Ok(s) => s,
                    Err(_) => {
                        tracing::error!(slot, pid, "child did not drain in time; killing it");
                        let _ = child.kill().await;
                        child.wait().await
                    }
                }
            }
        };
        let code = status
            .as_ref()
            .ok()
            .and_then(std::process::ExitStatus::code);
        // A child that left cleanly handed back its own jobs; this covers one that could not
        // (a crash, its memory ceiling, a kill), and costs nothing otherwise.
        releaser.release(&id).await;
        if stopping.load(Ordering::SeqCst) {
            tracing::info!(slot, pid, ?code, "worker child stopped");
            break;
        }
        match code {
            Some(EXIT_BUDGET) => {
                tracing::info!(
                    slot,
                    pid,
                    "Memory Monitor: worker child left over its budget; starting a fresh one"
                );
                backoff = Duration::from_secs(1);
            }
            // After a long outage: start afresh at once. A child that loses its consumer right
            // after starting is a crash loop, and backs off like one.
            Some(EXIT_QUEUE) if started.elapsed() >= HEALTHY_RUN => {
                tracing::warn!(
                    slot,
                    pid,
                    "worker child lost its queue consumer; starting a fresh one"
                );
                backoff = Duration::from_secs(1);
            }
            // Ended by its memory watchdog: the document's fault, not the child's; the job's
            // crash count (on redelivery) is what stops a document that always does this.
            Some(EXIT_MEMORY) => {
                tracing::warn!(
                    slot,
                    pid,
                    "Memory Monitor: worker child ended at its memory ceiling; starting a fresh one"
                );
                backoff = Duration::from_secs(1);
            }
            _ => {
                if started.elapsed() >= HEALTHY_RUN {
                    backoff = Duration::from_secs(1);
                }
                tracing::error!(slot, pid, ?code, status = ?status, backoff_s = backoff.as_secs(), "worker child crashed; restarting after backoff");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.notified() => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Asks a child to drain (SIGTERM).
#[allow(unsafe_code)]
fn terminate(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid > 0 {
        // SAFETY: kill(2) with a pid we spawned and still own; no memory is involved.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}
