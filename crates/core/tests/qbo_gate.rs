//! Intuit's per-company limits (10 requests in flight, 500 a minute and 10 a second) held
//! across processes: several QuickBooks clients, each as a separate process would have it (its
//! own connection and its own per-process cap), share one Redis and call the contract fake,
//! whose concurrency gate and token buckets answer 429 the moment a limit is passed. Each test
//! owns a key prefix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;
use fom_core::config::EnvReader;
use fom_core::keys::Keys;
use fom_core::qbo::client::QboClient;
use fom_core::qbo::config::QboSettings;
use fom_core::qbo::connection::Connection;
use fom_core::qbo::entities::Customer;
use fom_core::qbo::gate::RealmGate;
use fom_core::redis_conn::RedisPool;
use fom_testkit::qbo::{FakeQbo, FakeQboOptions};
use redis::aio::ConnectionManager;

async fn redis() -> RedisPool {
    let cm = ConnectionManager::new(redis::Client::open(fom_testkit::redis_url()).unwrap())
        .await
        .expect("Redis must answer (make redis)");
    RedisPool::from(cm)
}

fn settings(fake: &FakeQbo, extra: &[(&str, &str)]) -> QboSettings {
    let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let discovery = fake.discovery_url();
    let api = fake.api_base();
    let mut pairs = vec![
        ("QBO_CLIENT_ID", fom_testkit::qbo::CLIENT_ID),
        ("QBO_CLIENT_SECRET", fom_testkit::qbo::CLIENT_SECRET),
        ("QBO_REDIRECT_URI", "http://localhost/qbo/callback"),
        ("TOKEN_ENCRYPTION_KEY", key.as_str()),
        ("INTUIT_DISCOVERY_URL", discovery.as_str()),
        ("QBO_API_BASE", api.as_str()),
        // A 429 must fail the call at once, so the test sees it.
        ("QBO_MAX_ATTEMPTS", "1"),
    ];
    pairs.extend_from_slice(extra);
    let mut env = EnvReader::from_pairs(pairs);
    let s = QboSettings::from_env(&mut env).unwrap();
    env.finish().unwrap();
    s
}

/// `n` clients as `n` processes would have them, connected once through the OAuth flow.
async fn clients(fake: &FakeQbo, keys: &Keys, n: usize, extra: &[(&str, &str)]) -> Vec<QboClient> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(Connection::new(
            settings(fake, extra),
            redis().await,
            keys.clone(),
        ));
    }
    let authorize = conns[0].authorize_url("session-1").await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let back = http.get(&authorize).send().await.unwrap();
    let location = back.headers()["location"].to_str().unwrap().to_string();
    let query = reqwest::Url::parse(&location).unwrap();
    let param = |k: &str| {
        query
            .query_pairs()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.into_owned())
    };
    conns[0]
        .complete(
            "session-1",
            param("state").as_deref(),
            param("code").as_deref(),
            param("realmId").as_deref(),
            None,
        )
        .await
        .unwrap();
    conns.into_iter().map(QboClient::new).collect()
}

async fn cleanup(keys: &Keys) {
    fom_testkit::delete_keys(&fom_testkit::redis_url(), keys.prefix());
}

fn keys(tag: &str) -> Keys {
    Keys::new(format!("test-gate-{tag}-{}", uuid::Uuid::new_v4().simple()))
}

/// Fires `per_client` reads from every client at once; returns how many failed.
async fn burst(clients: &[QboClient], customer: &str, per_client: usize) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in clients {
        for _ in 0..per_client {
            let c = c.clone();
            let id = customer.to_string();
            tasks.spawn(async move { c.read::<Customer>(&id).await.map(|_| ()) });
        }
    }
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done.unwrap() {
            failures.push(e.to_string());
        }
    }
    failures
}

fn throttled(fake: &FakeQbo) -> usize {
    fake.requests().iter().filter(|r| r.status == 429).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_never_pass_ten_in_flight_for_the_company() {
    // Slow answers, so calls pile up; rate buckets wide open, so only concurrency binds.
    let fake = FakeQbo::start(FakeQboOptions {
        per_second: 1000,
        per_minute: 100_000,
        latency: Duration::from_millis(600),
        ..FakeQboOptions::default()
    })
    .unwrap();
    let customer = fake.add_customer(serde_json::json!({"DisplayName": "Ann Lee"}));
    let keys = keys("conc");
    // Each process may have 5 in flight: 15 together, over Intuit's 10.
    let clients = clients(
        &fake,
        &keys,
        3,
        &[
            ("QBO_MAX_CONCURRENT", "5"),
            ("QBO_RATE_BURST", "10"),
            ("QBO_RATE_PER_MINUTE", "500"),
        ],
    )
    .await;

    let failures = burst(&clients, &customer, 8).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(throttled(&fake), 0, "the fake saw more than 10 at once");
    // The limit was reached (the gate admits up to it), never passed.
    assert_eq!(fake.max_concurrency_seen(), 10);

    // Every lease was given back.
    let mut conn = redis().await.get().await.unwrap();
    let left: i64 = redis::cmd("ZCARD")
        .arg(keys.qbo_in_flight(&fake.realm_id()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
    cleanup(&keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_from_two_processes_wait_instead_of_being_throttled() {
    // Intuit's real buckets: 500 a minute, 10 a second.
    let fake = FakeQbo::start(FakeQboOptions::default()).unwrap();
    let customer = fake.add_customer(serde_json::json!({"DisplayName": "Bo Chu"}));
    let keys = keys("rate");
    let clients = clients(&fake, &keys, 2, &[]).await;

    // 40 calls at once would empty the 10-a-second bucket four times over.
    let failures = burst(&clients, &customer, 20).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(throttled(&fake), 0);
    let reads = fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/customer/"))
        .count();
    assert_eq!(reads, 40);
    cleanup(&keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_process_slots_lapse() {
    let fake = FakeQbo::start(FakeQboOptions::default()).unwrap();
    let keys = keys("lapse");
    // Leases last the request timeout plus 10 s.
    let s = settings(
        &fake,
        &[
            ("QBO_TIMEOUT_SECS", "1"),
            ("QBO_REALM_MAX_CONCURRENT", "2"),
            ("QBO_RATE_BURST", "10"),
        ],
    );
    let gate = RealmGate::new(&s, redis().await, keys.clone());
    // A process takes both slots and dies without giving them back.
    let dead = [
        gate.acquire("1").await.unwrap(),
        gate.acquire("1").await.unwrap(),
    ];
    // While they are held, no one gets in.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), gate.acquire("1"))
            .await
            .is_err(),
        "a full gate admitted a third call"
    );
    let third = tokio::time::timeout(Duration::from_secs(20), gate.acquire("1"))
        .await
        .expect("a lapsed slot is free again")
        .unwrap();
    gate.release(third).await;
    // Releasing a lapsed lease is harmless.
    for lease in dead {
        gate.release(lease).await;
    }
    // Another company has its own slots.
    let other = gate.acquire("2").await.unwrap();
    gate.release(other).await;
    cleanup(&keys).await;
}
