//! The services as both binaries build them (`fom_queue::connect`), on a real Redis: intake's
//! undo and the send-all pointer. Each test owns a key prefix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fom_core::config::EnvReader;
use fom_core::intake::IntakeError;
use fom_core::jobs::{send_all, JobState};
use fom_core::services::{Services, Settings};
use fom_queue::RedisUse;

struct Prefix(String);

impl Drop for Prefix {
    fn drop(&mut self) {
        fom_testkit::delete_keys(&fom_testkit::redis_url(), &self.0);
    }
}

async fn services(tag: &str) -> (Services, Prefix) {
    let prefix = fom_testkit::web::unique_prefix(tag);
    let url = fom_testkit::redis_url();
    let mut env = EnvReader::from_pairs([("REDIS_URL", url.as_str()), ("KEY_PREFIX", &prefix)]);
    let settings = Settings::from_env(&mut env);
    env.finish().unwrap();
    let connected = fom_queue::connect(&settings, RedisUse::Shared)
        .await
        .unwrap();
    (connected.services, Prefix(prefix))
}

fn keys_under(prefix: &str) -> Vec<String> {
    let mut conn = redis::Client::open(fom_testkit::redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut conn)
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_refused_file_leaves_nothing_behind() {
    let (s, prefix) = services("intake-undo").await;
    let d = s.deposits.create("Test deposit").await.unwrap();

    // Not a type we read: refused before anything is stored.
    let mut exe: &[u8] = b"MZ\x90\x00 not a document";
    let err = s.take_in(&d.id, "tool.exe", &mut exe).await.unwrap_err();
    assert!(matches!(err, IntakeError::Type(_)), "{err:?}");

    // A deposit that is gone: the stored file is removed again and no job is queued.
    let mut csv: &[u8] = b"Name,Amount\nAda,10.00\n";
    let err = s
        .take_in("no-such-deposit", "gifts.csv", &mut csv)
        .await
        .unwrap_err();
    assert!(matches!(err, IntakeError::NoDeposit(_)), "{err:?}");
    let keys = keys_under(&prefix.0);
    assert!(!keys.iter().any(|k| k.contains(":upload:")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains(":queue:")), "{keys:?}");
    assert!(s
        .deposits
        .get(&d.id)
        .await
        .unwrap()
        .unwrap()
        .files
        .is_empty());

    // The same file into the real deposit: stored, on the deposit, queued.
    let mut csv: &[u8] = b"Name,Amount\nAda,10.00\n";
    let a = s.take_in(&d.id, "gifts.csv", &mut csv).await.unwrap();
    let keys = keys_under(&prefix.0);
    assert!(
        keys.iter().any(|k| k.ends_with(":queue:documents:data")),
        "accepted means queued: {keys:?}"
    );
    let files = s.deposits.get(&d.id).await.unwrap().unwrap().files;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].job_id, a.job_id);
    let job = s.jobs.get(&a.job_id).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.deposit_id.as_str()),
        (JobState::Queued, d.id.as_str())
    );
}

#[tokio::test]
async fn sends_started_at_once_make_one_job() {
    let (s, _prefix) = services("send-pointer").await;
    let d = s.deposits.create("Test deposit").await.unwrap();
    let starts = (0..8).map(|_| send_all::start(&s, &d.id));
    let started: Vec<_> = futures_util::future::join_all(starts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let fresh: Vec<_> = started.iter().filter(|s| !s.already_running).collect();
    assert_eq!(fresh.len(), 1, "{started:?}");
    assert!(
        started.iter().all(|s| s.job_id == fresh[0].job_id),
        "{started:?}"
    );
    assert_eq!(
        send_all::latest(&s, &d.id).await.unwrap().as_deref(),
        Some(fresh[0].job_id.as_str())
    );
    // The losers' records were discarded: one send job exists.
    let jobs = s.jobs.list(None, 100).await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");

    // Once it has ended, the next click starts a new one.
    let id = &fresh[0].job_id;
    s.jobs.begin(id, "w1").await.unwrap();
    assert!(s
        .jobs
        .settle(id, "w1", JobState::Failed, "test")
        .await
        .unwrap());
    let again = send_all::start(&s, &d.id).await.unwrap();
    assert!(!again.already_running);
    assert_ne!(again.job_id, fresh[0].job_id);
}
