//! `fom-worker report` on the examples matches the committed golden file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn report(args: &[&str]) -> (bool, String) {
    let examples = fom_testkit::repo_root().join("examples");
    let out = Command::new(env!("CARGO_BIN_EXE_fom-worker"))
        .arg("report")
        .args(args)
        .arg(examples.join("deposit.pdf"))
        .arg(examples.join("online-gifts.csv"))
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn text_report_matches_the_golden_file() {
    let (ok, text) = report(&[]);
    assert!(ok);
    let golden_path = fom_testkit::repo_root().join("examples/deposit-report.txt");
    let golden = std::fs::read_to_string(&golden_path).unwrap();
    assert!(
        text == golden,
        "report differs from {}; if the change is intended, regenerate it with \
         `fom-worker report examples/deposit.pdf examples/online-gifts.csv > examples/deposit-report.txt`\n\
         --- got ---\n{text}",
        golden_path.display()
    );
}

#[test]
fn csv_export_has_every_record_and_neutral_cells() {
    let (ok, csv) = report(&["--csv"]);
    assert!(ok);
    let mut reader = csv::ReaderBuilder::new().from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 10);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[0][col("payment_ref")], "004512");
    assert_eq!(&rows[0][col("amount")], "2000.00");
    assert_eq!(&rows[9][col("zip")], "04101");
    for row in &rows {
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "unneutralised cell {cell:?}"
            );
        }
    }
}

#[test]
fn the_report_date_can_be_given() {
    let (ok, text) = report(&["--date", "04/01/2026"]);
    assert!(ok);
    assert!(text.starts_with("Deposit Report: 04/01/2026\n"), "{text}");
}
