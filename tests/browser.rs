//! The treasurer's page in a real browser: Debian's chromium driven by playwright-core
//! (`tests/browser/flow.mjs`) against the real fom-web + fom-worker + Redis + the QuickBooks
//! fake. Screenshots and a failure picture go to `target/test-output/browser/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Instant;

use fom_e2e::{connect, fake, qbo_options, signed_in};
use fom_testkit::web::{Stack, PASSWORD};
use serde_json::json;

/// Installs chromium and playwright-core when missing (the same script `make test` runs).
fn ensure_browser() {
    let root = fom_testkit::repo_root();
    let status = Command::new(root.join("scripts/ensure-browser.sh"))
        .status()
        .unwrap();
    assert!(status.success(), "scripts/ensure-browser.sh failed");
}

/// Runs `tests/browser/<script>` in node against `stack` (its address, the password, `out_dir`
/// and `env`); fails the test with the script's output when it does not succeed, else returns
/// what it printed.
async fn run_script(
    script: &str,
    stack: &Stack,
    out_dir: &std::path::Path,
    env: Vec<(&'static str, std::ffi::OsString)>,
) -> String {
    let root = fom_testkit::repo_root();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking({
        let base = stack.url("");
        let out_dir = out_dir.to_path_buf();
        let script = root.join("tests/browser").join(script);
        move || {
            Command::new("node")
                .arg(script)
                .current_dir(root.join("tests/browser"))
                .env("BASE_URL", base.trim_end_matches('/'))
                .env("APP_PASSWORD", PASSWORD)
                .env("OUT_DIR", &out_dir)
                .env(
                    "CHROMIUM",
                    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                )
                .envs(env)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{script} failed after {:?} (screenshots and logs in {}):\n{stdout}\n{stderr}",
        started.elapsed(),
        out_dir.display()
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn treasurer_flow_in_chromium() {
    ensure_browser();
    let root = fom_testkit::repo_root();
    let out_dir = root.join("target/test-output/browser");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bad_pdf = tmp.path().join("damaged-scan.pdf");
    fom_testkit::fixtures::write_corrupt_pdf(&bad_pdf).unwrap();
    // A layout no profile and no column name tells: its columns are chosen in the page.
    let columns_csv = tmp.path().join("march-checks.csv");
    std::fs::write(
        &columns_csv,
        "When,Who,How much,Num\n3/2/2026,Hannah Brooks,$40.00,2231\n\
         3/3/2026,Luis Ortega,\"$1,200.00\",5120\n,Sum,\"$1,240.00\",\n",
    )
    .unwrap();
    let columns_again = tmp.path().join("april-checks.csv");
    std::fs::write(
        &columns_again,
        "When,Who,How much,Num\n4/6/2026,Priya Shah,$75.00,3310\n",
    )
    .unwrap();

    let fake = fake(0);
    for customer in [
        json!({"DisplayName": "St. John Lutheran Church", "CompanyName": "St. John Lutheran Church",
               "BillAddr": {"Line1": "1200 Oak Avenue", "City": "Philadelphia",
                            "CountrySubDivisionCode": "PA", "PostalCode": "19103"}}),
        json!({"DisplayName": "Margaret O'Brien", "GivenName": "Margaret", "FamilyName": "O'Brien",
               "BillAddr": {"Line1": "12 Elm St", "City": "Boston",
                            "CountrySubDivisionCode": "MA", "PostalCode": "02108"}}),
        json!({"DisplayName": "Grace Kim", "GivenName": "Grace", "FamilyName": "Kim",
               "BillAddr": {"Line1": "18 Birch Lane", "City": "Madison",
                            "CountrySubDivisionCode": "WI", "PostalCode": "53703"}}),
        json!({"DisplayName": "Daniel Okafor", "GivenName": "Daniel", "FamilyName": "Okafor"}),
        json!({"DisplayName": "Tom McDonald", "GivenName": "Tom", "FamilyName": "McDonald"}),
    ] {
        fake.add_customer(customer);
    }
    // Most of the company's people are listed "Last, First": a new customer is named so.
    for (given, family) in [
        ("Harold", "Whitfield"),
        ("Aiko", "Nakamura"),
        ("Sean", "Brennan"),
        ("Astrid", "Lindqvist"),
        ("Kwame", "Osei"),
    ] {
        fake.add_customer(json!({"DisplayName": format!("{family}, {given}"),
                                 "GivenName": given, "FamilyName": family}));
    }
    // A company without an item for donations: the treasurer creates it from the page.
    assert!(fake.deactivate_item("Donations"));
    // The processes' logs stay beside the screenshots, for a failure to be read afterwards.
    let logs = out_dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let stack = Stack::start(qbo_options("browser", &fake).with_worker().logs_in(&logs));
    // The deployment is connected to QuickBooks (sandbox) before the treasurer arrives.
    let api = signed_in(&stack).await;
    connect(&api).await;

    run_script(
        "flow.mjs",
        &stack,
        &out_dir,
        vec![
            ("EXAMPLES_DIR", root.join("examples").into()),
            ("BAD_PDF", bad_pdf.into()),
            ("COLUMNS_CSV", columns_csv.into()),
            ("COLUMNS_CSV_AGAIN", columns_again.into()),
        ],
    )
    .await;
    for shot in [
        "deposit-before-send.png",
        "deposit-after-send.png",
        "deposit-failed-file.png",
        "audit.png",
        "choose-columns.png",
        "columns-remembered.png",
        "settings.png",
        "online-kept-out.png",
        "row-kept-out.png",
        "setup-item.png",
        "receipt-outdated.png",
        "receipt-preview.png",
        "new-customer.png",
        "possible-duplicate.png",
        "duplicates-resolved.png",
        "bank-deposit-ready.png",
        "bank-deposit-recorded.png",
        "receipt-updated.png",
    ] {
        let meta = std::fs::metadata(out_dir.join(shot));
        assert!(
            meta.as_ref().is_ok_and(|m| m.len() > 1000),
            "{shot} missing: {meta:?}"
        );
    }
    // What the page showed as sent is in QuickBooks, once per row.
    let receipts = fake.sales_receipts();
    assert!(receipts.len() >= 5, "{} receipts", receipts.len());
    let mut notes: Vec<String> = receipts
        .iter()
        .map(|r| r["PrivateNote"].as_str().unwrap_or("").to_string())
        .collect();
    notes.sort();
    let before = notes.len();
    notes.dedup();
    assert_eq!(notes.len(), before, "a row was sent twice");
    // The row whose deposit account was changed in its preview went to Checking; the others to
    // the deployment's account.
    let checking = fake
        .accounts()
        .into_iter()
        .find(|a| a["Name"] == "Checking")
        .map(|a| a["Id"].clone())
        .unwrap();
    let to_checking: Vec<&serde_json::Value> = receipts
        .iter()
        .filter(|r| r["DepositToAccountRef"]["value"] == checking)
        .collect();
    assert_eq!(to_checking.len(), 1, "{receipts:?}");
    assert_eq!(to_checking[0]["PaymentRefNum"], "004512");
    let services = fake
        .items()
        .into_iter()
        .find(|i| i["Name"] == "Services")
        .map(|i| i["Id"].clone())
        .unwrap();
    assert_eq!(
        to_checking[0]["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"],
        services
    );
    // The receipt updated from the page carries the edited memo (one receipt, updated).
    let updated: Vec<&serde_json::Value> = receipts
        .iter()
        .filter(|r| {
            r["PrivateNote"]
                .as_str()
                .is_some_and(|n| n.starts_with("Updated after sending"))
        })
        .collect();
    assert_eq!(updated.len(), 1, "{receipts:?}");
    assert_eq!(updated[0]["SyncToken"], "1");
    // The bank deposit recorded from the page: one QuickBooks Deposit into Checking, linking
    // the one receipt of its deposit.
    let deposits = fake.deposits();
    assert_eq!(deposits.len(), 1, "{deposits:?}");
    assert_eq!(deposits[0]["DepositToAccountRef"]["value"], checking);
    assert_eq!(deposits[0]["Line"].as_array().map(Vec::len), Some(1));
    drop(stack);
}

/// Redis's rejected connections and OOM errors (`INFO stats`, `INFO errorstats`).
fn redis_refusals(url: &str) -> (u64, u64) {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let stats: String = redis::cmd("INFO").arg("stats").query(&mut conn).unwrap();
    let errors: String = redis::cmd("INFO")
        .arg("errorstats")
        .query(&mut conn)
        .unwrap();
    let field = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        field(&stats, "rejected_connections:"),
        field(&errors, "errorstat_OOM:count="),
    )
}

/// Drops every photo of `photos` into a new deposit through the page (tests/browser/photos.mjs)
/// of a fresh fom-web + fom-worker on `redis` with `env`; returns the script's summary.
async fn drop_photos(
    redis: &fom_testkit::web::PrivateRedis,
    photos: &std::path::Path,
    out_dir: &std::path::Path,
    env: &[(&str, &str)],
) -> serde_json::Value {
    // Photos are read by the model: the contract fake of Gemini.
    let gemini = fom_testkit::gemini::FakeGemini::start(Default::default()).unwrap();
    let mut options = fom_e2e::with_gemini(
        fom_testkit::web::Options::new("photos")
            .redis(&redis.url)
            .with_worker()
            .env("UPLOAD_STORE", "redis"),
        &gemini,
    );
    for (k, v) in env {
        options = options.env(k, v);
    }
    let stack = Stack::start(options);
    let stdout = run_script(
        "photos.mjs",
        &stack,
        out_dir,
        vec![("PHOTOS_DIR", photos.into())],
    )
    .await;
    drop(stack);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("photos: "))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_phone_photos_fit_a_25_mb_redis() {
    ensure_browser();
    let root = fom_testkit::repo_root();
    let photos = tempfile::tempdir().unwrap();
    fom_testkit::fixtures::write_phone_photos(photos.path(), 20).unwrap();
    // Heroku Key-Value Store mini: 25 MB, noeviction, 20 clients.
    let redis = fom_testkit::web::PrivateRedis::start(&[
        "--maxmemory",
        "25mb",
        "--maxmemory-policy",
        "noeviction",
        "--maxclients",
        "20",
    ]);

    // As deployed: every photo shrunk in the page before it travels.
    let out = root.join("target/test-output/browser-photos");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let summary = drop_photos(&redis, photos.path(), &out, &[]).await;
    assert_eq!(summary["done"], 20, "{summary}");
    let to: Vec<u64> = summary["to_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    assert_eq!(to.len(), 20, "every photo shrunk: {summary}");
    assert!(to.iter().all(|b| *b < 1_500_000), "{summary}");
    if summary["waiting_seen"] == true {
        let shot = std::fs::metadata(out.join("waiting-for-room.png"));
        assert!(shot.is_ok_and(|m| m.len() > 1000));
    }

    // Shrinking off (the photos are under the long side): 20 x 3 MB cannot fit at once, so
    // the page waits for room by itself, and still every file ends done.
    let out = root.join("target/test-output/browser-photos-unshrunk");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let summary = drop_photos(
        &redis,
        photos.path(),
        &out,
        &[("PHOTO_MAX_PIXELS_LONG", "8000")],
    )
    .await;
    assert_eq!(summary["done"], 20, "{summary}");
    assert_eq!(summary["waiting_seen"], true, "{summary}");
    let shot = std::fs::metadata(out.join("waiting-for-room.png"));
    assert!(shot.is_ok_and(|m| m.len() > 1000));

    // Redis never refused a client or a write.
    assert_eq!(redis_refusals(&redis.url), (0, 0));
}

/// The operations page in a real browser while the worker scales (`WORKER_PROCESSES=auto`,
/// 12 documents, the Gemini fake answering in 3 s): at least three processes shown busy at
/// once with their memory charts (screenshot `operations-scaling.png`), then the queue empty
/// and the extra processes listed as stopped (`operations-after.png`); a failed job retried
/// and finished jobs purged from the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_page_during_scaling() {
    ensure_browser();
    let root = fom_testkit::repo_root();
    let out_dir = root.join("target/test-output/browser-operations");
    let _ = std::fs::remove_dir_all(&out_dir);
    let logs = out_dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let redis = fom_testkit::web::PrivateRedis::start(&["--maxclients", "40"]);
    let gemini = fom_testkit::gemini::FakeGemini::start(fom_testkit::gemini::FakeOptions {
        latency: std::time::Duration::from_secs(3),
        ..Default::default()
    })
    .unwrap();
    let stack = Stack::start(
        fom_e2e::with_gemini(
            fom_testkit::web::Options::new("operations")
                .redis(&redis.url)
                .with_worker()
                .logs_in(&logs),
            &gemini,
        )
        .env("WORKER_PROCESSES", "auto")
        .env("WORKER_MAX_PROCESSES", "4")
        .env("WORKER_IDLE_RETIRE_SECS", "3")
        .env("DYNO_MEMORY_MB", "512")
        .env("MEMORY_WARNING_MB", "400")
        .env("REDIS_MAX_CLIENTS", "40"),
    );
    let api = signed_in(&stack).await;
    let (status, deposit) = api
        .post("/api/deposits", Some(json!({"name": "Busy Sunday"})))
        .await;
    assert_eq!(status, 201, "{deposit}");
    let deposit = deposit["id"].as_str().unwrap().to_string();
    let scan = std::fs::read(root.join("examples/deposit.pdf")).unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| (format!("scan-{i:02}.pdf"), scan.clone()))
        .collect();
    let (status, _, answer) = api.upload_many(&deposit, files).await;
    assert_eq!(status, 202, "{answer}");
    let tmp = tempfile::tempdir().unwrap();
    let bad_pdf = tmp.path().join("damaged-scan.pdf");
    fom_testkit::fixtures::write_corrupt_pdf(&bad_pdf).unwrap();
    let (status, _, answer) = api
        .upload(
            &deposit,
            "damaged-scan.pdf",
            std::fs::read(&bad_pdf).unwrap(),
        )
        .await;
    assert_eq!(status, 202, "{answer}");

    let stdout = run_script(
        "operations.mjs",
        &stack,
        &out_dir,
        vec![("DOCUMENTS", "12".into())],
    )
    .await;
    let seen: serde_json::Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("operations: "))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap();
    assert!(seen["busy"].as_u64().unwrap() >= 3, "{seen}");
    assert_eq!(seen["after"]["live"], 1, "{seen}");
    assert_eq!(seen["retried"], true, "{seen}");
    // The 12 done and the dead one (retried, dead again) purged.
    assert!(
        seen["purged"]
            .as_str()
            .is_some_and(|t| t.contains("Purged 13 ")),
        "{seen}"
    );
    assert_eq!(seen["done_after_purge"], 0, "{seen}");
    for shot in ["operations-scaling.png", "operations-after.png"] {
        let meta = std::fs::metadata(out_dir.join(shot));
        assert!(
            meta.as_ref().is_ok_and(|m| m.len() > 1000),
            "{shot} missing: {meta:?}"
        );
    }
    // Each document read once.
    assert_eq!(gemini.request_count(), 12);
    drop(stack);
}

/// The year-end statements page in a real browser: settings filled in, the bank left out,
/// a run for 2026 started and watched to the end (screenshots `statements-progress.png` and
/// `statements-done.png`), and the print PDF and the ZIP downloaded. The PDF reads back
/// through pdfium, and its first letter is rendered to `letter.png` to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_page_in_chromium() {
    ensure_browser();
    let root = fom_testkit::repo_root();
    let out_dir = root.join("target/test-output/browser-statements");
    let _ = std::fs::remove_dir_all(&out_dir);
    let logs = out_dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    // QuickBooks answering in 300 ms: a run long enough to be watched.
    let fake = fake(300);
    let (bank, _) = fom_e2e::seed_gifts(&fake, 400, 1200);
    let stack = Stack::start(
        qbo_options("statements-browser", &fake)
            .with_worker()
            .logs_in(&logs),
    );
    let api = signed_in(&stack).await;
    connect(&api).await;

    let stdout = run_script("statements.mjs", &stack, &out_dir, Vec::new()).await;
    let seen: serde_json::Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("statements: "))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap();
    let progress: Vec<&str> = seen["progress"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(
        progress
            .iter()
            .any(|p| p.contains("Writing letters: donor")),
        "{seen}"
    );
    assert_eq!(seen["pdf"], "donor-statements-2026.pdf", "{seen}");
    assert_eq!(seen["zip"], "donor-statements-2026.zip", "{seen}");
    assert!(seen["no_address"].as_u64().unwrap() > 0, "{seen}");
    for shot in ["statements-progress.png", "statements-done.png"] {
        let meta = std::fs::metadata(out_dir.join(shot));
        assert!(
            meta.as_ref().is_ok_and(|m| m.len() > 1000),
            "{shot} missing: {meta:?}"
        );
    }

    // The downloaded print file: every letter, the bank's not among them.
    let pages: Vec<fom_core::pdf::Page> = fom_core::pdf::PdfPages::open(
        &out_dir.join("statements.pdf"),
        &fom_core::pdf::PdfConfig {
            max_pages: 100_000,
            ..Default::default()
        },
    )
    .unwrap()
    .map(Result::unwrap)
    .collect();
    let letters = seen["summary"]
        .as_str()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.replace(',', "").parse::<usize>().ok())
        .unwrap();
    assert!(pages.len() >= letters && letters > 100, "{seen}");
    assert!(pages[0].text.contains("Friends of Music"));
    assert!(
        pages[0].text.contains("No goods or services")
            || pages[0].text.contains("No goods or\nservices")
    );
    assert!(!pages.iter().any(|p| p.text.contains("First National Bank")));
    let img = image::load_from_memory(&pages[0].jpeg).unwrap();
    img.save(out_dir.join("letter.png")).unwrap();
    // The ZIP: one PDF per letter.
    let zip = std::fs::File::open(out_dir.join("statements.zip")).unwrap();
    assert_eq!(zip::ZipArchive::new(zip).unwrap().len(), letters);
    let excluded = api.get("/api/statements").await.1;
    assert_eq!(excluded["excluded"][0]["customer_id"], bank.as_str());
    drop(stack);
}
