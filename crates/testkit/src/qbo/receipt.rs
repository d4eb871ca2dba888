//! SalesReceipt rules: at least one sales line, `Amount = Qty × UnitPrice`, references that
//! exist, TotalAmt computed here, Undeposited Funds when no deposit account is named, and
//! DocNumber auto-numbered or at most 21 characters.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::company::Company;
use super::entity::{cents, json_amount, number, ref_value, str_of, usd, Kind};
use super::fault::Fault;
use super::state::pacific;

impl Company {
    pub(super) fn prepare_receipt(
        &mut self,
        obj: &mut Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        let customer =
            ref_value(obj, "CustomerRef").ok_or_else(|| Fault::required("CustomerRef"))?;
        let lines = match obj.get("Line") {
            Some(Value::Array(lines)) => lines.clone(),
            _ => return Err(Fault::required("Line")),
        };
        let mut out = Vec::new();
        let mut total = 0i64;
        let mut sales_lines = 0;
        for line in lines {
            let Value::Object(mut line) = line else {
                return Err(Fault::invalid_property("Each Line must be an object"));
            };
            match str_of(&line, "DetailType") {
                Some("SalesItemLineDetail") => {
                    sales_lines += 1;
                    let amount = line
                        .get("Amount")
                        .and_then(number)
                        .ok_or_else(|| Fault::required("Line.Amount"))?;
                    let Some(Value::Object(mut detail)) = line.get("SalesItemLineDetail").cloned()
                    else {
                        return Err(Fault::required("Line.SalesItemLineDetail"));
                    };
                    if let Some(item) = ref_value(&detail, "ItemRef") {
                        let name = self.ref_name(Kind::Item, &item, "Name").ok_or_else(|| {
                            Fault::invalid_ref(
                                "ItemRef",
                                format!("Invalid Reference Id : Item elements id {item} not found"),
                            )
                        })?;
                        detail.insert("ItemRef".into(), json!({"value": item, "name": name}));
                    }
                    let qty = detail.get("Qty").and_then(number);
                    let price = detail.get("UnitPrice").and_then(number);
                    if let (Some(qty), Some(price)) = (qty, price) {
                        let expected = cents(qty * price);
                        if expected != cents(amount) {
                            return Err(Fault::validation(
                                "6070",
                                "Amount calculation incorrect",
                                format!(
                                    "Amount calculation incorrect in the request. Amount \
                                     should equal Qty * UnitPrice: {qty} * {price} = {:.2}, \
                                     but Amount is {amount:.2}",
                                    expected as f64 / 100.0
                                ),
                            )
                            .element("Line.Amount"));
                        }
                    }
                    total += cents(amount);
                    line.insert("Amount".into(), json_amount(cents(amount)));
                    line.insert("SalesItemLineDetail".into(), Value::Object(detail));
                    out.push(line);
                }
                Some("SubTotalLineDetail") => {}
                Some(_) => out.push(line),
                None => return Err(Fault::required("Line.DetailType")),
            }
        }
        if sales_lines == 0 {
            return Err(Fault::required("Line.SalesItemLineDetail"));
        }
        let customer_name = self
            .get(Kind::Customer, &customer)
            .filter(|c| c.get("Active").and_then(Value::as_bool).unwrap_or(true))
            .map(|c| {
                c.get("DisplayName")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            })
            .ok_or_else(|| {
                Fault::invalid_ref(
                    "CustomerRef",
                    format!("Invalid Reference Id : Customer id {customer} not found"),
                )
            })?;
        obj.insert(
            "CustomerRef".into(),
            json!({"value": customer, "name": customer_name}),
        );
        let deposit = match ref_value(obj, "DepositToAccountRef") {
            Some(id) => {
                let name = self.ref_name(Kind::Account, &id, "Name").ok_or_else(|| {
                    Fault::invalid_ref(
                        "DepositToAccountRef",
                        format!("Invalid Reference Id : Accounts element id {id} not found"),
                    )
                })?;
                (id, name)
            }
            None => self.undeposited_funds().ok_or_else(|| {
                Fault::invalid_ref(
                    "DepositToAccountRef",
                    "Invalid Reference Id : the company has no Undeposited Funds account"
                        .to_string(),
                )
            })?,
        };
        obj.insert(
            "DepositToAccountRef".into(),
            json!({"value": deposit.0, "name": deposit.1}),
        );
        if let Some(id) = ref_value(obj, "PaymentMethodRef") {
            let name = self
                .ref_name(Kind::PaymentMethod, &id, "Name")
                .ok_or_else(|| {
                    Fault::invalid_ref(
                        "PaymentMethodRef",
                        format!("Invalid Reference Id : PaymentMethod id {id} not found"),
                    )
                })?;
            obj.insert(
                "PaymentMethodRef".into(),
                json!({"value": id, "name": name}),
            );
        }
        let doc = match obj.get("DocNumber") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim() == "AUTO_GENERATE" => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(_) => return Err(Fault::invalid_property("DocNumber must be a string")),
        };
        if let Some(doc) = &doc {
            if doc.chars().count() > 21 {
                return Err(Fault::business(
                    "String length exceeds max: DocNumber may have at most 21 characters",
                )
                .element("DocNumber"));
            }
        }
        let doc = doc.unwrap_or_else(|| {
            let n = self.next_doc;
            self.next_doc += 1;
            n.to_string()
        });
        obj.insert("DocNumber".into(), json!(doc));
        if str_of(obj, "TxnDate").is_none() {
            let today = pacific(now).format("%Y-%m-%d").to_string();
            obj.insert("TxnDate".into(), json!(today));
        }
        for (i, line) in out.iter_mut().enumerate() {
            line.insert("Id".into(), json!((i + 1).to_string()));
            line.insert("LineNum".into(), json!(i + 1));
        }
        let mut lines: Vec<Value> = out.into_iter().map(Value::Object).collect();
        lines.push(
            json!({"Amount": json_amount(total), "DetailType": "SubTotalLineDetail",
                          "SubTotalLineDetail": {}}),
        );
        obj.insert("Line".into(), Value::Array(lines));
        obj.insert("TotalAmt".into(), json_amount(total));
        obj.insert("Balance".into(), json!(0));
        obj.entry("PrintStatus").or_insert(json!("NotSet"));
        obj.entry("EmailStatus").or_insert(json!("NotSet"));
        obj.entry("CurrencyRef").or_insert_with(usd);
        Ok(())
    }
}
