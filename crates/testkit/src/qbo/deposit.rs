//! Deposit rules: money goes to a Bank or Other Current Asset account (never Undeposited
//! Funds itself); each line either moves one sales receipt out of Undeposited Funds (all of
//! it, and only once across every deposit) or brings other funds from a named account;
//! TotalAmt is computed here. A receipt on a stored deposit cannot change (see
//! `Company::target`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::company::Company;
use super::entity::{cents, id_of, json_amount, number, ref_value, str_of, usd, Kind};
use super::fault::Fault;
use super::state::pacific;

impl Company {
    /// The Id of the stored deposit that holds sales receipt `receipt`.
    pub(super) fn deposit_of(&self, receipt: &str) -> Option<String> {
        self.deposit_holding(receipt, None)
    }

    /// Like [`deposit_of`](Self::deposit_of), passing over deposit `except` (the one being
    /// updated may keep its own receipts).
    fn deposit_holding(&self, receipt: &str, except: Option<&str>) -> Option<String> {
        self.table(Kind::Deposit).values().find_map(|deposit| {
            let id = deposit.get("Id").and_then(Value::as_str)?;
            let holds = deposit
                .get("Line")?
                .as_array()?
                .iter()
                .filter_map(|line| line.get("LinkedTxn").and_then(Value::as_array))
                .flatten()
                .any(|txn| {
                    txn.get("TxnType").and_then(Value::as_str) == Some("SalesReceipt")
                        && txn.get("TxnId").and_then(id_of).as_deref() == Some(receipt)
                });
            (holds && Some(id) != except).then(|| id.to_string())
        })
    }

    pub(super) fn prepare_deposit(
        &self,
        obj: &mut Map<String, Value>,
        self_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        let account_ref = ref_value(obj, "DepositToAccountRef")
            .ok_or_else(|| Fault::required("DepositToAccountRef"))?;
        let account = self.get(Kind::Account, &account_ref).ok_or_else(|| {
            Fault::invalid_ref(
                "DepositToAccountRef",
                format!("Invalid Reference Id : Accounts element id {account_ref} not found"),
            )
        })?;
        let field = |key: &str| {
            account
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (account_id, name) = (field("Id"), field("Name"));
        if field("AccountSubType") == "UndepositedFunds" {
            return Err(Fault::business(
                "A deposit cannot go to Undeposited Funds; name the account the money went into",
            )
            .element("DepositToAccountRef"));
        }
        let account_type = field("AccountType");
        if account_type != "Bank" && account_type != "Other Current Asset" {
            return Err(Fault::business(format!(
                "A deposit goes to a Bank or Other Current Asset account; {name} is a \
                 {account_type} account"
            ))
            .element("DepositToAccountRef"));
        }
        obj.insert(
            "DepositToAccountRef".into(),
            json!({"value": account_id, "name": name}),
        );

        let lines = match obj.get("Line") {
            Some(Value::Array(lines)) if !lines.is_empty() => lines.clone(),
            _ => return Err(Fault::required("Line")),
        };
        let undeposited = self.undeposited_funds().map(|(id, _)| id);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut total = 0i64;
        for line in lines {
            let Value::Object(mut line) = line else {
                return Err(Fault::invalid_property("Each Line must be an object"));
            };
            if let Some(other) = str_of(&line, "DetailType").filter(|t| *t != "DepositLineDetail") {
                return Err(Fault::invalid_property(format!(
                    "Deposit lines are DepositLineDetail lines, not {other}"
                ))
                .element("Line.DetailType"));
            }
            let amount = line
                .get("Amount")
                .and_then(number)
                .ok_or_else(|| Fault::required("Line.Amount"))?;
            match line.get("LinkedTxn").filter(|v| !v.is_null()) {
                Some(linked) => {
                    let txn = self.linked_receipt(
                        linked,
                        amount,
                        self_id,
                        undeposited.as_deref(),
                        &mut seen,
                    )?;
                    line.insert("LinkedTxn".into(), json!([txn]));
                }
                None => {
                    let Some(Value::Object(mut detail)) = line.get("DepositLineDetail").cloned()
                    else {
                        return Err(Fault::required("Line.DepositLineDetail"));
                    };
                    let from = ref_value(&detail, "AccountRef")
                        .ok_or_else(|| Fault::required("Line.DepositLineDetail.AccountRef"))?;
                    let from_name =
                        self.ref_name(Kind::Account, &from, "Name").ok_or_else(|| {
                            Fault::invalid_ref(
                                "Line.DepositLineDetail.AccountRef",
                                format!(
                                    "Invalid Reference Id : Accounts element id {from} not found"
                                ),
                            )
                        })?;
                    detail.insert(
                        "AccountRef".into(),
                        json!({"value": from, "name": from_name}),
                    );
                    line.insert("DepositLineDetail".into(), Value::Object(detail));
                }
            }
            total += cents(amount);
            line.insert("Amount".into(), json_amount(cents(amount)));
            line.insert("DetailType".into(), json!("DepositLineDetail"));
            out.push(line);
        }
        for (i, line) in out.iter_mut().enumerate() {
            line.insert("Id".into(), json!((i + 1).to_string()));
            line.insert("LineNum".into(), json!(i + 1));
        }
        obj.insert(
            "Line".into(),
            Value::Array(out.into_iter().map(Value::Object).collect()),
        );
        obj.insert("TotalAmt".into(), json_amount(total));
        if str_of(obj, "TxnDate").is_none() {
            let today = pacific(now).format("%Y-%m-%d").to_string();
            obj.insert("TxnDate".into(), json!(today));
        }
        obj.entry("CurrencyRef").or_insert_with(usd);
        Ok(())
    }

    /// A line's `LinkedTxn`, checked and given back as stored: one sales receipt that sits
    /// in Undeposited Funds, for its whole TotalAmt, on no other deposit and no other line.
    fn linked_receipt(
        &self,
        linked: &Value,
        amount: f64,
        self_id: Option<&str>,
        undeposited: Option<&str>,
        seen: &mut HashSet<String>,
    ) -> Result<Value, Fault> {
        let Some(Value::Object(txn)) = linked
            .as_array()
            .filter(|list| list.len() == 1)
            .and_then(|list| list.first())
        else {
            return Err(Fault::invalid_property(
                "LinkedTxn must be an array of exactly one transaction per deposit Line",
            )
            .element("Line.LinkedTxn"));
        };
        let member = |key: &str| {
            txn.get(key)
                .and_then(id_of)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Fault::required(&format!("Line.LinkedTxn.{key}")))
        };
        let (txn_id, txn_type, line_id) =
            (member("TxnId")?, member("TxnType")?, member("TxnLineId")?);
        if txn_type != "SalesReceipt" {
            return Err(Fault::invalid_ref(
                "Line.LinkedTxn.TxnType",
                format!(
                    "Invalid Reference Id : the fake deposits SalesReceipt transactions only, \
                     not {txn_type}"
                ),
            ));
        }
        let receipt = self.get(Kind::SalesReceipt, &txn_id).ok_or_else(|| {
            Fault::invalid_ref(
                "Line.LinkedTxn.TxnId",
                format!("Invalid Reference Id : SalesReceipt id {txn_id} not found"),
            )
        })?;
        let id = receipt
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !seen.insert(id.clone()) {
            return Err(Fault::business(format!(
                "SalesReceipt {id} is on more than one line of this deposit"
            ))
            .element("Line.LinkedTxn"));
        }
        let held_in = receipt
            .pointer("/DepositToAccountRef/value")
            .and_then(id_of);
        if held_in.is_none() || held_in.as_deref() != undeposited {
            let account = receipt
                .pointer("/DepositToAccountRef/name")
                .and_then(Value::as_str)
                .unwrap_or("another account");
            return Err(Fault::business(format!(
                "SalesReceipt {id} is not in Undeposited Funds: it was deposited straight to \
                 {account}"
            ))
            .element("Line.LinkedTxn"));
        }
        if let Some(deposit) = self.deposit_holding(&id, self_id) {
            return Err(Fault::business(format!(
                "SalesReceipt {id} has already been deposited (Deposit {deposit})"
            ))
            .element("Line.LinkedTxn"));
        }
        let total = receipt.get("TotalAmt").and_then(number).unwrap_or(0.0);
        if cents(total) != cents(amount) {
            return Err(Fault::business(format!(
                "The line Amount {amount:.2} does not match SalesReceipt {id}'s TotalAmt \
                 {total:.2}; a deposit line takes the whole receipt"
            ))
            .element("Line.Amount"));
        }
        Ok(json!({"TxnId": id, "TxnType": "SalesReceipt", "TxnLineId": line_id}))
    }
}
