//! Every export profile through the real web and worker: each fixture of
//! tests/fixtures/exports uploaded as a treasurer would, read as its profile with its gifts,
//! and pending payments kept on request without doubling the rows already read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fom_e2e::{signed_in, Api};
use fom_testkit::web::{Options, Stack};
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/exports")
}

async fn new_deposit(api: &Api<'_>, name: &str) -> String {
    let (status, v) = api
        .post("/api/deposits", Some(json!({ "name": name })))
        .await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// The deposit once none of its files is queued or running.
async fn settled(api: &Api<'_>, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, v) = api.get(&format!("/api/deposits/{id}")).await;
        assert_eq!(status, 200, "{v}");
        if v["processing"] == false {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "still processing: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn upload(api: &Api<'_>, deposit: &str, file: &str) {
    let bytes = std::fs::read(fixtures().join(file)).unwrap();
    let (status, _, v) = api.upload(deposit, file, bytes).await;
    assert_eq!(status, 202, "{file}: {v}");
}

#[tokio::test]
async fn every_export_is_read_as_its_platform_by_the_real_worker() {
    let stack = Stack::start(Options::new("imports").with_worker());
    let api = signed_in(&stack).await;
    let mut expected: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".expected.json"))
        .collect();
    expected.sort();
    assert!(expected.len() >= 11);
    // One deposit per file: the same gift may sit in two platforms' fixtures, and a deposit
    // folds duplicates together.
    let mut deposits = Vec::new();
    for path in &expected {
        let want: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let file = want["file"].as_str().unwrap().to_string();
        let id = new_deposit(&api, &file).await;
        upload(&api, &id, &file).await;
        deposits.push((id, want));
    }
    for (id, want) in &deposits {
        let d = settled(&api, id).await;
        let file = want["file"].as_str().unwrap();
        let f = &d["files"][0];
        assert_eq!(f["state"], "done", "{file}: {f}");
        assert_eq!(f["csv"]["layout"]["read_by"], want["profile"], "{file}");
        let sentence = f["csv"]["sentence"].as_str().unwrap();
        let gifts = want["gifts"].as_array().unwrap().len();
        assert!(
            sentence.starts_with(&format!("{gifts} gift")),
            "{file}: {sentence}"
        );
        let records = d["records"].as_array().unwrap();
        assert_eq!(records.len(), gifts, "{file}");
        let mut amounts: Vec<String> = records
            .iter()
            .map(|r| r["amount"].as_str().unwrap().to_string())
            .collect();
        let mut want_amounts: Vec<String> = want["gifts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["amount"].as_str().unwrap().to_string())
            .collect();
        amounts.sort();
        want_amounts.sort();
        assert_eq!(amounts, want_amounts, "{file}");
        // A gift given without a name is the "Anonymous" donor's, ready to match.
        let nameless = want["gifts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| {
                g["anonymous"] == true && g["name"].is_null() && g["organization"].is_null()
            })
            .count();
        let anonymous = records
            .iter()
            .filter(|r| r["payer"]["anonymous"] == true && r["payer"]["aliases"][0] == "Anonymous")
            .count();
        assert_eq!(anonymous, nameless, "{file}");
    }

    // Pending payments on request: the PayPal export again, into the same deposit.
    let (id, _) = deposits
        .iter()
        .find(|(_, w)| w["file"] == "paypal_activity.csv")
        .unwrap();
    let (status, v) = api
        .post(
            &format!("/api/deposits/{id}/options"),
            Some(json!({ "keep_pending": true })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let d = settled(&api, id).await;
    let file_id = d["files"][0]["id"].as_str().unwrap().to_string();
    let (status, v) = api
        .post(&format!("/api/deposits/{id}/files/{file_id}/reread"), None)
        .await;
    assert_eq!(status, 202, "{v}");
    let d = settled(&api, id).await;
    assert_eq!(d["options"]["keep_pending"], true);
    let records = d["records"].as_array().unwrap();
    assert_eq!(
        records.len(),
        6,
        "the five gifts, read again, and the pending one"
    );
    let pending: Vec<&Value> = records
        .iter()
        .filter(|r| {
            r["issues"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["code"] == "pending")
        })
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["amount"], "100.00");
}

/// A sheet read by column names, its columns corrected in the page: the file is read again by
/// the choice and its rows are replaced, not added to.
#[tokio::test]
async fn corrected_columns_read_a_file_again_in_place() {
    let stack = Stack::start(Options::new("imports-again").with_worker());
    let api = signed_in(&stack).await;
    let id = new_deposit(&api, "Checks").await;
    upload(&api, &id, "hand_typed.csv").await;
    let d = settled(&api, &id).await;
    assert_eq!(d["files"][0]["csv"]["layout"]["read_by"], "columns");
    assert_eq!(d["records"].as_array().unwrap().len(), 5);
    assert!(d["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["memo"] == "Building fund"));
    let file_id = d["files"][0]["id"].as_str().unwrap().to_string();
    // Date, Name, Check #, Amount, Memo: the memo column is not wanted after all.
    let roles = json!({"roles": ["date", "name", "check_number", "amount", null]});
    let (status, v) = api
        .post(
            &format!("/api/deposits/{id}/files/{file_id}/columns"),
            Some(roles),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["reread"], true);
    let d = settled(&api, &id).await;
    let records = d["records"].as_array().unwrap();
    assert_eq!(records.len(), 5, "replaced, not added: {records:?}");
    assert!(records.iter().all(|r| r["memo"].is_null()), "{records:?}");
    assert_eq!(d["files"][0]["csv"]["layout"]["read_by"], "mapping");
}
