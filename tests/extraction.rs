//! A real deposit through the web, the worker and the Gemini contract fake: a photo of each
//! check, one of each envelope and one of the handwritten deposit list, sent one by one or
//! picked together (one request, read together). The answers are scripted in the
//! model's shape (docs/RULES.md, "Figures and words", "Legibility").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use fom_e2e::{signed_in, with_gemini, Api};
use fom_testkit::gemini::{FakeGemini, FakeOptions};
use fom_testkit::web::{Options, Stack};
use serde_json::{json, Value};

fn check(no: &str, amount: &str, name: &str, date: &str) -> Value {
    json!({
        "source_kind": "check", "payment_method": "handwritten_check", "payment_ref": no,
        "amount_figures": amount, "amount_words_value": amount, "amount": amount,
        "check_date": date, "payer_name": name, "address_line_1": "1 Old Road",
        "city": "Springfield", "state": "IL", "zip": "62701",
    })
}

fn envelope(name: &str, postmark: Option<&str>, street: &str, zip: &str) -> Value {
    let mut e = json!({
        "source_kind": "envelope", "payer_name": name, "postmark_date": postmark,
        "address_line_1": street, "city": "Madison", "state": "WI", "zip": zip,
    });
    if postmark.is_none() {
        e["unreadable"] = json!(["postmark_date"]);
    }
    e
}

fn list_line(no: &str, amount: &str, name: &str) -> Value {
    json!({
        "source_kind": "deposit_list", "payment_method": "handwritten_check",
        "payment_ref": no, "amount": amount, "payer_name": name, "deposit_date": "03/10/2026",
    })
}

async fn settled(api: &Api<'_>, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let (_, v) = api.get(&format!("/api/deposits/{id}")).await;
        if v["processing"] == false {
            return v;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn checks_envelopes_and_a_handwritten_list_give_one_row_per_check() {
    a_deposit_of_photos(false).await;
}

/// The same photos picked together on the page: one request, one job, and one Gemini request
/// holding all seven photos, with the same three rows.
#[tokio::test]
async fn photos_sent_together_are_read_in_one_request() {
    a_deposit_of_photos(true).await;
}

async fn a_deposit_of_photos(together: bool) {
    let answers = vec![
        (
            "check-1".to_string(),
            vec![check("1041", "40.00", "Hannah Brooks", "03/02/2026")],
        ),
        (
            "check-2".to_string(),
            vec![check("0315", "1200.00", "Luis Ortega", "03/03/2026")],
        ),
        (
            "check-3".to_string(),
            vec![check("5120", "25.00", "Mary O'Brien", "03/04/2026")],
        ),
        (
            "envelope-1".to_string(),
            vec![envelope(
                "Hannah Brooks",
                Some("02/27/2026"),
                "18 Birch Lane",
                "53703",
            )],
        ),
        (
            "envelope-2".to_string(),
            vec![envelope(
                "Ortega, Luis",
                Some("02/26/2026"),
                "400 Harbor Blvd",
                "53704",
            )],
        ),
        // The third envelope's postmark is smudged.
        (
            "envelope-3".to_string(),
            vec![envelope("M. O'Brien", None, "12 Elm St", "53705")],
        ),
        (
            "deposit-list".to_string(),
            vec![
                list_line("1041", "40.00", "Brooks"),
                list_line("315", "1200.00", "Ortega"),
                list_line("5120", "25.00", "O'Brien"),
            ],
        ),
    ];
    // The list's total is written wrong ($1,240.00 for $1,265.00 of checks): the deposit says so.
    let totals = vec![(
        "deposit-list".to_string(),
        vec![json!({"source_kind": "deposit_list", "count": 3, "total": "1240.00"})],
    )];
    let gemini = FakeGemini::start(FakeOptions {
        answers,
        totals,
        ..FakeOptions::default()
    })
    .unwrap();
    let stack = Stack::start(with_gemini(
        Options::new("extraction").with_worker(),
        &gemini,
    ));
    let api = signed_in(&stack).await;
    let (status, d) = api
        .post("/api/deposits", Some(json!({"name": "March 10"})))
        .await;
    assert_eq!(status, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut photos = Vec::new();
    for (i, name) in [
        "check-1.jpg",
        "envelope-1.jpg",
        "check-2.jpg",
        "envelope-2.jpg",
        "check-3.jpg",
        "envelope-3.jpg",
        "deposit-list.jpg",
    ]
    .iter()
    .enumerate()
    {
        let path = dir.path().join(name);
        fom_testkit::fixtures::write_phone_photo(&path, 800, 600, i as u64 + 1, 1).unwrap();
        photos.push((name.to_string(), std::fs::read(&path).unwrap()));
    }
    if together {
        let (status, _, v) = api.upload_many(&id, photos).await;
        assert_eq!(status, 202, "{v}");
        let files = v["files"].as_array().unwrap();
        assert_eq!(files.len(), 7, "{v}");
        // One job for the seven photos.
        assert!(
            files
                .iter()
                .all(|f| f["accepted"] == true && f["job_id"] == files[0]["job_id"]),
            "{v}"
        );
    } else {
        for (name, bytes) in photos {
            let (status, _, v) = api.upload(&id, &name, bytes).await;
            assert_eq!(status, 202, "{name}: {v}");
        }
    }
    let d = settled(&api, &id).await;
    let records = d["records"].as_array().unwrap();
    assert_eq!(records.len(), 3, "{records:#?}");
    for r in records {
        let codes: Vec<&str> = r["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap())
            .collect();
        assert!(!codes.contains(&"amount_missing"), "{r}");
        assert!(!codes.contains(&"envelope_unlinked"), "{r}");
        assert_eq!(r["deposit_date"], "2026-03-10", "{r}");
    }
    let by_ref = |no: &str| {
        records
            .iter()
            .find(|r| r["payment_ref"] == no)
            .unwrap_or_else(|| panic!("{no}: {records:#?}"))
    };
    // The list's check numbers, the envelopes' addresses and postmarks (the gift date of a
    // handwritten check).
    let hannah = by_ref("1041");
    assert_eq!(hannah["postmark_date"], "2026-02-27");
    assert_eq!(hannah["payment_date"], "2026-02-27");
    assert_eq!(hannah["contact"]["address_line_1"], "18 Birch Lane");
    let luis = by_ref("315");
    assert_eq!(luis["postmark_date"], "2026-02-26");
    assert_eq!(luis["contact"]["address_line_1"], "400 Harbor Blvd");
    // The smudged postmark: the check's date, and a warning that says so.
    let mary = by_ref("5120");
    assert_eq!(mary["payment_date"], "2026-03-04");
    assert_eq!(mary["contact"]["address_line_1"], "12 Elm St");
    let warning = mary["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["code"] == "postmark_illegible")
        .unwrap_or_else(|| panic!("{mary}"));
    assert_eq!(warning["field"], "postmark_date");
    let warnings = d["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["code"], "total_differs");
    assert_eq!(
        warnings[0]["message"],
        "the deposit list says $1,240.00; the rows add up to $1,265.00: look for a missing, \
         extra or misread row"
    );
    if together {
        // Seven photos of one upload, one request (the request size limit is far off).
        assert_eq!(gemini.request_count(), 1);
        let files = d["files"].as_array().unwrap();
        assert_eq!(files.len(), 7, "{files:?}");
        assert!(
            files
                .iter()
                .all(|f| f["job_id"] == files[0]["job_id"] && f["together"] == 6),
            "{files:?}"
        );
    } else {
        // Seven files, seven requests: each photo was read on its own.
        assert_eq!(gemini.request_count(), 7);
    }
}
