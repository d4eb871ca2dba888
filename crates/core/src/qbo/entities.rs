//! The QuickBooks entities we read and write (Customer, SalesReceipt, Item, Account,
//! PaymentMethod, Deposit, Attachable), with only the fields we use.
//! Everything is optional when reading: QBO returns only properties that have values, and
//! unknown fields are ignored. Amounts are exact decimals (JSON numbers on the wire).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
}

impl Ref {
    pub fn to(id: &str) -> Self {
        Self {
            value: id.to_string(),
            name: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PhysicalAddress {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line2: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub country_sub_division_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub postal_code: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EmailAddr {
    pub address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Phone {
    pub free_form_number: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Customer {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sync_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub company_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bill_addr: Option<PhysicalAddress>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub primary_email_addr: Option<EmailAddr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub primary_phone: Option<Phone>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub active: Option<bool>,
}

impl Customer {
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.display_name.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SalesItemLineDetail {
    pub item_ref: Ref,
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        with = "rust_decimal::serde::float_option"
    )]
    pub qty: Option<Decimal>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        with = "rust_decimal::serde::float_option"
    )]
    pub unit_price: Option<Decimal>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Line {
    #[serde(with = "rust_decimal::serde::float")]
    pub amount: Decimal,
    pub detail_type: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sales_item_line_detail: Option<SalesItemLineDetail>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SalesReceipt {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sync_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub doc_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub txn_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub customer_ref: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payment_method_ref: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payment_ref_num: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deposit_to_account_ref: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub private_note: Option<String>,
    #[serde(default)]
    pub line: Vec<Line>,
    /// Computed by QuickBooks; never sent.
    #[serde(skip_serializing, default, with = "rust_decimal::serde::float_option")]
    pub total_amt: Option<Decimal>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Item {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default, rename = "Type")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub income_account_ref: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub acct_num: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub account_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub account_sub_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentMethod {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default, rename = "Type")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub active: Option<bool>,
}

/// A QBO entity: its name in paths and queries, and in answers.
pub trait Entity: serde::de::DeserializeOwned + Serialize {
    /// `Customer`: the query name and the answer's wrapper key.
    const NAME: &'static str;
    /// `customer`: the path segment.
    const PATH: &'static str;
}

impl Entity for Customer {
    const NAME: &'static str = "Customer";
    const PATH: &'static str = "customer";
}
impl Entity for SalesReceipt {
    const NAME: &'static str = "SalesReceipt";
    const PATH: &'static str = "salesreceipt";
}
impl Entity for Item {
    const NAME: &'static str = "Item";
    const PATH: &'static str = "item";
}
impl Entity for Account {
    const NAME: &'static str = "Account";
    const PATH: &'static str = "account";
}
impl Entity for PaymentMethod {
    const NAME: &'static str = "PaymentMethod";
    const PATH: &'static str = "paymentmethod";
}

/// The transaction a deposit line moves out of Undeposited Funds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LinkedTxn {
    pub txn_id: String,
    pub txn_type: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub txn_line_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DepositLine {
    #[serde(with = "rust_decimal::serde::float")]
    pub amount: Decimal,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linked_txn: Vec<LinkedTxn>,
}

/// A bank deposit: receipts moved from Undeposited Funds into a bank account, as the bank
/// statement shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Deposit {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub txn_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deposit_to_account_ref: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub private_note: Option<String>,
    #[serde(default)]
    pub line: Vec<DepositLine>,
    /// Computed by QuickBooks; never sent.
    #[serde(skip_serializing, default, with = "rust_decimal::serde::float_option")]
    pub total_amt: Option<Decimal>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRef {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttachableRef {
    pub entity_ref: EntityRef,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub include_on_send: Option<bool>,
}

/// A file attached to a transaction (the scan behind a receipt).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Attachable {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub file_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
    #[serde(default)]
    pub attachable_ref: Vec<AttachableRef>,
    /// Computed by QuickBooks; never sent.
    #[serde(skip_serializing, default)]
    pub size: Option<f64>,
}

impl Entity for Deposit {
    const NAME: &'static str = "Deposit";
    const PATH: &'static str = "deposit";
}
impl Entity for Attachable {
    const NAME: &'static str = "Attachable";
    const PATH: &'static str = "attachable";
}
