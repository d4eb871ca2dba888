//! Twenty phone photos (12 Mpx, about 3 MB each) sent by a client that does not shrink them,
//! one request per file, into fom-web + fom-worker on a Redis capped like Heroku's Key-Value
//! Store mini (25 MB, noeviction, 20 clients): the server paces them by the room there is
//! (`wait_for_room` with a Retry-After), the client waits as told, and every file ends done
//! without Redis refusing a write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use fom_testkit::web::{Options, PrivateRedis, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_unshrunk_photos_wait_for_room_and_all_end_done() {
    let photos: Vec<Vec<u8>> = {
        let dir = tempfile::tempdir().unwrap();
        fom_testkit::fixtures::write_phone_photos(dir.path(), 20)
            .unwrap()
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    };
    let redis = PrivateRedis::start(&[
        "--maxmemory",
        "25mb",
        "--maxmemory-policy",
        "noeviction",
        "--maxclients",
        "20",
    ]);
    let gemini = fom_testkit::gemini::FakeGemini::start(Default::default()).unwrap();
    let stack = Stack::start(fom_e2e::with_gemini(
        Options::new("photos-curl")
            .redis(&redis.url)
            .with_worker()
            .env("UPLOAD_STORE", "redis"),
        &gemini,
    ));
    let api = fom_e2e::signed_in(&stack).await;
    let (status, created) = api.post("/api/deposits", None).await;
    assert_eq!(status, 201, "{created}");
    let deposit = created["id"].as_str().unwrap().to_string();

    let started = Instant::now();
    let mut waits = 0;
    for (i, photo) in photos.iter().enumerate() {
        loop {
            let (status, retry_after, answer) = api
                .upload(&deposit, &format!("check-{:02}.jpg", i + 1), photo.clone())
                .await;
            if status == 202 {
                break;
            }
            assert_eq!(status, 503, "file {i}: {answer}");
            assert_eq!(answer["error"]["code"], "wait_for_room", "{answer}");
            waits += 1;
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "still waiting"
            );
            tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(10))).await;
        }
    }
    assert!(waits > 0, "20 photos of 3 MB fit at once in 25 MB?");
    // Every file is read.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (_, d) = api.get(&format!("/api/deposits/{deposit}")).await;
        let files = d["files"].as_array().cloned().unwrap_or_default();
        assert!(
            files
                .iter()
                .all(|f| f["state"] != "failed" && f["state"] != "dead"),
            "{d}"
        );
        if files.len() == 20 && files.iter().all(|f| f["state"] == "done") {
            break;
        }
        assert!(Instant::now() < deadline, "not all done: {d}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "20 photos of about 3 MB, no shrinking: {waits} wait verdicts, all done in {} s",
        started.elapsed().as_secs()
    );
    // Redis never refused a client or a write.
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let stats: String = redis::cmd("INFO").arg("stats").query(&mut conn).unwrap();
    let errors: String = redis::cmd("INFO")
        .arg("errorstats")
        .query(&mut conn)
        .unwrap();
    assert!(stats.contains("rejected_connections:0"), "{stats}");
    assert!(!errors.contains("errorstat_OOM"), "{errors}");
}
