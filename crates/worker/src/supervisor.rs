//! The dyno's main process: it never exits because of a budget. It runs worker children (the
//! same binary, `child` subcommand), starts a fresh one at once when a child leaves over its
//! budget, backs off after crashes, and on SIGTERM/SIGINT passes the signal on and waits for its
//! children to drain (within Heroku's 30 s) before exiting.
//!
//! On Heroku any exit of the dyno's command is a crash and repeated crashes are restarted only
//! after long cool-offs (docs/RULES.md#crashes-and-restarts), hence recycling children rather
//! than the dyno.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fom_core::ceiling::EXIT_MEMORY;
use tokio::process::Command;
use tokio::sync::Notify;

/// Exit code of a child that stopped because it crossed its memory or job budget.
pub const EXIT_BUDGET: i32 = 3;

/// How long children get to drain after SIGTERM before they are killed (Heroku allows 30 s).
const DRAIN: Duration = Duration::from_secs(27);
/// A child that ran this long before crashing resets the crash backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub async fn run(processes: usize) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(Notify::new());
    tracing::info!(processes, pid = std::process::id(), "supervisor start");
    let mut slots = Vec::new();
    for slot in 0..processes {
        let (exe, stopping, stop) = (exe.clone(), stopping.clone(), stop.clone());
        slots.push(tokio::spawn(async move {
            supervise_slot(slot, exe, stopping, stop).await
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

async fn supervise_slot(
    slot: usize,
    exe: std::path::PathBuf,
    stopping: Arc<AtomicBool>,
    stop: Arc<Notify>,
) {
    let mut backoff = Duration::from_secs(1);
    while !stopping.load(Ordering::SeqCst) {
        let started = Instant::now();
        let mut child = match Command::new(&exe).arg("child").spawn() {
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
