//! Arbitrary bytes into the readers of untrusted input: they answer (a value or a typed error),
//! never panic, and what they give back stays bounded by what came in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fom_core::extract::csv::read_csv;
use fom_core::extract::Outcome;
use fom_core::qbo::fault;
use proptest::prelude::*;

/// Bytes that look a little like a CSV export: separators, quotes, line ends, digits, money,
/// non-ASCII and invalid UTF-8 all common.
fn csvish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b",".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"Name,Amount,Date,Email\n".to_vec()),
        Just(b"$1,234.50".to_vec()),
        Just(b"2026-03-01".to_vec()),
        Just("Zoë Ångström".as_bytes().to_vec()),
        Just(vec![0xff, 0xfe, 0x00]),
        prop::collection::vec(any::<u8>(), 0..16),
        "[A-Za-z0-9 .@-]{0,12}".prop_map(String::into_bytes),
    ];
    prop::collection::vec(piece, 0..200).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_csv_reader_answers_any_bytes(bytes in csvish()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gifts.csv");
        std::fs::write(&path, &bytes).unwrap();
        let lines = bytes.split(|b| *b == b'\n').count();
        match read_csv(&path, "gifts.csv", 50) {
            Ok(outcomes) => {
                // At most one outcome per line, plus one for the file itself.
                prop_assert!(outcomes.len() <= lines + 1, "{} outcomes from {lines} lines", outcomes.len());
                for o in &outcomes {
                    if let Outcome::Error(e) = o {
                        prop_assert!(e.reason.len() <= 2_000 + bytes.len(), "{}", e.reason.len());
                    }
                }
            }
            Err(e) => {
                let text = e.to_string();
                prop_assert!(!text.is_empty() && text.len() < 1_000, "{text}");
            }
        }
    }

    #[test]
    fn the_fault_parser_answers_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            if let Some(f) = fault::parse(&v) {
                let _ = f.action(400);
                prop_assert!(f.describe().chars().count() <= 3 * 1_100 + 100);
            }
        }
    }

    #[test]
    fn a_fault_s_words_stay_bounded(
        n in 0usize..200,
        message in "\\PC{0,3000}",
        detail in "\\PC{0,3000}",
        code in "[0-9A-Za-z]{0,40}",
    ) {
        let errors: Vec<serde_json::Value> = (0..n)
            .map(|_| serde_json::json!({"Message": message, "Detail": detail, "code": code}))
            .collect();
        let body = serde_json::json!({"Fault": {"Error": errors, "type": "ValidationFault"}});
        let f = fault::parse(&body).unwrap();
        prop_assert!(f.errors.len() <= 20);
        let d = f.describe();
        // Three errors of at most 500 characters of message and of detail, and their codes.
        prop_assert!(d.chars().count() <= 3 * (501 + 501 + 41 + 8) + 30, "{}", d.chars().count());
        if n > 3 {
            prop_assert!(d.ends_with(&format!("and {} more", n.min(20) - 3)), "{d}");
        }
    }
}
