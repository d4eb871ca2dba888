//! The queue, worker children and supervisor end to end: real binaries, a real Redis
//! (REDIS_URL, else 127.0.0.1:6379), real crashes. Each test owns a key prefix and its own
//! supervisor. Heartbeats are 1 s with 5 missed allowed, so an orphan is noticed in ~5 s while
//! a loaded CI machine cannot make a live worker look dead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Env {
    prefix: String,
    dir: tempfile::TempDir,
    /// The Redis every command of the test uses.
    url: String,
}

impl Env {
    fn new() -> Self {
        Self::on(&fom_testkit::redis_url())
    }

    /// An environment on the Redis at `url` (a private server with settings of its own).
    fn on(url: &str) -> Self {
        Self {
            prefix: format!("qtest-{}", uuid::Uuid::new_v4().simple()),
            dir: tempfile::tempdir().unwrap(),
            url: url.to_string(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fom-worker"));
        c.env("REDIS_URL", &self.url)
            .env("KEY_PREFIX", &self.prefix)
            .env("UPLOAD_STORE", "redis")
            .env("WORKER_HEARTBEAT_SECS", "1")
            .env("WORKER_MISSED_HEARTBEATS", "5")
            .env("WORKER_TEST_HOOKS", "1")
            .env("WORKER_PROCESSES", "1")
            .env("RUST_LOG", "info");
        c
    }

    /// A copy of the example CSV under `name` (test hooks read the name).
    fn file(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::copy(
            fom_testkit::repo_root().join("examples/online-gifts.csv"),
            &path,
        )
        .unwrap();
        path
    }

    /// A copy of the example PDF under `name`, queued; returns the job id.
    fn enqueue_pdf(&self, name: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::copy(fom_testkit::repo_root().join("examples/deposit.pdf"), &path).unwrap();
        self.enqueue_paths(&[path]).remove(0)
    }

    /// Copies of the example CSV under `names`, queued; returns the job ids in order.
    fn enqueue(&self, names: &[&str]) -> Vec<String> {
        let files: Vec<PathBuf> = names.iter().map(|n| self.file(n)).collect();
        self.enqueue_paths(&files)
    }

    fn enqueue_paths(&self, files: &[PathBuf]) -> Vec<String> {
        let out = self.cmd().arg("enqueue").args(files).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("deposit\t"))
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    }

    /// `jobs list --json`, optionally for one state.
    fn list(&self, state: Option<&str>) -> Value {
        let mut c = self.cmd();
        c.args(["jobs", "list", "--json"]);
        if let Some(s) = state {
            c.args(["--state", s]);
        }
        serde_json::from_slice(&c.output().unwrap().stdout).unwrap()
    }

    /// The finished job's stored result.
    fn job_result(&self, id: &str) -> Value {
        let raw: Option<String> = redis::cmd("GET")
            .arg(format!("{}:job:{id}:result", self.prefix))
            .query(&mut self.redis())
            .unwrap();
        serde_json::from_str(&raw.unwrap()).unwrap()
    }

    fn job(&self, id: &str) -> Value {
        let out = self.cmd().args(["jobs", "show", id]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    fn wait_job(&self, id: &str, limit: Duration, ok: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let j = self.job(id);
            if ok(&j) {
                return j;
            }
            assert!(
                start.elapsed() < limit,
                "job {id} did not get there in {limit:?}: {j}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn supervisor(&self, extra: &[(&str, &str)]) -> Supervisor {
        let log = self.dir.path().join("supervisor.log");
        let mut c = self.cmd();
        for (k, v) in extra {
            c.env(k, v);
        }
        let child = c
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Supervisor { child, log }
    }

    fn redis(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Pid of the live worker child running `job_id`, from its heartbeat.
    fn child_pid_running(&self, job_id: &str) -> Option<i32> {
        let mut conn = self.redis();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:worker:*", self.prefix))
            .query(&mut conn)
            .ok()?;
        keys.iter().find_map(|k| {
            let (pid, current): (Option<i32>, Option<String>) = redis::cmd("HMGET")
                .arg(k)
                .arg("pid")
                .arg("current_job")
                .query(&mut conn)
                .ok()?;
            (current.as_deref() == Some(job_id))
                .then_some(pid)
                .flatten()
        })
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        fom_testkit::delete_keys(&self.url, &self.prefix);
    }
}

struct Supervisor {
    child: Child,
    log: PathBuf,
}

impl Supervisor {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(unsafe_code)]
fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a process this test started.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn state(j: &Value) -> &str {
    j["state"].as_str().unwrap_or("")
}

fn result_records(env: &Env, id: &str) -> usize {
    env.job_result(id)["records"].as_array().unwrap().len()
}

fn log_time(line: &str) -> chrono::DateTime<chrono::Utc> {
    line.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn a_killed_child_s_job_is_completed_once_by_the_next_child() {
    let env = Env::new();
    let sup = env.supervisor(&[]);
    let id = env.enqueue(&["slow-6-gifts.csv"]).remove(0);
    env.wait_job(&id, Duration::from_secs(30), |j| state(j) == "running");
    // Operators see it running, with its stage.
    let list: Value = env.list(Some("running"));
    assert_eq!(list[0]["id"], id.as_str());
    assert!(list[0]["stage"].is_string(), "{list}");
    assert!(list[0]["worker"].is_string(), "{list}");
    let start = Instant::now();
    let pid = loop {
        if let Some(p) = env.child_pid_running(&id) {
            break p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no heartbeat names the job"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let killed = Instant::now();
    signal(pid, libc::SIGKILL);
    let done = env.wait_job(&id, Duration::from_secs(60), |j| state(j) == "done");
    println!(
        "job recovered and completed {:.1} s after kill -9",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(done["crashes"], 1);
    assert_eq!(done["attempts"], 2);
    assert_eq!(result_records(&env, &id), 4);
    // The supervisor itself never died.
    assert!(sup.log().contains("worker child crashed"), "{}", sup.log());
}

/// A process's parent pid and state letter (`/proc/<pid>/stat`), `None` once it is gone.
fn proc_stat(pid: i32) -> Option<(i32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may hold spaces: the fields after the last `)` are fixed.
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Pids of the live children of `parent`.
fn children_of(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| proc_stat(pid).is_some_and(|(ppid, s)| ppid == parent && s != 'Z'))
        .collect()
}

#[test]
fn worker_children_die_with_a_killed_supervisor() {
    let env = Env::new();
    let mut sup = env.supervisor(&[("WORKER_PROCESSES", "2")]);
    let start = Instant::now();
    let children = loop {
        let c = children_of(sup.pid());
        if c.len() == 2 {
            break c;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "children: {c:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Let the children get past their start-up.
    std::thread::sleep(Duration::from_secs(1));
    signal(sup.pid(), libc::SIGKILL);
    let _ = sup.child.wait();
    let killed = Instant::now();
    let alive = |pid: &i32| proc_stat(*pid).is_some_and(|(_, s)| s != 'Z');
    while children.iter().any(alive) && killed.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survivors: Vec<i32> = children.iter().copied().filter(alive).collect();
    // Never leave one running, whatever the outcome.
    for &pid in &survivors {
        signal(pid, libc::SIGKILL);
    }
    assert!(
        survivors.is_empty(),
        "children {survivors:?} outlived their supervisor by 15 s"
    );
    println!(
        "children gone {:.2} s after the supervisor's kill -9",
        killed.elapsed().as_secs_f64()
    );
}

#[test]
fn a_child_over_budget_is_replaced_at_once_and_the_queue_moves_on() {
    let env = Env::new();
    // Queued before any worker runs: listed as queued.
    let waiting = env.enqueue(&["queued.csv"]).remove(0);
    let queued: Value = env.list(Some("queued"));
    assert_eq!(queued[0]["id"], waiting.as_str());
    let mut sup = env.supervisor(&[("WORKER_MAX_RSS_MB", "64")]);
    env.wait_job(&waiting, Duration::from_secs(30), |j| state(j) == "done");
    let bloat = env.enqueue(&["bloat-100-gifts.csv"]).remove(0);
    env.wait_job(&bloat, Duration::from_secs(60), |j| state(j) == "done");
    // The budget check runs after the job is recorded done: give the log a moment.
    let start = Instant::now();
    let log = loop {
        let log = sup.log();
        let restarted = log
            .lines()
            .skip_while(|l| !l.contains("left over its budget"))
            .any(|l| l.contains("worker child started"));
        if restarted || start.elapsed() > Duration::from_secs(15) {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let budget = log
        .lines()
        .find(|l| l.contains("left over its budget"))
        .unwrap_or_else(|| panic!("no budget exit in:\n{log}"));
    let restarted = log
        .lines()
        .skip_while(|l| !l.contains("left over its budget"))
        .find(|l| l.contains("worker child started"))
        .unwrap_or_else(|| panic!("no restart in:\n{log}"));
    let gap = log_time(restarted) - log_time(budget);
    println!(
        "fresh child started {} ms after the budget exit",
        gap.num_milliseconds()
    );
    assert!(gap.num_milliseconds() < 1000);
    assert!(log.contains("Memory Monitor: worker"), "{log}");
    // The fresh child takes the next job; the supervisor is the same process all along.
    let next = env.enqueue(&["next.csv"]).remove(0);
    let done = env.wait_job(&next, Duration::from_secs(30), |j| state(j) == "done");
    assert_ne!(
        done["worker"],
        env.job(&bloat)["worker"],
        "a different child ran it"
    );
    assert!(
        sup.child.try_wait().unwrap().is_none(),
        "supervisor still running"
    );
    assert!(sup.log().contains(&format!("pid={}", sup.pid())));
    let list: Value = env.list(None);
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["stage"] == "done"));
}

#[test]
fn a_poison_document_is_dead_after_three_crashes_and_others_still_run() {
    let env = Env::new();
    let _sup = env.supervisor(&[]);
    let ids = env.enqueue(&["crash-gifts.csv", "fine.csv"]);
    let dead = env.wait_job(&ids[0], Duration::from_secs(120), |j| state(j) == "dead");
    assert_eq!(dead["crashes"], 3);
    assert!(dead["last_error"]
        .as_str()
        .unwrap()
        .contains("crashed its worker 3 times"));
    env.wait_job(&ids[1], Duration::from_secs(60), |j| state(j) == "done");
    let dead_list: Value = env.list(Some("dead"));
    assert_eq!(dead_list.as_array().unwrap().len(), 1);
}

#[test]
fn sigterm_drains_within_30_seconds_and_loses_nothing() {
    let env = Env::new();
    let mut sup = env.supervisor(&[]);
    let id = env.enqueue(&["slow-20-gifts.csv"]).remove(0);
    env.wait_job(&id, Duration::from_secs(30), |j| state(j) == "running");
    let sent = Instant::now();
    signal(sup.pid(), libc::SIGTERM);
    let status = loop {
        if let Some(s) = sup.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "supervisor still running after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "supervisor exited {:.1} s after SIGTERM",
        sent.elapsed().as_secs_f64()
    );
    assert!(status.success());
    let j = env.job(&id);
    assert!(matches!(state(&j), "done" | "queued"), "{j}");
}

#[test]
fn a_sixty_second_cpu_bound_job_runs_once() {
    let env = Env::new();
    let _sup = env.supervisor(&[]);
    let id = env.enqueue(&["spin-60-gifts.csv"]).remove(0);
    let done = env.wait_job(&id, Duration::from_secs(150), |j| state(j) == "done");
    assert_eq!(done["attempts"], 1, "{done}");
    assert_eq!(done["crashes"], 0, "{done}");
}

#[test]
fn a_document_past_the_memory_ceiling_ends_dead_with_a_memory_reason_and_never_loops() {
    let env = Env::new();
    let sup = env.supervisor(&[("MEMORY_WARNING_MB", "40"), ("MEMORY_CRITICAL_MB", "50")]);
    // 80 MB taken before the first page: every fresh child reaches its memory ceiling and
    // ends; three such ends make the job dead, with a reason that says memory.
    let id = env.enqueue_pdf("bloat-80-deposit.pdf");
    let dead = env.wait_job(&id, Duration::from_secs(90), |j| state(j) == "dead");
    assert_eq!(dead["crashes"], 3, "{dead}");
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .contains("needs more memory"),
        "{dead}"
    );
    let log = sup.log();
    assert!(
        log.contains("needs more memory than this worker may use"),
        "{log}"
    );
    assert!(log.contains("ended at its memory ceiling"), "{log}");
    // The queue keeps moving afterwards.
    let next = env.enqueue(&["after.csv"]).remove(0);
    env.wait_job(&next, Duration::from_secs(30), |j| state(j) == "done");
}

fn upload_keys(env: &Env) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{}:upload:*", env.prefix))
        .query(&mut env.redis())
        .unwrap()
}

/// When the kept upload `file_id` may be deleted (s since the epoch), if it is scheduled.
fn scheduled(env: &Env, file_id: &str) -> Option<f64> {
    redis::cmd("ZSCORE")
        .arg(format!("{}:uploads:expiring", env.prefix))
        .arg(file_id)
        .query(&mut env.redis())
        .unwrap()
}

#[test]
fn uploads_are_deleted_after_success_or_kept_for_the_retention() {
    // Default: the file goes as soon as its records are stored (a PDF)...
    let env = Env::new();
    let _sup = env.supervisor(&[]);
    let id = env.enqueue_pdf("deposit.pdf");
    env.wait_job(&id, Duration::from_secs(60), |j| state(j) == "done");
    assert!(upload_keys(&env).is_empty(), "{:?}", upload_keys(&env));
    // ...except a CSV read by column names, kept a day for a re-read with corrected
    // columns, scheduled for deletion like a kept upload.
    let id = env.enqueue(&["gifts.csv"]).remove(0);
    env.wait_job(&id, Duration::from_secs(30), |j| state(j) == "done");
    let file_id = env.job(&id)["file_id"].as_str().unwrap().to_string();
    let in_a_day = chrono::Utc::now().timestamp() as f64 + 24.0 * 3600.0;
    let when = scheduled(&env, &file_id);
    assert!(
        when.is_some_and(|w| (w - in_a_day).abs() < 60.0),
        "{when:?}"
    );

    // With a retention the file stays, scheduled for deletion; once due, a worker sweeps it.
    let env = Env::new();
    let _sup = env.supervisor(&[("UPLOAD_RETENTION_HOURS", "48")]);
    let first = env.enqueue(&["gifts.csv"]).remove(0);
    env.wait_job(&first, Duration::from_secs(30), |j| state(j) == "done");
    let file_id = env.job(&first)["file_id"].as_str().unwrap().to_string();
    let expiring = format!("{}:uploads:expiring", env.prefix);
    let mut conn = env.redis();
    let when = scheduled(&env, &file_id);
    let in_two_days = chrono::Utc::now().timestamp() as f64 + 48.0 * 3600.0;
    assert!(
        when.is_some_and(|w| (w - in_two_days).abs() < 60.0),
        "{when:?}"
    );
    assert!(!upload_keys(&env).is_empty(), "kept during the retention");
    // Make it due, then let the next job's sweep remove it.
    let _: () = redis::cmd("ZADD")
        .arg(&expiring)
        .arg(0)
        .arg(&file_id)
        .query(&mut conn)
        .unwrap();
    let second = env.enqueue(&["more.csv"]).remove(0);
    env.wait_job(&second, Duration::from_secs(30), |j| state(j) == "done");
    let left = upload_keys(&env);
    assert!(
        left.iter().all(|k| !k.contains(&file_id)),
        "the due file was not swept: {left:?}"
    );
    assert!(
        !left.is_empty(),
        "the second file is kept for its own retention"
    );
}

#[test]
fn every_log_line_of_a_job_names_the_job_and_its_queue() {
    let env = Env::new();
    let sup = env.supervisor(&[]);
    let id = env.enqueue_pdf("deposit.pdf");
    env.wait_job(&id, Duration::from_secs(60), |j| state(j) == "done");
    let log = sup.log();
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains(&format!("job {id} start")))
        .unwrap_or_else(|| panic!("no start line in {log}"));
    let end = lines
        .iter()
        .position(|l| l.contains(&format!("job {id} end")))
        .unwrap_or_else(|| panic!("no end line in {log}"));
    // The pipeline's own lines, written on the job's blocking thread, and the merge after it.
    let during: Vec<&str> = lines[start..=end]
        .iter()
        .copied()
        .filter(|l| l.contains("Memory Monitor"))
        .chain(
            lines
                .iter()
                .copied()
                .filter(|l| l.contains("records merged")),
        )
        .collect();
    assert!(during.len() >= 4, "{during:#?}");
    for line in during {
        assert!(
            line.contains("job{") && line.contains(&id) && line.contains("documents"),
            "a job's line without its job id and queue: {line}"
        );
    }
}

#[test]
fn a_job_whose_peak_crossed_the_budget_recycles_its_child_even_after_rss_fell() {
    let env = Env::new();
    let sup = env.supervisor(&[("WORKER_MAX_RSS_MB", "96")]);
    let spike = env.enqueue(&["spike-160-gifts.csv"]).remove(0);
    let done = env.wait_job(&spike, Duration::from_secs(60), |j| state(j) == "done");
    let peak = done["peak_rss_mb"].as_f64().unwrap();
    assert!(peak >= 160.0, "the job's peak is on its record: {done}");
    // The 160 MB went back to the system before the check: only the peak can trip it.
    let start = Instant::now();
    let log = loop {
        let log = sup.log();
        if log.contains("left over its budget") || start.elapsed() > Duration::from_secs(15) {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let line = log
        .lines()
        .find(|l| l.contains("recycling: job peak"))
        .unwrap_or_else(|| panic!("no peak recycling line in:\n{log}"));
    assert!(line.contains("peak_rss_mb="), "{line}");
    assert!(log.contains("left over its budget"), "{log}");
    // A light job afterwards does not recycle the fresh child.
    let light = env.enqueue(&["light.csv"]).remove(0);
    let done = env.wait_job(&light, Duration::from_secs(30), |j| state(j) == "done");
    assert!(done["peak_rss_mb"].as_f64().unwrap() < 96.0, "{done}");
}

#[test]
fn a_content_bomb_page_is_left_out_and_every_other_page_is_read() {
    let env = Env::new();
    // 20 pages of one check each; page 7 inflates from a few hundred KB into 64 MB of drawing
    // operators, which pdfium would turn into more than a gigabyte.
    let pages = twenty_pages();
    let path = env.dir.path().join("deposit-with-bomb.pdf");
    fom_testkit::fixtures::write_content_bomb_pdf(&path, &pages, 7, 64).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 1024 * 1024);
    // The pre-flight would refuse the page before pdfium sees it (tested below): this test is
    // about the ceiling behind it.
    let (mut sup, id, other, done) =
        run_bomb(&env, path, &[("PDF_MAX_PAGE_OPERATORS", "1000000000")]);
    let log = sup.log();
    assert_eq!(state(&done), "done", "{done}\n{log}");
    assert_eq!(
        done["crashes"], 0,
        "leaving a page out is progress, not a crash"
    );
    assert_eq!(done["skip_pages"], serde_json::json!([7]), "{done}");
    assert_eq!(result_records(&env, &id), 19);
    let bomb = page_7_error(&env, &id);
    assert!(
        bomb["reason"]
            .as_str()
            .unwrap()
            .contains("needs more memory than a worker may use"),
        "{bomb}"
    );
    assert_eq!(bomb["file"], "deposit-with-bomb.pdf");
    // The ceiling held: the child ended below the critical line, and the supervisor is up.
    let line = log
        .lines()
        .find(|l| l.contains("needs more memory than this worker may use"))
        .unwrap_or_else(|| panic!("no ceiling line in:\n{log}"));
    let rss: f64 = line
        .split("rss_mb=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rss in {line}"));
    assert!(rss < 300.0, "{line}");
    env.wait_job(&other, Duration::from_secs(60), |j| state(j) == "done");
    assert!(sup.child.try_wait().is_ok_and(|s| s.is_none()));
}

/// Waits for the job to end one way or another.
fn wait_end(env: &Env, id: &str) -> Value {
    env.wait_job(id, Duration::from_secs(120), |j| {
        matches!(state(j), "done" | "failed" | "dead")
    })
}

#[test]
fn a_hundred_thousand_row_csv_is_refused_in_bounded_memory_and_the_queue_moves_on() {
    let env = Env::new();
    let path = env.dir.path().join("big-export.csv");
    fom_testkit::fixtures::write_gifts_csv(&path, 100_000).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 8 * 1024 * 1024 && size < 25 * 1024 * 1024, "{size}");
    let mut sup = env.supervisor(&[("MEMORY_WARNING_MB", "250"), ("MEMORY_CRITICAL_MB", "300")]);
    let id = env.enqueue_paths(&[path]).remove(0);
    let other = env.enqueue(&["after-the-big-one.csv"]).remove(0);
    let end = wait_end(&env, &id);
    let log = sup.log();
    // Failed, not dead: the treasurer can act on it, and nothing crashed.
    assert_eq!(state(&end), "failed", "{end}\n{log}");
    assert_eq!(end["crashes"], 0, "{end}");
    let why = end["last_error"].as_str().unwrap();
    assert!(
        why.starts_with(
            "big-export.csv has 100,000 rows; at most 4,000 can be read from one file. Split the \
             file or export a shorter date range."
        ),
        "{why}"
    );
    let peak = end["peak_rss_mb"].as_f64().unwrap();
    println!("worker peak RSS for the 100,000-row CSV: {peak:.1} MB");
    assert!(peak > 0.0 && peak <= 300.0, "{end}");
    // The refused upload is not kept: a retry would be refused again.
    env.wait_job(&other, Duration::from_secs(60), |j| state(j) == "done");
    let big = env.job(&id)["file_id"].as_str().unwrap().to_string();
    let left = upload_keys(&env);
    assert!(left.iter().all(|k| !k.contains(&big)), "{left:?}");
    assert!(!log.contains("worker child crashed"), "{log}");
    assert!(sup.child.try_wait().is_ok_and(|s| s.is_none()));
}

#[test]
fn a_file_whose_records_do_not_fit_redis_ends_failed_and_its_deposit_is_unchanged() {
    // A private server with a small limit: maxmemory must not be set on the shared one.
    let redis = fom_testkit::web::PrivateRedis::start(&[
        "--maxmemory",
        "12mb",
        "--maxmemory-policy",
        "noeviction",
    ]);
    let env = Env::on(&redis.url);
    let path = env.dir.path().join("march-gifts.csv");
    fom_testkit::fixtures::write_gifts_csv(&path, 3_900).unwrap();
    let mut sup = env.supervisor(&[("REDIS_MIN_HEADROOM_MB", "1")]);
    let id = env.enqueue_paths(&[path]).remove(0);
    let end = wait_end(&env, &id);
    let log = sup.log();
    assert_eq!(state(&end), "failed", "{end}\n{log}");
    assert_eq!(end["crashes"], 0, "{end}");
    let why = end["last_error"].as_str().unwrap();
    println!("{why}");
    assert!(
        why.starts_with("march-gifts.csv was read but its 3900 record(s) were not added")
            && why.contains("not enough room in Redis")
            && why.contains("retry the file"),
        "{why}"
    );
    // The deposit was left as it was: no records, the job not marked merged.
    let deposit_id = end["deposit_id"].as_str().unwrap();
    let doc: String = redis::cmd("HGET")
        .arg(format!("{}:deposit:{deposit_id}", env.prefix))
        .arg("doc")
        .query(&mut env.redis())
        .unwrap();
    let deposit: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(deposit["records"], serde_json::json!([]), "{deposit}");
    assert_eq!(deposit["merged_jobs"], serde_json::json!([]), "{deposit}");
    // The upload is kept for a retry once there is room; a small file still goes through.
    assert!(!upload_keys(&env).is_empty());
    let other = env.enqueue(&["small.csv"]).remove(0);
    env.wait_job(&other, Duration::from_secs(60), |j| state(j) == "done");
    assert!(sup.child.try_wait().is_ok_and(|s| s.is_none()));
}

/// Starts a supervisor under a 300 MB ceiling (and `extra`), queues `path` and a CSV after it,
/// and waits for the first to end: (supervisor, job id, the CSV's job id, the job record).
fn run_bomb(
    env: &Env,
    path: PathBuf,
    extra: &[(&str, &str)],
) -> (Supervisor, String, String, Value) {
    let mut vars = vec![
        ("MEMORY_WARNING_MB", "250"),
        ("MEMORY_CRITICAL_MB", "300"),
        ("WORKER_MISSED_HEARTBEATS", "3"),
    ];
    vars.extend_from_slice(extra);
    let sup = env.supervisor(&vars);
    let id = env.enqueue_paths(&[path]).remove(0);
    let other = env.enqueue(&["after-the-bomb.csv"]).remove(0);
    let done = env.wait_job(&id, Duration::from_secs(120), |j| {
        matches!(state(j), "done" | "dead")
    });
    (sup, id, other, done)
}

/// The job's error for page 7 (where the bomb tests put their bomb).
fn page_7_error(env: &Env, id: &str) -> Value {
    let result = env.job_result(id);
    result["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["pages"] == serde_json::json!([7]))
        .cloned()
        .unwrap_or_else(|| panic!("no error for page 7: {result}"))
}

/// 20 pages of one check each.
fn twenty_pages() -> Vec<Vec<String>> {
    fom_testkit::fixtures::one_check_per_page(20)
}

/// Runs `path` (page 7 a bomb) under a 300 MB ceiling and checks that the pre-flight left the
/// page out with a reason containing `reason` before pdfium loaded it: no crash, no ceiling,
/// no quarantine, every other page read, the worker's peak under the ceiling, the next job
/// done and the supervisor up.
fn bomb_refused_before_load(env: &Env, path: PathBuf, reason: &str) {
    assert!(std::fs::metadata(&path).unwrap().len() < 1024 * 1024);
    let file = path.file_name().unwrap().to_str().unwrap().to_string();
    let (mut sup, id, other, done) = run_bomb(env, path, &[]);
    let log = sup.log();
    assert_eq!(state(&done), "done", "{done}\n{log}");
    assert_eq!(done["crashes"], 0, "{done}");
    assert_eq!(
        done["skip_pages"],
        serde_json::json!([]),
        "no quarantine: {done}"
    );
    let peak = done["peak_rss_mb"].as_f64().unwrap();
    assert!(peak <= 300.0, "{done}");
    assert!(
        !log.contains("needs more memory than this worker may use"),
        "the ceiling was reached:\n{log}"
    );
    assert_eq!(result_records(env, &id), 19);
    let bomb = page_7_error(env, &id);
    assert!(bomb["reason"].as_str().unwrap().contains(reason), "{bomb}");
    assert_eq!(bomb["file"], file.as_str());
    env.wait_job(&other, Duration::from_secs(60), |j| state(j) == "done");
    assert!(sup.child.try_wait().is_ok_and(|s| s.is_none()));
}

#[test]
fn an_image_bomb_page_is_refused_before_it_is_read_and_every_other_page_is_read() {
    let env = Env::new();
    // Page 7 draws, through a form, a Flate image declaring 40,000 x 40,000 gray pixels
    // (1.6 GB decoded) of which 256 MB are stored, in a file of a few hundred KB.
    let path = env.dir.path().join("deposit-with-image-bomb.pdf");
    fom_testkit::fixtures::write_image_bomb_pdf(
        &path,
        &twenty_pages(),
        &fom_testkit::fixtures::ImageBomb {
            page: 7,
            width: 40_000,
            height: 40_000,
            inflated_mb: 256,
            in_form: true,
            compact: false,
        },
    )
    .unwrap();
    bomb_refused_before_load(
        &env,
        path,
        "declares an image of 40000 x 40000 pixels, more than the limit of 40000000 pixels",
    );
}

#[test]
fn a_content_bomb_page_is_refused_by_the_preflight_without_reaching_the_ceiling() {
    let env = Env::new();
    let path = env.dir.path().join("deposit-with-content-bomb.pdf");
    fom_testkit::fixtures::write_content_bomb_pdf_as(&path, &twenty_pages(), 7, 64, true).unwrap();
    bomb_refused_before_load(&env, path, "more than 1000000 drawing operators");
}

#[test]
fn a_15_second_redis_outage_mid_job_is_waited_out_without_a_crash() {
    // A private server that keeps an append-only file, so it can be killed and come back.
    let mut redis = fom_testkit::web::PrivateRedis::durable();
    let env = Env::on(&redis.url);
    let mut sup = env.supervisor(&[]);
    // The test hook holds the job for 3 s before its pipeline; Redis goes away 1 s in, so
    // the job's own writes, the heartbeats and the fetches all meet the outage.
    let id = env.enqueue_pdf("slow-3-outage.pdf");
    env.wait_job(&id, Duration::from_secs(60), |j| state(j) == "running");
    std::thread::sleep(Duration::from_secs(1));
    redis.kill();
    std::thread::sleep(Duration::from_secs(15));
    redis.restart();
    let end = wait_end(&env, &id);
    let log = sup.log();
    assert_eq!(state(&end), "done", "{end}\n{log}");
    assert_eq!(end["crashes"], 0, "{end}\n{log}");
    assert_eq!(end["attempts"], 1, "{end}\n{log}");
    assert!(result_records(&env, &id) > 0);
    // The same child goes on fetching: nothing was restarted.
    let other = env.enqueue(&["after-the-outage.csv"]).remove(0);
    env.wait_job(&other, Duration::from_secs(30), |j| state(j) == "done");
    let log = sup.log();
    assert!(log.contains("Redis does not answer"), "{log}");
    assert!(log.contains("Redis answers again"), "{log}");
    for bad in ["worker child crashed", "lost its queue consumer"] {
        assert_eq!(log.matches(bad).count(), 0, "{bad}: {log}");
    }
    assert_eq!(log.matches("worker child started").count(), 1, "{log}");
    assert!(sup.child.try_wait().is_ok_and(|s| s.is_none()));
}

#[test]
fn a_child_whose_queue_consumer_stops_is_replaced() {
    let env = Env::new();
    let mut sup = env.supervisor(&[]);
    let first = env.enqueue(&["before.csv"]).remove(0);
    env.wait_job(&first, Duration::from_secs(60), |j| state(j) == "done");
    // The QuickBooks queue's worker set turned into a string: the queue library's next
    // heartbeat fails (WRONGTYPE) and that consumer stops, while the documents consumer and
    // the child's own heartbeat carry on.
    let workers = format!("{}:queue:qbo:workers", env.prefix);
    let mut conn = env.redis();
    let _: () = redis::cmd("DEL").arg(&workers).query(&mut conn).unwrap();
    let _: () = redis::cmd("SET")
        .arg(&workers)
        .arg("broken")
        .query(&mut conn)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sup.log().contains("a queue consumer stopped") {
        assert!(Instant::now() < deadline, "{}", sup.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let _: () = redis::cmd("DEL").arg(&workers).query(&mut conn).unwrap();
    // A fresh child takes the next job; the supervisor never left.
    let next = env.enqueue(&["after.csv"]).remove(0);
    env.wait_job(&next, Duration::from_secs(60), |j| state(j) == "done");
    let log = sup.log();
    assert!(log.matches("worker child started").count() >= 2, "{log}");
    assert!(sup.child.try_wait().is_ok_and(|s| s.is_none()));
}

/// The resident set (MB) of `pid` and of every process below it.
fn tree_rss_mb(pid: u32) -> (f64, usize) {
    let rss = |p: u32| -> f64 {
        std::fs::read_to_string(format!("/proc/{p}/statm"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |pages| pages * 4096.0 / 1_048_576.0)
    };
    // Children are listed per thread of the parent (whichever spawned them).
    let kids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.flatten()
                .flat_map(|t| {
                    std::fs::read_to_string(t.path().join("children"))
                        .unwrap_or_default()
                        .split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<u32>>()
                })
                .collect()
        })
        .unwrap_or_default();
    (
        rss(pid) + kids.iter().map(|k| rss(*k)).sum::<f64>(),
        kids.len(),
    )
}

/// `WORKER_PROCESSES=auto`: with 12 documents queued and Gemini answering in 2 s, the
/// supervisor starts more children while jobs wait (at least 3 work at once), the dyno's
/// processes stay under 400 MB together (sampled), the Redis clients stay within
/// `REDIS_MAX_CLIENTS`, every document is read exactly once, and the extra children retire
/// when the queue is empty.
#[test]
fn auto_scaling_grows_with_the_queue_within_memory_and_redis_and_shrinks_back() {
    let redis = fom_testkit::web::PrivateRedis::start(&["--maxclients", "40"]);
    let env = Env::on(&redis.url);
    let gemini = fom_testkit::gemini::FakeGemini::start(fom_testkit::gemini::FakeOptions {
        latency: Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap();
    let sup = env.supervisor(&[
        ("WORKER_PROCESSES", "auto"),
        ("WORKER_MAX_PROCESSES", "4"),
        ("WORKER_IDLE_RETIRE_SECS", "2"),
        ("DYNO_MEMORY_MB", "512"),
        ("MEMORY_WARNING_MB", "400"),
        ("REDIS_MAX_CLIENTS", "40"),
        ("EXTRACTOR", "gemini"),
        ("GEMINI_API_KEY", fom_testkit::gemini::DEFAULT_KEY),
        ("GEMINI_BASE_URL", &gemini.base_url()),
        ("GEMINI_RPM", "0"),
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let files: Vec<PathBuf> = (0..12)
        .map(|i| {
            let path = env.dir.path().join(format!("scan-{i:02}.pdf"));
            std::fs::copy(fom_testkit::repo_root().join("examples/deposit.pdf"), &path).unwrap();
            path
        })
        .collect();
    let ids = env.enqueue_paths(&files);
    assert_eq!(ids.len(), 12);

    let pid = u32::try_from(sup.pid()).unwrap();
    let (mut most_busy, mut most_children, mut peak_total, mut peak_clients) = (0, 0, 0.0f64, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (total, children) = tree_rss_mb(pid);
        peak_total = peak_total.max(total);
        most_children = most_children.max(children);
        let jobs = env.list(None);
        let rows = jobs.as_array().cloned().unwrap_or_default();
        let running = rows.iter().filter(|j| j["state"] == "running").count();
        most_busy = most_busy.max(running);
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query(&mut env.redis())
            .unwrap();
        let clients: usize = info
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        peak_clients = peak_clients.max(clients);
        let done = rows.iter().filter(|j| j["state"] == "done").count();
        if done == 12 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every document was read: {jobs}\n{}",
            sup.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "auto scaling: at most {most_busy} jobs running at once, {most_children} children, \
         dyno peak {peak_total:.0} MB, Redis clients at most {peak_clients}"
    );
    assert!(most_busy >= 3, "at most {most_busy} at once\n{}", sup.log());
    assert!((3..=4).contains(&most_children), "{most_children} children");
    assert!(peak_total <= 400.0, "the dyno reached {peak_total:.0} MB");
    // The test's own connection counts too.
    assert!(peak_clients <= 40, "{peak_clients} Redis clients");
    // Each document read once: one Gemini request per document (the example is two pages, one
    // batch), no job run twice.
    assert_eq!(gemini.request_count(), 12);
    for id in &ids {
        let j = env.job(id);
        assert_eq!(j["state"], "done", "{j}");
        assert_eq!(j["crashes"], 0, "{j}");
    }
    let log = sup.log();
    assert!(
        log.contains("scaling: jobs wait and the dyno has room"),
        "{log}"
    );
    // The queue is empty: the extra children retire, down to one.
    assert!(tree_rss_mb(pid).1 >= 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tree_rss_mb(pid).1 > 1 {
        assert!(Instant::now() < deadline, "children stayed: {}", sup.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(sup
        .log()
        .contains("scaling: an extra child is idle; retiring it"));
}
