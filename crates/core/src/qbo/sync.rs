//! What the treasurer does with QuickBooks, on top of the client: match donors, create and
//! update customers, and send sales receipts exactly once (PRODUCT.md "Matching donors",
//! "Sales receipt"). Every change to a record goes through the deposit's compare-and-set,
//! so it never overwrites an edit made meanwhile.

use std::ops::ControlFlow;

use redis::AsyncCommands;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::deposits::{Deposit, DepositStore};
use crate::donation::{Address, Donation, MatchStatus, SyncStatus};
use crate::qbo::client::{request_id, QboClient};
use crate::qbo::entities::{Account, Customer, Item, PaymentMethod, PhysicalAddress, SalesReceipt};
use crate::qbo::fault::Action;
use crate::qbo::matching::{self, Candidate};
use crate::qbo::query::Query;
use crate::qbo::QboError;

/// PaymentRefNum and DocNumber limits (C.2).
const REF_MAX: usize = 21;
const NOTE_MAX: usize = 4000;

/// The marker a receipt carries in its PrivateNote, so a retry can find it.
pub fn marker(record_id: &Uuid) -> String {
    format!("[fom:{record_id}]")
}

/// A customer as the UI lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerView {
    pub id: String,
    pub display_name: String,
    pub company_name: Option<String>,
    pub address: Address,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub active: bool,
}

impl From<&Customer> for CustomerView {
    fn from(c: &Customer) -> Self {
        Self {
            id: c.id().to_string(),
            display_name: c.name().to_string(),
            company_name: c.company_name.clone(),
            address: address_of_customer(c),
            email: c.primary_email_addr.as_ref().map(|e| e.address.clone()),
            phone: c.primary_phone.as_ref().map(|p| p.free_form_number.clone()),
            active: c.active.unwrap_or(true),
        }
    }
}

pub fn address_of_customer(c: &Customer) -> Address {
    let a = c.bill_addr.clone().unwrap_or_default();
    Address {
        line1: a.line1,
        city: a.city,
        state: a.country_sub_division_code,
        zip: a.postal_code,
    }
}

fn candidate(c: &Customer) -> Candidate<'_> {
    Candidate {
        id: c.id(),
        display_name: c.name(),
        given_name: c.given_name.as_deref(),
        family_name: c.family_name.as_deref(),
        company_name: c.company_name.as_deref(),
        active: c.active.unwrap_or(true),
    }
}

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

/// One row's result of a send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendResult {
    pub record_id: Uuid,
    /// sent, found_existing, already_sent, refused, error
    pub outcome: String,
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
    /// Stopped between rows (the worker is shutting down); the rest is sent on the next run.
    pub stopped: bool,
}

/// Matching figures for one deposit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchSummary {
    pub customers: usize,
    pub matched: usize,
    pub address_changed: usize,
    pub needs_review: usize,
    pub new_donor: usize,
}

/// What creating a customer came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CreateOutcome {
    Created {
        customer: CustomerView,
    },
    /// QuickBooks already has a customer (or vendor/employee) of that name (6240): the
    /// treasurer chooses to match it or to create under another name.
    NameTaken {
        display_name: String,
        existing: Option<CustomerView>,
    },
}

#[derive(Clone)]
pub struct Qbo {
    pub client: QboClient,
    pub deposits: DepositStore,
}

fn find_record<'a>(d: &'a Deposit, record_id: &Uuid) -> Option<&'a Donation> {
    d.records.iter().find(|r| &r.id == record_id)
}

fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

impl Qbo {
    pub fn new(client: QboClient, deposits: DepositStore) -> Self {
        Self { client, deposits }
    }

    async fn record(&self, deposit_id: &str, record_id: &Uuid) -> Result<Donation, QboError> {
        let d = self
            .deposits
            .get(deposit_id)
            .await?
            .ok_or_else(|| QboError::NotFound(format!("no deposit {deposit_id}")))?;
        find_record(&d, record_id)
            .cloned()
            .ok_or_else(|| QboError::NotFound(format!("no record {record_id} in this deposit")))
    }

    /// Changes one record under compare-and-set; the record must still exist.
    async fn change_record(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
        change: impl Fn(&mut Donation),
    ) -> Result<Donation, QboError> {
        let out = self
            .deposits
            .update(deposit_id, |d| {
                match d.records.iter_mut().find(|r| &r.id == record_id) {
                    Some(r) => {
                        change(r);
                        ControlFlow::Continue(Some(r.clone()))
                    }
                    None => ControlFlow::Break(None),
                }
            })
            .await?;
        out.flatten()
            .ok_or_else(|| QboError::NotFound(format!("record {record_id} is gone")))
    }

    // ---- lookups -------------------------------------------------------------------------

    /// Customers whose name contains `q` (all active ones, by name, when `q` is empty).
    pub async fn search_customers(&self, q: &str) -> Result<Vec<CustomerView>, QboError> {
        let q = q.trim();
        let mut query = Query::select("Customer");
        if !q.is_empty() {
            query = if q.contains('%') {
                query.eq("DisplayName", q)?
            } else {
                query.like("DisplayName", q, true, true)?
            };
        }
        let query = query.order_by("DisplayName", false)?;
        let rows: Vec<Customer> = self.client.query_page(&query, 1, 50).await?;
        Ok(rows
            .iter()
            .filter(|c| c.active.unwrap_or(true))
            .map(CustomerView::from)
            .collect())
    }

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

    // ---- matching ------------------------------------------------------------------------

    /// Matches every record of a deposit that has not been matched yet (or every record when
    /// `all`): the customer list is read once, paged.
    pub async fn match_deposit(
        &self,
        deposit_id: &str,
        all: bool,
    ) -> Result<MatchSummary, QboError> {
        let customers: Vec<Customer> = self.client.query_all(&Query::select("Customer")).await?;
        let index = CustomerIndex::new(&customers);
        let t = self.client.connection().settings().thresholds;
        let fresh = |r: &Donation| {
            r.qbo.match_status == MatchStatus::Unmatched
                || (all && r.qbo.sales_receipt_id.is_none())
        };
        // Scored outside the compare-and-set (which may run its closure again), on a snapshot;
        // applied to rows that are still waiting for a match.
        let snapshot = self
            .deposits
            .get(deposit_id)
            .await?
            .ok_or_else(|| QboError::NotFound(format!("no deposit {deposit_id}")))?;
        let scored: std::collections::HashMap<Uuid, Donation> = snapshot
            .records
            .into_iter()
            .filter(|r| fresh(r))
            .map(|mut r| {
                let cands = index.candidates_for(&r);
                apply_best(&mut r, &customers, &cands, t);
                (r.id, r)
            })
            .collect();
        let summary = self
            .deposits
            .update(deposit_id, |d| {
                let mut s = MatchSummary {
                    customers: customers.len(),
                    ..MatchSummary::default()
                };
                for r in d.records.iter_mut() {
                    if let (true, Some(m)) = (fresh(r), scored.get(&r.id)) {
                        r.qbo = m.qbo.clone();
                    }
                    match r.qbo.match_status {
                        MatchStatus::Matched => s.matched += 1,
                        MatchStatus::AddressChanged => s.address_changed += 1,
                        MatchStatus::NeedsReview => s.needs_review += 1,
                        MatchStatus::NewDonor => s.new_donor += 1,
                        MatchStatus::Unmatched => {}
                    }
                }
                ControlFlow::Continue(s)
            })
            .await?
            .ok_or_else(|| QboError::NotFound(format!("no deposit {deposit_id}")))?;
        tracing::info!(
            deposit_id,
            customers = summary.customers,
            matched = summary.matched,
            review = summary.needs_review,
            new = summary.new_donor,
            "qbo: deposit matched"
        );
        Ok(summary)
    }

    /// The treasurer's own match.
    pub async fn manual_match(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
        customer_id: &str,
    ) -> Result<Donation, QboError> {
        let record = self.record(deposit_id, record_id).await?;
        if record.qbo.sales_receipt_id.is_some() {
            return Err(QboError::Refused(
                "this row is already in QuickBooks; its donor cannot change".into(),
            ));
        }
        let customer: Customer = self.client.read(customer_id).await?;
        self.change_record(deposit_id, record_id, |r| {
            set_match(r, &customer, 100);
        })
        .await
    }

    /// Reverts a match: the row is unmatched again.
    pub async fn unmatch(&self, deposit_id: &str, record_id: &Uuid) -> Result<Donation, QboError> {
        let record = self.record(deposit_id, record_id).await?;
        if record.qbo.sales_receipt_id.is_some() {
            return Err(QboError::Refused(
                "this row is already in QuickBooks; its donor cannot change".into(),
            ));
        }
        self.change_record(deposit_id, record_id, |r| {
            r.qbo.customer_id = None;
            r.qbo.display_name = None;
            r.qbo.match_score = None;
            r.qbo.address_snapshot = None;
            r.qbo.match_status = MatchStatus::NewDonor;
        })
        .await
    }

    // ---- customers -----------------------------------------------------------------------

    /// Creates a QuickBooks customer from the row and matches the row to it.
    pub async fn create_customer(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
        display_name: Option<&str>,
    ) -> Result<(CreateOutcome, Option<Donation>), QboError> {
        let record = self.record(deposit_id, record_id).await?;
        if record.qbo.sales_receipt_id.is_some() {
            return Err(QboError::Refused(
                "this row is already in QuickBooks; its donor cannot change".into(),
            ));
        }
        let body = customer_body(&record, display_name)?;
        let name = body
            .get("DisplayName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let rid = request_id("customer", &record.id.to_string(), &body);
        match self.client.write::<Customer>(&body, &rid).await {
            Ok(customer) => {
                tracing::info!(
                    deposit_id,
                    customer_id = customer.id(),
                    "qbo: customer created"
                );
                let updated = self
                    .change_record(deposit_id, record_id, |r| set_match(r, &customer, 100))
                    .await?;
                Ok((
                    CreateOutcome::Created {
                        customer: CustomerView::from(&customer),
                    },
                    Some(updated),
                ))
            }
            Err(QboError::Fault {
                action: Action::DuplicateName,
                ..
            }) => {
                let existing: Vec<Customer> = self
                    .client
                    .query_page(&Query::select("Customer").eq("DisplayName", &name)?, 1, 1)
                    .await?;
                Ok((
                    CreateOutcome::NameTaken {
                        display_name: name,
                        existing: existing.first().map(CustomerView::from),
                    },
                    None,
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Sends the row's address (and an email or phone QuickBooks lacks) as a sparse update
    /// with a freshly read SyncToken; a stale token (5010) is re-read and retried once.
    pub async fn accept_address(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
    ) -> Result<Donation, QboError> {
        let record = self.record(deposit_id, record_id).await?;
        let customer_id = confirmed_customer(&record)?;
        let mut tries = 0;
        let customer = loop {
            tries += 1;
            let current: Customer = self.client.read(&customer_id).await?;
            let body = contact_update(&current, &record, true);
            let rid = request_id("address", &record.id.to_string(), &body);
            match self.client.write::<Customer>(&body, &rid).await {
                Ok(c) => break c,
                Err(QboError::Fault {
                    action: Action::Reread,
                    ..
                }) if tries < 2 => continue,
                Err(e) => return Err(e),
            }
        };
        tracing::info!(
            deposit_id,
            customer_id = customer.id(),
            "qbo: customer address updated"
        );
        self.change_record(deposit_id, record_id, |r| {
            r.qbo.address_snapshot = Some(address_of_customer(&customer));
            r.qbo.match_status = MatchStatus::Matched;
        })
        .await
    }

    /// Keeps QuickBooks's address: the row's change is dismissed.
    pub async fn keep_address(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
    ) -> Result<Donation, QboError> {
        self.change_record(deposit_id, record_id, |r| {
            if r.qbo.match_status == MatchStatus::AddressChanged {
                r.qbo.match_status = MatchStatus::Matched;
            }
        })
        .await
    }

    /// Adds the row's email and phone to the customer where QuickBooks has none; existing
    /// values are never overwritten (handwriting is unreliable).
    pub async fn add_contact(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
    ) -> Result<Vec<String>, QboError> {
        let record = self.record(deposit_id, record_id).await?;
        let customer_id = confirmed_customer(&record)?;
        let mut tries = 0;
        loop {
            tries += 1;
            let current: Customer = self.client.read(&customer_id).await?;
            let body = contact_update(&current, &record, false);
            let added: Vec<String> = ["PrimaryEmailAddr", "PrimaryPhone"]
                .iter()
                .filter(|k| body.get(**k).is_some())
                .map(|k| k.to_string())
                .collect();
            if added.is_empty() {
                return Ok(added);
            }
            let rid = request_id("contact", &record.id.to_string(), &body);
            match self.client.write::<Customer>(&body, &rid).await {
                Ok(_) => return Ok(added),
                Err(QboError::Fault {
                    action: Action::Reread,
                    ..
                }) if tries < 2 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    // ---- sales receipts ------------------------------------------------------------------

    /// The receipt that would be sent, and why it cannot be when it cannot.
    pub async fn preview(&self, deposit_id: &str, record_id: &Uuid) -> Result<Value, QboError> {
        let record = self.record(deposit_id, record_id).await?;
        let defaults = self.defaults().await?;
        let body = receipt_body(&record, &defaults);
        Ok(match body {
            Ok(body) => json!({
                "ready": true,
                "receipt": body,
                "customer": record.qbo.display_name,
                "item": defaults.item_name,
                "deposit_account": defaults.deposit_account_name,
                "payment_method": if record.payment_method.is_some_and(|m| m.is_check()) {
                    defaults.payment_method_name.clone()
                } else { None },
                "already_sent": record.qbo.sales_receipt_id,
            }),
            Err(e) => json!({"ready": false, "reason": e.to_string(),
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
    ) -> Result<SendResult, QboError> {
        let record = self.record(deposit_id, record_id).await?;
        let result = |outcome: &str, receipt: Option<String>, message: Option<String>| SendResult {
            record_id: *record_id,
            outcome: outcome.into(),
            receipt_id: receipt,
            message,
            choose: None,
        };
        if let Some(id) = &record.qbo.sales_receipt_id {
            return Ok(result("already_sent", Some(id.clone()), None));
        }
        let body = match receipt_body(&record, defaults) {
            Ok(b) => b,
            Err(e) => return Ok(result("refused", None, Some(e.to_string()))),
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
                    return Ok::<_, QboError>(("found_existing", existing));
                }
                match self.client.write_once::<SalesReceipt>(&body, &rid).await {
                    Ok(created) => return Ok(("sent", created.id.unwrap_or_default())),
                    Err(e) if retryable(&e) && tries < settings.max_attempts => {
                        tracing::warn!(%record_id, tries, "qbo: receipt not confirmed; checking before retrying");
                        tokio::time::sleep(self.client.backoff(tries)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        match attempt.await {
            Ok((outcome, receipt_id)) => {
                self.change_record(deposit_id, record_id, |r| {
                    r.qbo.sales_receipt_id = Some(receipt_id.clone());
                    r.qbo.sync_status = SyncStatus::Sent;
                    r.qbo.last_error = None;
                })
                .await?;
                tracing::info!(deposit_id, %record_id, receipt_id, outcome, "qbo: receipt");
                Ok(result(outcome, Some(receipt_id), None))
            }
            Err(e @ (QboError::Redis(_) | QboError::Deposit(_))) => Err(e),
            Err(e) => {
                let message = e.user_message();
                self.change_record(deposit_id, record_id, |r| {
                    r.qbo.sync_status = SyncStatus::Error;
                    r.qbo.last_error = Some(message.clone());
                })
                .await?;
                Ok(SendResult {
                    choose: e.reference().map(str::to_string),
                    ..result("error", None, Some(message))
                })
            }
        }
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
        let d = self
            .deposits
            .get(deposit_id)
            .await?
            .ok_or_else(|| QboError::NotFound(format!("no deposit {deposit_id}")))?;
        let defaults = self.defaults().await?;
        let ids: Vec<Uuid> = d.records.iter().map(|r| r.id).collect();
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            if progress(i, ids.len()).is_break() {
                return Ok(SendAll {
                    results: out,
                    stopped: true,
                });
            }
            match self.send_one(deposit_id, id, &defaults).await {
                Ok(r) => out.push(r),
                // The row was deleted meanwhile: nothing to send.
                Err(QboError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let _ = progress(ids.len(), ids.len());
        Ok(SendAll {
            results: out,
            stopped: false,
        })
    }
}

/// The row's customer, when the treasurer (or a sure match) confirmed it: a suggestion that
/// needs review must not have its QuickBooks record changed.
fn confirmed_customer(record: &Donation) -> Result<String, QboError> {
    match (&record.qbo.customer_id, record.qbo.match_status) {
        (Some(c), MatchStatus::Matched | MatchStatus::AddressChanged) => Ok(c.clone()),
        (Some(_), MatchStatus::NeedsReview) => Err(QboError::Refused(
            "confirm the suggested donor (or choose another) first".into(),
        )),
        _ => Err(QboError::Refused(
            "match the row to a QuickBooks customer first".into(),
        )),
    }
}

/// Failures after which the write may or may not have happened.
fn retryable(e: &QboError) -> bool {
    matches!(
        e,
        QboError::Unavailable(_)
            | QboError::Fault {
                action: Action::RetryLater,
                ..
            }
    )
}

fn undeposited_funds(accounts: &[Account]) -> Option<&Account> {
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

/// The "search" step of matching, done on the customer list read once: customers indexed by
/// the words of their names, so each row is scored only against customers sharing a word
/// with one of its names (5,000 customers x 300 rows would otherwise be 1.5 million scores).
struct CustomerIndex<'a> {
    all: Vec<Candidate<'a>>,
    by_word: std::collections::HashMap<String, Vec<usize>>,
}

/// Lower-case words of two or more letters or digits ("O'Brien" gives "brien").
fn name_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
}

impl<'a> CustomerIndex<'a> {
    fn new(customers: &'a [Customer]) -> Self {
        let all: Vec<Candidate> = customers.iter().map(candidate).collect();
        let mut by_word: std::collections::HashMap<String, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, c) in customers.iter().enumerate() {
            let names = [
                c.display_name.as_deref(),
                c.given_name.as_deref(),
                c.family_name.as_deref(),
                c.company_name.as_deref(),
            ];
            let mut words: Vec<String> =
                names.iter().flatten().flat_map(|n| name_words(n)).collect();
            words.sort_unstable();
            words.dedup();
            for w in words {
                by_word.entry(w).or_default().push(i);
            }
        }
        Self { all, by_word }
    }

    fn candidates_for(&self, r: &Donation) -> Vec<Candidate<'a>> {
        let mut hits: Vec<usize> = r
            .payer
            .aliases
            .iter()
            .chain(r.payer.organization_name.iter())
            .flat_map(|n| name_words(n))
            .filter_map(|w| self.by_word.get(&w))
            .flatten()
            .copied()
            .collect();
        hits.sort_unstable();
        hits.dedup();
        hits.into_iter().map(|i| self.all[i]).collect()
    }
}

fn apply_best(
    r: &mut Donation,
    customers: &[Customer],
    cands: &[Candidate],
    t: matching::Thresholds,
) {
    match matching::best(&r.payer, cands) {
        Some((c, score)) => {
            let status = matching::decide(score, t);
            let customer = customers.iter().find(|x| x.id() == c.id);
            match (status, customer) {
                (MatchStatus::Matched, Some(customer)) => set_match(r, customer, score),
                (MatchStatus::NeedsReview, Some(customer)) => {
                    // A suggestion: shown, but a receipt needs the treasurer's confirmation.
                    r.qbo.customer_id = Some(customer.id().to_string());
                    r.qbo.display_name = Some(customer.name().to_string());
                    r.qbo.match_score = Some(score);
                    r.qbo.address_snapshot = Some(address_of_customer(customer));
                    r.qbo.match_status = MatchStatus::NeedsReview;
                }
                _ => new_donor(r, score),
            }
        }
        None => new_donor(r, 0),
    }
}

fn new_donor(r: &mut Donation, score: u8) {
    r.qbo.customer_id = None;
    r.qbo.display_name = None;
    r.qbo.address_snapshot = None;
    r.qbo.match_score = Some(score);
    r.qbo.match_status = MatchStatus::NewDonor;
}

fn set_match(r: &mut Donation, customer: &Customer, score: u8) {
    let qbo_addr = address_of_customer(customer);
    let extracted = matching::address_of(&r.contact);
    r.qbo.customer_id = Some(customer.id().to_string());
    r.qbo.display_name = Some(customer.name().to_string());
    r.qbo.match_score = Some(score);
    r.qbo.match_status = if matching::address_changed(&extracted, &qbo_addr) {
        MatchStatus::AddressChanged
    } else {
        MatchStatus::Matched
    };
    r.qbo.address_snapshot = Some(qbo_addr);
}

/// "Smith, John" or "John Smith" → (given, family).
fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let name = name.trim();
    if let Some((last, first)) = name.split_once(',') {
        let (f, l) = (first.trim(), last.trim());
        return (
            (!f.is_empty()).then(|| f.to_string()),
            (!l.is_empty()).then(|| l.to_string()),
        );
    }
    match name.rsplit_once(' ') {
        Some((first, last)) => (
            Some(first.trim().to_string()),
            Some(last.trim().to_string()),
        ),
        None => (None, (!name.is_empty()).then(|| name.to_string())),
    }
}

fn customer_body(record: &Donation, display_name: Option<&str>) -> Result<Value, QboError> {
    let org = record
        .payer
        .organization_name
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let person = record
        .payer
        .aliases
        .first()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    let (given, family) = person.map(split_name).unwrap_or((None, None));
    let natural = match (org, &given, &family) {
        (Some(o), _, _) => o.to_string(),
        (None, Some(g), Some(f)) => format!("{g} {f}"),
        (None, None, Some(f)) => f.clone(),
        _ => String::new(),
    };
    let name = display_name
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or(natural);
    if name.is_empty() {
        return Err(QboError::Refused(
            "the row has no donor name; type one before creating the customer".into(),
        ));
    }
    if name.contains(':') {
        return Err(QboError::Refused(
            "QuickBooks does not allow a colon in a customer name".into(),
        ));
    }
    let mut body = json!({"DisplayName": clip(&name, 500)});
    if org.is_none() {
        if let Some(g) = given {
            body["GivenName"] = json!(clip(&g, 100));
        }
        if let Some(f) = family {
            body["FamilyName"] = json!(clip(&f, 100));
        }
    } else if let Some(o) = org {
        body["CompanyName"] = json!(clip(o, 100));
    }
    let c = &record.contact;
    if c.address_line_1.is_some() || c.city.is_some() || c.zip.is_some() {
        body["BillAddr"] = serde_json::to_value(PhysicalAddress {
            line1: c.address_line_1.clone(),
            city: c.city.clone(),
            country_sub_division_code: c.state.clone(),
            postal_code: c.zip.clone(),
            ..PhysicalAddress::default()
        })
        .unwrap_or(Value::Null);
    }
    if let Some(e) = c.email.as_deref().filter(|e| e.contains('@')) {
        body["PrimaryEmailAddr"] = json!({"Address": e});
    }
    if let Some(p) = c.phone.as_deref().filter(|p| !p.trim().is_empty()) {
        body["PrimaryPhone"] = json!({"FreeFormNumber": p});
    }
    Ok(body)
}

/// A sparse update of `current`: the row's address when `address`, plus an email or phone
/// QuickBooks does not have yet.
fn contact_update(current: &Customer, record: &Donation, address: bool) -> Value {
    let mut body = json!({
        "Id": current.id(),
        "SyncToken": current.sync_token.clone().unwrap_or_default(),
        "sparse": true,
    });
    let c = &record.contact;
    if address && c.address_line_1.is_some() {
        let id = current.bill_addr.as_ref().and_then(|a| a.id.clone());
        body["BillAddr"] = serde_json::to_value(PhysicalAddress {
            id,
            line1: c.address_line_1.clone(),
            city: c.city.clone(),
            country_sub_division_code: c.state.clone(),
            postal_code: c.zip.clone(),
            line2: None,
        })
        .unwrap_or(Value::Null);
    }
    if current.primary_email_addr.is_none() {
        if let Some(e) = c.email.as_deref().filter(|e| e.contains('@')) {
            body["PrimaryEmailAddr"] = json!({"Address": e});
        }
    }
    if current.primary_phone.is_none() {
        if let Some(p) = c.phone.as_deref().filter(|p| !p.trim().is_empty()) {
            body["PrimaryPhone"] = json!({"FreeFormNumber": p});
        }
    }
    body
}

/// The sales receipt for a row (PRODUCT.md mapping), or why it cannot be sent.
pub fn receipt_body(record: &Donation, defaults: &SendDefaults) -> Result<Value, QboError> {
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
    let mut body = json!({
        "TxnDate": date.format("%Y-%m-%d").to_string(),
        "CustomerRef": {"value": customer},
        "PrivateNote": note,
        "Line": [{
            "DetailType": "SalesItemLineDetail",
            "Amount": amount,
            "Description": "Donation",
            "SalesItemLineDetail": {"ItemRef": {"value": item}, "Qty": 1, "UnitPrice": amount},
        }],
    });
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
        body["DocNumber"] = json!(clip(&format!("{}-{r}", date.format("%Y%m%d")), REF_MAX));
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
fn decimal_number(d: Decimal) -> Value {
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

    #[test]
    fn receipt_follows_the_product_mapping() {
        let d = matched();
        let b = receipt_body(&d, &defaults()).unwrap();
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
        assert!(b["DocNumber"].as_str().unwrap().chars().count() <= 21);
        let note = b["PrivateNote"].as_str().unwrap();
        assert!(note.starts_with("In memory of Ann") && note.contains(&marker(&d.id)));

        // Online gifts carry no Check payment method.
        let mut online = matched();
        online.payment_method = Some(PaymentMethod::Online);
        assert!(receipt_body(&online, &defaults())
            .unwrap()
            .get("PaymentMethodRef")
            .is_none());
    }

    #[test]
    fn rows_that_cannot_be_sent_say_why() {
        let why = |d: &Donation, s: &SendDefaults| receipt_body(d, s).unwrap_err().to_string();
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

    #[test]
    fn customer_from_a_row_keeps_escaping_to_the_query_layer() {
        let mut d = matched();
        d.payer.aliases = vec!["O'Brien, Mary".into()];
        d.contact.address_line_1 = Some("12 Elm St".into());
        d.contact.zip = Some("02134".into());
        let b = customer_body(&d, None).unwrap();
        assert_eq!(b["DisplayName"], "Mary O'Brien");
        assert_eq!(b["GivenName"], "Mary");
        assert_eq!(b["FamilyName"], "O'Brien");
        assert_eq!(b["BillAddr"]["PostalCode"], "02134");
        d.payer.organization_name = Some("St. John Lutheran Church".into());
        let b = customer_body(&d, None).unwrap();
        assert_eq!(b["CompanyName"], "St. John Lutheran Church");
        assert!(b.get("GivenName").is_none());
        assert!(customer_body(&d, Some("A: B")).is_err());
    }
}
