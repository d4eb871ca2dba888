//! The data every fake company starts with: a bank account, an income account, 110 filler
//! accounts (more than one query page), Undeposited Funds, two items and three payment
//! methods.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::company::Company;
use super::entity::Kind;

impl Company {
    /// A company with the starting data, created as of `now`.
    pub(super) fn seeded(now: DateTime<Utc>) -> Company {
        let mut c = Company::empty();
        let mut seed = |kind: Kind, v: Value| {
            if let Value::Object(m) = v {
                let _ = c.create(kind, m, now, false);
            }
        };
        seed(
            Kind::Account,
            json!({"Name": "Checking", "AccountType": "Bank", "AccountSubType": "Checking",
                   "Classification": "Asset"}),
        );
        seed(
            Kind::Account,
            json!({"Name": "Donation Income", "AccountType": "Income",
                   "AccountSubType": "NonProfitIncome", "Classification": "Revenue"}),
        );
        let fillers = [
            ("Expense", "OfficeGeneralAdministrativeExpenses"),
            ("Other Expense", "Depreciation"),
            ("Cost of Goods Sold", "SuppliesMaterialsCogs"),
            ("Other Current Asset", "OtherCurrentAssets"),
            ("Expense", "Travel"),
            ("Fixed Asset", "MachineryAndEquipment"),
            ("Other Current Liability", "OtherCurrentLiabilities"),
        ];
        for n in 0..110u32 {
            let (account_type, sub_type) = fillers[n as usize % fillers.len()];
            let number = 6001 + n;
            seed(
                Kind::Account,
                json!({"Name": format!("Expense {number}"), "AcctNum": number.to_string(),
                       "AccountType": account_type, "AccountSubType": sub_type}),
            );
        }
        seed(
            Kind::Account,
            json!({"Name": "12000 Undeposited Funds", "AcctNum": "12000",
                   "AccountType": "Other Current Asset", "AccountSubType": "UndepositedFunds",
                   "Classification": "Asset"}),
        );
        let income = c
            .find_by_name(Kind::Account, "Donation Income")
            .unwrap_or_default();
        let mut seed = |kind: Kind, v: Value| {
            if let Value::Object(m) = v {
                let _ = c.create(kind, m, now, false);
            }
        };
        seed(
            Kind::Item,
            json!({"Name": "Donations", "Type": "Service", "Description": "Donation",
                   "IncomeAccountRef": {"value": income}}),
        );
        seed(
            Kind::Item,
            json!({"Name": "Services", "Type": "Service",
                   "IncomeAccountRef": {"value": income}}),
        );
        seed(
            Kind::PaymentMethod,
            json!({"Name": "Cash", "Type": "NON_CREDIT_CARD"}),
        );
        seed(
            Kind::PaymentMethod,
            json!({"Name": "Check", "Type": "NON_CREDIT_CARD"}),
        );
        seed(
            Kind::PaymentMethod,
            json!({"Name": "Visa", "Type": "CREDIT_CARD"}),
        );
        c
    }
}
