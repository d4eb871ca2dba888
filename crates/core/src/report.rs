//! The deposit report: FoM's text layout and a CSV export of every field.
//!
//! The text layout is the one the treasurer already pastes into FoM's deposit e-mails
//! (docs/RULES.md#deposit-report); the CSV is for spreadsheets, so every cell is guarded
//! against formula injection because donor-supplied text (names, memos) ends up in it.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::donation::{
    format_amount, Donation, IssueLevel, MatchStatus, PaymentMethod, SourceKind, SyncStatus,
};

/// Dates as FoM's reports print them.
const US_DATE: &str = "%m/%d/%Y";
/// Dates in the CSV: sortable and unambiguous.
const ISO_DATE: &str = "%Y-%m-%d";
/// Entry lines sit under the entry's name, past the "1. " prefix.
const INDENT: &str = "   ";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("could not write the CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("could not finish the CSV: {0}")]
    Io(#[from] std::io::Error),
    #[error("the CSV is not valid UTF-8: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
}

/// Sum of the amounts that are known; a missing amount counts as nothing rather than a guess.
pub fn total(records: &[Donation]) -> Decimal {
    records.iter().filter_map(|r| r.amount).sum()
}

/// The report is dated by its deposit (the latest one when several are listed), never by the
/// day it happens to be printed, unless no record knows its deposit date.
pub fn report_date_for(records: &[Donation], today: NaiveDate) -> NaiveDate {
    records
        .iter()
        .filter_map(|r| r.deposit_date)
        .max()
        .unwrap_or(today)
}

/// FoM's deposit report, entries in the order given.
pub fn text_report(records: &[Donation], report_date: NaiveDate) -> String {
    let sum = format_amount(total(records));
    let mut out = format!(
        "Deposit Report: {}\nBelow is a list of deposits totaling ${sum}:\n\n",
        report_date.format(US_DATE)
    );
    for (i, record) in records.iter().enumerate() {
        for (n, line) in entry_lines(record).iter().enumerate() {
            if n == 0 {
                out.push_str(&format!("{}. {line}\n", i + 1));
            } else {
                out.push_str(&format!("{INDENT}{line}\n"));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!("Total Deposits: ${sum}\n"));
    out
}

/// The report's closing line once the deposit's bank deposit is in QuickBooks: "Recorded in
/// QuickBooks as bank deposit #512 into Checking on 11/20/2026: $1,240.00 (12 receipts)".
pub fn bank_deposit_line(b: &crate::qbo::bank::BankDeposit) -> Option<String> {
    let id = b.qbo_id.as_deref()?;
    let total = b.total.map(format_amount).unwrap_or_default();
    Some(format!(
        "Recorded in QuickBooks as bank deposit #{id} into {} on {}: ${total} ({} receipt{})\n",
        b.account_name.as_deref().unwrap_or("the bank account"),
        b.txn_date.format(US_DATE),
        b.receipts,
        if b.receipts == 1 { "" } else { "s" }
    ))
}

/// The lines of one entry, without numbering or indentation.
fn entry_lines(r: &Donation) -> Vec<String> {
    let mut lines = Vec::with_capacity(6);
    let name = present(r.payer.organization_name.as_deref())
        .or_else(|| r.payer.aliases.iter().find_map(|a| present(Some(a))))
        .unwrap_or_else(|| "(no name)".to_string());
    lines.push(name);
    if let Some(street) = present(r.contact.address_line_1.as_deref()) {
        lines.push(street);
    }
    if let Some(city_line) = city_line(r) {
        lines.push(city_line);
    }
    lines.push(match r.amount {
        Some(amount) => {
            let date = r.payment_date.map_or_else(
                || "(no date)".to_string(),
                |d| d.format(US_DATE).to_string(),
            );
            format!("${} on {date}", format_amount(amount))
        }
        None => "Amount missing".to_string(),
    });
    if let Some(payment_line) = payment_line(r) {
        lines.push(payment_line);
    }
    if let Some(memo) = present(r.memo.as_deref()) {
        lines.push(format!("Memo: {memo}"));
    }
    lines
}

/// "City, ST ZIP" from whatever parts exist, so a partial address never leaves a dangling comma.
fn city_line(r: &Donation) -> Option<String> {
    let city = present(r.contact.city.as_deref());
    let state_zip = [
        present(r.contact.state.as_deref()),
        present(r.contact.zip.as_deref()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    match (city, state_zip.is_empty()) {
        (Some(c), false) => Some(format!("{c}, {state_zip}")),
        (Some(c), true) => Some(c),
        (None, false) => Some(state_zip),
        (None, true) => None,
    }
}

/// Checks show their number; online gifts only say so, because a processor's transaction id
/// means nothing to the reader of a deposit report.
fn payment_line(r: &Donation) -> Option<String> {
    let reference = present(r.payment_ref.as_deref());
    match r.payment_method {
        Some(PaymentMethod::Online) => Some("Online Donation".to_string()),
        Some(m) if m.is_check() => Some(format!(
            "Check No. {}",
            reference.unwrap_or_else(|| "(no number)".to_string())
        )),
        _ => reference.map(|n| format!("Check No. {n}")),
    }
}

/// A value worth printing, on one line: blank text counts as absent, and line breaks inside a
/// value (memos, pasted addresses) would otherwise break the entry's layout.
fn present(value: Option<&str>) -> Option<String> {
    let joined = value?.split_whitespace().collect::<Vec<_>>().join(" ");
    (!joined.is_empty()).then_some(joined)
}

/// FoM's deposit spreadsheet columns, in the order of its own sheet, then where each row stands
/// with QuickBooks.
const FOM_HEADER: [&str; 19] = [
    "Lookup",
    "Salutation",
    "Donor Name",
    "Check No.",
    "Gift Amount",
    "Check Date",
    "Gift Date",
    "Deposit Date",
    "Deposit Method",
    "Memo",
    "First Name",
    "Last Name",
    "Full Name",
    "Organization Name",
    "Address - Line 1",
    "City",
    "State",
    "ZIP",
    "QuickBooks",
];

/// The deposit as FoM's spreadsheet has it: one row per gift in FoM's columns, dates as
/// MM/DD/YYYY, amounts with two decimals, and a Total line. `kept_out` says why a row stays out
/// of QuickBooks (it is listed, marked).
pub fn fom_csv(
    records: &[Donation],
    kept_out: &dyn Fn(&Donation) -> Option<&'static str>,
) -> Result<String, ReportError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(FOM_HEADER)?;
    let date = |d: Option<NaiveDate>| d.map(|d| d.format(US_DATE).to_string()).unwrap_or_default();
    let text = |v: &Option<String>| present(v.as_deref()).unwrap_or_default();
    for r in records {
        let full = r.payer.aliases.first().and_then(|a| present(Some(a)));
        let (first, last) = match &full {
            Some(n) if r.payer.organization_name.is_none() => crate::qbo::layout::split_name(n),
            _ => (None, None),
        };
        let check_no = match (r.payment_method, present(r.payment_ref.as_deref())) {
            (Some(PaymentMethod::Online), _) => "Online Donation".to_string(),
            (_, Some(n)) => n,
            (_, None) => String::new(),
        };
        let quickbooks = match (&r.qbo.sales_receipt_id, kept_out(r)) {
            (Some(id), _) => format!("Sent #{id}"),
            (None, Some(why)) => format!("Kept out: {why}"),
            (None, None) if r.qbo.sync_status == SyncStatus::Error => {
                format!("Error: {}", r.qbo.last_error.as_deref().unwrap_or_default())
            }
            (None, None) => "Not sent".to_string(),
        };
        let row = [
            text(&r.qbo.display_name),
            text(&r.payer.salutation),
            r.display_name()
                .and_then(|n| present(Some(n)))
                .unwrap_or_default(),
            check_no,
            r.amount
                .map(|a| format!("{:.2}", a.round_dp(2)))
                .unwrap_or_default(),
            date(r.check_date),
            date(r.payment_date),
            date(r.deposit_date),
            text(&r.deposit_method),
            text(&r.memo),
            first.unwrap_or_default(),
            last.unwrap_or_default(),
            full.unwrap_or_default(),
            text(&r.payer.organization_name),
            text(&r.contact.address_line_1),
            text(&r.contact.city),
            text(&r.contact.state),
            text(&r.contact.zip),
            quickbooks,
        ];
        writer.write_record(row.map(neutralize))?;
    }
    let mut total_row: [String; 19] = Default::default();
    total_row[2] = "Total".into();
    total_row[4] = format!("{:.2}", total(records).round_dp(2));
    writer.write_record(total_row)?;
    let bytes = writer.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes)?)
}

/// CSV columns, in order; `csv_row` must produce the same number of cells.
const CSV_HEADER: [&str; 34] = [
    "id",
    "payment_ref",
    "payment_method",
    "amount",
    "payment_date",
    "check_date",
    "postmark_date",
    "deposit_date",
    "deposit_method",
    "memo",
    "name",
    "aliases",
    "salutation",
    "organization_name",
    "address_line_1",
    "city",
    "state",
    "zip",
    "email",
    "phone",
    "source_file",
    "source_pages",
    "source_line",
    "source_kind",
    "qbo_customer_id",
    "qbo_display_name",
    "match_status",
    "match_score",
    "sales_receipt_id",
    "sync_status",
    "last_error",
    "merged",
    "merge_count",
    "issues",
];

/// Every record field as a spreadsheet row, values as stored (no proper-casing, exact amounts).
pub fn csv_export(records: &[Donation]) -> Result<String, ReportError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_HEADER)?;
    for record in records {
        writer.write_record(csv_row(record).map(neutralize))?;
    }
    let bytes = writer.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes)?)
}

fn csv_row(r: &Donation) -> [String; 34] {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let date = |d: Option<NaiveDate>| {
        d.map(|d| d.format(ISO_DATE).to_string())
            .unwrap_or_default()
    };
    [
        r.id.to_string(),
        text(&r.payment_ref),
        r.payment_method
            .map(method_name)
            .unwrap_or_default()
            .to_string(),
        r.amount.map(|a| a.to_string()).unwrap_or_default(),
        date(r.payment_date),
        date(r.check_date),
        date(r.postmark_date),
        date(r.deposit_date),
        text(&r.deposit_method),
        text(&r.memo),
        r.payer.aliases.first().cloned().unwrap_or_default(),
        r.payer.aliases.join(" | "),
        text(&r.payer.salutation),
        text(&r.payer.organization_name),
        text(&r.contact.address_line_1),
        text(&r.contact.city),
        text(&r.contact.state),
        text(&r.contact.zip),
        text(&r.contact.email),
        text(&r.contact.phone),
        r.provenance.file.clone(),
        r.provenance
            .pages
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        r.provenance.line.map(|l| l.to_string()).unwrap_or_default(),
        kind_name(r.provenance.kind).to_string(),
        text(&r.qbo.customer_id),
        text(&r.qbo.display_name),
        match_status_name(r.qbo.match_status).to_string(),
        r.qbo.match_score.map(|s| s.to_string()).unwrap_or_default(),
        text(&r.qbo.sales_receipt_id),
        sync_status_name(r.qbo.sync_status).to_string(),
        text(&r.qbo.last_error),
        if r.merge_history.is_empty() {
            "no"
        } else {
            "yes"
        }
        .to_string(),
        r.merge_history.len().to_string(),
        r.issues
            .iter()
            .map(|i| format!("{}: {}", level_name(i.level), i.message))
            .collect::<Vec<_>>()
            .join(" | "),
    ]
}

/// Spreadsheets run a cell that starts with one of these as a formula; a leading apostrophe
/// makes them show it as text. Applied to every cell, numbers included ("-5.00"), because a
/// rule that tries to tell harmless numbers from formulas is a rule that can be fooled.
pub(crate) fn neutralize(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

// Names match the records' serde (snake_case) spelling, so the CSV and the JSON agree.

fn method_name(m: PaymentMethod) -> &'static str {
    match m {
        PaymentMethod::HandwrittenCheck => "handwritten_check",
        PaymentMethod::PrintedCheck => "printed_check",
        PaymentMethod::MoneyOrder => "money_order",
        PaymentMethod::Check => "check",
        PaymentMethod::Online => "online",
    }
}

fn kind_name(k: SourceKind) -> &'static str {
    match k {
        SourceKind::Check => "check",
        SourceKind::Envelope => "envelope",
        SourceKind::DepositList => "deposit_list",
        SourceKind::Csv => "csv",
        SourceKind::Unknown => "unknown",
    }
}

fn match_status_name(s: MatchStatus) -> &'static str {
    match s {
        MatchStatus::Unmatched => "unmatched",
        MatchStatus::NewDonor => "new_donor",
        MatchStatus::NeedsReview => "needs_review",
        MatchStatus::AddressChanged => "address_changed",
        MatchStatus::Matched => "matched",
    }
}

fn sync_status_name(s: SyncStatus) -> &'static str {
    match s {
        SyncStatus::NotSent => "not_sent",
        SyncStatus::Sent => "sent",
        SyncStatus::Error => "error",
    }
}

fn level_name(l: IssueLevel) -> &'static str {
    match l {
        IssueLevel::Warning => "warning",
        IssueLevel::Error => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::donation::{Issue, MergeEntry, Source};

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// A check with every report field set; tests knock fields out.
    fn check(name: &str, amount: &str) -> Donation {
        let mut d = Donation::new("file.pdf");
        d.payer.aliases = vec![name.to_string()];
        d.amount = Some(dec(amount));
        d.payment_date = Some(day(2026, 3, 2));
        d.payment_method = Some(PaymentMethod::HandwrittenCheck);
        d.payment_ref = Some("1001".into());
        d
    }

    fn entry(d: &Donation) -> String {
        text_report(std::slice::from_ref(d), day(2026, 3, 14))
    }

    fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap().iter().map(String::from).collect();
        let rows = reader
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        (header, rows)
    }

    #[test]
    fn full_report_matches_fom_layout() {
        let mut church = check("Pastor Jane Doe", "2000");
        church.payer.organization_name = Some("St. John Lutheran Church".into());
        church.contact.address_line_1 = Some("1200 Oak Avenue".into());
        church.contact.city = Some("Philadelphia".into());
        church.contact.state = Some("PA".into());
        church.contact.zip = Some("19103".into());
        church.payment_method = Some(PaymentMethod::PrintedCheck);
        church.payment_ref = Some("004512".into());
        church.memo = Some("Clean water project".into());
        let mut online = Donation::new("gifts.csv");
        online.payer.aliases = vec!["Mary Major".into()];
        online.amount = Some(dec("810.00"));
        online.payment_date = Some(day(2026, 3, 5));
        online.payment_method = Some(PaymentMethod::Online);
        online.payment_ref = Some("ch_3PzQ9x".into());

        let expected = "\
Deposit Report: 03/14/2026
Below is a list of deposits totaling $2,810.00:

1. St. John Lutheran Church
   1200 Oak Avenue
   Philadelphia, PA 19103
   $2,000.00 on 03/02/2026
   Check No. 004512
   Memo: Clean water project

2. Mary Major
   $810.00 on 03/05/2026
   Online Donation

Total Deposits: $2,810.00
";
        assert_eq!(text_report(&[church, online], day(2026, 3, 14)), expected);
    }

    #[test]
    fn amount_lines_use_thousands_separators() {
        for (amount, line) in [
            ("2000", "$2,000.00 on 03/02/2026"),
            ("1234567.89", "$1,234,567.89 on 03/02/2026"),
            ("25.5", "$25.50 on 03/02/2026"),
            ("999", "$999.00 on 03/02/2026"),
        ] {
            let report = entry(&check("A", amount));
            assert!(
                report.contains(&format!("\n   {line}\n")),
                "{amount}: {report}"
            );
        }
    }

    #[test]
    fn payment_lines_by_method() {
        let cases: [(Option<PaymentMethod>, Option<&str>, Option<&str>); 7] = [
            (
                Some(PaymentMethod::HandwrittenCheck),
                Some("0079"),
                Some("Check No. 0079"),
            ),
            (
                Some(PaymentMethod::PrintedCheck),
                Some("004512"),
                Some("Check No. 004512"),
            ),
            (
                Some(PaymentMethod::HandwrittenCheck),
                None,
                Some("Check No. (no number)"),
            ),
            (
                Some(PaymentMethod::Online),
                Some("pi_9Zx81"),
                Some("Online Donation"),
            ),
            (Some(PaymentMethod::Online), None, Some("Online Donation")),
            (None, Some("0079"), Some("Check No. 0079")),
            (None, None, None),
        ];
        for (method, reference, want) in cases {
            let mut d = check("A", "10");
            d.payment_method = method;
            d.payment_ref = reference.map(String::from);
            let report = entry(&d);
            match want {
                Some(line) => assert!(report.contains(&format!("\n   {line}\n")), "{report}"),
                None => {
                    assert!(!report.contains("Check No."), "{report}");
                    assert!(!report.contains("Online Donation"), "{report}");
                }
            }
            if method == Some(PaymentMethod::Online) {
                assert!(!report.contains("pi_9Zx81"), "online id leaked: {report}");
            }
        }
    }

    #[test]
    fn memo_line_only_when_present() {
        for (memo, want) in [
            (Some("Building fund"), Some("Memo: Building fund")),
            (Some("   "), None),
            (Some(""), None),
            (None, None),
            (Some("two\nlines"), Some("Memo: two lines")),
        ] {
            let mut d = check("A", "10");
            d.memo = memo.map(String::from);
            let report = entry(&d);
            match want {
                Some(line) => assert!(report.contains(&format!("\n   {line}\n")), "{report}"),
                None => assert!(!report.contains("Memo:"), "{report}"),
            }
        }
    }

    #[test]
    fn missing_date_is_shown_not_invented() {
        let mut d = check("A", "50");
        d.payment_date = None;
        assert!(entry(&d).contains("\n   $50.00 on (no date)\n"));
    }

    #[test]
    fn missing_amount_is_shown_and_left_out_of_total() {
        let mut missing = check("B", "0");
        missing.amount = None;
        let records = [check("A", "100"), missing];
        let report = text_report(&records, day(2026, 3, 14));
        assert!(report.contains("\n2. B\n   Amount missing\n"), "{report}");
        assert!(report.contains("totaling $100.00:"), "{report}");
        assert!(report.ends_with("Total Deposits: $100.00\n"), "{report}");
        assert_eq!(total(&records), dec("100"));
    }

    #[test]
    fn city_line_variants() {
        /// City, state, ZIP, and the expected line.
        type Case = (
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
        );
        let cases: [Case; 6] = [
            (
                Some("Philadelphia"),
                Some("PA"),
                Some("19103"),
                Some("Philadelphia, PA 19103"),
            ),
            (Some("Boston"), None, None, Some("Boston")),
            (Some("Boston"), Some("MA"), None, Some("Boston, MA")),
            (None, Some("MA"), Some("02134"), Some("MA 02134")),
            (Some(" "), None, Some(""), None),
            (None, None, None, None),
        ];
        for (city, state, zip, want) in cases {
            let mut d = check("A", "10");
            d.contact.city = city.map(String::from);
            d.contact.state = state.map(String::from);
            d.contact.zip = zip.map(String::from);
            let report = entry(&d);
            let lines: Vec<&str> = report.lines().collect();
            // Name, then (city line), then the amount line.
            let after_name = lines[4];
            match want {
                Some(line) => assert_eq!(after_name, format!("   {line}")),
                None => assert!(after_name.starts_with("   $10.00"), "{lines:?}"),
            }
        }
    }

    #[test]
    fn name_line_falls_back() {
        let mut org = check("Person", "1");
        org.payer.organization_name = Some("Acme LLC".into());
        let mut blank_org = check("Person", "1");
        blank_org.payer.organization_name = Some("  ".into());
        let mut nobody = check("x", "1");
        nobody.payer.aliases.clear();
        for (d, want) in [
            (org, "1. Acme LLC"),
            (blank_org, "1. Person"),
            (nobody, "1. (no name)"),
        ] {
            let report = entry(&d);
            assert_eq!(report.lines().nth(3), Some(want), "{report}");
            // Organisation only: no person line between the name and the amount.
            assert_eq!(
                report.lines().nth(4),
                Some("   $1.00 on 03/02/2026"),
                "{report}"
            );
        }
    }

    #[test]
    fn entries_numbered_and_separated_by_one_blank_line() {
        let records: Vec<Donation> = (1..=11)
            .map(|i| check(&format!("Donor {i}"), "1"))
            .collect();
        let report = text_report(&records, day(2026, 3, 14));
        for i in 1..=11 {
            assert!(
                report.contains(&format!("\n\n{i}. Donor {i}\n")),
                "{i}: {report}"
            );
        }
        assert!(!report.contains("\n\n\n"), "{report}");
        assert!(report.contains("Check No. 1001\n\nTotal Deposits: $11.00\n"));
        assert!(report.starts_with("Deposit Report: 03/14/2026\nBelow is a list"));
    }

    #[test]
    fn the_bank_deposit_closes_the_report_once_recorded() {
        let mut b = crate::qbo::bank::BankDeposit {
            account_id: "35".into(),
            account_name: Some("Checking".into()),
            txn_date: day(2026, 11, 20),
            tried_dates: Vec::new(),
            qbo_id: None,
            total: Some(dec("1240")),
            receipts: 12,
            error: None,
            recorded_at: None,
        };
        assert_eq!(bank_deposit_line(&b), None);
        b.qbo_id = Some("512".into());
        assert_eq!(
            bank_deposit_line(&b).unwrap(),
            "Recorded in QuickBooks as bank deposit #512 into Checking on 11/20/2026: \
             $1,240.00 (12 receipts)\n"
        );
    }

    #[test]
    fn empty_report() {
        assert_eq!(
            text_report(&[], day(2026, 1, 2)),
            "Deposit Report: 01/02/2026\nBelow is a list of deposits totaling $0.00:\n\n\
             Total Deposits: $0.00\n"
        );
    }

    #[test]
    fn totals_are_exact() {
        let records = [check("A", "0.10"), check("B", "0.20")];
        assert_eq!(total(&records), dec("0.30"));
        assert!(text_report(&records, day(2026, 3, 14)).ends_with("Total Deposits: $0.30\n"));
        let many: Vec<Donation> = (0..1000).map(|_| check("A", "0.01")).collect();
        assert_eq!(total(&many), dec("10.00"));
    }

    #[test]
    fn report_date_is_latest_deposit_else_today() {
        let today = day(2026, 4, 1);
        let mut a = check("A", "1");
        a.deposit_date = Some(day(2026, 3, 9));
        let mut b = check("B", "1");
        b.deposit_date = Some(day(2026, 3, 14));
        let undated = check("C", "1");
        assert_eq!(
            report_date_for(&[a, undated.clone(), b], today),
            day(2026, 3, 14)
        );
        assert_eq!(report_date_for(&[undated], today), today);
        assert_eq!(report_date_for(&[], today), today);
    }

    #[test]
    fn csv_round_trip_keeps_every_field() {
        let mut d = check("John Smith", "1234.50");
        d.payer.aliases.push("Smith, John".into());
        d.payer.salutation = Some("Mr. Smith".into());
        d.payer.organization_name = Some("Smith Family Trust".into());
        d.payment_ref = Some("0079".into());
        d.payment_method = Some(PaymentMethod::PrintedCheck);
        d.check_date = Some(day(2026, 3, 1));
        d.postmark_date = Some(day(2026, 3, 3));
        d.deposit_date = Some(day(2026, 3, 14));
        d.deposit_method = Some("ATM Deposit".into());
        d.memo = Some("Roof, \"phase 2\"\nthanks".into());
        d.contact.address_line_1 = Some("1 Elm St".into());
        d.contact.city = Some("Boston".into());
        d.contact.state = Some("MA".into());
        d.contact.zip = Some("02134".into());
        d.contact.email = Some("js@example.org".into());
        d.contact.phone = Some("617 555 0100".into());
        d.provenance.pages = vec![1, 2];
        d.provenance.line = Some(7);
        d.provenance.kind = SourceKind::DepositList;
        d.qbo.customer_id = Some("58".into());
        d.qbo.display_name = Some("John Smith".into());
        d.qbo.match_status = MatchStatus::NeedsReview;
        d.qbo.match_score = Some(83);
        d.qbo.sales_receipt_id = Some("1402".into());
        d.qbo.sync_status = SyncStatus::Error;
        d.qbo.last_error = Some("Invalid Reference Id".into());
        d.merge_history.push(MergeEntry {
            merged_at: chrono::Utc::now(),
            merged_id: uuid::Uuid::new_v4(),
            source: Source::default(),
            fields: vec!["memo".into()],
            payment_ref: Some("79".into()),
            amount: Some(dec("1234.50")),
        });
        d.issues = vec![
            Issue {
                level: IssueLevel::Warning,
                code: "date_old".into(),
                field: None,
                message: "old date".into(),
            },
            Issue {
                level: IssueLevel::Error,
                code: "x".into(),
                field: None,
                message: "bad".into(),
            },
        ];

        let (header, rows) = parse_csv(&csv_export(&[d.clone(), Donation::new("b.csv")]).unwrap());
        assert_eq!(header, CSV_HEADER);
        assert_eq!(rows.len(), 2);
        let got: Vec<(&str, &str)> = header
            .iter()
            .map(String::as_str)
            .zip(rows[0].iter().map(String::as_str))
            .collect();
        let id = d.id.to_string();
        let want: Vec<(&str, &str)> = vec![
            ("id", &id),
            ("payment_ref", "0079"),
            ("payment_method", "printed_check"),
            ("amount", "1234.50"),
            ("payment_date", "2026-03-02"),
            ("check_date", "2026-03-01"),
            ("postmark_date", "2026-03-03"),
            ("deposit_date", "2026-03-14"),
            ("deposit_method", "ATM Deposit"),
            ("memo", "Roof, \"phase 2\"\nthanks"),
            ("name", "John Smith"),
            ("aliases", "John Smith | Smith, John"),
            ("salutation", "Mr. Smith"),
            ("organization_name", "Smith Family Trust"),
            ("address_line_1", "1 Elm St"),
            ("city", "Boston"),
            ("state", "MA"),
            ("zip", "02134"),
            ("email", "js@example.org"),
            ("phone", "617 555 0100"),
            ("source_file", "file.pdf"),
            ("source_pages", "1 2"),
            ("source_line", "7"),
            ("source_kind", "deposit_list"),
            ("qbo_customer_id", "58"),
            ("qbo_display_name", "John Smith"),
            ("match_status", "needs_review"),
            ("match_score", "83"),
            ("sales_receipt_id", "1402"),
            ("sync_status", "error"),
            ("last_error", "Invalid Reference Id"),
            ("merged", "yes"),
            ("merge_count", "1"),
            ("issues", "warning: old date | error: bad"),
        ];
        assert_eq!(got, want);

        // A bare record: empty cells, defaults spelled out.
        let bare: Vec<(&str, &str)> = header
            .iter()
            .map(String::as_str)
            .zip(rows[1].iter().map(String::as_str))
            .collect();
        for (column, value) in bare {
            let expected = match column {
                "id" | "source_file" => continue,
                "source_kind" => "unknown",
                "match_status" => "unmatched",
                "sync_status" => "not_sent",
                "merged" => "no",
                "merge_count" => "0",
                _ => "",
            };
            assert_eq!(value, expected, "{column}");
        }
    }

    #[test]
    fn fom_csv_has_fom_columns_marks_kept_out_rows_and_ends_with_the_total() {
        let mut a = check("Jane O'Brien", "125.00");
        a.payment_ref = Some("1043".into());
        a.check_date = Some(day(2026, 11, 18));
        a.payment_date = Some(day(2026, 11, 20));
        a.qbo.display_name = Some("O'Brien, Jane".into());
        a.qbo.sales_receipt_id = Some("311".into());
        let mut b = check("Grace Kim", "25.5");
        b.payment_method = Some(PaymentMethod::Online);
        b.payment_ref = Some("ch_1".into());
        let out = fom_csv(&[a, b.clone()], &|r| {
            (r.id == b.id).then_some("an online gift")
        })
        .unwrap();
        let (header, rows) = parse_csv(&out);
        assert_eq!(
            header[..5],
            [
                "Lookup",
                "Salutation",
                "Donor Name",
                "Check No.",
                "Gift Amount"
            ]
        );
        assert_eq!(header.len(), 19);
        let col = |row: &Vec<String>, name: &str| {
            row[header.iter().position(|h| h == name).unwrap()].clone()
        };
        assert_eq!(col(&rows[0], "Lookup"), "O'Brien, Jane");
        assert_eq!(col(&rows[0], "Check No."), "1043");
        assert_eq!(col(&rows[0], "Gift Amount"), "125.00");
        assert_eq!(col(&rows[0], "Check Date"), "11/18/2026");
        assert_eq!(col(&rows[0], "Gift Date"), "11/20/2026");
        assert_eq!(col(&rows[0], "First Name"), "Jane");
        assert_eq!(col(&rows[0], "Last Name"), "O'Brien");
        assert_eq!(col(&rows[0], "QuickBooks"), "Sent #311");
        assert_eq!(col(&rows[1], "Check No."), "Online Donation");
        assert_eq!(col(&rows[1], "Gift Amount"), "25.50");
        assert_eq!(col(&rows[1], "QuickBooks"), "Kept out: an online gift");
        assert_eq!(col(&rows[2], "Donor Name"), "Total");
        assert_eq!(col(&rows[2], "Gift Amount"), "150.50");
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn csv_neutralizes_formulas() {
        let cases = [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1 555", "'+1 555"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("-2+3", "'-2+3"),
            ("\tcmd", "'\tcmd"),
            ("\r=1", "'\r=1"),
            ("plain = fine", "plain = fine"),
            ("'already", "'already"),
        ];
        for (raw, want) in cases {
            let mut d = Donation::new("f.csv");
            d.memo = Some(raw.into());
            d.payer.aliases = vec![raw.into()];
            let (header, rows) = parse_csv(&csv_export(&[d]).unwrap());
            let cell = |name: &str| rows[0][header.iter().position(|h| h == name).unwrap()].clone();
            assert_eq!(cell("memo"), want, "{raw:?}");
            assert_eq!(cell("name"), want, "{raw:?}");
            assert_eq!(cell("aliases"), want, "{raw:?}");
        }

        let mut negative = Donation::new("f.csv");
        negative.amount = Some(dec("-5.00"));
        let (header, rows) = parse_csv(&csv_export(&[negative]).unwrap());
        let amount = header.iter().position(|h| h == "amount").unwrap();
        assert_eq!(rows[0][amount], "'-5.00");
    }

    #[test]
    fn csv_keeps_zip_as_text() {
        let mut d = Donation::new("f.csv");
        d.contact.zip = Some("02134".into());
        let text = csv_export(&[d]).unwrap();
        assert!(text.contains(",02134,"), "{text}");
        let (header, rows) = parse_csv(&text);
        assert_eq!(
            rows[0][header.iter().position(|h| h == "zip").unwrap()],
            "02134"
        );
    }

    #[test]
    fn csv_of_no_records_is_just_the_header() {
        let text = csv_export(&[]).unwrap();
        assert_eq!(text, format!("{}\n", CSV_HEADER.join(",")));
    }
}
