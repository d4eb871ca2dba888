//! The length limit of every field a person can edit, in characters, kept in one place: the
//! web refuses a longer value with 422 naming the field, before anything is stored or sent to
//! QuickBooks. docs/SECURITY.md lists them (a test keeps the list true).
//!
//! The limits are generous for real paperwork and QuickBooks's own limits (docs/RULES.md,
//! "QBO: entities"), and small enough that one edit cannot grow a deposit (one Redis value,
//! rewritten on every change) by more than a few kilobytes.

use crate::deposits::FieldProblem;

/// Where a field is edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A record's fields (`PATCH /api/deposits/{id}/records/{record_id}`).
    Record,
    /// A new deposit (`POST /api/deposits`).
    Deposit,
    /// A QuickBooks customer made or chosen from a row (`.../customer`, `.../match`).
    Customer,
    /// A new QuickBooks item, account or payment method (`POST /api/qbo/items` ...).
    QboList,
    /// The receipt defaults (`PUT /api/qbo/defaults`).
    Defaults,
    /// The customer search box (`GET /api/qbo/customers?q=`).
    Search,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Record => "record",
            Self::Deposit => "deposit",
            Self::Customer => "customer",
            Self::QboList => "QuickBooks list entry",
            Self::Defaults => "receipt defaults",
            Self::Search => "customer search",
        }
    }
}

/// Every limit: (scope, field as the API names it, most characters).
pub const LIMITS: &[(Scope, &str, usize)] = &[
    (Scope::Record, "name", 200),
    (Scope::Record, "organization_name", 200),
    (Scope::Record, "salutation", 50),
    (Scope::Record, "payment_ref", 64),
    (Scope::Record, "amount", 32),
    (Scope::Record, "payment_date", 32),
    (Scope::Record, "check_date", 32),
    (Scope::Record, "postmark_date", 32),
    (Scope::Record, "deposit_date", 32),
    (Scope::Record, "deposit_method", 50),
    (Scope::Record, "payment_method", 32),
    (Scope::Record, "memo", 1000),
    (Scope::Record, "address_line_1", 200),
    (Scope::Record, "city", 100),
    (Scope::Record, "state", 50),
    (Scope::Record, "zip", 20),
    (Scope::Record, "email", 254),
    (Scope::Record, "phone", 40),
    (Scope::Record, "keep_out", 5),
    (Scope::Record, "duplicate_ok", 5),
    (Scope::Deposit, "name", 120),
    (Scope::Customer, "display_name", 500),
    (Scope::Customer, "customer_id", 50),
    (Scope::Customer, "given_name", 100),
    (Scope::Customer, "family_name", 100),
    (Scope::Customer, "company_name", 100),
    (Scope::Customer, "email", 254),
    (Scope::Customer, "phone", 40),
    (Scope::Customer, "address_line_1", 500),
    (Scope::Customer, "city", 255),
    (Scope::Customer, "state", 50),
    (Scope::Customer, "zip", 20),
    (Scope::QboList, "name", 100),
    (Scope::QboList, "income_account_id", 50),
    (Scope::Defaults, "item_id", 50),
    (Scope::Defaults, "item_name", 500),
    (Scope::Defaults, "deposit_account_id", 50),
    (Scope::Defaults, "deposit_account_name", 500),
    (Scope::Defaults, "payment_method_id", 50),
    (Scope::Defaults, "payment_method_name", 500),
    (Scope::Search, "q", 100),
];

/// The most characters `field` may hold in `scope`; `None` for a field that is not editable.
pub fn max_chars(scope: Scope, field: &str) -> Option<usize> {
    LIMITS
        .iter()
        .find(|(s, f, _)| *s == scope && *f == field)
        .map(|&(_, _, n)| n)
}

/// Checks one value; a field without a limit passes (it is refused elsewhere if unknown).
pub fn check(scope: Scope, field: &str, value: &str) -> Result<(), FieldProblem> {
    let Some(max) = max_chars(scope, field) else {
        return Ok(());
    };
    // Counting stops just past the limit: a huge value costs no more than a short one.
    if value.chars().take(max + 1).count() > max {
        return Err(FieldProblem {
            field: field.to_string(),
            message: format!("is too long: at most {max} characters"),
        });
    }
    Ok(())
}

/// Checks several values at once; every field over its limit is named.
pub fn check_all<'a>(
    scope: Scope,
    fields: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<(), Vec<FieldProblem>> {
    let problems: Vec<FieldProblem> = fields
        .into_iter()
        .filter_map(|(f, v)| check(scope, f, v?).err())
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_editable_record_field_has_a_limit() {
        for f in crate::deposits::EDITABLE_FIELDS {
            assert!(max_chars(Scope::Record, f).is_some(), "{f}");
        }
        assert_eq!(
            LIMITS.iter().filter(|(s, ..)| *s == Scope::Record).count(),
            crate::deposits::EDITABLE_FIELDS.len()
        );
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        assert!(check(Scope::Deposit, "name", &"é".repeat(120)).is_ok());
        let err = check(Scope::Deposit, "name", &"é".repeat(121)).unwrap_err();
        assert_eq!(err.field, "name");
        assert!(err.message.contains("120"), "{}", err.message);
        assert!(check(Scope::Deposit, "unknown", &"x".repeat(10_000)).is_ok());
        let all = check_all(
            Scope::Customer,
            [
                ("display_name", Some("ok")),
                ("customer_id", Some(&*"9".repeat(51))),
            ],
        )
        .unwrap_err();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].field, "customer_id");
    }

    /// docs/SECURITY.md lists every limit with its number (the treasurer's guide points there).
    #[test]
    fn the_security_page_lists_every_limit() {
        let doc = include_str!("../../../docs/SECURITY.md");
        for (scope, field, max) in LIMITS {
            let row = format!("| {} | `{field}` | {max} |", scope.as_str());
            assert!(doc.contains(&row), "docs/SECURITY.md lacks the row {row}");
        }
    }
}
