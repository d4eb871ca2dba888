//! The entity kinds the fake serves (what each is called and which properties a query may
//! name) and small helpers for reading and writing their JSON fields.

use serde_json::{json, Map, Value};

/// The entities the fake stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Customer,
    SalesReceipt,
    Item,
    Account,
    PaymentMethod,
    Deposit,
    Attachable,
}

impl Kind {
    pub(super) const ALL: [Kind; 7] = [
        Kind::Customer,
        Kind::SalesReceipt,
        Kind::Item,
        Kind::Account,
        Kind::PaymentMethod,
        Kind::Deposit,
        Kind::Attachable,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Customer => "Customer",
            Kind::SalesReceipt => "SalesReceipt",
            Kind::Item => "Item",
            Kind::Account => "Account",
            Kind::PaymentMethod => "PaymentMethod",
            Kind::Deposit => "Deposit",
            Kind::Attachable => "Attachable",
        }
    }

    pub(super) fn from_path(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().to_ascii_lowercase() == s)
    }

    pub(super) fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// An `EntityRef.type`: QuickBooks takes it in any case (`SalesReceipt`, `salesreceipt`).
    pub(super) fn from_name_any_case(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Properties a WHERE or ORDERBY may name.
    pub(super) fn queryable(self) -> &'static [&'static str] {
        match self {
            Kind::Customer => &[
                "Id",
                "DisplayName",
                "Title",
                "GivenName",
                "MiddleName",
                "FamilyName",
                "Suffix",
                "CompanyName",
                "PrintOnCheckName",
                "FullyQualifiedName",
                "PrimaryEmailAddr",
                "Active",
                "Balance",
                "SyncToken",
                "MetaData.CreateTime",
                "MetaData.LastUpdatedTime",
            ],
            Kind::SalesReceipt => &[
                "Id",
                "DocNumber",
                "TxnDate",
                "CustomerRef",
                "PaymentRefNum",
                "PrivateNote",
                "TotalAmt",
                "DepositToAccountRef",
                "PaymentMethodRef",
                "SyncToken",
                "MetaData.CreateTime",
                "MetaData.LastUpdatedTime",
            ],
            Kind::Item => &[
                "Id",
                "Name",
                "Type",
                "Active",
                "FullyQualifiedName",
                "IncomeAccountRef",
                "SyncToken",
                "MetaData.CreateTime",
                "MetaData.LastUpdatedTime",
            ],
            Kind::Account => &[
                "Id",
                "Name",
                "AcctNum",
                "AccountType",
                "AccountSubType",
                "Classification",
                "Active",
                "FullyQualifiedName",
                "SyncToken",
                "MetaData.CreateTime",
                "MetaData.LastUpdatedTime",
            ],
            Kind::PaymentMethod => &[
                "Id",
                "Name",
                "Type",
                "Active",
                "SyncToken",
                "MetaData.CreateTime",
                "MetaData.LastUpdatedTime",
            ],
            Kind::Deposit => &[
                "Id",
                "TxnDate",
                "TotalAmt",
                "DepositToAccountRef",
                "PrivateNote",
                "SyncToken",
                "MetaData.CreateTime",
                "MetaData.LastUpdatedTime",
            ],
            Kind::Attachable => &[
                "Id",
                "FileName",
                "Note",
                "ContentType",
                "AttachableRef.EntityRef.Type",
                "AttachableRef.EntityRef.value",
                "SyncToken",
                "MetaData.CreateTime",
                "MetaData.LastUpdatedTime",
            ],
        }
    }
}

/// Members the server owns: dropped from a create or update body.
pub(super) const SYSTEM_KEYS: [&str; 5] = ["Id", "SyncToken", "sparse", "domain", "MetaData"];

pub(super) fn usd() -> Value {
    json!({"value": "USD", "name": "United States Dollar"})
}

pub(super) fn str_of<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

/// `Ref.value` (a string, or a number sent as one).
pub(super) fn ref_value(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)?.get("value")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

pub(super) fn json_amount(cents: i64) -> Value {
    json!(cents as f64 / 100.0)
}

/// Trims a string field; drops it when it ends up empty.
pub(super) fn trim_field(m: &mut Map<String, Value>, key: &str) {
    if let Some(Value::String(s)) = m.get_mut(key) {
        let t = s.trim().to_string();
        if t.is_empty() {
            m.remove(key);
        } else {
            *s = t;
        }
    }
}
