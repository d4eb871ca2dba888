//! End-to-end: what `make demo` runs, through the real release-or-debug binaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn demo_files_produce_records_and_exit_zero() {
    let worker = fom_testkit::bin_path("fom-worker", "fom-worker");
    let examples = fom_testkit::repo_root().join("examples");
    let out = Command::new(worker)
        .arg("process")
        .arg("--json")
        .arg(examples.join("deposit.pdf"))
        .arg(examples.join("online-gifts.csv"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total: rust_decimal_free::Cents = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| rust_decimal_free::cents(r["amount"].as_str().unwrap()))
        .sum();
    // The report's own total ($2,810.00), the slip's new $40.00 (its two repeats merge away),
    // and the CSV's $1,150.00.
    assert_eq!(total, 400_000);
}

/// Exact sums without floats, so the test cannot pass by rounding luck.
mod rust_decimal_free {
    pub type Cents = i64;
    pub fn cents(s: &str) -> Cents {
        let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
        let frac = format!("{frac:0<2}");
        int.parse::<i64>().unwrap() * 100 + frac[..2].parse::<i64>().unwrap()
    }
}
