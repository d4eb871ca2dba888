//! Deposits against a real Redis: concurrent merges and edits never lose each other's work,
//! a re-delivered job merges once, and both connection kinds (the worker's shared connection
//! and the web's pool) work. Each test owns a fresh key prefix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::ControlFlow;
use std::time::Duration;

use fom_core::deposits::{DepositError, DepositStore};
use fom_core::donation::Donation;
use fom_core::extract::ExtractError;
use fom_core::keys::Keys;
use fom_core::redis_conn::RedisPool;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

fn url() -> String {
    fom_testkit::redis_url()
}

async fn shared() -> ConnectionManager {
    ConnectionManager::new(redis::Client::open(url()).unwrap())
        .await
        .expect("Redis must answer (make redis)")
}

fn keys() -> Keys {
    Keys::new(format!("test-dep-{}", uuid::Uuid::new_v4().simple()))
}

async fn cleanup(keys: &Keys) {
    fom_testkit::delete_keys(&url(), keys.prefix());
}

fn gift(reference: &str, cents: i64) -> Donation {
    let mut d = Donation::new("gifts.csv");
    d.payment_ref = Some(reference.to_string());
    d.amount = Some(rust_decimal::Decimal::new(cents, 2));
    d
}

#[tokio::test]
async fn concurrent_merges_and_edits_lose_nothing() {
    let keys = keys();
    // The web's pool and the worker's shared connection, writing the same deposit at once.
    let pool = RedisPool::pool(&url(), 4, Duration::from_secs(5)).unwrap();
    let web = DepositStore::new(pool, keys.clone());
    let worker = DepositStore::new(shared().await, keys.clone());
    let d = web.create("Busy deposit").await.unwrap();

    let mut tasks = Vec::new();
    for job in 0..20 {
        let store = if job % 2 == 0 {
            web.clone()
        } else {
            worker.clone()
        };
        let id = d.id.clone();
        tasks.push(tokio::spawn(async move {
            let records = vec![gift(&format!("tx{job}"), 1000 + job)];
            let errors = vec![ExtractError {
                file: format!("f{job}.pdf"),
                pages: vec![2],
                reason: "blurred".into(),
            }];
            store
                .merge_job(&id, &format!("job{job}"), &records, &errors)
                .await
                .unwrap()
                .unwrap()
        }));
    }
    // Meanwhile the treasurer renames the deposit, repeatedly.
    for i in 0..10 {
        web.update(&d.id, |dep| {
            dep.name = format!("Renamed {i}");
            ControlFlow::Continue(())
        })
        .await
        .unwrap()
        .unwrap();
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().added, 1);
    }
    let got = web.get(&d.id).await.unwrap().unwrap();
    assert_eq!(got.records.len(), 20);
    assert_eq!(got.errors.len(), 20);
    assert_eq!(got.merged_jobs.len(), 20);
    assert_eq!(got.name, "Renamed 9");

    // A job delivered again (a worker died after merging) does not add its records twice.
    let again = worker
        .merge_job(&d.id, "job3", &[gift("tx3", 1003)], &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.added, again.merged), (0, 0));
    // A later upload of a duplicate merges into the existing record.
    let later = worker
        .merge_job(
            &d.id,
            "job-late",
            &[gift("tx3", 1003), gift("new", 500)],
            &[],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((later.added, later.merged), (1, 1));
    let got = web.get(&d.id).await.unwrap().unwrap();
    assert_eq!(got.records.len(), 21);

    // Listing finds it; a missing deposit is None, not an error.
    assert_eq!(web.list(10).await.unwrap().len(), 1);
    assert!(web.get("missing").await.unwrap().is_none());
    assert!(worker
        .merge_job("missing", "j", &[gift("x", 1)], &[])
        .await
        .unwrap()
        .is_none());
    cleanup(&keys).await;
}

#[tokio::test]
async fn deposits_expire_after_their_ttl_and_leave_the_list() {
    let keys = keys();
    let store = DepositStore::new(shared().await, keys.clone()).with_ttl(Duration::from_secs(1));
    let d = store.create("Short-lived").await.unwrap();
    let mut conn = shared().await;
    let ttl: i64 = conn.ttl(keys.deposit(&d.id)).await.unwrap();
    assert!((0..=1).contains(&ttl), "{ttl}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(store.get(&d.id).await.unwrap().is_none());
    assert!(store.list(10).await.unwrap().is_empty());
    let left: Vec<String> = conn.zrange(keys.deposits(), 0, -1).await.unwrap();
    assert!(left.is_empty(), "expired ids are dropped from the index");
    cleanup(&keys).await;
}

/// `n` gifts of about 1 KB of JSON each (a memo of 400 characters).
fn big_gifts(n: usize) -> Vec<Donation> {
    (0..n)
        .map(|i| {
            let mut g = gift(&format!("big{i}"), 1000 + i as i64);
            g.memo = Some("m".repeat(400));
            g
        })
        .collect()
}

/// Merges `n` big gifts as job `job`; how many were added.
async fn merged_big(store: &DepositStore, deposit: &str, job: &str, n: usize) -> usize {
    store
        .merge_job(deposit, job, &big_gifts(n), &[])
        .await
        .unwrap()
        .unwrap()
        .added
}

#[tokio::test]
async fn a_merge_without_room_in_redis_is_refused_and_leaves_the_deposit_as_it_was() {
    // A private server: maxmemory must not be set on the shared one.
    let redis = fom_testkit::web::PrivateRedis::start(&[
        "--maxmemory",
        "8mb",
        "--maxmemory-policy",
        "noeviction",
    ]);
    let conn = ConnectionManager::new(redis::Client::open(redis.url.as_str()).unwrap())
        .await
        .unwrap();
    let store = DepositStore::new(conn.clone(), keys()).with_min_headroom(1024 * 1024);
    let d = store.create("Small Redis").await.unwrap();
    let small = store
        .merge_job(&d.id, "job-small", &[gift("tx1", 2500)], &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(small.added, 1);
    let before = store.get(&d.id).await.unwrap().unwrap();

    // 4,000 gifts are about 4 MB of JSON: 4 x that plus 1 MB does not fit under 8 MB.
    let err = store
        .merge_job(&d.id, "job-big", &big_gifts(4000), &[])
        .await
        .unwrap_err();
    let DepositError::NoRoom { need, free } = err else {
        panic!("expected NoRoom, got {err:?}");
    };
    assert!(need > free, "{need} <= {free}");
    assert!(need > 10 * 1024 * 1024, "{need}");
    let text = err.to_string();
    assert!(
        text.contains("not enough room") && text.contains("retry the file"),
        "{text}"
    );
    assert_eq!(store.get(&d.id).await.unwrap().unwrap(), before);

    // With room (a larger plan), the same job merges.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("64mb")
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    assert_eq!(merged_big(&store, &d.id, "job-big", 4000).await, 4000);
}

#[tokio::test]
async fn without_a_memory_limit_a_large_merge_is_not_checked() {
    // The shared server has no maxmemory: nothing to check against.
    let keys = keys();
    let store = DepositStore::new(shared().await, keys.clone()).with_min_headroom(u64::MAX / 4);
    let d = store.create("Unlimited").await.unwrap();
    assert_eq!(merged_big(&store, &d.id, "job", 100).await, 100);
    cleanup(&keys).await;
}

/// A file read again takes its own rows out first: the rows its job added, its errors and
/// its merge mark go; another file's rows stay; a row already in QuickBooks stops it.
#[tokio::test]
async fn a_file_read_again_replaces_only_its_own_rows() {
    let keys = keys();
    let store = DepositStore::new(shared().await, keys.clone());
    let d = store.create("Deposit").await.unwrap();
    let err = ExtractError {
        file: "a.csv".into(),
        pages: Vec::new(),
        reason: "no gifts".into(),
    };
    store
        .merge_job(&d.id, "job-a", &[gift("a1", 100), gift("a2", 200)], &[err])
        .await
        .unwrap();
    store
        .merge_job(&d.id, "job-b", &[gift("b1", 300), gift("a1", 100)], &[])
        .await
        .unwrap();
    let removed = store.forget_job(&d.id, "job-a", "a.csv").await.unwrap();
    assert_eq!(removed, Some(Ok(2)));
    let after = store.get(&d.id).await.unwrap().unwrap();
    let refs: Vec<&str> = after
        .records
        .iter()
        .filter_map(|r| r.payment_ref.as_deref())
        .collect();
    // b's own row stays; b's copy of a1 had folded into a's row, so it went with it.
    assert_eq!(refs, ["b1"]);
    assert!(after.errors.is_empty());
    assert_eq!(after.merged_jobs, ["job-b"]);
    // Merging job-a again (the re-read) adds its rows anew.
    let m = store
        .merge_job(&d.id, "job-a", &[gift("a1", 100)], &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.added, 1);

    // A sent row keeps its file's rows as they are.
    store
        .update(&d.id, |d| {
            for r in &mut d.records {
                if r.payment_ref.as_deref() == Some("b1") {
                    r.qbo.sales_receipt_id = Some("77".into());
                }
            }
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    let refused = store.forget_job(&d.id, "job-b", "b.csv").await.unwrap();
    assert_eq!(refused, Some(Err(fom_core::deposits::AlreadySent)));
    assert_eq!(store.get(&d.id).await.unwrap().unwrap().records.len(), 2);
    cleanup(&keys).await;
}
