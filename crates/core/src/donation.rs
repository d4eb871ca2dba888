//! The donation record (first version; the domain issue completes it) and value parsing.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One payment: a check, or one online gift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Donation {
    /// Stable across merges and re-uploads: the record the treasurer edits keeps its id.
    pub id: Uuid,
    /// Check number or online payment id, as written (leading zeros kept; see
    /// `normalize::payment_ref_key` for comparison).
    pub payment_ref: Option<String>,
    pub payment_method: Option<PaymentMethod>,
    /// Exact decimal; `None` when the source had no readable amount (see `issues`).
    #[serde(with = "rust_decimal::serde::str_option")]
    pub amount: Option<Decimal>,
    /// The date the receipt carries (rules in `normalize::apply_payment_date_rule`).
    pub payment_date: Option<NaiveDate>,
    pub check_date: Option<NaiveDate>,
    pub postmark_date: Option<NaiveDate>,
    pub deposit_date: Option<NaiveDate>,
    /// "ATM Deposit" (checks, default), "Mobile Deposit", "Online", "Stripe", "PayPal".
    pub deposit_method: Option<String>,
    pub memo: Option<String>,
    pub payer: Payer,
    pub contact: Contact,
    /// Where this record was first read.
    pub provenance: Source,
    /// QuickBooks state: match, receipt, sync.
    #[serde(default)]
    pub qbo: QboState,
    /// One entry per duplicate merged into this record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge_history: Vec<MergeEntry>,
    /// Source columns that have no field of their own (CSV), kept as they were.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
    /// Problems found while reading or checking this record; a record is never dropped for them.
    #[serde(default)]
    pub issues: Vec<Issue>,
    /// Fields the treasurer changed by hand (the row shows "Edited").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edited: Vec<String>,
}

/// The name an anonymous gift without a donor's name is shown and matched under.
pub const ANONYMOUS: &str = "Anonymous";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    HandwrittenCheck,
    PrintedCheck,
    /// A check whose kind the source does not tell (a list of checks in a CSV file, or the
    /// treasurer's choice in the review table).
    Check,
    /// A postal or bank money order: deposited with the checks and booked like one (its serial
    /// number is the reference, its issue date the gift date).
    MoneyOrder,
    Online,
}

impl PaymentMethod {
    /// Paper deposited with the checks (a money order too): it carries a number, and gets the
    /// deployment's check payment method in QuickBooks.
    pub fn is_check(self) -> bool {
        matches!(
            self,
            PaymentMethod::HandwrittenCheck
                | PaymentMethod::PrintedCheck
                | PaymentMethod::Check
                | PaymentMethod::MoneyOrder
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payer {
    /// Name variants ("John Smith", "Smith, John", "J. Smith", ...); the first is the name as
    /// written.
    pub aliases: Vec<String>,
    pub salutation: Option<String>,
    pub organization_name: Option<String>,
    /// The gift was given anonymously (the platform says so, or withholds the donor's name).
    /// A name may still be known to the organisation; without one the gift is the
    /// "Anonymous" donor's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub address_line_1: Option<String>,
    pub city: Option<String>,
    /// Two letters.
    pub state: Option<String>,
    /// Text, never a number: leading zeros matter.
    pub zip: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// What kind of paper (or file) a record was read from. The deposit list's check number is
/// authoritative when duplicates merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Check,
    Envelope,
    DepositList,
    Csv,
    #[default]
    Unknown,
}

/// Where a record (or a merged duplicate) came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub file: String,
    /// 1-based page numbers (PDF).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub pages: Vec<u32>,
    /// 1-based line of the file (CSV; the header is line 1).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u64>,
    #[serde(default)]
    pub kind: SourceKind,
    /// The job that read it (set when merged into a deposit), so a file read again replaces
    /// its own rows.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub job: Option<String>,
}

/// Donor match status, in the order a merge prefers them (never downgraded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchStatus {
    #[default]
    Unmatched,
    NewDonor,
    NeedsReview,
    AddressChanged,
    Matched,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    #[default]
    NotSent,
    Sent,
    Error,
}

/// A QuickBooks address as it was when matched (shown old-vs-new for review).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QboState {
    pub customer_id: Option<String>,
    pub display_name: Option<String>,
    pub match_status: MatchStatus,
    /// 0-100.
    pub match_score: Option<u8>,
    pub address_snapshot: Option<Address>,
    pub sales_receipt_id: Option<String>,
    pub sync_status: SyncStatus,
    pub last_error: Option<String>,
    /// The treasurer's choice: `true` keeps the row out of QuickBooks (it stays in the
    /// report), `false` sends it even where the rule keeps it out (an online gift under
    /// `ONLINE_GIFTS=report`); none follows the rule ([`crate::qbo::receipts::kept_out`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_out: Option<bool>,
    /// The row was edited after its receipt was made, in a field the receipt shows: the
    /// receipt in QuickBooks no longer says what the row says until it is updated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub receipt_outdated: bool,
    /// A receipt in QuickBooks, or a row of another deposit, that looks like this same gift:
    /// send-all skips the row until the treasurer decides (send anyway, or keep out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<Duplicate>,
    /// The treasurer looked at the possible duplicate and sends the row anyway.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate_ok: bool,
    /// The scan behind the receipt, attached to it in QuickBooks (`ATTACH_SOURCES`): the
    /// Attachable's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<String>,
    /// Why the scan could not be attached (the next run tries again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_error: Option<String>,
    /// How the current customer was found (none: no match, or one made before this was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_by: Option<MatchBy>,
    /// The treasurer's choices for this row's receipt, over the deployment's.
    #[serde(default, skip_serializing_if = "RowChoices::is_empty")]
    pub choices: RowChoices,
}

/// What a row may duplicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    /// `receipt` (already in QuickBooks) or `deposit` (a row of another deposit here).
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit_id: Option<String>,
    /// 1-based row of the other deposit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<usize>,
    /// What the page shows: "Possible duplicate of receipt #1234 of 02/03/2026".
    pub message: String,
}

/// How a row's customer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchBy {
    /// Automatically, by name.
    Name,
    /// Automatically, by the one customer with the row's e-mail address.
    Email,
    /// Automatically, by the one customer with the row's phone number.
    Phone,
    /// Chosen by the treasurer ("Change donor" / "Find customer", or a confirmed suggestion).
    Hand,
    /// Created from the row.
    Created,
}

/// Item, deposit account and payment method chosen for one row's receipt (QuickBooks ids);
/// none follows the deployment's choice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowChoices {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit_account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method_id: Option<String>,
}

impl RowChoices {
    pub fn is_empty(&self) -> bool {
        self.item_id.is_none()
            && self.deposit_account_id.is_none()
            && self.payment_method_id.is_none()
    }
}

/// What one merge took from which source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeEntry {
    pub merged_at: DateTime<Utc>,
    /// The duplicate's id before it was merged away.
    pub merged_id: Uuid,
    pub source: Source,
    /// Fields whose value came from the duplicate.
    pub fields: Vec<String>,
    pub payment_ref: Option<String>,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub amount: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub level: IssueLevel,
    /// Stable machine code, e.g. `amount_missing`, `date_future`.
    pub code: String,
    pub field: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueLevel {
    Warning,
    Error,
}

impl Donation {
    pub fn new(file: &str) -> Self {
        Self {
            id: Uuid::new_v4(),
            payment_ref: None,
            payment_method: None,
            amount: None,
            payment_date: None,
            check_date: None,
            postmark_date: None,
            deposit_date: None,
            deposit_method: None,
            memo: None,
            payer: Payer::default(),
            contact: Contact::default(),
            provenance: Source {
                file: file.to_string(),
                ..Source::default()
            },
            qbo: QboState::default(),
            merge_history: Vec::new(),
            extra: BTreeMap::new(),
            issues: Vec::new(),
            edited: Vec::new(),
        }
    }

    /// Adds an issue unless the same code is already recorded for the same field.
    pub fn issue(
        &mut self,
        level: IssueLevel,
        code: &str,
        field: &str,
        message: impl Into<String>,
    ) {
        let exists = self
            .issues
            .iter()
            .any(|i| i.code == code && i.field.as_deref() == Some(field));
        if !exists {
            self.issues.push(Issue {
                level,
                code: code.to_string(),
                field: Some(field.to_string()),
                message: message.into(),
            });
        }
    }

    pub fn has_issue(&self, code: &str) -> bool {
        self.issues.iter().any(|i| i.code == code)
    }

    /// The name a person would read first: organisation, else the first alias.
    pub fn display_name(&self) -> Option<&str> {
        self.payer
            .organization_name
            .as_deref()
            .or_else(|| self.payer.aliases.first().map(String::as_str))
            .or(if self.payer.anonymous {
                Some(ANONYMOUS)
            } else {
                None
            })
    }

    /// Every source this record was read from: its own, then each merged duplicate's.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        std::iter::once(&self.provenance).chain(self.merge_history.iter().map(|m| &m.source))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{0:?} is not an amount (expected e.g. 1,234.50)")]
    Amount(String),
    #[error("{0:?} is not a date (expected MM/DD/YYYY or YYYY-MM-DD)")]
    Date(String),
}

/// "1234.5" -> "1,234.50": two decimals and thousands separators, as reports show money.
pub fn format_amount(amount: Decimal) -> String {
    let s = format!("{:.2}", amount.round_dp(2));
    let (int, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    format!("{sign}{}.{frac}", group_thousands(digits))
}

/// "1234567" -> "1,234,567": a run of ASCII digits with US thousands separators.
pub fn group_thousands(digits: &str) -> String {
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

/// Parses a US-style amount: optional `$`, comma thousands separators in groups of three, at
/// most two decimals. European "1.234,50" is refused rather than guessed.
pub fn parse_amount(raw: &str) -> Result<Decimal, ValueError> {
    let bad = || ValueError::Amount(raw.to_string());
    let s: String = raw.trim().chars().filter(|c| !c.is_whitespace()).collect();
    let s = s.strip_prefix("USD").unwrap_or(&s);
    let s = s.strip_prefix('$').unwrap_or(s);
    if s.is_empty() || s.starts_with('-') {
        return Err(bad());
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 2 || !f.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
    }
    if int.contains(',') {
        let groups: Vec<&str> = int.split(',').collect();
        let first_ok = (1..=3).contains(&groups[0].len());
        let rest_ok = groups[1..].iter().all(|g| g.len() == 3);
        if !first_ok || !rest_ok {
            return Err(bad());
        }
    }
    let digits: String = int.chars().filter(|&c| c != ',').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let normal = match frac {
        Some(f) => format!("{digits}.{f}"),
        None => digits,
    };
    normal.parse::<Decimal>().map_err(|_| bad())
}

/// Parses the common US date forms: `MM/DD/YYYY`, `M/D/YY`, `YYYY-MM-DD`, `MM-DD-YYYY`,
/// `January 5, 2026`, `Jan 5 2026`.
pub fn parse_date(raw: &str) -> Result<NaiveDate, ValueError> {
    let s = raw.trim().trim_end_matches('.');
    // chrono's %Y takes "26" as the year 26: route two-digit years to %y (00-68 -> 2000s).
    let two_digit_year = s.contains('/')
        && s.rsplit('/').next().is_some_and(|y| y.len() == 2)
        && s.split('/').next().is_some_and(|m| m.len() <= 2);
    let formats: &[&str] = if two_digit_year {
        &["%m/%d/%y"]
    } else {
        &[
            "%m/%d/%Y",
            "%Y-%m-%d",
            "%Y/%m/%d",
            "%m-%d-%Y",
            "%B %d, %Y",
            "%B %d %Y",
            "%b %d, %Y",
            "%b %d %Y",
            "%b. %d, %Y",
        ]
    };
    formats
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
        .ok_or_else(|| ValueError::Date(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros_free::dec;

    mod rust_decimal_macros_free {
        pub fn dec(s: &str) -> rust_decimal::Decimal {
            s.parse().unwrap()
        }
    }

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("$1,234.50").unwrap(), dec("1234.50"));
        assert_eq!(parse_amount("1234.5").unwrap(), dec("1234.5"));
        assert_eq!(parse_amount(" $ 25 ").unwrap(), dec("25"));
        assert_eq!(parse_amount("2,000.00").unwrap(), dec("2000.00"));
        for bad in [
            "1.234,50", "12,34.00", "1,2345", "abc", "", "$", "-5.00", "1.234", "1,00",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
        // Exact: no binary float rounding.
        assert_eq!(
            parse_amount("0.10").unwrap() + parse_amount("0.20").unwrap(),
            dec("0.30")
        );
    }

    #[test]
    fn formats_amounts_for_people() {
        assert_eq!(format_amount(dec("1234.5")), "1,234.50");
        assert_eq!(format_amount(dec("25")), "25.00");
        assert_eq!(format_amount(dec("1000000")), "1,000,000.00");
        assert_eq!(format_amount(dec("999.999")), "1,000.00");
        assert_eq!(format_amount(dec("-1234")), "-1,234.00");
    }

    #[test]
    fn dates() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        for s in [
            "01/05/2026",
            "1/5/2026",
            "2026-01-05",
            "01-05-2026",
            "January 5, 2026",
            "Jan 5 2026",
            "1/5/26",
        ] {
            assert_eq!(parse_date(s).unwrap(), d, "{s}");
        }
        for bad in ["13/01/2026", "2026-02-30", "yesterday", ""] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_round_trip_keeps_exact_amounts_and_zip_text() {
        let mut d = Donation::new("a.pdf");
        d.amount = Some(dec("100.10"));
        d.contact.zip = Some("02134".into());
        d.payment_ref = Some("0042".into());
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains("\"amount\":\"100.10\""), "{json}");
        let back: Donation = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn full_record_round_trips() {
        let mut d = Donation::new("scan.pdf");
        d.payment_method = Some(PaymentMethod::PrintedCheck);
        d.amount = Some(dec("1234.56"));
        d.check_date = NaiveDate::from_ymd_opt(2026, 3, 1);
        d.provenance.pages = vec![2, 3];
        d.provenance.kind = SourceKind::Check;
        d.qbo = QboState {
            customer_id: Some("58".into()),
            display_name: Some("Smith, John".into()),
            match_status: MatchStatus::AddressChanged,
            match_score: Some(92),
            address_snapshot: Some(Address {
                line1: Some("1 Old Rd".into()),
                zip: Some("02134".into()),
                ..Address::default()
            }),
            sales_receipt_id: Some("145".into()),
            sync_status: SyncStatus::Sent,
            last_error: None,
            keep_out: Some(false),
            receipt_outdated: true,
            match_by: Some(MatchBy::Hand),
            duplicate: None,
            duplicate_ok: true,
            attachment_id: Some("7001".into()),
            attachment_error: None,
            choices: RowChoices {
                item_id: Some("21".into()),
                ..RowChoices::default()
            },
        };
        d.merge_history.push(MergeEntry {
            merged_at: Utc::now(),
            merged_id: Uuid::new_v4(),
            source: Source {
                file: "gifts.csv".into(),
                line: Some(7),
                kind: SourceKind::Csv,
                ..Source::default()
            },
            fields: vec!["memo".into()],
            payment_ref: Some("0042".into()),
            amount: Some(dec("1234.56")),
        });
        d.extra.insert("Fee".into(), "1.23".into());
        d.issue(IssueLevel::Warning, "date_old", "payment_date", "old");
        let json = serde_json::to_string(&d).unwrap();
        let back: Donation = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert!(
            json.contains("\"match_status\":\"address_changed\""),
            "{json}"
        );
    }
}
