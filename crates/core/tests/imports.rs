//! Every export profile against a file in its platform's own layout (tests/fixtures/exports,
//! each with the gifts and skipped lines it must give: docs/IMPORTS.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use fom_core::donation::Donation;
use fom_core::extract::csv::{read_export, ReadOptions};
use fom_core::extract::Outcome;
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/exports")
}

/// Warnings the fixtures pin (others may come and go with the rules).
const PINNED: &[&str] = &[
    "partial_refund",
    "pending",
    "currency_not_usd",
    "employer_match",
];

fn gift_view(r: &Donation) -> Value {
    let warnings: Vec<&str> = r
        .issues
        .iter()
        .map(|i| i.code.as_str())
        .filter(|c| PINNED.contains(c))
        .collect();
    json!({
        "line": r.provenance.line,
        "amount": r.amount.map(|a| format!("{a:.2}")),
        "date": r.payment_date.map(|d| d.to_string()),
        "reference": r.payment_ref,
        "name": r.payer.aliases.first(),
        "organization": r.payer.organization_name,
        "anonymous": r.payer.anonymous,
        "email": r.contact.email,
        "method": if r.payment_method.is_some_and(|m| m.is_check()) { "check" } else { "online" },
        "warnings": warnings,
    })
}

fn expected_gift(g: &Value) -> Value {
    json!({
        "line": g["line"],
        "amount": g["amount"],
        "date": g["date"],
        "reference": g["reference"],
        "name": g["name"],
        "organization": g["organization"],
        "anonymous": g["anonymous"],
        "email": g["email"],
        "method": g["method"],
        "warnings": g["warnings"],
    })
}

#[test]
fn every_profile_reads_its_own_export() {
    let mut seen = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".expected.json"))
        .collect();
    entries.sort();
    for expected_path in entries {
        let want: Value =
            serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap();
        let file = want["file"].as_str().unwrap();
        let read = read_export(&fixtures().join(file), file, &ReadOptions::new(4_000))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let layout = read.summary.layout.clone().unwrap();
        assert_eq!(layout.read_by, want["profile"], "{file}: read by");
        assert_eq!(
            layout.header_line,
            want["header_line"].as_u64().unwrap(),
            "{file}: header line"
        );

        let got: Vec<Value> = read
            .outcomes
            .iter()
            .map(|o| match o {
                Outcome::Record(r) => gift_view(r),
                other => panic!("{file}: {other:?}"),
            })
            .collect();
        let wanted: Vec<Value> = want["gifts"]
            .as_array()
            .unwrap()
            .iter()
            .map(expected_gift)
            .collect();
        for (g, w) in got.iter().zip(&wanted) {
            assert_eq!(g, w, "{file}: gift");
        }
        assert_eq!(got.len(), wanted.len(), "{file}: number of gifts");

        // Skipped lines, one per physical line (a quoted record spanning lines counts each).
        let mut skipped: Vec<(u64, String)> = read
            .summary
            .skipped_lines
            .iter()
            .flat_map(|s| (s.line..=s.last_line).map(move |l| (l, s.reason.as_str().to_string())))
            .collect();
        skipped.sort();
        let mut want_skipped: Vec<(u64, String)> = want["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["line"].as_u64().unwrap(),
                    s["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        want_skipped.sort();
        assert_eq!(skipped, want_skipped, "{file}: skipped lines");
        seen += 1;
    }
    assert!(seen >= 11, "{seen} fixtures");
}

#[test]
fn the_file_row_says_what_was_read_and_skipped() {
    let file = "paypal_activity.csv";
    let read = read_export(&fixtures().join(file), file, &ReadOptions::new(4_000)).unwrap();
    assert_eq!(
        read.summary.layout.as_ref().unwrap().label,
        "PayPal activity download"
    );
    assert_eq!(
        read.summary.sentence(),
        "5 gifts read; skipped: 1 refund, 1 pending payment, 1 withdrawal, 1 transfer, 1 fee, \
         2 currency conversions"
    );
}

#[test]
fn pending_payments_are_kept_with_a_warning_when_asked() {
    let file = "paypal_activity.csv";
    let opts = ReadOptions {
        keep_pending: true,
        ..ReadOptions::new(4_000)
    };
    let read = read_export(&fixtures().join(file), file, &opts).unwrap();
    let pending: Vec<&Donation> = read
        .outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Record(r) if r.has_issue("pending") => Some(&**r),
            _ => None,
        })
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].provenance.line, Some(5));
    assert!(!read
        .summary
        .skipped
        .contains_key(&fom_core::extract::profiles::SkipReason::Pending));
}

/// A long text PDF that is not a deposit report (a thesis: numbered headings, paragraphs,
/// page numbers) gives no rows and one message naming its pages, not a row per heading.
#[test]
fn a_long_document_that_is_no_deposit_gives_one_message_and_no_rows() {
    use fom_core::extract::text::TextExtractor;
    use fom_core::extract::Extractor;
    use fom_core::pdf::{PdfConfig, PdfPages};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("thesis.pdf");
    let pages: Vec<Vec<String>> = (1..=117)
        .map(|p| {
            let mut lines = vec![format!(
                "{}. Chapter {p}: Community food systems",
                p % 12 + 1
            )];
            lines.push(format!(
                "{}.{} Background and method",
                p % 12 + 1,
                p % 5 + 1
            ));
            lines.push("Food pantries in rural counties serve households whose".into());
            lines.push("incomes fall below the poverty line, as Smith (2019) shows.".into());
            lines.push("Riverbend County, WI 53703".into());
            lines.push(format!("{p}"));
            lines
        })
        .collect();
    fom_core::pdf::synth::write_text_pdf(&path, &pages).unwrap();
    let mut doc = TextExtractor.begin("thesis.pdf");
    let mut out = Vec::new();
    for page in PdfPages::open(&path, &PdfConfig::default()).unwrap() {
        out.extend(doc.push(&page.unwrap()));
    }
    out.extend(doc.finish());
    let records = out
        .iter()
        .filter(|o| matches!(o, Outcome::Record(_)))
        .count();
    assert_eq!(records, 0);
    let errors: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Outcome::Error(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].pages.len(), 117);
    assert!(
        errors[0].reason.starts_with(
            "no donations found on pages 1-117: the offline reader reads FoM deposit reports"
        ),
        "{}",
        errors[0].reason
    );
}
