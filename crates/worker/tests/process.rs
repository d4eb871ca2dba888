//! `fom-worker process` end to end: the real binary, real pdfium, real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fom_testkit::fixtures;
use serde_json::Value;

fn worker() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fom-worker"));
    cmd.env_remove("RUST_LOG");
    cmd
}

fn process(files: &[PathBuf]) -> (Output, Value) {
    let out = worker()
        .arg("process")
        .arg("--json")
        .args(files)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out, json)
}

fn examples() -> PathBuf {
    fom_testkit::repo_root().join("examples")
}

#[test]
fn extracts_the_example_deposit_and_csv() {
    let (out, json) = process(&[
        examples().join("deposit.pdf"),
        examples().join("online-gifts.csv"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = json["records"].as_array().unwrap();
    // 5 report entries + 3 deposit-slip lines (2 of them repeat report entries) + 4 CSV rows.
    assert_eq!(records.len(), 10);
    assert_eq!(json["duplicates_merged"], 2);
    // Exact decimal strings, never floats.
    let amounts: Vec<&str> = records
        .iter()
        .map(|r| r["amount"].as_str().unwrap())
        .collect();
    assert_eq!(
        amounts,
        [
            "2000.00", "250.00", "500.00", "35.00", "25.00", "40.00", "25.00", "25.00", "1000.00",
            "100.00"
        ]
    );
    let church = &records[0];
    assert_eq!(church["payment_ref"], "004512", "stored as written");
    assert_eq!(
        church["payer"]["organization_name"],
        "St. John Lutheran Church"
    );
    assert_eq!(church["contact"]["zip"], "19103");
    assert_eq!(
        church["merge_history"][0]["source"]["pages"],
        serde_json::json!([3])
    );
    assert_eq!(records[3]["payer"]["aliases"][0], "Robert McDonald");
    assert_eq!(records[3]["provenance"]["pages"], serde_json::json!([1, 2]));
    assert_eq!(records[4]["payment_method"], "online");
    // Typed in capitals on the deposit slip, proper-cased here.
    assert_eq!(records[5]["payer"]["aliases"][0], "Thomas McDonald");
    assert_eq!(records[5]["deposit_date"], "2026-03-14");
    assert_eq!(records[9]["contact"]["zip"], "04101");
    // Two $25 online gifts from the same donor stay two records.
    assert_eq!(records[6]["amount"], records[7]["amount"]);
    assert_ne!(records[6]["payment_ref"], records[7]["payment_ref"]);
    let files = json["files"].as_array().unwrap();
    assert_eq!(files[0]["pages"], 3);
    assert_eq!(files[0]["records"], 8);
    assert!(files.iter().all(|f| f["error"].is_null()));
    assert!(json["errors"].as_array().unwrap().is_empty());
    assert!(json["peak_rss_mb"].as_f64().unwrap() > 1.0);
}

#[test]
fn human_output_lists_records_with_formatted_amounts() {
    let out = worker()
        .arg("process")
        .arg(examples().join("deposit.pdf"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("St. John Lutheran Church"), "{text}");
    assert!(text.contains("$2,000.00"), "{text}");
    assert!(
        text.contains("deposit.pdf: 3 page(s), 8 record(s)"),
        "{text}"
    );
    assert!(text.contains("2 duplicate(s) merged"), "{text}");
}

struct Bad {
    name: &'static str,
    expect: &'static str,
}

fn write_bad(dir: &Path, bad: &Bad) -> PathBuf {
    let path = dir.join(bad.name);
    match bad.name {
        "encrypted.pdf" => fixtures::write_encrypted_pdf(&path, "secret").unwrap(),
        "corrupt.pdf" => fixtures::write_corrupt_pdf(&path).unwrap(),
        "empty.pdf" => std::fs::write(&path, b"").unwrap(),
        "nopages.pdf" => fixtures::write_zero_page_pdf(&path).unwrap(),
        "photo.pdf" => std::fs::write(&path, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap(),
        "truncated.pdf" => {
            fixtures::write_truncated(&examples().join("deposit.pdf"), &path, 600).unwrap()
        }
        "notes.docx" => std::fs::write(&path, b"PK\x03\x04\x14\0\0\0").unwrap(),
        "big.csv" => fixtures::write_gifts_csv(&path, 4_001).unwrap(),
        other => unreachable!("{other}"),
    }
    path
}

#[test]
fn bad_inputs_give_one_clear_line_each_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        Bad {
            name: "encrypted.pdf",
            expect: "password-protected",
        },
        Bad {
            name: "corrupt.pdf",
            expect: "damaged",
        },
        Bad {
            name: "empty.pdf",
            expect: "empty",
        },
        Bad {
            name: "nopages.pdf",
            expect: "no pages",
        },
        Bad {
            name: "photo.pdf",
            expect: "text layer",
        },
        Bad {
            name: "truncated.pdf",
            expect: "damaged",
        },
        Bad {
            name: "notes.docx",
            expect: "ZIP",
        },
        Bad {
            name: "big.csv",
            expect: "big.csv has 4,001 rows; at most 4,000 can be read from one file. Split",
        },
    ];
    for case in &cases {
        let path = write_bad(dir.path(), case);
        let out = worker().arg("process").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", case.name);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", case.name);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(case.name))
            .collect();
        assert_eq!(lines.len(), 1, "{}: {stderr}", case.name);
        assert!(
            lines[0].contains(case.expect),
            "{}: expected {:?} in {:?}",
            case.name,
            case.expect,
            lines[0]
        );
    }
}

#[test]
fn a_bad_file_does_not_sink_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_bad(
        dir.path(),
        &Bad {
            name: "encrypted.pdf",
            expect: "",
        },
    );
    let (out, json) = process(&[bad, examples().join("deposit.pdf")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json["records"].as_array().unwrap().len(), 6);
    let files = json["files"].as_array().unwrap();
    assert!(files[0]["error"].as_str().unwrap().contains("password"));
    assert!(files[1]["error"].is_null());
}

#[test]
fn a_scan_without_text_is_reported_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let scan = dir.path().join("scan.pdf");
    fixtures::write_scan_pdf(
        &scan,
        &fixtures::ScanOptions {
            pages: 3,
            dpi: 100,
            distinct: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let (out, json) = process(&[scan]);
    assert!(out.status.success());
    let errors = json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["pages"], serde_json::json!([1, 2, 3]));
    assert!(errors[0]["reason"]
        .as_str()
        .unwrap()
        .contains("GEMINI_API_KEY"));
}

#[test]
fn invalid_configuration_names_the_variable() {
    let out = worker()
        .env("RENDER_DPI", "fast")
        .env("MEMORY_WARNING_MB", "500")
        .args(["process", "x.pdf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("RENDER_DPI"), "{stderr}");
    assert!(stderr.contains("MEMORY_WARNING_MB"), "{stderr}");
}

/// `LOG_FORMAT=json`: every log line is one JSON object (for Heroku log drains), with its level
/// and message; an unknown format is refused at start-up, by name.
#[test]
fn json_logs_are_one_object_per_line() {
    let out = worker()
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .arg("process")
        .arg("--json")
        .arg(examples().join("online-gifts.csv"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines at info");
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        assert!(v.is_object(), "{line}");
        assert!(v["level"].is_string(), "{line}");
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["message"].is_string(), "{line}");
    }

    let out = worker()
        .env("LOG_FORMAT", "xml")
        .args(["process", "x.pdf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LOG_FORMAT"), "{stderr}");
}
