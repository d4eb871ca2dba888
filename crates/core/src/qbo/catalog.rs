//! The QuickBooks lists a receipt refers to (items, deposit accounts, payment methods): read,
//! created when the treasurer asks, and the receipt defaults chosen from them.

use crate::qbo::layout::ReceiptLayout;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::qbo::client::request_id;
use crate::qbo::entities::{Account, Item, PaymentMethod};
use crate::qbo::query::Query;
use crate::qbo::sync::Qbo;
use crate::qbo::QboError;

/// The treasurer's receipt defaults, remembered per deployment; missing parts are found in
/// QuickBooks (the "Donations" item, Undeposited Funds, the "Check" method).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendDefaults {
    pub item_id: Option<String>,
    pub item_name: Option<String>,
    pub deposit_account_id: Option<String>,
    pub deposit_account_name: Option<String>,
    pub payment_method_id: Option<String>,
    pub payment_method_name: Option<String>,
}

impl Qbo {
    pub async fn items(&self) -> Result<Vec<Item>, QboError> {
        let rows: Vec<Item> = self.client.query_all(&Query::select("Item")).await?;
        Ok(rows
            .into_iter()
            .filter(|i| i.active.unwrap_or(true))
            .collect())
    }

    pub async fn accounts(&self) -> Result<Vec<Account>, QboError> {
        let rows: Vec<Account> = self.client.query_all(&Query::select("Account")).await?;
        Ok(rows
            .into_iter()
            .filter(|a| a.active.unwrap_or(true))
            .collect())
    }

    pub async fn payment_methods(&self) -> Result<Vec<PaymentMethod>, QboError> {
        let rows: Vec<PaymentMethod> = self
            .client
            .query_all(&Query::select("PaymentMethod"))
            .await?;
        Ok(rows
            .into_iter()
            .filter(|p| p.active.unwrap_or(true))
            .collect())
    }

    /// A new service item; its income account is `income_account_id`, or the first Income
    /// account whose name mentions donations, or the first Income account.
    pub async fn create_item(
        &self,
        name: &str,
        income_account_id: Option<&str>,
    ) -> Result<Item, QboError> {
        let name = name.trim();
        if name.is_empty() || name.contains(':') {
            return Err(QboError::Refused(
                "an item needs a name without a colon".into(),
            ));
        }
        let account = match income_account_id {
            Some(id) => id.to_string(),
            None => {
                let accounts = self.accounts().await?;
                let income: Vec<&Account> = accounts
                    .iter()
                    .filter(|a| a.account_type.as_deref() == Some("Income"))
                    .collect();
                income
                    .iter()
                    .find(|a| a.name.to_ascii_lowercase().contains("donation"))
                    .or(income.first())
                    .and_then(|a| a.id.clone())
                    .ok_or_else(|| {
                        QboError::Refused(
                            "QuickBooks has no Income account for the item; create one first"
                                .into(),
                        )
                    })?
            }
        };
        let body = json!({"Name": name, "Type": "Service", "IncomeAccountRef": {"value": account}});
        let rid = request_id("item", name, &body);
        self.client.write::<Item>(&body, &rid).await
    }

    pub async fn create_account(&self, name: &str) -> Result<Account, QboError> {
        let name = name.trim();
        if name.is_empty() || name.contains(':') {
            return Err(QboError::Refused(
                "an account needs a name without a colon".into(),
            ));
        }
        let body = json!({"Name": name, "AccountType": "Other Current Asset",
                          "AccountSubType": "UndepositedFunds"});
        let rid = request_id("account", name, &body);
        self.client.write::<Account>(&body, &rid).await
    }

    pub async fn create_payment_method(&self, name: &str) -> Result<PaymentMethod, QboError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(QboError::Refused("a payment method needs a name".into()));
        }
        let body = json!({"Name": name, "Type": "NON_CREDIT_CARD"});
        let rid = request_id("paymentmethod", name, &body);
        self.client.write::<PaymentMethod>(&body, &rid).await
    }

    /// The receipt layout: the one saved on the settings page, else Friends of Music's.
    pub async fn layout(&self) -> Result<ReceiptLayout, QboError> {
        let conn = self.client.connection();
        let mut redis = conn.redis().get().await?;
        let raw: Option<String> = redis.get(conn.keys().receipt_layout()).await?;
        Ok(raw
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default())
    }

    /// Saves a layout after checking every template.
    pub async fn set_layout(&self, layout: &ReceiptLayout) -> Result<(), QboError> {
        layout
            .validate()
            .map_err(|e| QboError::Refused(e.to_string()))?;
        let conn = self.client.connection();
        let mut redis = conn.redis().get().await?;
        let raw = serde_json::to_string(layout).map_err(|e| QboError::Decode(e.to_string()))?;
        let _: () = redis.set(conn.keys().receipt_layout(), raw).await?;
        Ok(())
    }

    async fn stored_defaults(&self) -> Result<SendDefaults, QboError> {
        let conn = self.client.connection();
        let mut redis = conn.redis().get().await?;
        let raw: Option<String> = redis.get(conn.keys().qbo_defaults()).await?;
        Ok(raw
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default())
    }

    /// Saves the treasurer's choices (only the parts given replace the stored ones).
    pub async fn set_defaults(&self, chosen: &SendDefaults) -> Result<SendDefaults, QboError> {
        let mut d = self.stored_defaults().await?;
        if chosen.item_id.is_some() {
            d.item_id.clone_from(&chosen.item_id);
            d.item_name = None;
        }
        if chosen.deposit_account_id.is_some() {
            d.deposit_account_id.clone_from(&chosen.deposit_account_id);
            d.deposit_account_name = None;
        }
        if chosen.payment_method_id.is_some() {
            d.payment_method_id.clone_from(&chosen.payment_method_id);
            d.payment_method_name = None;
        }
        let conn = self.client.connection();
        let mut redis = conn.redis().get().await?;
        let raw = serde_json::to_string(&d).map_err(|e| QboError::Decode(e.to_string()))?;
        let _: () = redis.set(conn.keys().qbo_defaults(), raw).await?;
        self.defaults().await
    }

    /// The stored choices, completed from QuickBooks, with names for display.
    pub async fn defaults(&self) -> Result<SendDefaults, QboError> {
        let mut d = self.stored_defaults().await?;
        let items = self.items().await?;
        let item = match &d.item_id {
            Some(id) => items.iter().find(|i| i.id.as_ref() == Some(id)),
            None => items
                .iter()
                .find(|i| {
                    let n = i.name.trim().to_ascii_lowercase();
                    n == "donations" || n == "donation"
                })
                .or_else(|| {
                    items
                        .iter()
                        .find(|i| i.name.to_ascii_lowercase().contains("donation"))
                }),
        };
        d.item_id = item.and_then(|i| i.id.clone()).or(d.item_id);
        d.item_name = item.map(|i| i.name.clone());
        let accounts = self.accounts().await?;
        let account = match &d.deposit_account_id {
            Some(id) => accounts.iter().find(|a| a.id.as_ref() == Some(id)),
            None => undeposited_funds(&accounts),
        };
        d.deposit_account_id = account.and_then(|a| a.id.clone()).or(d.deposit_account_id);
        d.deposit_account_name = account.map(|a| a.name.clone());
        let methods = self.payment_methods().await?;
        let method = match &d.payment_method_id {
            Some(id) => methods.iter().find(|m| m.id.as_ref() == Some(id)),
            None => methods
                .iter()
                .find(|m| m.name.trim().eq_ignore_ascii_case("check")),
        };
        d.payment_method_id = method.and_then(|m| m.id.clone()).or(d.payment_method_id);
        d.payment_method_name = method.map(|m| m.name.clone());
        Ok(d)
    }
}

pub(super) fn undeposited_funds(accounts: &[Account]) -> Option<&Account> {
    accounts
        .iter()
        .find(|a| a.account_sub_type.as_deref() == Some("UndepositedFunds"))
        .or_else(|| {
            accounts.iter().find(|a| {
                // "12000 Undeposited Funds", "1499 - Undeposited Funds"
                let n = a.name.to_ascii_lowercase();
                let rest =
                    n.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ' || c == '-');
                rest.trim() == "undeposited funds"
            })
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn undeposited_funds_by_subtype_or_numbered_name() {
        let acct = |id: &str, name: &str, sub: Option<&str>| Account {
            id: Some(id.into()),
            name: name.into(),
            account_sub_type: sub.map(str::to_string),
            ..Account::default()
        };
        let by_name = [
            acct("1", "Checking", None),
            acct("2", "12000 Undeposited Funds", None),
        ];
        assert_eq!(
            undeposited_funds(&by_name).unwrap().id.as_deref(),
            Some("2")
        );
        let by_sub = [
            acct("1", "Undeposited Funds (old)", None),
            acct("3", "Cash in transit", Some("UndepositedFunds")),
        ];
        assert_eq!(undeposited_funds(&by_sub).unwrap().id.as_deref(), Some("3"));
        assert!(undeposited_funds(&[acct("1", "Checking", None)]).is_none());
    }
}
