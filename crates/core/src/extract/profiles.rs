//! Export profiles: which platform wrote a CSV file, which column plays which role, and which
//! rows are not received gifts. The table is data (`profiles.toml`, docs/IMPORTS.md), read once.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Amount,
    /// An employer's match beside the donor's own gift: its own gift, from `Employer`.
    MatchAmount,
    Employer,
    Date,
    Reference,
    CheckNumber,
    Name,
    FirstName,
    LastName,
    Organization,
    Email,
    Phone,
    Address,
    City,
    State,
    Zip,
    Memo,
    Currency,
    Status,
    Type,
    Method,
    RefundedAmount,
    Refunded,
    Anonymous,
    Captured,
}

/// Roles that tell one gift from another: a file needs one of them besides the amount.
pub const WHO_ROLES: [Role; 6] = [
    Role::Name,
    Role::FirstName,
    Role::LastName,
    Role::Organization,
    Role::Reference,
    Role::CheckNumber,
];

impl Role {
    /// Every role, in the order the mapping step lists them.
    pub const ALL: [Role; 25] = [
        Role::Amount,
        Role::Date,
        Role::Name,
        Role::FirstName,
        Role::LastName,
        Role::Organization,
        Role::CheckNumber,
        Role::Reference,
        Role::Email,
        Role::Phone,
        Role::Address,
        Role::City,
        Role::State,
        Role::Zip,
        Role::Memo,
        Role::Currency,
        Role::Status,
        Role::Type,
        Role::Method,
        Role::RefundedAmount,
        Role::Refunded,
        Role::Anonymous,
        Role::Captured,
        Role::MatchAmount,
        Role::Employer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Amount => "amount",
            Role::MatchAmount => "match_amount",
            Role::Employer => "employer",
            Role::Date => "date",
            Role::Reference => "reference",
            Role::CheckNumber => "check_number",
            Role::Name => "name",
            Role::FirstName => "first_name",
            Role::LastName => "last_name",
            Role::Organization => "organization",
            Role::Email => "email",
            Role::Phone => "phone",
            Role::Address => "address",
            Role::City => "city",
            Role::State => "state",
            Role::Zip => "zip",
            Role::Memo => "memo",
            Role::Currency => "currency",
            Role::Status => "status",
            Role::Type => "type",
            Role::Method => "method",
            Role::RefundedAmount => "refunded_amount",
            Role::Refunded => "refunded",
            Role::Anonymous => "anonymous",
            Role::Captured => "captured",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Why a line of a file is not a gift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    Failed,
    Refunded,
    Reversed,
    Pending,
    Withdrawal,
    Transfer,
    Fee,
    CurrencyConversion,
    NotPositive,
    NoAmount,
    Totals,
    Summary,
    Blank,
    Preamble,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Failed => "failed",
            SkipReason::Refunded => "refunded",
            SkipReason::Reversed => "reversed",
            SkipReason::Pending => "pending",
            SkipReason::Withdrawal => "withdrawal",
            SkipReason::Transfer => "transfer",
            SkipReason::Fee => "fee",
            SkipReason::CurrencyConversion => "currency_conversion",
            SkipReason::NotPositive => "not_positive",
            SkipReason::NoAmount => "no_amount",
            SkipReason::Totals => "totals",
            SkipReason::Summary => "summary",
            SkipReason::Blank => "blank",
            SkipReason::Preamble => "preamble",
        }
    }

    /// "1 refund", "2 failed charges": how the file's line counts it.
    pub fn counted(self, n: u64) -> String {
        let (one, many) = match self {
            SkipReason::Failed => ("failed payment", "failed payments"),
            SkipReason::Refunded => ("refund", "refunds"),
            SkipReason::Reversed => ("reversal", "reversals"),
            SkipReason::Pending => ("pending payment", "pending payments"),
            SkipReason::Withdrawal => ("withdrawal", "withdrawals"),
            SkipReason::Transfer => ("transfer", "transfers"),
            SkipReason::Fee => ("fee", "fees"),
            SkipReason::CurrencyConversion => ("currency conversion", "currency conversions"),
            SkipReason::NotPositive => ("zero or negative amount", "zero or negative amounts"),
            SkipReason::NoAmount => ("line without an amount", "lines without an amount"),
            SkipReason::Totals => ("totals line", "totals lines"),
            SkipReason::Summary => ("summary line", "summary lines"),
            SkipReason::Blank => ("blank line", "blank lines"),
            SkipReason::Preamble => ("line before the header", "lines before the header"),
        };
        format!("{n} {}", if n == 1 { one } else { many })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkipRule {
    pub role: Role,
    pub values: Vec<String>,
    pub reason: SkipReason,
}

impl SkipRule {
    pub fn matches(&self, cell: &str) -> bool {
        let cell = cell.trim();
        self.values.iter().any(|v| v.eq_ignore_ascii_case(cell))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub id: String,
    pub label: String,
    pub deposit_method: String,
    pub signature: Vec<String>,
    #[serde(default)]
    pub columns: BTreeMap<Role, Vec<String>>,
    #[serde(default)]
    pub skip: Vec<SkipRule>,
    #[serde(default)]
    pub require_reference: bool,
    #[serde(default)]
    pub anonymous_values: Vec<String>,
    #[serde(default)]
    pub blank_name_anonymous: bool,
}

impl Profile {
    /// Whether a header row (normalised) is this profile's.
    pub fn fits(&self, headers: &[String]) -> bool {
        self.signature
            .iter()
            .all(|want| want.split('|').any(|w| headers.iter().any(|h| h == w)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    #[serde(rename = "profile")]
    pub profiles: Vec<Profile>,
    pub aliases: BTreeMap<Role, Vec<String>>,
    /// Rules for every file, after a profile's own.
    pub skip: Vec<SkipRule>,
}

impl Table {
    pub fn profile(&self, id: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.id == id)
    }

    /// The role a normalised header has by name alone, if any.
    pub fn alias(&self, header: &str) -> Option<Role> {
        // Roles in the mapping step's order, so "amount" wins over a later role's alias.
        Role::ALL.into_iter().find(|r| {
            self.aliases
                .get(r)
                .is_some_and(|names| names.iter().any(|n| n == header))
        })
    }
}

const TABLE: &str = include_str!("profiles.toml");

/// The profile table. It is part of the program, so a table that does not parse is a defect
/// caught by the tests; the program then reads every file by column names only.
pub fn table() -> &'static Table {
    static PARSED: OnceLock<Table> = OnceLock::new();
    PARSED.get_or_init(|| match toml::from_str(TABLE) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "the export profile table does not parse");
            Table {
                profiles: Vec::new(),
                aliases: BTreeMap::new(),
                skip: Vec::new(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_and_names_unique_profiles() {
        let t: Table = toml::from_str(TABLE).unwrap();
        assert!(t.profiles.len() >= 10);
        let mut ids: Vec<&str> = t.profiles.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), t.profiles.len());
        for p in &t.profiles {
            assert!(p.columns.contains_key(&Role::Amount), "{}", p.id);
            assert!(p.columns.contains_key(&Role::Date), "{}", p.id);
        }
        assert_eq!(t.alias("check"), Some(Role::CheckNumber));
        assert_eq!(t.alias("amount"), Some(Role::Amount));
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }
}
