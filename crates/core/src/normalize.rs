//! Normalisation and validation of donation records (docs/RULES.md#record and the sections it
//! links: amounts, dates, check numbers, names, addresses, validation).
//!
//! Every function here is idempotent: normalising twice gives the same record as once
//! (property-tested). Problems become issues on the record; nothing is dropped.
//!
//! Decisions:
//! - Amounts are US-style ("$1,234.50", "1234.5"); "1.234,50" is refused, not guessed
//!   (`donation::parse_amount`). Zero or negative amounts are errors.
//! - Check numbers are stored as written, leading zeros included, unlike the old system, which
//!   stripped them (docs/RULES.md#check-numbers); only comparison ignores leading zeros
//!   ([`payment_ref_key`]).
//! - A ZIP with letters is a foreign postal code ("M6C 3B8") and is kept as written.

use chrono::{Duration, NaiveDate};

use crate::aliases;
use crate::config::EnvReader;
use crate::donation::{Donation, IssueLevel, PaymentMethod};

/// Date rules; `today` is injected so that tests and reports are reproducible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub today: NaiveDate,
    /// `RECEIPT_FUTURE_DAYS`: payment dates further ahead are refused.
    pub future_days: i64,
    /// `RECEIPT_OLD_DAYS`: payment dates further back are warned about.
    pub old_days: i64,
}

impl Rules {
    pub fn new(today: NaiveDate) -> Self {
        Self {
            today,
            future_days: 7,
            old_days: 365,
        }
    }

    pub fn from_env(env: &mut EnvReader, today: NaiveDate) -> Self {
        let d = Self::new(today);
        Self {
            today,
            future_days: env.number("RECEIPT_FUTURE_DAYS", d.future_days, 0, 3650),
            old_days: env.number("RECEIPT_OLD_DAYS", d.old_days, 1, 36_500),
        }
    }
}

/// Issue codes owned by [`normalize`]: cleared and recomputed on every pass, so validation
/// reflects the record as it is now (after an edit or a merge) and never piles up duplicates.
const VALIDATION_CODES: &[&str] = &[
    "amount_missing",
    "amount_not_positive",
    "date_missing",
    "date_future",
    "date_old",
    "name_missing",
    "payment_ref_missing",
    "state_unknown",
    "zip_invalid",
    "email_invalid",
];

/// Normalises every field and re-validates the record.
pub fn normalize(d: &mut Donation, rules: &Rules) {
    d.issues
        .retain(|i| !VALIDATION_CODES.contains(&i.code.as_str()));

    d.payment_ref = clean(d.payment_ref.take());
    d.memo = clean(d.memo.take());
    d.deposit_method = clean(d.deposit_method.take());
    d.payer.organization_name = clean(d.payer.organization_name.take()).map(|s| proper_case(&s));
    normalize_names(d);
    // After the names: a salutation split off a name ("MR a") is cased like a given one.
    d.payer.salutation = clean(d.payer.salutation.take()).map(|s| proper_case(&s));

    let c = &mut d.contact;
    c.address_line_1 = clean(c.address_line_1.take()).map(|s| proper_case(&s));
    c.city = clean(c.city.take()).map(|s| proper_case(&s));
    c.email = clean(c.email.take()).map(|e| e.to_lowercase());
    c.phone = clean(c.phone.take()).map(|p| normalize_phone(&p));
    let state = clean(c.state.take());
    let zip = clean(c.zip.take());
    c.state = state
        .as_deref()
        .map(|s| normalize_state(s).unwrap_or_else(|| s.to_string()));
    c.zip = zip
        .as_deref()
        .map(|z| normalize_zip(z).unwrap_or_else(|| z.to_string()));
    check_contact(d);

    if d.deposit_method.is_none() {
        d.deposit_method = match d.payment_method {
            Some(PaymentMethod::Online) => Some("Online".into()),
            Some(_) => Some("ATM Deposit".into()),
            None => None,
        };
    }
    apply_payment_date_rule(d);
    validate(d, rules);
}

/// Re-runs the checks after a person edited the record. Their values are kept as entered
/// (the payment-date rule is not re-applied: the treasurer's date wins).
pub fn revalidate(d: &mut Donation, rules: &Rules) {
    d.issues
        .retain(|i| !VALIDATION_CODES.contains(&i.code.as_str()));
    check_contact(d);
    validate(d, rules);
}

/// After a merge filled fields from a duplicate: drops "missing" issues whose field now has a
/// value, and never keeps a duplicate's own validation issues (they described the duplicate).
pub fn drop_resolved(d: &mut Donation) {
    let amount = d.amount.is_some();
    let date = d.payment_date.is_some();
    let name = !d.payer.aliases.is_empty() || d.payer.organization_name.is_some();
    let reference = d.payment_ref.is_some();
    d.issues.retain(|i| match i.code.as_str() {
        "amount_missing" => !amount,
        "date_missing" => !date,
        "name_missing" => !name,
        "payment_ref_missing" => !reference,
        _ => true,
    });
}

/// Whether `code` is one of the checks [`normalize`] recomputes.
pub fn is_validation_code(code: &str) -> bool {
    VALIDATION_CODES.contains(&code)
}

/// Replaces the donor's name as written and rebuilds its variants.
pub fn set_name(d: &mut Donation, name: Option<String>) {
    d.payer.aliases = name.into_iter().collect();
    normalize_names(d);
}

/// Warnings for contact values that are not what they should be (kept as written).
fn check_contact(d: &mut Donation) {
    if let Some(s) = d.contact.state.clone() {
        if normalize_state(&s).is_none() {
            d.issue(
                IssueLevel::Warning,
                "state_unknown",
                "state",
                format!("{s:?} is not a US state or Canadian province"),
            );
        }
    }
    if let Some(z) = d.contact.zip.clone() {
        if normalize_zip(&z).is_none() {
            d.issue(
                IssueLevel::Warning,
                "zip_invalid",
                "zip",
                format!("{z:?} is not a ZIP code"),
            );
        }
    }
    if let Some(e) = d.contact.email.clone() {
        if !looks_like_email(&e) {
            d.issue(
                IssueLevel::Warning,
                "email_invalid",
                "email",
                format!("{e:?} does not look like an email address"),
            );
        }
    }
}

fn normalize_names(d: &mut Donation) {
    let mut names: Vec<String> = std::mem::take(&mut d.payer.aliases)
        .into_iter()
        .filter_map(|a| clean(Some(a)))
        .map(|a| proper_case(&a))
        .collect();
    // An anonymous gift without a name is the "Anonymous" donor's (a QuickBooks customer many
    // organisations keep for them), not a row missing its name.
    if names.is_empty() && d.payer.anonymous && d.payer.organization_name.is_none() {
        names.push(crate::donation::ANONYMOUS.to_string());
    }
    // "Mr. & Mrs. John Smith": the salutation is not part of the name.
    if let Some(first) = names.first_mut() {
        if let Some((salutation, rest)) = split_salutation(first) {
            if d.payer.salutation.is_none() {
                d.payer.salutation = Some(salutation);
            }
            *first = rest;
        }
    }
    // An organisation written where a person's name goes ("St. John Lutheran Church").
    if d.payer.organization_name.is_none() && names.len() == 1 && looks_like_organisation(&names[0])
    {
        d.payer.organization_name = names.pop();
    }
    if let Some(first) = names.first().cloned() {
        if !looks_like_organisation(&first) {
            // Variants pass through proper_case too, so a second pass changes nothing.
            names.extend(
                aliases::name_variants(&first)
                    .iter()
                    .map(|v| proper_case(v)),
            );
        }
    }
    d.payer.aliases = aliases::dedup_case_insensitive(names);
}

fn validate(d: &mut Donation, rules: &Rules) {
    match d.amount {
        None if !d.has_issue("amount_unreadable") => {
            d.issue(
                IssueLevel::Error,
                "amount_missing",
                "amount",
                "no amount; enter it before sending",
            );
        }
        Some(a) if a <= rust_decimal::Decimal::ZERO => {
            d.issue(
                IssueLevel::Error,
                "amount_not_positive",
                "amount",
                format!("the amount ${a} is not positive"),
            );
        }
        _ => {}
    }
    match d.payment_date {
        None => d.issue(
            IssueLevel::Warning,
            "date_missing",
            "payment_date",
            "no payment date; enter one before sending (it is never set to today)",
        ),
        Some(date) if date > rules.today + Duration::days(rules.future_days) => d.issue(
            IssueLevel::Error,
            "date_future",
            "payment_date",
            format!(
                "{} is more than {} days in the future; a receipt cannot carry it",
                date.format("%m/%d/%Y"),
                rules.future_days
            ),
        ),
        Some(date) if date < rules.today - Duration::days(rules.old_days) => d.issue(
            IssueLevel::Warning,
            "date_old",
            "payment_date",
            format!(
                "{} is more than {} days old; please check it",
                date.format("%m/%d/%Y"),
                rules.old_days
            ),
        ),
        Some(_) => {}
    }
    if d.payer.aliases.is_empty() && d.payer.organization_name.is_none() {
        d.issue(
            IssueLevel::Warning,
            "name_missing",
            "payer",
            "no donor name",
        );
    }
    match (d.payment_ref.is_none(), d.payment_method) {
        (true, Some(PaymentMethod::MoneyOrder)) => d.issue(
            IssueLevel::Warning,
            "payment_ref_missing",
            "payment_ref",
            "no money order serial number",
        ),
        (true, Some(m)) if m.is_check() => {
            d.issue(
                IssueLevel::Warning,
                "payment_ref_missing",
                "payment_ref",
                "no check number",
            );
        }
        (true, Some(PaymentMethod::Online)) => d.issue(
            IssueLevel::Warning,
            "payment_ref_missing",
            "payment_ref",
            "no transaction id: this gift cannot be told apart from another of the same amount, \
             and uploading the file again would add it twice",
        ),
        _ => {}
    }
}

/// Payment date by payment method: handwritten check -> postmark, else check date; printed
/// check, or a check of unknown kind -> check date; money order -> its issue date, else the
/// postmark; online -> the transaction date as read. Never today by default.
pub fn apply_payment_date_rule(d: &mut Donation) {
    let derived = match d.payment_method {
        Some(PaymentMethod::HandwrittenCheck) | None => d.postmark_date.or(d.check_date),
        Some(PaymentMethod::PrintedCheck) => d.check_date,
        // A money order's issue date is read as its check date; without it, the postmark.
        Some(PaymentMethod::MoneyOrder) => d.check_date.or(d.postmark_date),
        // A check from a list: the check's date when read, else the date as listed.
        Some(PaymentMethod::Check) => d.check_date,
        Some(PaymentMethod::Online) => None,
    };
    if let Some(date) = derived {
        d.payment_date = Some(date);
    }
}

/// Trims, collapses inner whitespace; blank becomes `None`.
pub fn clean(value: Option<String>) -> Option<String> {
    let v = value?;
    let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
    (!v.is_empty()).then_some(v)
}

/// The form compared when looking for duplicates: all-digit references without leading zeros
/// ("0079" and "79" are the same check); other references as written, trimmed.
pub fn payment_ref_key(payment_ref: &str) -> String {
    let t = payment_ref.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        let stripped = t.trim_start_matches('0');
        if stripped.is_empty() {
            "0".into()
        } else {
            stripped.into()
        }
    } else {
        t.to_string()
    }
}

/// US ZIP: 5 digits, +4 dropped, leading zeros restored ("1234" -> "01234",
/// "12345-6789" -> "12345", "123456789" -> "12345"). Letters mean a foreign postal code, kept
/// upper-cased. `None` when it is neither.
pub fn normalize_zip(raw: &str) -> Option<String> {
    let t = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() {
        return None;
    }
    if t.chars().any(|c| c.is_ascii_alphabetic()) {
        let ok = t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-');
        return ok.then(|| t.to_ascii_uppercase());
    }
    let main = t.split('-').next().unwrap_or("").trim();
    if !main.chars().all(|c| c.is_ascii_digit()) || main.is_empty() {
        return None;
    }
    match main.len() {
        1..=5 => Some(format!("{main:0>5}")),
        9 => Some(main[..5].to_string()),
        _ => None,
    }
}

const STATES: &[(&str, &str)] = &[
    ("AL", "alabama"),
    ("AK", "alaska"),
    ("AZ", "arizona"),
    ("AR", "arkansas"),
    ("CA", "california"),
    ("CO", "colorado"),
    ("CT", "connecticut"),
    ("DE", "delaware"),
    ("DC", "district of columbia"),
    ("FL", "florida"),
    ("GA", "georgia"),
    ("HI", "hawaii"),
    ("ID", "idaho"),
    ("IL", "illinois"),
    ("IN", "indiana"),
    ("IA", "iowa"),
    ("KS", "kansas"),
    ("KY", "kentucky"),
    ("LA", "louisiana"),
    ("ME", "maine"),
    ("MD", "maryland"),
    ("MA", "massachusetts"),
    ("MI", "michigan"),
    ("MN", "minnesota"),
    ("MS", "mississippi"),
    ("MO", "missouri"),
    ("MT", "montana"),
    ("NE", "nebraska"),
    ("NV", "nevada"),
    ("NH", "new hampshire"),
    ("NJ", "new jersey"),
    ("NM", "new mexico"),
    ("NY", "new york"),
    ("NC", "north carolina"),
    ("ND", "north dakota"),
    ("OH", "ohio"),
    ("OK", "oklahoma"),
    ("OR", "oregon"),
    ("PA", "pennsylvania"),
    ("RI", "rhode island"),
    ("SC", "south carolina"),
    ("SD", "south dakota"),
    ("TN", "tennessee"),
    ("TX", "texas"),
    ("UT", "utah"),
    ("VT", "vermont"),
    ("VA", "virginia"),
    ("WA", "washington"),
    ("WV", "west virginia"),
    ("WI", "wisconsin"),
    ("WY", "wyoming"),
    ("PR", "puerto rico"),
    ("GU", "guam"),
    ("VI", "virgin islands"),
    ("AS", "american samoa"),
    ("MP", "northern mariana islands"),
    ("AA", "armed forces americas"),
    ("AE", "armed forces europe"),
    ("AP", "armed forces pacific"),
    ("AB", "alberta"),
    ("BC", "british columbia"),
    ("MB", "manitoba"),
    ("NB", "new brunswick"),
    ("NL", "newfoundland and labrador"),
    ("NS", "nova scotia"),
    ("NT", "northwest territories"),
    ("NU", "nunavut"),
    ("ON", "ontario"),
    ("PE", "prince edward island"),
    ("QC", "quebec"),
    ("SK", "saskatchewan"),
    ("YT", "yukon"),
];

/// Two-letter state (or Canadian province) code from a code or a full name, any case.
pub fn normalize_state(raw: &str) -> Option<String> {
    let t = raw.trim().trim_end_matches('.').to_lowercase();
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    STATES
        .iter()
        .find(|(code, name)| code.eq_ignore_ascii_case(&t) || *name == t)
        .map(|(code, _)| (*code).to_string())
}

/// "(555) 123-4567", "+1 555.123.4567" -> "555-123-4567"; other shapes (foreign numbers) are
/// kept as written.
pub fn normalize_phone(raw: &str) -> String {
    let key = phone_key(raw);
    if key.len() == 10 && raw.chars().filter(char::is_ascii_digit).count() <= 11 {
        format!("{}-{}-{}", &key[..3], &key[3..6], &key[6..])
    } else {
        raw.trim().to_string()
    }
}

/// Digits only, a leading US country code dropped: the form phones are compared in.
pub fn phone_key(raw: &str) -> String {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    match digits.strip_prefix('1') {
        Some(rest) if digits.len() == 11 => rest.to_string(),
        _ => digits,
    }
}

/// The form emails are compared in.
pub fn email_key(raw: &str) -> String {
    raw.trim().to_lowercase()
}

fn looks_like_email(e: &str) -> bool {
    let Some((user, domain)) = e.split_once('@') else {
        return false;
    };
    !user.is_empty() && domain.contains('.') && !domain.starts_with('.') && !e.contains(' ')
}

/// Words kept upper-case when proper-casing, compass points included (docs/RULES.md#proper-case).
const KEEP_UPPER: &[&str] = &[
    "PO", "LLC", "II", "III", "IV", "USA", "NE", "NW", "SE", "SW", "LLP", "PC",
];
const SMALL_WORDS: &[&str] = &[
    "and", "or", "of", "the", "for", "in", "at", "to", "a", "an", "on", "by",
];

/// Proper-cases text only when it is ALL CAPS ("MARY O'BRIEN" -> "Mary O'Brien",
/// "ROBERT MCDONALD JR" -> "Robert McDonald Jr", "123 NE MAIN ST" -> "123 NE Main St",
/// "FRIENDS OF MWANGAZA" -> "Friends of Mwangaza"); mixed-case text is left exactly as written.
pub fn proper_case(text: &str) -> String {
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    if letters < 2 || text.chars().any(char::is_lowercase) {
        return text.to_string();
    }
    text.split(' ')
        .enumerate()
        .map(|(i, w)| proper_word(w, i == 0))
        .collect::<Vec<_>>()
        .join(" ")
}

fn proper_word(word: &str, first: bool) -> String {
    let core: String = word.chars().filter(|c| c.is_alphanumeric()).collect();
    if core.is_empty() {
        return word.to_string();
    }
    if KEEP_UPPER.contains(&core.as_str()) {
        return word.to_string();
    }
    // Initials and dotted abbreviations: "J.", "P.O.", "U.S.A."
    if core.chars().count() == 1
        || (word.contains('.') && word.split('.').all(|p| p.chars().count() <= 1))
    {
        return word.to_string();
    }
    let lower = word.to_lowercase();
    if !first && SMALL_WORDS.contains(&lower.as_str()) {
        return lower;
    }
    if core.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return lower; // "1ST" -> "1st", "12B" -> "12b"
    }
    // Capitalise each part after ' and - ("O'BRIEN", "SMITH-JONES"), then Mc ("MCDONALD").
    let mut out = String::with_capacity(word.len());
    let mut start = true;
    for c in lower.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
            start = false;
        } else {
            out.push(c);
        }
        if c == '\'' || c == '-' {
            start = true;
        }
    }
    if out.starts_with("Mc") && out.chars().count() > 3 {
        let mut chars: Vec<char> = out.chars().collect();
        let upper: Vec<char> = chars[2].to_uppercase().collect();
        chars.splice(2..3, upper);
        out = chars.into_iter().collect();
    }
    out
}

const SALUTATIONS: &[&str] = &[
    "mr. & mrs.",
    "mr. and mrs.",
    "mr & mrs",
    "dr. & mrs.",
    "rev. & mrs.",
    "mr.",
    "mrs.",
    "ms.",
    "miss",
    "dr.",
    "rev.",
    "mr",
    "mrs",
    "ms",
    "dr",
    "rev",
];

fn split_salutation(name: &str) -> Option<(String, String)> {
    let lower = name.to_lowercase();
    SALUTATIONS.iter().find_map(|s| {
        let rest = lower.strip_prefix(s)?;
        if !rest.starts_with(' ') {
            return None;
        }
        let rest_name = name[s.len()..].trim().to_string();
        (!rest_name.is_empty()).then(|| (name[..s.len()].to_string(), rest_name))
    })
}

const ORG_WORDS: &[&str] = &[
    "church",
    "foundation",
    "fund",
    "trust",
    "ministries",
    "ministry",
    "association",
    "society",
    "club",
    "university",
    "college",
    "school",
    "bank",
    "company",
    "co.",
    "corp",
    "corp.",
    "corporation",
    "inc",
    "inc.",
    "llc",
    "council",
    "parish",
    "congregation",
    "fellowship",
    "synagogue",
    "temple",
    "mosque",
    "rotary",
    "committee",
    "group",
    "institute",
    "charities",
    "charity",
    "mission",
    "missions",
    "friends",
    "synod",
    "diocese",
    "presbytery",
    "conference",
    "guild",
    "auxiliary",
];

/// Whether a payer name is an organisation rather than a person.
pub fn looks_like_organisation(name: &str) -> bool {
    name.split_whitespace()
        .any(|w| ORG_WORDS.contains(&w.to_lowercase().trim_end_matches(',')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::donation::IssueLevel;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn zip_table() {
        let cases = [
            ("1234", Some("01234")),
            ("12345-6789", Some("12345")),
            ("02134", Some("02134")),
            ("123456789", Some("12345")),
            (" 601 ", Some("00601")),
            ("m6c 3b8", Some("M6C 3B8")),
            ("123456", None),
            ("12a$", None),
            ("", None),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_zip(raw).as_deref(), want, "{raw:?}");
        }
    }

    #[test]
    fn state_table() {
        for (raw, want) in [
            ("pa", Some("PA")),
            ("Pennsylvania", Some("PA")),
            ("NEW YORK", Some("NY")),
            ("Ontario", Some("ON")),
            ("Mass", None),
            ("XX", None),
        ] {
            assert_eq!(normalize_state(raw).as_deref(), want, "{raw:?}");
        }
    }

    #[test]
    fn proper_case_table() {
        let cases = [
            ("MARY O'BRIEN", "Mary O'Brien"),
            ("ROBERT MCDONALD JR", "Robert McDonald Jr"),
            ("123 NE MAIN ST", "123 NE Main St"),
            ("PO BOX 77", "PO Box 77"),
            ("P.O. BOX 77", "P.O. Box 77"),
            ("ACME WIDGETS LLC", "Acme Widgets LLC"),
            ("FRIENDS OF MWANGAZA", "Friends of Mwangaza"),
            ("THE SMITH FOUNDATION", "The Smith Foundation"),
            ("JOHN SMITH III", "John Smith III"),
            ("ANNE SMITH-JONES", "Anne Smith-Jones"),
            ("J. R. COLLINS", "J. R. Collins"),
            ("1ST AVE", "1st Ave"),
            ("McDonald's Farm", "McDonald's Farm"),
            ("van der Berg", "van der Berg"),
            ("JOHN & JANE SMITH", "John & Jane Smith"),
        ];
        for (raw, want) in cases {
            assert_eq!(proper_case(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn payment_refs() {
        assert_eq!(payment_ref_key("0079"), payment_ref_key("79"));
        assert_eq!(payment_ref_key("000"), "0");
        assert_eq!(payment_ref_key("ch_3QxA1"), "ch_3QxA1");
        let mut d = record();
        d.payment_ref = Some(" 0012345 ".into());
        normalize(&mut d, &Rules::new(date(2026, 3, 15)));
        assert_eq!(
            d.payment_ref.as_deref(),
            Some("0012345"),
            "stored as written"
        );
    }

    #[test]
    fn phones_and_emails() {
        assert_eq!(normalize_phone("(555) 123-4567"), "555-123-4567");
        assert_eq!(normalize_phone("+1 555.123.4567"), "555-123-4567");
        assert_eq!(normalize_phone("+44 20 7946 0958"), "+44 20 7946 0958");
        assert_eq!(phone_key("1-555-123-4567"), phone_key("555 123 4567"));
        assert_eq!(email_key(" Ann@Example.ORG "), "ann@example.org");
    }

    fn record() -> Donation {
        let mut d = Donation::new("f.pdf");
        d.amount = Some("25.00".parse().unwrap());
        d.payment_ref = Some("1001".into());
        d.payment_method = Some(PaymentMethod::HandwrittenCheck);
        d.payer.aliases = vec!["JOHN Q PUBLIC".into()];
        d
    }

    fn codes(d: &Donation) -> Vec<&str> {
        d.issues.iter().map(|i| i.code.as_str()).collect()
    }

    #[test]
    fn payment_date_rules_and_limits() {
        let rules = Rules::new(date(2026, 3, 15));
        // Handwritten: postmark wins over check date.
        let mut d = record();
        d.check_date = Some(date(2026, 3, 1));
        d.postmark_date = Some(date(2026, 3, 3));
        normalize(&mut d, &rules);
        assert_eq!(d.payment_date, Some(date(2026, 3, 3)));
        // Handwritten without postmark: check date.
        let mut d = record();
        d.check_date = Some(date(2026, 3, 1));
        normalize(&mut d, &rules);
        assert_eq!(d.payment_date, Some(date(2026, 3, 1)));
        // Printed: check date even when a postmark exists.
        let mut d = record();
        d.payment_method = Some(PaymentMethod::PrintedCheck);
        d.check_date = Some(date(2026, 3, 1));
        d.postmark_date = Some(date(2026, 3, 3));
        normalize(&mut d, &rules);
        assert_eq!(d.payment_date, Some(date(2026, 3, 1)));
        // Online: the transaction date as read.
        let mut d = record();
        d.payment_method = Some(PaymentMethod::Online);
        d.payment_date = Some(date(2026, 3, 2));
        d.check_date = Some(date(2026, 1, 1));
        normalize(&mut d, &rules);
        assert_eq!(d.payment_date, Some(date(2026, 3, 2)));
        // Missing: a warning, never today.
        let mut d = record();
        normalize(&mut d, &rules);
        assert_eq!(d.payment_date, None);
        assert!(codes(&d).contains(&"date_missing"));
        // More than 7 days ahead: refused (error); 7 days: fine; over a year old: warning.
        let mut d = record();
        d.check_date = Some(date(2026, 3, 23));
        normalize(&mut d, &rules);
        assert!(d
            .issues
            .iter()
            .any(|i| i.code == "date_future" && i.level == IssueLevel::Error));
        let mut d = record();
        d.check_date = Some(date(2026, 3, 22));
        normalize(&mut d, &rules);
        assert!(!codes(&d).contains(&"date_future"));
        let mut d = record();
        d.check_date = Some(date(2025, 3, 1));
        normalize(&mut d, &rules);
        assert!(codes(&d).contains(&"date_old"));
        // Limits are configurable.
        let mut env = EnvReader::from_pairs([("RECEIPT_FUTURE_DAYS", "30")]);
        let loose = Rules::from_env(&mut env, date(2026, 3, 15));
        let mut d = record();
        d.check_date = Some(date(2026, 3, 23));
        normalize(&mut d, &loose);
        assert!(!codes(&d).contains(&"date_future"));
    }

    #[test]
    fn record_normalisation() {
        let rules = Rules::new(date(2026, 3, 15));
        let mut d = record();
        d.payer.aliases = vec!["MR. & MRS. JOHN SMITH".into()];
        d.contact = crate::donation::Contact {
            address_line_1: Some("  12  ELM   ST ".into()),
            city: Some("BOSTON".into()),
            state: Some("massachusetts".into()),
            zip: Some("2134".into()),
            email: Some("J@X.ORG".into()),
            phone: Some("(617) 555-0100".into()),
        };
        d.memo = Some("  BUILDING  FUND ".into());
        normalize(&mut d, &rules);
        assert_eq!(d.payer.salutation.as_deref(), Some("Mr. & Mrs."));
        assert_eq!(d.payer.aliases[0], "John Smith");
        assert!(d.payer.aliases.contains(&"Smith, John".to_string()));
        assert_eq!(d.contact.address_line_1.as_deref(), Some("12 Elm St"));
        assert_eq!(d.contact.city.as_deref(), Some("Boston"));
        assert_eq!(d.contact.state.as_deref(), Some("MA"));
        assert_eq!(d.contact.zip.as_deref(), Some("02134"));
        assert_eq!(d.contact.email.as_deref(), Some("j@x.org"));
        assert_eq!(d.contact.phone.as_deref(), Some("617-555-0100"));
        // Memo: whitespace only, never case.
        assert_eq!(d.memo.as_deref(), Some("BUILDING FUND"));
        assert_eq!(d.deposit_method.as_deref(), Some("ATM Deposit"));

        let mut org = record();
        org.payer.aliases = vec!["ST. JOHN LUTHERAN CHURCH".into()];
        normalize(&mut org, &rules);
        assert_eq!(
            org.payer.organization_name.as_deref(),
            Some("St. John Lutheran Church")
        );
        assert!(org.payer.aliases.is_empty());
        assert!(!codes(&org).contains(&"name_missing"));
    }

    #[test]
    fn problems_are_issues_not_drops() {
        let rules = Rules::new(date(2026, 3, 15));
        let mut d = Donation::new("f.csv");
        d.payment_method = Some(PaymentMethod::HandwrittenCheck);
        d.contact.state = Some("Narnia".into());
        d.contact.zip = Some("123456".into());
        d.contact.email = Some("not an email".into());
        normalize(&mut d, &rules);
        for code in [
            "amount_missing",
            "name_missing",
            "payment_ref_missing",
            "state_unknown",
            "zip_invalid",
            "email_invalid",
            "date_missing",
        ] {
            assert!(codes(&d).contains(&code), "{code} in {:?}", codes(&d));
        }
        assert_eq!(d.contact.zip.as_deref(), Some("123456"), "kept as written");
        let mut neg = record();
        neg.amount = Some("-5".parse().unwrap());
        normalize(&mut neg, &rules);
        assert!(codes(&neg).contains(&"amount_not_positive"));
        // An unreadable amount from the source is not also reported as missing.
        let mut unreadable = record();
        unreadable.amount = None;
        unreadable.issue(
            IssueLevel::Error,
            "amount_unreadable",
            "amount",
            "\"abc\" is not an amount",
        );
        normalize(&mut unreadable, &rules);
        assert_eq!(
            codes(&unreadable)
                .iter()
                .filter(|c| c.starts_with("amount"))
                .count(),
            1
        );
    }

    proptest! {
        #[test]
        fn proper_case_is_idempotent(s in "[A-Za-z0-9 .'&-]{0,40}") {
            let once = proper_case(&s);
            prop_assert_eq!(proper_case(&once), once);
        }

        #[test]
        fn zip_is_idempotent(s in "[0-9A-Za-z -]{0,12}") {
            if let Some(once) = normalize_zip(&s) {
                prop_assert_eq!(normalize_zip(&once), Some(once));
            }
        }

        #[test]
        fn state_phone_ref_are_idempotent(s in "[A-Za-z0-9 ().+-]{0,20}") {
            if let Some(once) = normalize_state(&s) {
                prop_assert_eq!(normalize_state(&once), Some(once));
            }
            let p = normalize_phone(&s);
            prop_assert_eq!(normalize_phone(&p), p.clone());
            prop_assert_eq!(payment_ref_key(&s), payment_ref_key(&payment_ref_key(&s)));
        }

        #[test]
        fn record_normalisation_is_idempotent(
            name in "[A-Za-z .&']{0,30}",
            city in "[A-Za-z ]{0,15}",
            state in "[A-Za-z ]{0,14}",
            zip in "[0-9-]{0,10}",
            memo in "[A-Za-z ;]{0,20}",
            cents in 0i64..1_000_000,
            day in 0i64..800,
            method in 0u8..4,
        ) {
            let rules = Rules::new(date(2026, 3, 15));
            let mut d = Donation::new("p.pdf");
            d.payer.aliases = vec![name];
            d.contact.city = Some(city);
            d.contact.state = Some(state);
            d.contact.zip = Some(zip);
            d.memo = Some(memo);
            d.amount = Some(rust_decimal::Decimal::new(cents, 2));
            d.check_date = Some(date(2024, 1, 1) + Duration::days(day));
            d.payment_method = match method {
                0 => None,
                1 => Some(PaymentMethod::HandwrittenCheck),
                2 => Some(PaymentMethod::PrintedCheck),
                _ => Some(PaymentMethod::Online),
            };
            normalize(&mut d, &rules);
            let once = d.clone();
            normalize(&mut d, &rules);
            prop_assert_eq!(d, once);
        }
    }
}
