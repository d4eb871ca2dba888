//! Redis restarts under a running deployment: a private `redis-server` that keeps an
//! append-only file is killed with SIGKILL and started again ten times, each time followed at
//! once by an upload through the web. Every answer must be true (an accepted file is processed
//! exactly once; a refused one left nothing behind) and the worker must fetch again soon
//! after every restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use fom_core::keys::Keys;
use fom_testkit::web::{Options, PrivateRedis, Stack};
use redis::Commands;

const RESTARTS: usize = 10;
/// The bound: the worker fetches again within this long of a restart.
const FETCH_AGAIN_WITHIN: Duration = Duration::from_secs(15);

/// One online gift, its transaction id unique to round `i`.
fn gift_csv(i: usize) -> Vec<u8> {
    format!(
        "Transaction ID,Date,First Name,Last Name,Email,Amount,Address,City,State,Zip,Memo\n\
         rs-{i},2026-03-{:02} 09:00:00,Robin,Restart{i},,${}.00,1 Main St,Madison,WI,53703,round {i}\n",
        i + 1,
        10 + i
    )
    .into_bytes()
}

fn job_field(conn: &mut redis::Connection, keys: &Keys, job: &str, field: &str) -> Option<String> {
    conn.hget(keys.job(job), field).ok().flatten()
}

/// Keys of stored uploads (metadata and chunks) under the test's prefix.
/// Uploads in the store that are not released: neither deleted nor scheduled for deletion (a
/// CSV read by column names is kept a while, scheduled, so the treasurer can have it read
/// again with corrected columns).
fn stored_uploads(conn: &mut redis::Connection, prefix: &str) -> usize {
    let found: Vec<String> = conn.keys(format!("{prefix}:upload:*")).unwrap_or_default();
    let scheduled: Vec<String> = conn
        .zrange(format!("{prefix}:uploads:expiring"), 0, -1)
        .unwrap_or_default();
    let head = format!("{prefix}:upload:");
    found
        .iter()
        .filter_map(|k| k.strip_prefix(&head)?.split(':').next())
        .filter(|id| !scheduled.iter().any(|s| s == id))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_redis_restarts_lose_nothing_and_the_worker_fetches_again() {
    let logs = tempfile::tempdir().unwrap();
    let mut redis = PrivateRedis::durable();
    let stack = Stack::start(
        Options::new("restarts")
            .redis(&redis.url)
            .with_worker()
            .env("UPLOAD_STORE", "redis")
            .env("WORKER_MISSED_HEARTBEATS", "5")
            .logs_in(logs.path()),
    );
    let keys = Keys::new(stack.prefix.clone());
    let api = fom_e2e::signed_in(&stack).await;
    let (status, created) = api.post("/api/deposits", None).await;
    assert_eq!(status, 201, "{created}");
    let deposit = created["id"].as_str().unwrap().to_string();
    let client = redis::Client::open(redis.url.as_str()).unwrap();

    let mut accepted = Vec::new();
    let mut refused = 0;
    let mut fetch_ms = Vec::new();
    for i in 0..RESTARTS {
        redis.restart();
        let restarted = Instant::now();
        let (status, _, answer) = api
            .upload(&deposit, &format!("gifts-{i}.csv"), gift_csv(i))
            .await;
        let mut conn = client.get_connection().unwrap();
        if answer["accepted"] == 1 {
            assert_eq!(status, 202, "round {i}: {answer}");
            let job = answer["files"][0]["job_id"].as_str().unwrap().to_string();
            // Taken up by the worker soon after the restart.
            loop {
                let state = job_field(&mut conn, &keys, &job, "state").unwrap_or_default();
                if state == "running" || state == "done" {
                    fetch_ms.push(restarted.elapsed().as_millis());
                    break;
                }
                assert!(
                    restarted.elapsed() < FETCH_AGAIN_WITHIN,
                    "round {i}: job {job} not fetched {FETCH_AGAIN_WITHIN:?} after the restart \
                     (state {state:?}); logs in {}",
                    logs.path().display()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            while job_field(&mut conn, &keys, &job, "state").as_deref() != Some("done") {
                assert!(Instant::now() < deadline, "round {i}: job {job} not done");
                std::thread::sleep(Duration::from_millis(100));
            }
            // Its upload is released once its result is stored (UPLOAD_RETENTION_HOURS=0:
            // deleted, or scheduled for deletion when kept for a re-read).
            let deadline = Instant::now() + Duration::from_secs(10);
            while stored_uploads(&mut conn, &stack.prefix) > 0 {
                assert!(
                    Instant::now() < deadline,
                    "round {i}: the upload was not deleted"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            accepted.push((i, job));
        } else {
            // Refused: a 503 that says to try again, and nothing of the file kept.
            assert_eq!(status, 503, "round {i}: {answer}");
            refused += 1;
            let (_, d) = api.get(&format!("/api/deposits/{deposit}")).await;
            assert_eq!(
                d["files"].as_array().map(Vec::len),
                Some(accepted.len()),
                "round {i}: a refused file is on the deposit: {d}"
            );
            let jobs: usize = conn.zcard(keys.jobs_index()).unwrap();
            assert_eq!(jobs, accepted.len(), "round {i}: a refused file left a job");
        }
        assert_eq!(
            stored_uploads(&mut conn, &stack.prefix),
            0,
            "round {i}: an upload is left in the store"
        );
    }

    // Exactly once: each accepted file ran once, crashed nothing, and gave its one gift.
    let mut conn = client.get_connection().unwrap();
    for (i, job) in &accepted {
        assert_eq!(
            job_field(&mut conn, &keys, job, "attempts").as_deref(),
            Some("1"),
            "round {i}"
        );
        assert_eq!(
            job_field(&mut conn, &keys, job, "crashes").as_deref(),
            Some("0"),
            "round {i}"
        );
    }
    let (_, d) = api.get(&format!("/api/deposits/{deposit}")).await;
    let records = d["records"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> = records
        .iter()
        .filter_map(|r| r["payment_ref"].as_str().map(str::to_string))
        .collect();
    names.sort();
    let mut expected: Vec<String> = accepted.iter().map(|(i, _)| format!("rs-{i}")).collect();
    expected.sort();
    assert_eq!(names, expected, "{d}");
    eprintln!(
        "{RESTARTS} restarts: {} uploads accepted and processed once, {refused} refused; \
         restart-to-fetch (ms) {fetch_ms:?}",
        accepted.len(),
    );
    // The worker child shows as live (beating and fetching) by its next heartbeats.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, health) = api.get("/health").await;
        let workers = health["workers"].as_array().cloned().unwrap_or_default();
        if workers.iter().any(|w| w["live"] == true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no live worker after the restarts: {health}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A Redis restart is something to wait out, so uploads right after one go through.
    assert!(
        accepted.len() >= RESTARTS - 1,
        "only {} of {RESTARTS} uploads accepted right after a restart",
        accepted.len()
    );
}
