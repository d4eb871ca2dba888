//! Sessions and the sign-in limiter on a real Redis (REDIS_URL, else 127.0.0.1:6379), each
//! test under its own key prefix: the idle timeout slides, the absolute lifetime does not, and
//! attempts are counted atomically.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fom_core::keys::Keys;
use fom_core::sessions::{Sessions, SignInLimiter};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

async fn conn() -> ConnectionManager {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    ConnectionManager::new(redis::Client::open(url).unwrap())
        .await
        .unwrap()
}

fn keys(tag: &str) -> Keys {
    Keys::new(format!("t-{tag}-{}", uuid::Uuid::new_v4().simple()))
}

async fn cleanup(conn: &mut ConnectionManager, keys: &Keys) {
    let found: Vec<String> = conn.keys(format!("{}:*", keys.prefix())).await.unwrap();
    for k in found {
        let _: () = conn.del(k).await.unwrap();
    }
}

#[tokio::test]
async fn activity_keeps_a_session_only_until_its_absolute_end() {
    let mut c = conn().await;
    let keys = keys("lifetime");
    // Idle 1.5 s, absolute 4 s: touched every 0.5 s, the session outlives its idle timeout
    // several times over, and still ends at 4 s.
    let sessions = Sessions::new(
        c.clone(),
        keys.clone(),
        Duration::from_millis(1500),
        Duration::from_secs(4),
    );
    let id = sessions.create().await.unwrap();
    let started = std::time::Instant::now();
    let mut live_for = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(8) {
        if !sessions.touch(&id).await.unwrap() {
            break;
        }
        live_for = started.elapsed();
        let ttl: i64 = c.pttl(keys.session(&id)).await.unwrap();
        assert!(ttl <= 1500, "renewed past the idle timeout: {ttl} ms");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("an active session lasted {:.1} s", live_for.as_secs_f64());
    assert!(live_for >= Duration::from_millis(2500), "{live_for:?}");
    assert!(live_for < Duration::from_secs(4), "{live_for:?}");
    assert!(!sessions.touch(&id).await.unwrap());
    assert!(!sessions.alive(&id).await.unwrap());

    // Left alone, it ends at the idle timeout.
    let id = sessions.create().await.unwrap();
    assert!(sessions.alive(&id).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(!sessions.alive(&id).await.unwrap());
    assert!(!sessions.touch(&id).await.unwrap());
    cleanup(&mut c, &keys).await;
}

#[tokio::test]
async fn a_session_from_before_the_absolute_lifetime_ends_by_its_start() {
    let mut c = conn().await;
    let keys = keys("legacy");
    let sessions = Sessions::new(
        c.clone(),
        keys.clone(),
        Duration::from_secs(12 * 3600),
        Duration::from_secs(12 * 3600),
    );
    // Written by the previous version: no `ends_at`, signed in 13 hours ago, kept alive since.
    let now = chrono::Utc::now().timestamp_millis();
    let old = serde_json::json!({ "created_at": now - 13 * 3600 * 1000 }).to_string();
    let _: () = c.set_ex(keys.session("old"), old, 3600).await.unwrap();
    assert!(!sessions.touch("old").await.unwrap());
    let gone: bool = c.exists(keys.session("old")).await.unwrap();
    assert!(!gone);
    // One signed in an hour ago lives on, renewed to the idle timeout but no further than
    // its end (11 hours left).
    let recent = serde_json::json!({ "created_at": now - 3600 * 1000 }).to_string();
    let _: () = c.set_ex(keys.session("recent"), recent, 60).await.unwrap();
    assert!(sessions.touch("recent").await.unwrap());
    let ttl: i64 = c.ttl(keys.session("recent")).await.unwrap();
    assert!((11 * 3600 - 5..=11 * 3600).contains(&ttl), "{ttl}");
    cleanup(&mut c, &keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_attempts_are_counted_atomically() {
    let mut c = conn().await;
    let keys = keys("attempts");
    let limiter = SignInLimiter::new(c.clone(), keys.clone(), 10);
    let tries = (0..300).map(|_| {
        let l = limiter.clone();
        tokio::spawn(async move { l.attempt("203.0.113.7").await.unwrap() })
    });
    let results = futures_util::future::join_all(tries).await;
    let allowed = results
        .iter()
        .filter(|r| r.as_ref().unwrap().is_none())
        .count();
    assert_eq!(allowed, 10);
    let wait = results.iter().find_map(|r| *r.as_ref().unwrap()).unwrap();
    assert!(wait <= fom_core::sessions::ATTEMPT_WINDOW && wait > Duration::ZERO);
    // Another address is not affected; a success forgets the attempts.
    assert!(limiter.attempt("203.0.113.8").await.unwrap().is_none());
    limiter.succeeded("203.0.113.7").await.unwrap();
    assert!(limiter.attempt("203.0.113.7").await.unwrap().is_none());
    cleanup(&mut c, &keys).await;
}
