//! The bank deposit: once a deposit's receipts are in QuickBooks (in Undeposited Funds), one
//! QuickBooks Deposit moves them into the bank account, dated as the bank slip, with one line
//! linked to each receipt, so the books match the bank statement. Made exactly once like a
//! receipt: a `requestid` that is the same on every try, a marker in its memo, and a look-up
//! before every try (on every date it was asked for, in case the treasurer changed the date
//! after a try whose answer was lost).

use std::collections::HashMap;
use std::ops::ControlFlow;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::deposits::Deposit;
use crate::donation::format_amount;
use crate::qbo::catalog::undeposited_funds;
use crate::qbo::client::request_id;
use crate::qbo::entities::{Account, Deposit as QboDeposit, SalesReceipt};
use crate::qbo::query::Query;
use crate::qbo::receipts::{decimal_number, retryable};
use crate::qbo::sync::Qbo;
use crate::qbo::QboError;

/// Receipts named in one `Id IN (...)` query.
const IDS_PER_QUERY: usize = 100;

/// A deposit's bank deposit: what the treasurer asked for and, once made, QuickBooks's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankDeposit {
    /// The bank (or other asset) account the money goes into.
    pub account_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    /// The date on the bank statement.
    pub txn_date: NaiveDate,
    /// Every date a Deposit was sent with: the look-up before a try searches them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tried_dates: Vec<NaiveDate>,
    /// QuickBooks's Deposit id, once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qbo_id: Option<String>,
    /// QuickBooks's total of the Deposit.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    pub total: Option<Decimal>,
    /// Receipts it links.
    #[serde(default)]
    pub receipts: usize,
    /// Why the last try failed, in words the treasurer can act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<i64>,
}

/// The marker a Deposit carries in its memo, so a retry can find it.
pub fn marker(deposit_id: &str) -> String {
    format!("[fom-deposit:{deposit_id}]")
}

/// What the bank slip or deposit report read with the deposit says it totals, if any.
pub fn stated_total(d: &Deposit) -> Option<Decimal> {
    let amounts: Vec<Decimal> = d
        .stated_totals
        .iter()
        .filter(|t| matches!(t.kind.as_str(), "deposit_slip" | "deposit_list" | "report"))
        .filter_map(|t| t.amount)
        .collect();
    (!amounts.is_empty()).then(|| amounts.into_iter().sum())
}

/// The date a bank deposit gets unless the treasurer says otherwise: the deposit date its rows
/// carry most often, else the day the deposit was made here.
pub fn default_date(d: &Deposit) -> NaiveDate {
    let mut counts: HashMap<NaiveDate, usize> = HashMap::new();
    for r in &d.records {
        if let Some(day) = r.deposit_date {
            *counts.entry(day).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(day, n)| (*n, *day))
        .map(|(day, _)| day)
        .or_else(|| chrono::DateTime::from_timestamp_millis(d.created_at).map(|t| t.date_naive()))
        .unwrap_or_else(|| chrono::Local::now().date_naive())
}

/// The sales receipts a deposit's bank deposit links, or why it cannot be made yet: every row
/// is sent or kept out of QuickBooks, and at least one is sent.
pub fn receipts_to_deposit(
    d: &Deposit,
    online: crate::qbo::config::OnlineGifts,
) -> Result<Vec<String>, QboError> {
    let mut receipts = Vec::new();
    let mut waiting = Vec::new();
    for (i, r) in d.records.iter().enumerate() {
        match &r.qbo.sales_receipt_id {
            Some(id) => receipts.push(id.clone()),
            None if crate::qbo::receipts::kept_out(r, online).is_some() => {}
            None => waiting.push(i + 1),
        }
    }
    if !waiting.is_empty() {
        let rows: Vec<String> = waiting.iter().take(5).map(|n| n.to_string()).collect();
        let more = if waiting.len() > 5 { ", …" } else { "" };
        return Err(QboError::Refused(format!(
            "{} of this deposit's rows {} not in QuickBooks yet (row {}{more}): send them or \
             keep them out first, so the bank deposit matches the slip",
            waiting.len(),
            if waiting.len() == 1 { "is" } else { "are" },
            rows.join(", ")
        )));
    }
    if receipts.is_empty() {
        return Err(QboError::Refused(
            "no row of this deposit has a receipt in QuickBooks yet; send them first".into(),
        ));
    }
    Ok(receipts)
}

/// Accounts money can be deposited into: Bank and Other Current Asset accounts, but not
/// Undeposited Funds itself.
pub fn deposit_accounts(accounts: Vec<Account>) -> Vec<Account> {
    let undeposited = undeposited_funds(&accounts).and_then(|a| a.id.clone());
    accounts
        .into_iter()
        .filter(|a| {
            matches!(
                a.account_type.as_deref(),
                Some("Bank") | Some("Other Current Asset")
            ) && a.id.is_some()
                && a.id != undeposited
        })
        .collect()
}

impl Qbo {
    /// The accounts a bank deposit may go into, banks first.
    pub async fn bank_accounts(&self) -> Result<Vec<Account>, QboError> {
        let mut list = deposit_accounts(self.accounts().await?);
        list.sort_by_key(|a| (a.account_type.as_deref() != Some("Bank"), a.name.clone()));
        Ok(list)
    }

    /// Records what the treasurer asked for (the account and the date) on the deposit, after
    /// checking that it can be made: every row sent or kept out, and no bank deposit made yet.
    pub async fn ask_bank_deposit(
        &self,
        deposit_id: &str,
        account_id: &str,
        date: Option<NaiveDate>,
    ) -> Result<BankDeposit, QboError> {
        let d = self.deposit(deposit_id).await?;
        if let Some(id) = d.bank_deposit.as_ref().and_then(|b| b.qbo_id.as_ref()) {
            return Err(QboError::Refused(format!(
                "the bank deposit is already recorded in QuickBooks (deposit #{id})"
            )));
        }
        receipts_to_deposit(&d, self.online_gifts(deposit_id).await?)?;
        let account = self
            .bank_accounts()
            .await?
            .into_iter()
            .find(|a| a.id.as_deref() == Some(account_id))
            .ok_or_else(|| {
                QboError::Refused(
                    "choose a bank account (or another asset account) for the deposit".into(),
                )
            })?;
        let txn_date = date.unwrap_or_else(|| default_date(&d));
        let asked = self
            .deposits
            .update(deposit_id, |dep| {
                if dep
                    .bank_deposit
                    .as_ref()
                    .is_some_and(|b| b.qbo_id.is_some())
                {
                    return ControlFlow::Break(None);
                }
                let mut b = dep.bank_deposit.clone().unwrap_or(BankDeposit {
                    account_id: String::new(),
                    account_name: None,
                    txn_date,
                    tried_dates: Vec::new(),
                    qbo_id: None,
                    total: None,
                    receipts: 0,
                    error: None,
                    recorded_at: None,
                });
                b.account_id = account_id.to_string();
                b.account_name = Some(account.name.clone());
                b.txn_date = txn_date;
                b.error = None;
                dep.bank_deposit = Some(b.clone());
                ControlFlow::Continue(Some(b))
            })
            .await?
            .flatten();
        asked.ok_or_else(|| {
            QboError::Refused("the bank deposit was recorded meanwhile; reload the page".into())
        })
    }

    /// Makes the Deposit the treasurer asked for, exactly once; returns it as recorded. A
    /// failure QuickBooks or the rows are to blame for is kept on the deposit for the page.
    pub async fn record_bank_deposit(
        &self,
        deposit_id: &str,
        actor: &crate::audit::Actor,
    ) -> Result<BankDeposit, QboError> {
        let d = self.deposit(deposit_id).await?;
        let Some(asked) = d.bank_deposit.clone() else {
            return Err(QboError::NotFound(
                "no bank deposit was asked for this deposit".into(),
            ));
        };
        if asked.qbo_id.is_some() {
            return Ok(asked);
        }
        match self.make_bank_deposit(&d, &asked).await {
            Ok((deposit, found)) => {
                let now = crate::jobs::now_ms();
                let id = deposit.id.clone().unwrap_or_default();
                let lines = deposit.line.len();
                let total = deposit.total_amt;
                let recorded = self
                    .change_bank_deposit(deposit_id, |b| {
                        b.qbo_id = Some(id.clone());
                        b.total = total;
                        b.receipts = lines;
                        b.error = None;
                        b.recorded_at = Some(now);
                        if let Some(day) = deposit
                            .txn_date
                            .as_deref()
                            .and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
                        {
                            b.txn_date = day;
                        }
                    })
                    .await?;
                tracing::info!(deposit_id, qbo_deposit = %id, found, lines, "qbo: bank deposit");
                self.audit(
                    crate::audit::AuditKind::BankDepositRecorded,
                    actor,
                    json!({"deposit_id": deposit_id, "qbo_deposit_id": id, "receipts": lines,
                           "total": total.map(|t| t.to_string()), "found_existing": found}),
                )
                .await;
                Ok(recorded)
            }
            // Not the deposit's fault: the caller waits or tries again later.
            Err(e @ (QboError::Redis(_) | QboError::Deposit(_) | QboError::Throttled { .. })) => {
                Err(e)
            }
            Err(e) => {
                let message = e.user_message();
                self.change_bank_deposit(deposit_id, |b| b.error = Some(message.clone()))
                    .await?;
                Err(e)
            }
        }
    }

    /// Changes the deposit's bank deposit under compare-and-set.
    async fn change_bank_deposit(
        &self,
        deposit_id: &str,
        change: impl Fn(&mut BankDeposit),
    ) -> Result<BankDeposit, QboError> {
        self.deposits
            .update(deposit_id, |d| match d.bank_deposit.as_mut() {
                Some(b) => {
                    change(b);
                    ControlFlow::Continue(Some(b.clone()))
                }
                None => ControlFlow::Break(None),
            })
            .await?
            .flatten()
            .ok_or_else(|| QboError::NotFound("the deposit or its bank deposit is gone".into()))
    }

    /// The Deposit, found (an earlier try made it) or made now; `true` when found.
    async fn make_bank_deposit(
        &self,
        d: &Deposit,
        asked: &BankDeposit,
    ) -> Result<(QboDeposit, bool), QboError> {
        let receipt_ids = receipts_to_deposit(d, self.online_gifts(&d.id).await?)?;
        let mut dates = asked.tried_dates.clone();
        if !dates.contains(&asked.txn_date) {
            dates.push(asked.txn_date);
        }
        // Found before anything else: a try whose answer was lost may have made it already,
        // and its receipts would now fail the Undeposited Funds check below.
        if let Some(found) = self.find_bank_deposit(&d.id, &dates).await? {
            return Ok((found, true));
        }
        let body = self.bank_deposit_body(d, asked, &receipt_ids).await?;
        // Remembered before the write, so a look-up after a crash searches this date too.
        let day = asked.txn_date;
        self.change_bank_deposit(&d.id, |b| {
            if !b.tried_dates.contains(&day) {
                b.tried_dates.push(day);
            }
        })
        .await?;
        let rid = request_id("bank-deposit", &d.id, &body);
        let max = self.client.connection().settings().max_attempts;
        let mut tries = 0;
        loop {
            tries += 1;
            if tries > 1 {
                if let Some(found) = self.find_bank_deposit(&d.id, &dates).await? {
                    return Ok((found, true));
                }
            }
            match self.client.write_once::<QboDeposit>(&body, &rid).await {
                Ok(made) => return Ok((made, false)),
                Err(e) if retryable(&e) && tries < max => {
                    tracing::warn!(deposit_id = %d.id, tries, "qbo: bank deposit not confirmed; checking before retrying");
                    tokio::time::sleep(self.client.backoff(tries)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A Deposit carrying this deposit's marker, on any of `dates`.
    async fn find_bank_deposit(
        &self,
        deposit_id: &str,
        dates: &[NaiveDate],
    ) -> Result<Option<QboDeposit>, QboError> {
        let mark = marker(deposit_id);
        for day in dates {
            let q = Query::select("Deposit").eq("TxnDate", &day.format("%Y-%m-%d").to_string())?;
            let rows: Vec<QboDeposit> = self.client.query_all(&q).await?;
            if let Some(found) = rows
                .into_iter()
                .find(|r| r.private_note.as_deref().is_some_and(|n| n.contains(&mark)))
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The Deposit's body: one line per receipt, linked to it, for the amount QuickBooks holds
    /// (read back, not the row's: the receipt is what the line moves). Refused when a receipt
    /// is gone or went straight into an account other than Undeposited Funds.
    async fn bank_deposit_body(
        &self,
        d: &Deposit,
        asked: &BankDeposit,
        receipt_ids: &[String],
    ) -> Result<Value, QboError> {
        let accounts = self.accounts().await?;
        let undeposited = undeposited_funds(&accounts).and_then(|a| a.id.clone());
        let mut held: HashMap<String, SalesReceipt> = HashMap::new();
        for chunk in receipt_ids.chunks(IDS_PER_QUERY) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let q = Query::select("SalesReceipt").is_in("Id", &ids)?;
            for r in self.client.query_all::<SalesReceipt>(&q).await? {
                if let Some(id) = r.id.clone() {
                    held.insert(id, r);
                }
            }
        }
        let mut lines = Vec::with_capacity(receipt_ids.len());
        let mut elsewhere = Vec::new();
        let mut missing = Vec::new();
        for id in receipt_ids {
            let Some(r) = held.get(id) else {
                missing.push(id.as_str());
                continue;
            };
            let into = r.deposit_to_account_ref.as_ref().map(|a| a.value.as_str());
            if into.is_some() && into != undeposited.as_deref() {
                let name = r
                    .deposit_to_account_ref
                    .as_ref()
                    .and_then(|a| a.name.clone())
                    .unwrap_or_else(|| "another account".into());
                elsewhere.push(format!(
                    "#{} ({name})",
                    r.doc_number.as_deref().unwrap_or(id)
                ));
                continue;
            }
            let amount = r.total_amt.unwrap_or_default().round_dp(2);
            lines.push(json!({
                "Amount": decimal_number(amount),
                "LinkedTxn": [{"TxnId": id, "TxnType": "SalesReceipt", "TxnLineId": "0"}],
            }));
        }
        if !missing.is_empty() {
            return Err(QboError::Refused(format!(
                "QuickBooks no longer has receipt {} of this deposit (deleted there?): send the \
                 row again or record the deposit by hand",
                missing.join(", ")
            )));
        }
        if !elsewhere.is_empty() {
            return Err(QboError::Refused(format!(
                "receipts {} went straight into a bank account, not Undeposited Funds, so they \
                 are deposited already; set the deposit account to Undeposited Funds for \
                 future receipts, and record this deposit by hand",
                elsewhere.join(", ")
            )));
        }
        let note = format!(
            "Deposit of {} receipts from fom-qbo ({}) {}",
            lines.len(),
            d.name.chars().take(200).collect::<String>(),
            marker(&d.id)
        );
        Ok(json!({
            "TxnDate": asked.txn_date.format("%Y-%m-%d").to_string(),
            "DepositToAccountRef": {"value": asked.account_id},
            "PrivateNote": note,
            "Line": lines,
        }))
    }
}

/// "$1,240.00".
pub fn dollars(d: Decimal) -> String {
    format!("${}", format_amount(d))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::donation::{Donation, PaymentMethod};
    use crate::qbo::config::OnlineGifts;

    fn deposit(rows: Vec<Donation>) -> Deposit {
        Deposit {
            id: "d1".into(),
            name: "Sunday".into(),
            created_at: 0,
            updated_at: 0,
            files: Vec::new(),
            records: rows,
            errors: Vec::new(),
            merged_jobs: Vec::new(),
            stated_totals: Vec::new(),
            bank_deposit: None,
        }
    }

    fn sent(id: &str) -> Donation {
        let mut r = Donation::new("scan.pdf");
        r.qbo.sales_receipt_id = Some(id.into());
        r
    }

    #[test]
    fn every_row_must_be_sent_or_kept_out() {
        let mut online = Donation::new("gifts.csv");
        online.payment_method = Some(PaymentMethod::Online);
        let d = deposit(vec![sent("311"), online.clone(), sent("312")]);
        assert_eq!(
            receipts_to_deposit(&d, OnlineGifts::Report).unwrap(),
            ["311", "312"]
        );
        // Sent online gifts are in the bank deposit too; unsent ones under "send" hold it up.
        let why = receipts_to_deposit(&d, OnlineGifts::Send)
            .unwrap_err()
            .to_string();
        assert!(why.contains("row 2"), "{why}");
        let none = deposit(vec![online]);
        assert!(receipts_to_deposit(&none, OnlineGifts::Report).is_err());
    }

    #[test]
    fn the_date_is_the_slips_unless_said_otherwise() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let mut rows = vec![sent("1"), sent("2"), sent("3")];
        rows[0].deposit_date = Some(day(20));
        rows[1].deposit_date = Some(day(20));
        rows[2].deposit_date = Some(day(21));
        assert_eq!(default_date(&deposit(rows)), day(20));
    }

    #[test]
    fn only_bank_and_asset_accounts_take_a_deposit() {
        let acct = |id: &str, t: &str, sub: Option<&str>| Account {
            id: Some(id.into()),
            name: id.into(),
            account_type: Some(t.into()),
            account_sub_type: sub.map(String::from),
            ..Account::default()
        };
        let ok = deposit_accounts(vec![
            acct("1", "Bank", Some("Checking")),
            acct("2", "Other Current Asset", Some("UndepositedFunds")),
            acct("3", "Income", None),
            acct("4", "Other Current Asset", None),
        ]);
        let ids: Vec<_> = ok.iter().map(|a| a.id.clone().unwrap()).collect();
        assert_eq!(ids, ["1", "4"]);
    }
}
