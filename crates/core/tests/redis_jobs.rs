//! Job records against a real Redis (REDIS_URL, else 127.0.0.1:6379); the upload stores have
//! their own suite in store.rs. Each test owns a fresh key prefix and removes its keys at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fom_core::jobs::{now_ms, Begin, JobRecord, JobState, JobStore, Stage};
use fom_core::keys::Keys;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

async fn redis() -> (ConnectionManager, Keys) {
    let client = redis::Client::open(fom_testkit::redis_url()).unwrap();
    let conn = ConnectionManager::new(client)
        .await
        .expect("Redis must answer (make redis)");
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    (conn, Keys::new(prefix))
}

fn cleanup(keys: &Keys) {
    fom_testkit::delete_keys(&fom_testkit::redis_url(), keys.prefix());
}

#[tokio::test]
async fn job_lifecycle_and_exactly_once_finish() {
    let (mut conn, keys) = redis().await;
    let jobs = JobStore::new(conn.clone(), keys.clone(), 3);
    let job = JobRecord::new("j1", "d1", "f1", "scan.pdf", now_ms());
    jobs.create(&job).await.unwrap();
    assert_eq!(
        jobs.get("j1").await.unwrap().unwrap().state,
        JobState::Queued
    );
    let ttl: i64 = conn.ttl(keys.job("j1")).await.unwrap();
    assert!(ttl > 0, "job records always carry a TTL");

    assert_eq!(jobs.begin("j1", "w1").await.unwrap(), Begin::Run);
    jobs.progress("j1", Stage::Render, 3, 10, 61.5)
        .await
        .unwrap();
    let running = jobs.get("j1").await.unwrap().unwrap();
    assert_eq!(
        (running.state, running.page, running.pages),
        (JobState::Running, 3, 10)
    );
    assert_eq!(running.stage, Some(Stage::Render));
    assert_eq!(running.worker.as_deref(), Some("w1"));

    // A second worker that got the job again (orphan recovery) takes it over; the first
    // worker's late finish is then refused, so the result is written once.
    assert_eq!(jobs.begin("j1", "w2").await.unwrap(), Begin::Run);
    assert_eq!(jobs.get("j1").await.unwrap().unwrap().crashes, 1);
    assert!(jobs.finish("j1", "w2", &vec![1, 2, 3]).await.unwrap());
    assert!(!jobs.finish("j1", "w1", &vec![9]).await.unwrap());
    let result: String = conn.get(keys.job_result("j1")).await.unwrap();
    assert_eq!(result, "[1,2,3]");
    assert_eq!(jobs.begin("j1", "w3").await.unwrap(), Begin::AlreadyDone);
    let done = jobs.get("j1").await.unwrap().unwrap();
    assert_eq!((done.state, done.attempts), (JobState::Done, 2));
    cleanup(&keys);
}

#[tokio::test]
async fn a_poison_document_goes_dead_after_three_crashes() {
    let (conn, keys) = redis().await;
    let jobs = JobStore::new(conn.clone(), keys.clone(), 3);
    jobs.create(&JobRecord::new("p", "d", "f", "poison.pdf", now_ms()))
        .await
        .unwrap();
    assert_eq!(jobs.begin("p", "w1").await.unwrap(), Begin::Run);
    assert_eq!(jobs.begin("p", "w2").await.unwrap(), Begin::Run); // crash 1
    assert_eq!(jobs.begin("p", "w3").await.unwrap(), Begin::Run); // crash 2
    let Begin::Dead(why) = jobs.begin("p", "w4").await.unwrap() else {
        panic!("not dead")
    };
    assert!(why.contains("3 times"), "{why}");
    let dead = jobs.get("p").await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.last_error.as_deref(), Some(why.as_str()));
    // An operator's retry starts it afresh.
    assert!(jobs.reset_for_retry("p").await.unwrap());
    assert_eq!(jobs.begin("p", "w5").await.unwrap(), Begin::Run);
    assert!(
        !jobs.reset_for_retry("p").await.unwrap(),
        "running jobs are not retried"
    );
    cleanup(&keys);
}

#[tokio::test]
async fn settle_list_and_purge() {
    let (conn, keys) = redis().await;
    let jobs = JobStore::new(conn.clone(), keys.clone(), 3);
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        jobs.create(&JobRecord::new(id, "d", "f", "x.pdf", now_ms() + i as i64))
            .await
            .unwrap();
    }
    jobs.begin("a", "w").await.unwrap();
    assert!(jobs.finish("a", "w", &"ok").await.unwrap());
    jobs.begin("b", "w").await.unwrap();
    assert!(jobs
        .settle("b", "w", JobState::Dead, "not a PDF")
        .await
        .unwrap());
    assert!(!jobs
        .settle("b", "other", JobState::Failed, "x")
        .await
        .unwrap());

    let all = jobs.list(None, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["c", "b", "a"]
    );
    let dead = jobs.list(Some(JobState::Dead), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("not a PDF"));

    assert_eq!(
        jobs.purge(Duration::from_secs(3600)).await.unwrap(),
        0,
        "too recent"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        jobs.purge(Duration::from_millis(1)).await.unwrap(),
        2,
        "done and dead only"
    );
    let left = jobs.list(None, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, "c");
    cleanup(&keys);
}

/// The operations page's memory series: samples read back oldest first, those older than an
/// hour are left out, a stopped child keeps its series (only its heartbeat goes), and each
/// series is capped and expires.
#[tokio::test]
async fn rss_series_keep_the_last_hour_capped() {
    use fom_core::workers::{Heartbeat, WorkerRegistry, SAMPLE_EVERY, SERIES_WINDOW};
    let (mut conn, keys) = redis().await;
    let reg = WorkerRegistry::new(conn.clone(), keys.clone());
    let now = now_ms();
    let hour = SERIES_WINDOW.as_millis() as i64;
    reg.note_rss("old", now - hour - 60_000, 50.0)
        .await
        .unwrap();
    reg.note_rss("c1", now - hour - 1, 99.0).await.unwrap();
    for i in 0..3 {
        reg.note_rss("c1", now - (3 - i) * 5_000, 40.0 + i as f64)
            .await
            .unwrap();
    }
    reg.note_dyno_rss("worker.1", now, 120.5).await.unwrap();
    reg.beat(&Heartbeat {
        id: "c1".into(),
        pid: 7,
        rss_mb: 42.0,
        jobs_done: 1,
        current_job: None,
        last_seen: now,
        consuming: true,
    })
    .await
    .unwrap();

    let children = reg.rss_history(now).await.unwrap();
    assert_eq!(children.len(), 1, "{children:?}");
    assert_eq!(children[0].id, "c1");
    let values: Vec<f64> = children[0].samples.iter().map(|s| s.1).collect();
    assert_eq!(
        values,
        vec![40.0, 41.0, 42.0],
        "the sample older than an hour is left out"
    );
    let dynos = reg.dyno_history(now).await.unwrap();
    assert_eq!(dynos[0].id, "worker.1");
    assert_eq!(dynos[0].samples, vec![(now, 120.5)]);

    // A child that stopped cleanly leaves the live list but keeps its hour of memory.
    reg.remove("c1").await.unwrap();
    assert!(reg.list().await.unwrap().is_empty());
    assert_eq!(reg.rss_history(now).await.unwrap().len(), 1);

    let ttl: i64 = conn.ttl(keys.worker_rss("c1")).await.unwrap();
    assert!(ttl > 0 && ttl <= SERIES_WINDOW.as_secs() as i64, "{ttl}");
    let cap = (SERIES_WINDOW.as_secs() / SAMPLE_EVERY.as_secs()) as usize;
    for i in 0..cap + 10 {
        reg.note_rss("c2", now - 1000 + i as i64, 1.0)
            .await
            .unwrap();
    }
    let len: usize = conn.llen(keys.worker_rss("c2")).await.unwrap();
    assert_eq!(len, cap);
    cleanup(&keys);
}
