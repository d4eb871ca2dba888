//! The dyno's main process: it never exits because of a budget. It runs worker children (the
//! same binary, `child` subcommand), starts a fresh one at once when a child leaves over its
//! budget, backs off after crashes, and on SIGTERM/SIGINT passes the signal on and waits for its
//! children to drain (within Heroku's 30 s) before exiting. Killed outright, it takes its
//! children with it: each asks for SIGTERM on its parent's death as it starts.
//!
//! On Heroku any exit of the dyno's command is a crash and repeated crashes are restarted only
//! after long cool-offs (docs/RULES.md#crashes-and-restarts), hence recycling children rather
//! than the dyno.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fom_core::ceiling::EXIT_MEMORY;
use fom_core::queue::QueueName;
use fom_core::redis_conn::{RedisSettings, SteadyConnection};
use fom_core::services::Settings;
use fom_core::workers::{Scaling, WorkerRegistry};
use fom_queue::RedisQueues;
use tokio::process::Command;
use tokio::sync::{Notify, OnceCell};

use crate::scaling::{Decision, Observed, ScalingSettings};
use crate::settings::{Processes, WorkerSettings};

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

/// The children running now, by slot: slot 0 always runs; with `WORKER_PROCESSES=auto` the
/// scaler starts extra slots and retires them.
type Children = Arc<std::sync::Mutex<BTreeMap<usize, Running>>>;

#[derive(Debug, Clone)]
struct Running {
    pid: u32,
    id: String,
    /// Started by the scaler (retired when idle); slot 0 and fixed slots are not.
    extra: bool,
    started: Instant,
}

fn note_running(children: &Children, slot: usize, pid: u32, id: &str, extra: bool) {
    if let Ok(mut m) = children.lock() {
        m.insert(
            slot,
            Running {
                pid,
                id: id.to_string(),
                extra,
                started: Instant::now(),
            },
        );
    }
}

fn children_now(children: &Children) -> Vec<(usize, Running)> {
    children
        .lock()
        .map(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect())
        .unwrap_or_default()
}

pub async fn run(ws: WorkerSettings) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(Notify::new());
    let releaser = Arc::new(Releaser {
        settings: ws.services.clone(),
        redis: OnceCell::new(),
    });
    let children: Children = Arc::default();
    let fixed = match ws.processes {
        Processes::Fixed(n) => n,
        Processes::Auto => 1,
    };
    tracing::info!(processes = ?ws.processes, pid = std::process::id(), "supervisor start");
    let mut slots = Vec::new();
    for slot in 0..fixed {
        let (exe, stopping, stop) = (exe.clone(), stopping.clone(), stop.clone());
        let (releaser, children) = (releaser.clone(), children.clone());
        slots.push(tokio::spawn(async move {
            supervise_slot(slot, exe, stopping, stop, releaser, children).await
        }));
    }
    if ws.processes == Processes::Auto {
        let scaler = Scaler {
            settings: ws.scaling.clone(),
            exe: exe.clone(),
            stopping: stopping.clone(),
            stop: stop.clone(),
            releaser: releaser.clone(),
            children: children.clone(),
        };
        slots.push(tokio::spawn(async move { scaler.run().await }));
    }
    crate::child_signal::wait().await;
    tracing::info!("supervisor: shutdown requested; draining children");
    stopping.store(true, Ordering::SeqCst);
    stop.notify_waiters();
    for s in slots {
        let _ = s.await;
    }
    // Extra children drain on their own tasks.
    let deadline = Instant::now() + DRAIN + Duration::from_secs(2);
    while !children_now(&children).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!("supervisor: all children stopped");
    Ok(ExitCode::SUCCESS)
}

/// Starts and retires extra children (`WORKER_PROCESSES=auto`, [`crate::scaling`]).
struct Scaler {
    settings: ScalingSettings,
    exe: std::path::PathBuf,
    stopping: Arc<AtomicBool>,
    stop: Arc<Notify>,
    releaser: Arc<Releaser>,
    children: Children,
}

/// How often the scaler looks.
const SCALE_TICK: Duration = Duration::from_millis(500);

impl Scaler {
    async fn run(self) {
        let dyno = std::env::var("DYNO").unwrap_or_else(|_| "local".into());
        let mut idle_since: HashMap<String, Instant> = HashMap::new();
        let mut retiring: HashSet<u32> = HashSet::new();
        let mut warned = false;
        // The dyno's total for the operations page.
        let mut sampler = fom_core::workers::Sampler::default();
        while !self.stopping.load(Ordering::SeqCst) {
            tokio::select! {
                _ = tokio::time::sleep(SCALE_TICK) => {}
                _ = self.stop.notified() => break,
            }
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            let conn = match self.releaser.conn().await {
                Some(c) => c,
                None => continue,
            };
            let running = children_now(&self.children);
            retiring.retain(|pid| running.iter().any(|(_, r)| r.pid == *pid));
            let seen = match self.observe(&conn, &running).await {
                Ok(seen) => {
                    warned = false;
                    seen
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, "scaling: cannot read Redis; holding");
                        warned = true;
                    }
                    continue;
                }
            };
            let (observed, busy, estimate) = seen;
            let decision = crate::scaling::decide(&self.settings, &observed, estimate);
            let headroom = observed.headroom_mb(&self.settings, estimate);
            match decision {
                Decision::Grow => {
                    let slot = (1..)
                        .find(|s| !running.iter().any(|(k, _)| k == s))
                        .unwrap_or(1);
                    tracing::info!(
                        slot,
                        children = running.len() + 1,
                        estimate_mb = estimate,
                        headroom_mb = headroom.round(),
                        waiting = observed.waiting,
                        "scaling: jobs wait and the dyno has room; starting a child"
                    );
                    let (exe, stop) = (self.exe.clone(), self.stop.clone());
                    let (releaser, children) = (self.releaser.clone(), self.children.clone());
                    tokio::spawn(
                        async move { run_extra(slot, exe, stop, releaser, children).await },
                    );
                }
                Decision::Shed => {
                    let newest = running
                        .iter()
                        .filter(|(_, r)| r.extra && !retiring.contains(&r.pid))
                        .max_by_key(|(_, r)| r.started);
                    if let Some((slot, r)) = newest {
                        tracing::warn!(
                            slot,
                            total_mb = observed.total_mb().round(),
                            limit_mb = self.settings.limit_mb(),
                            "Memory Monitor: the dyno's processes passed their limit; the newest \
                             child hands its job back and stops"
                        );
                        terminate(r.pid);
                        retiring.insert(r.pid);
                    }
                }
                Decision::Hold => {}
            }
            // Extra children idle for long enough while nothing waits go.
            let now = Instant::now();
            for (slot, r) in running.iter().filter(|(_, r)| r.extra) {
                if busy.contains(&r.id) {
                    idle_since.remove(&r.id);
                    continue;
                }
                let since = *idle_since.entry(r.id.clone()).or_insert(now);
                if observed.waiting == 0
                    && now.duration_since(since) >= self.settings.idle_retire
                    && !retiring.contains(&r.pid)
                {
                    tracing::info!(
                        slot,
                        pid = r.pid,
                        "scaling: an extra child is idle; retiring it"
                    );
                    terminate(r.pid);
                    retiring.insert(r.pid);
                }
            }
            idle_since.retain(|id, _| running.iter().any(|(_, r)| &r.id == id));
            let registry = WorkerRegistry::new(conn.clone(), self.releaser.settings.keys().clone());
            let note = Scaling {
                dyno: dyno.clone(),
                mode: "auto".into(),
                children: running.len(),
                max_children: self
                    .settings
                    .max_children
                    .min(self.settings.redis_children()),
                estimate_mb: estimate,
                total_mb: observed.total_mb(),
                limit_mb: self.settings.limit_mb(),
                headroom_mb: headroom,
                waiting: observed.waiting,
                redis_children: self.settings.redis_children(),
                redis_clients: observed.redis_clients,
                at: fom_core::jobs::now_ms(),
            };
            if let Err(e) = registry.note_scaling(&dyno, &note).await {
                tracing::debug!(error = %e, "scaling not noted");
            }
            if let Some(mb) = sampler.reading(note.at, note.total_mb) {
                match registry.note_dyno_rss(&dyno, note.at, mb).await {
                    Ok(()) => sampler.written(note.at),
                    Err(e) => tracing::debug!(error = %e, "dyno RSS sample not written"),
                }
            }
        }
    }

    /// Memory of the processes (from /proc), the queues, which children run a job (their
    /// heartbeats) and the estimate (recent job peaks).
    async fn observe(
        &self,
        conn: &SteadyConnection,
        running: &[(usize, Running)],
    ) -> Result<(Observed, HashSet<String>, f64), fom_core::redis_conn::RedisError> {
        let keys = self.releaser.settings.keys().clone();
        let queues = RedisQueues::new(
            conn.clone(),
            keys.clone(),
            self.releaser.settings.heartbeat,
            1,
        );
        let registry = WorkerRegistry::new(conn.clone(), keys);
        let waiting = queues.waiting_jobs(QueueName::Documents).await?
            + queues.waiting_jobs(QueueName::Qbo).await?;
        let busy: HashSet<String> = registry
            .list()
            .await?
            .into_iter()
            .filter(|b| b.current_job.is_some())
            .map(|b| b.id)
            .collect();
        let estimate = self.settings.estimate_mb(&registry.recent_peaks(20).await?);
        let redis_clients = fom_core::redis_conn::connected_clients(&mut conn.clone()).await?;
        let children_mb: Vec<f64> = running
            .iter()
            .map(|(_, r)| crate::scaling::rss_of(r.pid).unwrap_or(0.0))
            .collect();
        let idle = running
            .iter()
            .filter(|(_, r)| !busy.contains(&r.id))
            .count();
        Ok((
            Observed {
                supervisor_mb: fom_core::memory::rss_mb(),
                children_mb,
                idle,
                waiting,
                redis_clients,
            },
            busy,
            estimate,
        ))
    }
}

/// One extra child, started once: when it leaves (retired, shed, or crashed), the scaler
/// decides afresh.
async fn run_extra(
    slot: usize,
    exe: std::path::PathBuf,
    stop: Arc<Notify>,
    releaser: Arc<Releaser>,
    children: Children,
) {
    let Some((mut child, id, pid)) = spawn_child(slot, &exe) else {
        return;
    };
    note_running(&children, slot, pid, &id, true);
    let (status, code) = watch(&mut child, slot, pid, &stop, &children).await;
    releaser.release(&id).await;
    tracing::info!(slot, pid, ?code, ?status, "extra worker child stopped");
}

/// Waits for a child to leave (asking it to drain on shutdown), then forgets it: how it ended
/// and its exit code.
async fn watch(
    child: &mut tokio::process::Child,
    slot: usize,
    pid: u32,
    stop: &Notify,
    children: &Children,
) -> (std::io::Result<std::process::ExitStatus>, Option<i32>) {
    let status = tokio::select! {
        s = child.wait() => s,
        _ = stop.notified() => drain(child, slot, pid).await,
    };
    if let Ok(mut m) = children.lock() {
        m.remove(&slot);
    }
    let code = status
        .as_ref()
        .ok()
        .and_then(std::process::ExitStatus::code);
    (status, code)
}

/// Starts a worker child for `slot`: the process, its queue name and its pid.
fn spawn_child(slot: usize, exe: &std::path::Path) -> Option<(tokio::process::Child, String, u32)> {
    let dyno = std::env::var("DYNO").unwrap_or_else(|_| "local".into());
    // Named here, so that whatever way the child ends, its queue names are known.
    let id = format!(
        "{dyno}-{slot}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let parent = std::process::id().to_string();
    match Command::new(exe)
        .args(["child", "--id", &id, "--parent", &parent])
        .spawn()
    {
        Ok(child) => {
            let pid = child.id().unwrap_or(0);
            tracing::info!(slot, pid, "worker child started");
            Some((child, id, pid))
        }
        Err(e) => {
            tracing::error!(slot, error = %e, "cannot start a worker child");
            None
        }
    }
}

/// Asks a child to drain and waits for it (killed after [`DRAIN`]).
async fn drain(
    child: &mut tokio::process::Child,
    slot: usize,
    pid: u32,
) -> std::io::Result<std::process::ExitStatus> {
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

/// Hands back what a child that died still held, so its jobs go on at once instead of
/// waiting out the queue's orphan threshold. Redis is opened on the first need: a
/// supervisor whose children never die holds no connection.
struct Releaser {
    settings: Settings,
    redis: OnceCell<SteadyConnection>,
}

impl Releaser {
    /// The supervisor's connection, opened on first need.
    async fn conn(&self) -> Option<SteadyConnection> {
        let opened = self
            .redis
            .get_or_try_init(|| async {
                RedisSettings::install_tls_provider();
                SteadyConnection::open(&self.settings.redis.url, fom_queue::PUSH_WAIT).await
            })
            .await;
        match opened {
            Ok(c) => Some(c.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "supervisor: cannot reach Redis");
                None
            }
        }
    }

    async fn release(&self, child: &str) {
        let Some(conn) = self.conn().await else {
            return;
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
    children: Children,
) {
    let mut backoff = Duration::from_secs(1);
    while !stopping.load(Ordering::SeqCst) {
        let started = Instant::now();
        let Some((mut child, id, pid)) = spawn_child(slot, &exe) else {
            tokio::time::sleep(backoff).await;
            continue;
        };
        note_running(&children, slot, pid, &id, false);
        let (status, code) = watch(&mut child, slot, pid, &stop, &children).await;
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
