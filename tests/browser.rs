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
    let stack = Stack::start(qbo_options("browser", &fake).with_worker());
    // The deployment is connected to QuickBooks (sandbox) before the treasurer arrives.
    let api = signed_in(&stack).await;
    connect(&api).await;

    let started = Instant::now();
    let out = tokio::task::spawn_blocking({
        let base = stack.url("");
        let out_dir = out_dir.clone();
        let root = root.clone();
        move || {
            Command::new("node")
                .arg(root.join("tests/browser/flow.mjs"))
                .current_dir(root.join("tests/browser"))
                .env("BASE_URL", base.trim_end_matches('/'))
                .env("APP_PASSWORD", PASSWORD)
                .env("OUT_DIR", &out_dir)
                .env("EXAMPLES_DIR", root.join("examples"))
                .env("BAD_PDF", &bad_pdf)
                .env(
                    "CHROMIUM",
                    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                )
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser flow failed after {:?} (screenshots in {}):\n{stdout}\n{stderr}",
        started.elapsed(),
        out_dir.display()
    );
    for shot in [
        "deposit-before-send.png",
        "deposit-after-send.png",
        "deposit-failed-file.png",
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
    drop(stack);
}
