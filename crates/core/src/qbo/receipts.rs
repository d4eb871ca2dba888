//! Sales receipts: the receipt a row makes, its preview, and sending it exactly once. Every
//! change to a row goes through the deposit's compare-and-set, so it never overwrites an edit
//! made meanwhile.

use std::ops::ControlFlow;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::donation::{Donation, MatchStatus, PaymentMethod, SyncStatus};
use crate::qbo::catalog::SendDefaults;
use crate::qbo::client::request_id;
use crate::qbo::config::OnlineGifts;
use crate::qbo::entities::SalesReceipt;
use crate::qbo::fault::Action;
use crate::qbo::layout::ReceiptLayout;
use crate::qbo::query::Query;
use crate::qbo::sync::{clip, Qbo};
use crate::qbo::QboError;

/// QuickBooks keeps a receipt's PaymentRefNum and DocNumber to 21 characters and its
/// PrivateNote to 4000.
const REF_MAX: usize = 21;
const NOTE_MAX: usize = 4000;

/// The marker a receipt carries in its PrivateNote, so a retry can find it.
pub fn marker(record_id: &Uuid) -> String {
    format!("[fom:{record_id}]")
}

/// What sending one row came to; the page and the send-all job read the snake_case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendOutcome {
    /// A receipt was created now.
    Sent,
    /// QuickBooks already had this row's receipt (an earlier try whose answer was lost, or one
    /// entered by hand for the same check); its id is now stored on the row.
    FoundExisting,
    /// The row already carried a receipt id: nothing was sent.
    AlreadySent,
    /// The row cannot be sent as it is (no customer, amount, date or item); QuickBooks was not
    /// called.
    Refused,
    /// QuickBooks did not take the receipt; the row records why.
    Error,
    /// The row is kept out of QuickBooks (an online gift under `ONLINE_GIFTS=report`, or the
    /// treasurer's choice); it stays in the report. Not a failure.
    KeptOut,
    /// The row looks like a receipt QuickBooks already has, or a row of another deposit; it
    /// waits for the treasurer ("Send anyway" or "Keep out").
    Duplicate,
}

impl SendOutcome {
    /// The row was not sent and needs the treasurer.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            SendOutcome::Refused | SendOutcome::Error | SendOutcome::Duplicate
        )
    }

    /// The name the JSON carries, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SendOutcome::Sent => "sent",
            SendOutcome::FoundExisting => "found_existing",
            SendOutcome::AlreadySent => "already_sent",
            SendOutcome::Refused => "refused",
            SendOutcome::Error => "error",
            SendOutcome::KeptOut => "kept_out",
            SendOutcome::Duplicate => "duplicate",
        }
    }
}

/// One row's result of a send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendResult {
    pub record_id: Uuid,
    pub outcome: SendOutcome,
    pub receipt_id: Option<String>,
    pub message: Option<String>,
    /// For a missing or inactive reference: which list to choose from or add to (item,
    /// account, payment_method, customer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choose: Option<String>,
}

/// What a send-all did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendAll {
    pub results: Vec<SendResult>,
    /// Stopped between rows (the worker is shutting down, or QuickBooks stayed busy); the rest
    /// is sent on the next run.
    pub stopped: bool,
    /// Stopped because QuickBooks kept throttling for longer than a request may wait.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub throttled: bool,
}

/// Why a row is kept out of QuickBooks, or none when it is sent: the treasurer's choice on the
/// row first, then the rule for online gifts (`online`: the deposit's choice, else
/// `ONLINE_GIFTS`).
pub fn kept_out(record: &Donation, online: OnlineGifts) -> Option<&'static str> {
    match record.qbo.keep_out {
        Some(true) => Some("kept out of QuickBooks by the treasurer; it stays in the report"),
        Some(false) => None,
        None if record.payment_method == Some(PaymentMethod::Online)
            && online == OnlineGifts::Report =>
        {
            Some(
                "an online gift: it reaches the books through the platform or the bank feed, so \
                 it is kept out of QuickBooks and listed in the report",
            )
        }
        None => None,
    }
}

impl Qbo {
    /// Fills in the names of chosen ids that have none (a row's own choices).
    async fn named(&self, mut d: SendDefaults) -> Result<SendDefaults, QboError> {
        if let (Some(id), None) = (&d.item_id, &d.item_name) {
            d.item_name = self
                .items()
                .await?
                .into_iter()
                .find(|i| i.id.as_ref() == Some(id))
                .map(|i| i.name);
        }
        if let (Some(id), None) = (&d.deposit_account_id, &d.deposit_account_name) {
            d.deposit_account_name = self
                .accounts()
                .await?
                .into_iter()
                .find(|a| a.id.as_ref() == Some(id))
                .map(|a| a.name);
        }
        if let (Some(id), None) = (&d.payment_method_id, &d.payment_method_name) {
            d.payment_method_name = self
                .payment_methods()
                .await?
                .into_iter()
                .find(|m| m.id.as_ref() == Some(id))
                .map(|m| m.name);
        }
        Ok(d)
    }

    /// Sets a row's own item, deposit account and payment method (none: the deployment's).
    /// Refused for a row already in QuickBooks (update its receipt instead).
    pub async fn set_choices(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
        choices: crate::donation::RowChoices,
    ) -> Result<Donation, QboError> {
        let record = self.record(deposit_id, record_id).await?;
        if record.qbo.sales_receipt_id.is_some() {
            return Err(QboError::Refused(
                "the row is in QuickBooks already; its receipt keeps what it was sent with".into(),
            ));
        }
        self.change_record(deposit_id, record_id, |r| {
            r.qbo.choices = choices.clone();
        })
        .await
    }

    /// How this deposit's online gifts are handled: its own choice, else the deployment's.
    pub async fn online_gifts(&self, deposit_id: &str) -> Result<OnlineGifts, QboError> {
        let opts = self.deposits.options(deposit_id).await?;
        Ok(opts
            .online_gifts
            .unwrap_or(self.client.connection().settings().online_gifts))
    }

    /// The receipt that would be sent, and why it cannot be when it cannot.
    pub async fn preview(&self, deposit_id: &str, record_id: &Uuid) -> Result<Value, QboError> {
        let record = self.record(deposit_id, record_id).await?;
        let defaults = self.defaults().await?;
        let layout = self.layout().await?;
        let body = receipt_body(&record, &defaults, &layout, today());
        let out = kept_out(&record, self.online_gifts(deposit_id).await?);
        let chosen = self.named(for_row(&defaults, &record)).await?;
        let choices = json!({
            "item_id": chosen.item_id, "deposit_account_id": chosen.deposit_account_id,
            "payment_method_id": chosen.payment_method_id,
            "own": record.qbo.choices,
        });
        Ok(match body {
            Ok(body) => json!({
                "kept_out": out,
                "ready": true,
                "receipt": body,
                "customer": record.qbo.display_name,
                "item": chosen.item_name,
                "deposit_account": chosen.deposit_account_name,
                "payment_method": if record.payment_method.is_some_and(|m| m.is_check()) {
                    chosen.payment_method_name.clone()
                } else { None },
                "choices": choices,
                "already_sent": record.qbo.sales_receipt_id,
            }),
            Err(e) => json!({"ready": false, "reason": e.to_string(), "choices": choices,
                             "already_sent": record.qbo.sales_receipt_id}),
        })
    }

    /// Sends one row, exactly once: a row with a receipt id is skipped; otherwise QuickBooks
    /// is asked for a receipt this row already made (a crash after QuickBooks created it but
    /// before we stored the id); then the receipt is created under a requestid that is the
    /// same on every retry, and its id stored on the row at once.
    pub async fn send_one(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
        defaults: &SendDefaults,
        actor: &crate::audit::Actor,
    ) -> Result<SendResult, QboError> {
        let record = self.record(deposit_id, record_id).await?;
        let result = |outcome, receipt: Option<String>, message: Option<String>| SendResult {
            record_id: *record_id,
            outcome,
            receipt_id: receipt,
            message,
            choose: None,
        };
        if let Some(id) = &record.qbo.sales_receipt_id {
            return Ok(result(SendOutcome::AlreadySent, Some(id.clone()), None));
        }
        // Kept out first: a possible duplicate the treasurer kept out is settled, not waiting.
        if let Some(why) = kept_out(&record, self.online_gifts(deposit_id).await?) {
            return Ok(result(
                SendOutcome::KeptOut,
                None,
                Some(format!(
                    "{why}; choose \"Send to QuickBooks\" on the row to send it"
                )),
            ));
        }
        if let (Some(dup), false) = (&record.qbo.duplicate, record.qbo.duplicate_ok) {
            return Ok(result(
                SendOutcome::Duplicate,
                None,
                Some(format!(
                    "{}; choose \"Send anyway\" or \"Keep out\" on the row",
                    dup.message
                )),
            ));
        }
        let layout = self.layout().await?;
        let body = match receipt_body(&record, defaults, &layout, today()) {
            Ok(b) => b,
            // No item to put on the line: the page offers to choose or create one.
            Err(e) if defaults.item_id.is_none() && record_ready(&record) => {
                return Ok(SendResult {
                    choose: Some("item".into()),
                    ..result(SendOutcome::Refused, None, Some(e.to_string()))
                })
            }
            Err(e) => return Ok(result(SendOutcome::Refused, None, Some(e.to_string()))),
        };
        let attempt = async {
            let rid = request_id("receipt", &record.id.to_string(), &body);
            let settings = self.client.connection().settings();
            let mut tries = 0;
            loop {
                tries += 1;
                // Before every try: a receipt made by an earlier try whose answer was lost
                // (a crash, a 500 after the write, a timeout) is found, not made again.
                if let Some(existing) = self.find_existing(&record).await? {
                    return Ok::<_, QboError>((SendOutcome::FoundExisting, existing, None));
                }
                match self
                    .client
                    .write_once_traced::<SalesReceipt>(&body, &rid)
                    .await
                {
                    Ok((created, tid)) => {
                        return Ok((SendOutcome::Sent, created.id.unwrap_or_default(), tid))
                    }
                    Err(e) if retryable(&e) && tries < settings.max_attempts => {
                        tracing::warn!(%record_id, tries, "qbo: receipt not confirmed; checking before retrying");
                        tokio::time::sleep(self.client.backoff(tries)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        match attempt.await {
            Ok((outcome, receipt_id, intuit_tid)) => {
                self.change_record(deposit_id, record_id, |r| {
                    r.qbo.sales_receipt_id = Some(receipt_id.clone());
                    r.qbo.sync_status = SyncStatus::Sent;
                    r.qbo.last_error = None;
                })
                .await?;
                tracing::info!(
                    deposit_id,
                    %record_id,
                    receipt_id,
                    outcome = outcome.as_str(),
                    "qbo: receipt"
                );
                let kind = if outcome == SendOutcome::FoundExisting {
                    crate::audit::AuditKind::ReceiptFoundExisting
                } else {
                    crate::audit::AuditKind::ReceiptCreated
                };
                let amount = record.amount.map(|a| a.to_string());
                self.audit(
                    kind,
                    actor,
                    json!({"deposit_id": deposit_id, "record_id": record_id.to_string(),
                           "receipt_id": receipt_id, "amount": amount, "intuit_tid": intuit_tid}),
                )
                .await;
                Ok(result(outcome, Some(receipt_id), None))
            }
            // Not the row's fault: the caller waits (send-all) or tells the page when to ask
            // again; the row keeps no error.
            Err(e @ (QboError::Redis(_) | QboError::Deposit(_) | QboError::Throttled { .. })) => {
                Err(e)
            }
            Err(e) => {
                let message = e.user_message();
                self.change_record(deposit_id, record_id, |r| {
                    r.qbo.sync_status = SyncStatus::Error;
                    r.qbo.last_error = Some(message.clone());
                })
                .await?;
                Ok(SendResult {
                    choose: e.reference().map(str::to_string),
                    ..result(SendOutcome::Error, None, Some(message))
                })
            }
        }
    }

    /// Brings a sent row's receipt in line with the row after an edit: a sparse update of its
    /// date, line (amount, description, item, service date), reference, note and payment
    /// method, with a freshly read SyncToken (a stale one, 5010, is read again and retried
    /// once). The receipt keeps its number and message. Returns the row.
    pub async fn update_receipt(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
        actor: &crate::audit::Actor,
    ) -> Result<Donation, QboError> {
        let record = self.record(deposit_id, record_id).await?;
        let Some(receipt_id) = record.qbo.sales_receipt_id.clone() else {
            return Err(QboError::Refused(
                "the row has no receipt in QuickBooks yet; send it instead".into(),
            ));
        };
        let defaults = self.defaults().await?;
        let layout = self.layout().await?;
        let mut body = receipt_body(&record, &defaults, &layout, today())?;
        if let Some(obj) = body.as_object_mut() {
            // Its number and message stay as they were made.
            obj.remove("DocNumber");
            obj.remove("CustomerMemo");
            obj.insert("Id".into(), json!(receipt_id));
            obj.insert("sparse".into(), json!(true));
        }
        let mut tries = 0;
        let updated = loop {
            tries += 1;
            let current: SalesReceipt = self.client.read(&receipt_id).await?;
            body["SyncToken"] = json!(current.sync_token.unwrap_or_default());
            let rid = request_id("receipt-update", &record.id.to_string(), &body);
            match self.client.write::<SalesReceipt>(&body, &rid).await {
                Ok(r) => break r,
                Err(QboError::Fault {
                    action: Action::Reread,
                    ..
                }) if tries < 2 => continue,
                Err(e) => return Err(e),
            }
        };
        let row = self
            .change_record(deposit_id, record_id, |r| {
                r.qbo.receipt_outdated = false;
                r.qbo.last_error = None;
            })
            .await?;
        tracing::info!(deposit_id, %record_id, receipt_id, "qbo: receipt updated");
        self.audit(
            crate::audit::AuditKind::ReceiptUpdated,
            actor,
            json!({"deposit_id": deposit_id, "record_id": record_id.to_string(),
                   "receipt_id": receipt_id, "sync_token": updated.sync_token}),
        )
        .await;
        Ok(row)
    }

    /// A receipt this row already made: same customer and date, carrying our marker, or the
    /// same reference and amount (a receipt entered by hand for the same check).
    async fn find_existing(&self, record: &Donation) -> Result<Option<String>, QboError> {
        let (Some(customer), Some(date)) = (&record.qbo.customer_id, record.payment_date) else {
            return Ok(None);
        };
        let q = Query::select("SalesReceipt")
            .eq("CustomerRef", customer)?
            .eq("TxnDate", &date.format("%Y-%m-%d").to_string())?;
        let rows: Vec<SalesReceipt> = self.client.query_all(&q).await?;
        let mark = marker(&record.id);
        if let Some(r) = rows
            .iter()
            .find(|r| r.private_note.as_deref().is_some_and(|n| n.contains(&mark)))
        {
            return Ok(r.id.clone());
        }
        let reference = record
            .payment_ref
            .as_deref()
            .map(|s| clip(s.trim(), REF_MAX));
        Ok(rows
            .iter()
            .find(|r| {
                reference.is_some()
                    && r.payment_ref_num.as_deref().map(str::trim) == reference.as_deref()
                    && r.total_amt.is_some()
                    && r.total_amt == record.amount
            })
            .and_then(|r| r.id.clone()))
    }

    /// Sends every row not yet sent, continuing past per-row errors. `progress(i, n)` is
    /// called before each row; `Break` stops between rows (shutdown), and `stopped` says so.
    pub async fn send_all(
        &self,
        deposit_id: &str,
        mut progress: impl FnMut(usize, usize) -> ControlFlow<()>,
    ) -> Result<SendAll, QboError> {
        // Again before any send: receipts may have been entered meanwhile.
        match self.check_duplicates(deposit_id).await {
            Err(QboError::Throttled { .. }) => {
                return Ok(SendAll {
                    results: Vec::new(),
                    stopped: true,
                    throttled: true,
                })
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let d = self.deposit(deposit_id).await?;
        let defaults = self.defaults().await?;
        let ids: Vec<Uuid> = d.records.iter().map(|r| r.id).collect();
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            if progress(i, ids.len()).is_break() {
                return Ok(SendAll {
                    results: out,
                    stopped: true,
                    throttled: false,
                });
            }
            match self
                .send_one(deposit_id, id, &defaults, &crate::audit::Actor::default())
                .await
            {
                Ok(r) => out.push(r),
                // The row was deleted meanwhile: nothing to send.
                Err(QboError::NotFound(_)) => {}
                // Busy past the patience of one request: the job is queued again, and the
                // rows sent so far are skipped then.
                Err(QboError::Throttled { .. }) => {
                    return Ok(SendAll {
                        results: out,
                        stopped: true,
                        throttled: true,
                    })
                }
                Err(e) => return Err(e),
            }
        }
        let _ = progress(ids.len(), ids.len());
        Ok(SendAll {
            results: out,
            stopped: false,
            throttled: false,
        })
    }
}

/// Failures after which the write may or may not have happened.
pub(super) fn retryable(e: &QboError) -> bool {
    matches!(
        e,
        QboError::Unavailable(_)
            | QboError::Fault {
                action: Action::RetryLater,
                ..
            }
    )
}

/// Everything but the item is there (a confirmed customer, an amount and a date, no error):
/// what stops the row is the company's set-up, not the row.
fn record_ready(record: &Donation) -> bool {
    matches!(
        record.qbo.match_status,
        MatchStatus::Matched | MatchStatus::AddressChanged
    ) && record.qbo.customer_id.is_some()
        && record.amount.is_some_and(|a| a > Decimal::ZERO)
        && record.payment_date.is_some()
        && !record
            .issues
            .iter()
            .any(|i| i.level == crate::donation::IssueLevel::Error)
}

/// The deployment's choices with this row's own over them (names dropped where the id changed).
pub fn for_row(defaults: &SendDefaults, record: &Donation) -> SendDefaults {
    let c = &record.qbo.choices;
    let mut d = defaults.clone();
    if c.item_id.is_some() && c.item_id != d.item_id {
        d.item_id.clone_from(&c.item_id);
        d.item_name = None;
    }
    if c.deposit_account_id.is_some() && c.deposit_account_id != d.deposit_account_id {
        d.deposit_account_id.clone_from(&c.deposit_account_id);
        d.deposit_account_name = None;
    }
    if c.payment_method_id.is_some() && c.payment_method_id != d.payment_method_id {
        d.payment_method_id.clone_from(&c.payment_method_id);
        d.payment_method_name = None;
    }
    d
}

/// The day receipts are sent, as the layout's `{import_date}`.
fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

/// The sales receipt for a row, or why it cannot be sent: the confirmed customer, the gift
/// date as TxnDate (and the line's ServiceDate when the layout says so), one line (Qty 1) with
/// the chosen item and the layout's Description, the reference as PaymentRefNum, the layout's
/// DocNumber and customer memo, the memo and our marker in the PrivateNote, the deposit
/// account, and the payment method for checks only.
pub fn receipt_body(
    record: &Donation,
    defaults: &SendDefaults,
    layout: &ReceiptLayout,
    today: NaiveDate,
) -> Result<Value, QboError> {
    let defaults = &for_row(defaults, record);
    let refuse = |why: &str| Err(QboError::Refused(why.to_string()));
    let customer = match (&record.qbo.customer_id, record.qbo.match_status) {
        (Some(c), MatchStatus::Matched | MatchStatus::AddressChanged) => c,
        (Some(_), MatchStatus::NeedsReview) => {
            return refuse("confirm the suggested donor (or choose another) before sending")
        }
        _ => return refuse("the row has no QuickBooks customer; match it or create one"),
    };
    let Some(amount) = record.amount.filter(|a| *a > Decimal::ZERO) else {
        return refuse("the row has no amount above zero");
    };
    let Some(date) = record.payment_date else {
        return refuse("the row has no payment date");
    };
    if let Some(issue) = record
        .issues
        .iter()
        .find(|i| i.level == crate::donation::IssueLevel::Error)
    {
        return Err(QboError::Refused(format!(
            "fix the row first: {}",
            issue.message
        )));
    }
    let Some(item) = &defaults.item_id else {
        return refuse("choose or create the item for donations first");
    };
    let mut note = String::new();
    if let Some(m) = record.memo.as_deref().filter(|m| !m.trim().is_empty()) {
        let room = NOTE_MAX - 60;
        note.push_str(&clip(m.trim(), room));
        note.push(' ');
    }
    note.push_str(&marker(&record.id));
    let amount = amount.round_dp(2);
    let texts = layout.render(record, today);
    let gift_date = date.format("%Y-%m-%d").to_string();
    let mut body = json!({
        "TxnDate": gift_date,
        "CustomerRef": {"value": customer},
        "PrivateNote": note,
        "Line": [{
            "DetailType": "SalesItemLineDetail",
            "Amount": amount,
            "Description": texts.description,
            "SalesItemLineDetail": {"ItemRef": {"value": item}, "Qty": 1, "UnitPrice": amount},
        }],
    });
    if layout.service_date {
        body["Line"][0]["SalesItemLineDetail"]["ServiceDate"] = json!(gift_date);
    }
    if let Some(doc) = texts.doc_number {
        body["DocNumber"] = json!(doc);
    }
    if let Some(memo) = texts.customer_memo {
        body["CustomerMemo"] = json!({ "value": memo });
    }
    // Decimal serialises as a string by default; QBO wants JSON numbers.
    let number = decimal_number(amount);
    body["Line"][0]["Amount"] = number.clone();
    body["Line"][0]["SalesItemLineDetail"]["UnitPrice"] = number;
    if let Some(r) = record
        .payment_ref
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        body["PaymentRefNum"] = json!(clip(r, REF_MAX));
    }
    if let Some(acct) = &defaults.deposit_account_id {
        body["DepositToAccountRef"] = json!({"value": acct});
    }
    if record.payment_method.is_some_and(|m| m.is_check()) {
        if let Some(m) = &defaults.payment_method_id {
            body["PaymentMethodRef"] = json!({"value": m});
        }
    }
    Ok(body)
}

/// An exact decimal as a JSON number, parsed from its text so that no binary rounding
/// happens on our side.
pub(super) fn decimal_number(d: Decimal) -> Value {
    serde_json::from_str::<Value>(&d.normalize().to_string()).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::donation::PaymentMethod;

    fn defaults() -> SendDefaults {
        SendDefaults {
            item_id: Some("114".into()),
            deposit_account_id: Some("113".into()),
            payment_method_id: Some("117".into()),
            ..SendDefaults::default()
        }
    }

    fn matched() -> Donation {
        let mut d = Donation::new("scan.pdf");
        d.amount = Some("1234.50".parse().unwrap());
        d.payment_date = chrono::NaiveDate::from_ymd_opt(2026, 11, 20);
        d.payment_ref = Some("0001043-and-a-very-long-tail".into());
        d.payment_method = Some(PaymentMethod::HandwrittenCheck);
        d.memo = Some("In memory of Ann".into());
        d.qbo.customer_id = Some("58".into());
        d.qbo.match_status = MatchStatus::Matched;
        d
    }

    fn body(d: &Donation, s: &SendDefaults) -> Result<Value, QboError> {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        receipt_body(d, s, &ReceiptLayout::default(), today)
    }

    #[test]
    fn receipt_follows_the_product_mapping() {
        let d = matched();
        let b = body(&d, &defaults()).unwrap();
        assert_eq!(b["CustomerRef"]["value"], "58");
        assert_eq!(b["TxnDate"], "2026-11-20");
        assert_eq!(b["PaymentMethodRef"]["value"], "117");
        assert_eq!(b["DepositToAccountRef"]["value"], "113");
        let line = &b["Line"][0];
        assert_eq!(line["Amount"].to_string(), "1234.5");
        assert_eq!(
            line["SalesItemLineDetail"]["UnitPrice"].to_string(),
            "1234.5"
        );
        assert_eq!(line["SalesItemLineDetail"]["Qty"], 1);
        assert_eq!(line["SalesItemLineDetail"]["ItemRef"]["value"], "114");
        assert!(b["PaymentRefNum"].as_str().unwrap().chars().count() <= 21);
        // Friends of Music's layout: the gift date as TxnDate and the line's ServiceDate.
        assert_eq!(b["DocNumber"], "2026-12-01_0001043-an");
        assert_eq!(line["SalesItemLineDetail"]["ServiceDate"], "2026-11-20");
        assert_eq!(b["CustomerMemo"]["value"], "auto import on 2026-12-01");
        let note = b["PrivateNote"].as_str().unwrap();
        assert!(note.starts_with("In memory of Ann") && note.contains(&marker(&d.id)));

        // Online gifts carry no Check payment method.
        let mut online = matched();
        online.payment_method = Some(PaymentMethod::Online);
        assert!(body(&online, &defaults())
            .unwrap()
            .get("PaymentMethodRef")
            .is_none());
    }

    #[test]
    fn a_rows_own_choices_win_over_the_deployments() {
        let mut d = matched();
        d.qbo.choices = crate::donation::RowChoices {
            item_id: Some("21".into()),
            deposit_account_id: Some("35".into()),
            payment_method_id: None,
        };
        let b = body(&d, &defaults()).unwrap();
        assert_eq!(
            b["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"],
            "21"
        );
        assert_eq!(b["DepositToAccountRef"]["value"], "35");
        assert_eq!(b["PaymentMethodRef"]["value"], "117");
        // The row's own item lets it go without a deployment item.
        assert!(body(&d, &SendDefaults::default()).is_ok());
    }

    #[test]
    fn rows_that_cannot_be_sent_say_why() {
        let why = |d: &Donation, s: &SendDefaults| body(d, s).unwrap_err().to_string();
        let mut d = matched();
        d.qbo.match_status = MatchStatus::NeedsReview;
        assert!(why(&d, &defaults()).contains("confirm"));
        let mut d = matched();
        d.qbo.customer_id = None;
        d.qbo.match_status = MatchStatus::NewDonor;
        assert!(why(&d, &defaults()).contains("customer"));
        let mut d = matched();
        d.amount = Some(Decimal::ZERO);
        assert!(why(&d, &defaults()).contains("amount"));
        let mut d = matched();
        d.payment_date = None;
        assert!(why(&d, &defaults()).contains("date"));
        let none = SendDefaults::default();
        assert!(why(&matched(), &none).contains("item"));
    }

    #[test]
    fn outcomes_keep_the_names_the_page_reads() {
        let names = [
            (SendOutcome::Sent, "sent"),
            (SendOutcome::FoundExisting, "found_existing"),
            (SendOutcome::AlreadySent, "already_sent"),
            (SendOutcome::Refused, "refused"),
            (SendOutcome::Error, "error"),
        ];
        for (outcome, name) in names {
            assert_eq!(serde_json::to_value(outcome).unwrap(), json!(name));
            assert_eq!(outcome.as_str(), name);
            assert_eq!(
                serde_json::from_value::<SendOutcome>(json!(name)).unwrap(),
                outcome
            );
            assert_eq!(outcome.is_failure(), matches!(name, "refused" | "error"));
        }
        let row = SendResult {
            record_id: Uuid::nil(),
            outcome: SendOutcome::FoundExisting,
            receipt_id: Some("311".into()),
            message: None,
            choose: None,
        };
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"{"record_id":"00000000-0000-0000-0000-000000000000","outcome":"found_existing","receipt_id":"311","message":null}"#
        );
    }
}
