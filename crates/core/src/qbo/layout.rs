//! The receipt layout: what a sales receipt's Description, DocNumber and CustomerMemo say,
//! from templates with named fields, so each organisation's books read the way its treasurer
//! expects. The default is Friends of Music's: Description
//! `<check no>_<gift date>_<amount>_<last>_<first>[_<memo>]`, DocNumber
//! `<import date>_<check no>`, CustomerMemo `auto import on <import date>`.
//!
//! Template syntax: `{field}` is a field's value; `[...]` is a part shown only when every
//! field in it has a value (so `[_{memo}]` adds nothing for a row without a memo); `{{`, `}}`,
//! `[[` and `]]` are the characters themselves.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::donation::{Donation, PaymentMethod};

/// QuickBooks keeps a DocNumber to 21 characters, a CustomerMemo to 1000; a line Description
/// is kept to 1000 here (the old system's limit, far under Intuit's).
pub const DOC_NUMBER_MAX: usize = 21;
pub const MEMO_MAX: usize = 1000;
pub const DESCRIPTION_MAX: usize = 1000;
/// A template longer than this is refused (it could only be a mistake).
const TEMPLATE_MAX: usize = 400;

/// The fields a template may name, with what they hold (shown on the settings page).
pub const FIELDS: &[(&str, &str)] = &[
    ("ref", "the check number, or the online payment's reference"),
    ("gift_date", "the gift date, YYYY-MM-DD"),
    ("gift_date_us", "the gift date, MM/DD/YYYY"),
    ("amount", "the amount, like 1234.50"),
    ("last", "the donor's last name, or the organisation's name"),
    ("first", "the donor's first name (none for an organisation)"),
    ("name", "the donor's name as written"),
    ("customer", "the QuickBooks customer's name"),
    ("memo", "the check's memo line"),
    ("method", "Check, Money order or Online"),
    ("deposit_date", "the deposit's date, YYYY-MM-DD"),
    ("import_date", "the day the receipt is sent, YYYY-MM-DD"),
];

/// The templates of a receipt; stored in Redis, edited on the settings page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptLayout {
    pub description: String,
    pub doc_number: String,
    pub customer_memo: String,
    /// The gift date as the line's ServiceDate too (Intuit's schema has it on sales lines).
    pub service_date: bool,
}

impl Default for ReceiptLayout {
    fn default() -> Self {
        Self {
            description: "{ref}_{gift_date}_{amount}_{last}[_{first}][_{memo}]".into(),
            doc_number: "{import_date}_{ref}".into(),
            customer_memo: "auto import on {import_date}".into(),
            service_date: true,
        }
    }
}

/// What is wrong with a template, in words for the settings page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("{template}: there is no field {{{field}}}; the fields are {list}")]
    UnknownField {
        template: &'static str,
        field: String,
        list: String,
    },
    #[error("{template}: a {{ or [ is not closed, or a }} or ] has no opening (write {{{{ or [[ for the character itself)")]
    Unbalanced { template: &'static str },
    #[error("{template}: at most {TEMPLATE_MAX} characters")]
    TooLong { template: &'static str },
}

impl LayoutError {
    /// The layout's field the error is about (`description`, `doc_number`, `customer_memo`).
    pub fn field(&self) -> &'static str {
        let (LayoutError::UnknownField { template, .. }
        | LayoutError::Unbalanced { template }
        | LayoutError::TooLong { template }) = self;
        match *template {
            "Description" => "description",
            "DocNumber" => "doc_number",
            _ => "customer_memo",
        }
    }
}

/// One receipt's texts as the layout makes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub description: String,
    /// None when the template gives nothing (QuickBooks then numbers the receipt itself).
    pub doc_number: Option<String>,
    pub customer_memo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(String),
    Optional(Vec<Piece>),
}

impl ReceiptLayout {
    /// Every template parses and names only known fields.
    pub fn validate(&self) -> Result<(), LayoutError> {
        for (name, t) in self.templates() {
            parse(name, t)?;
        }
        Ok(())
    }

    fn templates(&self) -> [(&'static str, &str); 3] {
        [
            ("Description", self.description.as_str()),
            ("DocNumber", self.doc_number.as_str()),
            ("Customer memo", self.customer_memo.as_str()),
        ]
    }

    /// The texts for `record` sent on `today`. A template that does not parse (a stored one
    /// from an older version) gives its text unchanged rather than failing a send.
    pub fn render(&self, record: &Donation, today: NaiveDate) -> Rendered {
        let values = Values::of(record, today);
        let text = |name: &'static str, t: &str, max: usize| {
            let out = match parse(name, t) {
                Ok(pieces) => render_pieces(&pieces, &values),
                Err(_) => t.to_string(),
            };
            clip(out.trim(), max)
        };
        let description = text("Description", &self.description, DESCRIPTION_MAX);
        let doc = text("DocNumber", &self.doc_number, DOC_NUMBER_MAX);
        let memo = text("Customer memo", &self.customer_memo, MEMO_MAX);
        Rendered {
            description: if description.is_empty() {
                "Donation".into()
            } else {
                description
            },
            doc_number: (!doc.is_empty()).then_some(doc),
            customer_memo: (!memo.is_empty()).then_some(memo),
        }
    }
}

/// The values of a row's fields; a field without a value is absent.
struct Values(Vec<(&'static str, String)>);

impl Values {
    fn of(r: &Donation, today: NaiveDate) -> Self {
        let mut v: Vec<(&'static str, Option<String>)> = Vec::new();
        let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let name = r.payer.aliases.first().map(|s| one_line(s));
        let org = r.payer.organization_name.as_deref().map(one_line);
        let (first, last) = match (&org, &name) {
            (Some(o), _) => (None, Some(o.clone())),
            (None, Some(n)) => split_name(n),
            (None, None) => (None, None),
        };
        v.push(("ref", r.payment_ref.as_deref().map(one_line)));
        v.push((
            "gift_date",
            r.payment_date.map(|d| d.format("%Y-%m-%d").to_string()),
        ));
        v.push((
            "gift_date_us",
            r.payment_date.map(|d| d.format("%m/%d/%Y").to_string()),
        ));
        v.push(("amount", r.amount.map(|a| format!("{:.2}", a.round_dp(2)))));
        v.push(("last", last));
        v.push(("first", first));
        v.push(("name", org.or(name)));
        v.push(("customer", r.qbo.display_name.as_deref().map(one_line)));
        v.push(("memo", r.memo.as_deref().map(one_line)));
        v.push((
            "method",
            r.payment_method.map(|m| {
                match m {
                    PaymentMethod::Online => "Online",
                    PaymentMethod::MoneyOrder => "Money order",
                    _ => "Check",
                }
                .to_string()
            }),
        ));
        v.push((
            "deposit_date",
            r.deposit_date.map(|d| d.format("%Y-%m-%d").to_string()),
        ));
        v.push(("import_date", Some(today.format("%Y-%m-%d").to_string())));
        Self(
            v.into_iter()
                .filter_map(|(k, val)| val.filter(|s| !s.trim().is_empty()).map(|s| (k, s)))
                .collect(),
        )
    }

    fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| *k == field)
            .map(|(_, v)| v.as_str())
    }
}

/// The example the settings page previews a layout with: Jane O'Brien's handwritten check
/// no. 1043 of $125.00, a week before `today`, memo "In memory of Ann".
pub fn example_check(today: NaiveDate) -> Donation {
    let mut d = Donation::new("example");
    d.amount = Some(rust_decimal::Decimal::new(12_500, 2));
    d.payment_date = today.checked_sub_days(chrono::Days::new(7));
    d.deposit_date = Some(today);
    d.payment_ref = Some("1043".into());
    d.payment_method = Some(PaymentMethod::HandwrittenCheck);
    d.payer.aliases = vec!["Jane O'Brien".into()];
    d.memo = Some("In memory of Ann".into());
    d.qbo.display_name = Some("O'Brien, Jane".into());
    d.qbo.match_status = crate::donation::MatchStatus::Matched;
    d
}

/// "Smith, John" or "John Smith" → (first, last); one word is a last name.
pub fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let name = name.trim();
    let some = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_string())
    };
    if let Some((last, first)) = name.split_once(',') {
        return (some(first), some(last));
    }
    match name.rsplit_once(' ') {
        Some((first, last)) => (some(first), some(last)),
        None => (None, some(name)),
    }
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn parse(template: &'static str, t: &str) -> Result<Vec<Piece>, LayoutError> {
    if t.chars().count() > TEMPLATE_MAX {
        return Err(LayoutError::TooLong { template });
    }
    let unbalanced = || LayoutError::Unbalanced { template };
    // A stack of open optional parts; the bottom is the whole template.
    let mut stack: Vec<Vec<Piece>> = vec![Vec::new()];
    let mut text = String::new();
    let mut chars = t.chars().peekable();
    let flush = |text: &mut String, stack: &mut Vec<Vec<Piece>>| {
        if !text.is_empty() {
            if let Some(top) = stack.last_mut() {
                top.push(Piece::Text(std::mem::take(text)));
            }
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '{' | '}' | '[' | ']' if chars.peek() == Some(&c) => {
                chars.next();
                text.push(c);
            }
            '{' => {
                flush(&mut text, &mut stack);
                let mut field = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) if ch.is_ascii_alphanumeric() || ch == '_' => field.push(ch),
                        _ => return Err(unbalanced()),
                    }
                }
                if !FIELDS.iter().any(|(f, _)| *f == field) {
                    return Err(LayoutError::UnknownField {
                        template,
                        field,
                        list: FIELDS
                            .iter()
                            .map(|(f, _)| format!("{{{f}}}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                if let Some(top) = stack.last_mut() {
                    top.push(Piece::Field(field));
                }
            }
            '[' => {
                flush(&mut text, &mut stack);
                stack.push(Vec::new());
            }
            ']' => {
                flush(&mut text, &mut stack);
                if stack.len() < 2 {
                    return Err(unbalanced());
                }
                let inner = stack.pop().unwrap_or_default();
                if let Some(top) = stack.last_mut() {
                    top.push(Piece::Optional(inner));
                }
            }
            '}' => return Err(unbalanced()),
            c => text.push(c),
        }
    }
    flush(&mut text, &mut stack);
    if stack.len() != 1 {
        return Err(unbalanced());
    }
    Ok(stack.pop().unwrap_or_default())
}

/// The text of `pieces`: a field without a value gives nothing; an optional part shows only
/// when every field directly in it has a value.
fn render_pieces(pieces: &[Piece], values: &Values) -> String {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Field(f) => out.push_str(values.get(f).unwrap_or_default()),
            Piece::Optional(inner) if all_present(inner, values) => {
                out.push_str(&render_pieces(inner, values));
            }
            Piece::Optional(_) => {}
        }
    }
    out
}

fn all_present(pieces: &[Piece], values: &Values) -> bool {
    pieces.iter().all(|p| match p {
        Piece::Text(_) => true,
        Piece::Field(f) => values.get(f).is_some(),
        Piece::Optional(_) => true,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn row() -> Donation {
        let mut d = example_check(day(2026, 11, 27));
        d.amount = Some("1234.5".parse().unwrap());
        d
    }

    #[test]
    fn the_default_is_friends_of_musics_layout() {
        let r = ReceiptLayout::default().render(&row(), day(2026, 12, 1));
        assert_eq!(
            r.description,
            "1043_2026-11-20_1234.50_O'Brien_Jane_In memory of Ann"
        );
        assert_eq!(r.doc_number.as_deref(), Some("2026-12-01_1043"));
        assert_eq!(
            r.customer_memo.as_deref(),
            Some("auto import on 2026-12-01")
        );
        // No memo, an organisation: the optional parts drop out, the organisation is "last".
        let mut org = row();
        org.memo = None;
        org.payer.organization_name = Some("Grace Church".into());
        let r = ReceiptLayout::default().render(&org, day(2026, 12, 1));
        assert_eq!(r.description, "1043_2026-11-20_1234.50_Grace Church");
    }

    #[test]
    fn doc_numbers_are_clipped_to_intuits_limit() {
        let mut d = row();
        d.payment_ref = Some("0001043-and-a-very-long-tail".into());
        let r = ReceiptLayout::default().render(&d, day(2026, 12, 1));
        let doc = r.doc_number.unwrap();
        assert_eq!(doc.chars().count(), DOC_NUMBER_MAX);
        assert!(doc.starts_with("2026-12-01_0001043"));
    }

    #[test]
    fn templates_with_unknown_fields_or_open_brackets_are_refused_by_name() {
        let bad = ReceiptLayout {
            description: "{ref}_{nmae}".into(),
            ..ReceiptLayout::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("Description: there is no field {nmae}"),
            "{e}"
        );
        assert!(e.contains("{gift_date}"), "{e}");
        for t in ["{ref", "[_{memo}", "a]b", "}"] {
            let bad = ReceiptLayout {
                doc_number: t.into(),
                ..ReceiptLayout::default()
            };
            assert!(
                matches!(
                    bad.validate(),
                    Err(LayoutError::Unbalanced {
                        template: "DocNumber"
                    })
                ),
                "{t}"
            );
        }
        let literal = ReceiptLayout {
            customer_memo: "[[{ref}]] {{thanks}}".into(),
            ..ReceiptLayout::default()
        };
        literal.validate().unwrap();
        let r = literal.render(&row(), day(2026, 12, 1));
        assert_eq!(r.customer_memo.as_deref(), Some("[1043] {thanks}"));
    }

    #[test]
    fn empty_templates_leave_quickbooks_its_own_numbering() {
        let plain = ReceiptLayout {
            description: String::new(),
            doc_number: "[{ref}]".into(),
            customer_memo: String::new(),
            service_date: false,
        };
        let mut d = row();
        d.payment_ref = None;
        let r = plain.render(&d, day(2026, 12, 1));
        assert_eq!(r.description, "Donation");
        assert_eq!(r.doc_number, None);
        assert_eq!(r.customer_memo, None);
    }
}
