//! Arbitrary bytes into the readers of untrusted input: they answer (a value or a typed error),
//! never panic, and what they give back stays bounded by what came in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fom_core::extract::csv::{read_csv, read_export, ReadOptions};
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
                // At most two gifts per line (a gift and its employer's match).
                prop_assert!(outcomes.len() <= 2 * lines + 1, "{} outcomes from {lines} lines", outcomes.len());
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

/// One line of a Stripe payments export: a charge in any state, or a totals line.
#[derive(Debug, Clone)]
enum StripeLine {
    Charge {
        status: &'static str,
        cents: i64,
        refunded_cents: i64,
    },
    Garbled(String),
    Totals(i64),
    Blank,
}

fn stripe_line() -> impl Strategy<Value = StripeLine> {
    prop_oneof![
        6 => (
            prop::sample::select(vec!["Paid", "Failed", "Refunded", "Pending", "Canceled", "paid"]),
            -50_000i64..500_000,
            prop_oneof![Just(0i64), 0i64..500_000],
        )
            .prop_map(|(status, cents, refunded_cents)| StripeLine::Charge { status, cents, refunded_cents }),
        1 => "[a-z $,.-]{0,12}".prop_map(StripeLine::Garbled),
        1 => (0i64..5_000_000).prop_map(StripeLine::Totals),
        1 => Just(StripeLine::Blank),
    ]
}

fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("\"{sign}{}.{:02}\"", (cents.abs() / 100), cents.abs() % 100)
}

fn stripe_file(lines: &[StripeLine]) -> String {
    let mut out = String::from(
        "id,Created date (UTC),Amount,Amount Refunded,Currency,Status,Card Name,Customer Email\n",
    );
    for (i, l) in lines.iter().enumerate() {
        match l {
            StripeLine::Charge {
                status,
                cents,
                refunded_cents,
            } => out.push_str(&format!(
                "ch_{i},2026-03-{:02} 10:00:00,{},{},usd,{status},Donor {i},d{i}@example.org\n",
                i % 28 + 1,
                money(*cents),
                money(*refunded_cents)
            )),
            StripeLine::Garbled(amount) => out.push_str(&format!(
                "ch_{i},2026-03-01 10:00:00,\"{amount}\",0.00,usd,Paid,Donor {i},\n"
            )),
            StripeLine::Totals(cents) => out.push_str(&format!("Total,,{},,,,,\n", money(*cents))),
            StripeLine::Blank => out.push_str(",,,,,,,\n"),
        }
    }
    out
}

/// What a record is, for comparing two readings.
fn shape(o: &Outcome) -> String {
    match o {
        Outcome::Record(r) => format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}",
            r.provenance.line, r.amount, r.payment_ref, r.payment_date, r.payer.aliases
        ),
        Outcome::Error(e) => format!("error {}", e.reason),
        Outcome::Total(t) => format!("total {:?}", t.amount),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// From a platform's export only received gifts come out: every row has a positive amount,
    /// none is a totals line, none is a failed, refunded or pending charge, and reading the
    /// file again gives the same rows.
    #[test]
    fn a_profiled_export_gives_only_received_gifts(lines in prop::collection::vec(stripe_line(), 0..60)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stripe.csv");
        std::fs::write(&path, stripe_file(&lines)).unwrap();
        let read = read_export(&path, "stripe.csv", &ReadOptions::new(1_000)).unwrap();
        prop_assert_eq!(
            read.summary.layout.as_ref().map(|l| l.read_by.as_str()),
            Some("stripe_payments")
        );
        for o in &read.outcomes {
            let Outcome::Record(r) = o else {
                prop_assert!(false, "an error outcome from a profiled file");
                continue;
            };
            prop_assert!(r.amount.is_some_and(|a| a > rust_decimal::Decimal::ZERO), "{:?}", r.amount);
            let line = r.provenance.line.unwrap_or(0) as usize;
            // Line 1 is the header; line n + 2 is lines[n].
            let source = &lines[line - 2];
            match source {
                StripeLine::Charge { status, cents, refunded_cents } => {
                    prop_assert!(status.eq_ignore_ascii_case("paid"), "{status} became a gift");
                    prop_assert!(*cents > 0 && refunded_cents < cents, "{source:?}");
                }
                other => prop_assert!(false, "{other:?} became a gift"),
            }
        }
        let wanted = lines.iter().filter(|l| matches!(l,
            StripeLine::Charge { status, cents, refunded_cents }
                if status.eq_ignore_ascii_case("paid") && *cents > 0 && refunded_cents < cents
        )).count();
        prop_assert_eq!(read.outcomes.len(), wanted);
        // Every line is a gift or a counted skip.
        let skipped: u64 = read.summary.skipped.values().sum();
        prop_assert_eq!(skipped as usize + wanted, lines.len());
        let again = read_export(&path, "stripe.csv", &ReadOptions::new(1_000)).unwrap();
        let a: Vec<String> = read.outcomes.iter().map(shape).collect();
        let b: Vec<String> = again.outcomes.iter().map(shape).collect();
        prop_assert_eq!(a, b);
    }

    /// A sheet typed by hand: its totals line never becomes a row, whatever it says.
    #[test]
    fn a_totals_line_never_becomes_a_row(
        gifts in prop::collection::vec((1i64..1_000_000, "[A-Z][a-z]{1,8} [A-Z][a-z]{1,10}"), 1..20),
        word in prop::sample::select(vec!["Total", "TOTAL", "Totals", "Grand Total", "Sum", "Subtotal", "Total:"]),
        column in 0usize..3,
    ) {
        let mut text = String::from("Date,Name,Check #,Amount\n");
        let mut sum = 0;
        for (i, (cents, name)) in gifts.iter().enumerate() {
            sum += cents;
            text.push_str(&format!("3/{}/2026,{name},{},{}\n", i % 28 + 1, 1000 + i, money(*cents)));
        }
        let mut cells = vec![String::new(); 4];
        cells[column] = word.to_string();
        cells[3] = money(sum);
        text.push_str(&cells.join(","));
        text.push('\n');
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sheet.csv");
        std::fs::write(&path, &text).unwrap();
        let read = read_export(&path, "sheet.csv", &ReadOptions::new(1_000)).unwrap();
        prop_assert_eq!(read.outcomes.len(), gifts.len());
        prop_assert_eq!(
            read.summary.skipped.get(&fom_core::extract::profiles::SkipReason::Totals),
            Some(&1)
        );
    }
}
