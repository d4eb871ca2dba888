//! Donors in QuickBooks: customer search, matching a deposit's rows to customers (scored by
//! [`crate::qbo::matching`]), the treasurer's own match or unmatch, and creating or updating
//! customers. The QuickBooks record of a suggestion that still needs review is never changed.

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::donation::{Address, Donation, MatchBy, MatchStatus};
use crate::qbo::client::request_id;
use crate::qbo::entities::{Customer, PhysicalAddress};
use crate::qbo::fault::Action;
use crate::qbo::matching::{self, Candidate};
use crate::qbo::query::Query;
use crate::qbo::sync::{clip, Qbo};
use crate::qbo::QboError;

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

impl Qbo {
    /// A row whose donor may still change: once in QuickBooks, its receipt names the customer.
    async fn unsent_record(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
    ) -> Result<Donation, QboError> {
        let record = self.record(deposit_id, record_id).await?;
        if record.qbo.sales_receipt_id.is_some() {
            return Err(QboError::Refused(
                "this row is already in QuickBooks; its donor cannot change".into(),
            ));
        }
        Ok(record)
    }

    /// Every customer of the company, read page by page.
    async fn all_customers(&self) -> Result<Vec<Customer>, QboError> {
        self.client.query_all(&Query::select("Customer")).await
    }

    /// How the company's customer list names people.
    async fn name_pattern(&self) -> Result<NamePattern, QboError> {
        Ok(NamePattern::learn(&self.all_customers().await?))
    }

    /// Customers whose name contains `q` (all active ones, by name, when `q` is empty); a `q`
    /// that looks like an e-mail, a street or a phone (an `@` or a digit), or that no name
    /// holds, is looked for in every customer's names, e-mail, phone and address.
    pub async fn search_customers(&self, q: &str) -> Result<Vec<CustomerView>, QboError> {
        const MAX: usize = 50;
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
        let rows: Vec<Customer> = self.client.query_page(&query, 1, MAX as u32).await?;
        let by_name: Vec<CustomerView> = rows
            .iter()
            .filter(|c| c.active.unwrap_or(true))
            .map(CustomerView::from)
            .collect();
        let wider = q.contains('@') || q.chars().any(|c| c.is_ascii_digit());
        if q.is_empty() || !(wider || by_name.is_empty()) {
            return Ok(by_name);
        }
        let all = self.all_customers().await?;
        let mut found: Vec<CustomerView> = all
            .iter()
            .filter(|c| c.active.unwrap_or(true) && customer_holds(c, q))
            .map(CustomerView::from)
            .collect();
        found.sort_by(|a, b| {
            a.display_name
                .to_lowercase()
                .cmp(&b.display_name.to_lowercase())
        });
        found.truncate(MAX);
        Ok(found)
    }

    /// Matches every record of a deposit that has not been matched yet (or every record when
    /// `all`): the customer list is read once, paged.
    pub async fn match_deposit(
        &self,
        deposit_id: &str,
        all: bool,
    ) -> Result<MatchSummary, QboError> {
        let customers = self.all_customers().await?;
        let index = CustomerIndex::new(&customers);
        let contacts = ContactIndex::new(&customers);
        let t = self.client.connection().settings().thresholds;
        let fresh = |r: &Donation| {
            r.qbo.match_status == MatchStatus::Unmatched
                || (all && r.qbo.sales_receipt_id.is_none())
        };
        // Scored outside the compare-and-set (which may run its closure again), on a snapshot;
        // applied to rows that are still waiting for a match.
        let snapshot = self.deposit(deposit_id).await?;
        let scored: std::collections::HashMap<Uuid, Donation> = snapshot
            .records
            .into_iter()
            .filter(|r| fresh(r))
            .map(|mut r| {
                auto_match(&mut r, &customers, &index, &contacts, t);
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
        // Matched rows are compared with the receipts their customers already have.
        if let Err(e) = self.check_duplicates(deposit_id).await {
            tracing::warn!(error = %e, "qbo: duplicate check skipped; it runs again before sending");
        }
        Ok(summary)
    }

    /// The treasurer's own match.
    pub async fn manual_match(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
        customer_id: &str,
    ) -> Result<Donation, QboError> {
        self.unsent_record(deposit_id, record_id).await?;
        let customer: Customer = self.client.read(customer_id).await?;
        self.change_record(deposit_id, record_id, |r| {
            set_match(r, &customer, 100, MatchBy::Hand);
        })
        .await
    }

    /// Reverts a match. A match the treasurer made by hand goes back to the automatic one
    /// (by name, e-mail or phone, as matching would find it now); an automatic match is undone
    /// and the row is a new donor.
    pub async fn unmatch(&self, deposit_id: &str, record_id: &Uuid) -> Result<Donation, QboError> {
        let record = self.unsent_record(deposit_id, record_id).await?;
        if record.qbo.match_by == Some(MatchBy::Hand) {
            let customers = self.all_customers().await?;
            let index = CustomerIndex::new(&customers);
            let contacts = ContactIndex::new(&customers);
            let t = self.client.connection().settings().thresholds;
            let mut auto = record.clone();
            auto_match(&mut auto, &customers, &index, &contacts, t);
            // An automatic match that is the hand-made one is undone instead.
            if auto.qbo.customer_id != record.qbo.customer_id {
                return self
                    .change_record(deposit_id, record_id, |r| {
                        r.qbo = Self::keep_row_parts(&r.qbo, &auto.qbo)
                    })
                    .await;
            }
        }
        self.change_record(deposit_id, record_id, |r| new_donor(r, 0))
            .await
    }

    /// The match parts of `matched` with the row's own parts of `row` (receipt, choices).
    fn keep_row_parts(
        row: &crate::donation::QboState,
        matched: &crate::donation::QboState,
    ) -> crate::donation::QboState {
        crate::donation::QboState {
            customer_id: matched.customer_id.clone(),
            display_name: matched.display_name.clone(),
            match_status: matched.match_status,
            match_score: matched.match_score,
            address_snapshot: matched.address_snapshot.clone(),
            match_by: matched.match_by,
            ..row.clone()
        }
    }

    /// The new customer the row would make: its fields, the display name in the pattern the
    /// company's customer list follows.
    pub async fn customer_draft(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
    ) -> Result<(CustomerDraft, NamePattern), QboError> {
        let record = self.unsent_record(deposit_id, record_id).await?;
        let pattern = self.name_pattern().await?;
        Ok((CustomerDraft::from_row(&record, pattern), pattern))
    }

    /// Creates a QuickBooks customer from the row, with the treasurer's `edits` over the
    /// draft (a display name not given follows the list's pattern), and matches the row to it.
    pub async fn create_customer(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
        edits: &CustomerDraft,
    ) -> Result<(CreateOutcome, Option<Donation>), QboError> {
        let record = self.unsent_record(deposit_id, record_id).await?;
        let pattern = if edits.display_name.is_some() {
            NamePattern::FirstLast
        } else {
            self.name_pattern().await?
        };
        let body = CustomerDraft::from_row(&record, pattern)
            .with(edits)
            .body()?;
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
                    .change_record(deposit_id, record_id, |r| {
                        set_match(r, &customer, 100, MatchBy::Created);
                    })
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

/// Customers by e-mail address (lower case) and by phone key, to match a row whose name
/// finds no customer by the one customer with its e-mail or phone.
struct ContactIndex {
    emails: std::collections::HashMap<String, Vec<usize>>,
    phones: std::collections::HashMap<String, Vec<usize>>,
}

impl ContactIndex {
    fn new(customers: &[Customer]) -> Self {
        let mut emails: std::collections::HashMap<String, Vec<usize>> = Default::default();
        let mut phones: std::collections::HashMap<String, Vec<usize>> = Default::default();
        for (i, c) in customers.iter().enumerate() {
            if !c.active.unwrap_or(true) {
                continue;
            }
            if let Some(e) = c.primary_email_addr.as_ref().map(|e| e.address.as_str()) {
                let e = e.trim().to_lowercase();
                if e.contains('@') {
                    emails.entry(e).or_default().push(i);
                }
            }
            if let Some(key) = c
                .primary_phone
                .as_ref()
                .map(|p| p.free_form_number.as_str())
                .and_then(matching::phone_key)
            {
                phones.entry(key).or_default().push(i);
            }
        }
        Self { emails, phones }
    }

    /// The one customer with the row's e-mail, else the one with its phone.
    fn find<'c>(&self, r: &Donation, customers: &'c [Customer]) -> Option<(&'c Customer, MatchBy)> {
        let one = |hits: Option<&Vec<usize>>| match hits.map(Vec::as_slice) {
            Some([i]) => customers.get(*i),
            _ => None,
        };
        let email = r
            .contact
            .email
            .as_deref()
            .map(|e| e.trim().to_lowercase())
            .and_then(|e| one(self.emails.get(&e)));
        if let Some(c) = email {
            return Some((c, MatchBy::Email));
        }
        r.contact
            .phone
            .as_deref()
            .and_then(matching::phone_key)
            .and_then(|k| one(self.phones.get(&k)))
            .map(|c| (c, MatchBy::Phone))
    }
}

/// Whether `q` (case-insensitive) is in one of the customer's names, its e-mail, its address,
/// or (as digits) its phone.
fn customer_holds(c: &Customer, q: &str) -> bool {
    let q = q.to_lowercase();
    let a = c.bill_addr.as_ref();
    let texts = [
        c.display_name.as_deref(),
        c.given_name.as_deref(),
        c.family_name.as_deref(),
        c.company_name.as_deref(),
        c.primary_email_addr.as_ref().map(|e| e.address.as_str()),
        a.and_then(|a| a.line1.as_deref()),
        a.and_then(|a| a.city.as_deref()),
        a.and_then(|a| a.postal_code.as_deref()),
    ];
    if texts
        .iter()
        .flatten()
        .any(|t| t.to_lowercase().contains(&q))
    {
        return true;
    }
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    digits.len() >= 7
        && c.primary_phone.as_ref().is_some_and(|p| {
            let theirs: String = p
                .free_form_number
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            theirs.contains(&digits)
        })
}

/// A contact match is as sure as this (a unique e-mail or phone, not a name).
const CONTACT_SCORE: u8 = 95;

/// The automatic match of a row: by name, else by the one customer with its e-mail or phone.
fn auto_match(
    r: &mut Donation,
    customers: &[Customer],
    index: &CustomerIndex,
    contacts: &ContactIndex,
    t: matching::Thresholds,
) {
    let cands = index.candidates_for(r);
    apply_best(r, customers, &cands, t);
    if r.qbo.match_status != MatchStatus::Matched
        && r.qbo.match_status != MatchStatus::AddressChanged
    {
        if let Some((c, by)) = contacts.find(r, customers) {
            set_match(r, c, CONTACT_SCORE, by);
        }
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
                (MatchStatus::Matched, Some(customer)) => {
                    set_match(r, customer, score, MatchBy::Name);
                }
                (MatchStatus::NeedsReview, Some(customer)) => {
                    // A suggestion: shown, but a receipt needs the treasurer's confirmation.
                    r.qbo.match_by = Some(MatchBy::Name);
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
    r.qbo.match_by = None;
    r.qbo.customer_id = None;
    r.qbo.display_name = None;
    r.qbo.address_snapshot = None;
    r.qbo.match_score = Some(score);
    r.qbo.match_status = MatchStatus::NewDonor;
}

fn set_match(r: &mut Donation, customer: &Customer, score: u8, by: MatchBy) {
    r.qbo.match_by = Some(by);
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

/// How an organisation writes its donors' names in QuickBooks, learned from its customer list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamePattern {
    /// "Jane O'Brien", "John & Jane Smith".
    #[default]
    FirstLast,
    /// "O'Brien, Jane", "Smith, John & Jane".
    LastFirst,
}

impl NamePattern {
    /// The pattern most of the list's people follow (a customer with given and family names
    /// whose display name is "Family, Given" or "Given Family"); "First Last" when none tells.
    pub fn learn(customers: &[Customer]) -> Self {
        let (mut last_first, mut first_last) = (0usize, 0usize);
        for c in customers.iter().filter(|c| c.company_name.is_none()) {
            let (Some(g), Some(f)) = (c.given_name.as_deref(), c.family_name.as_deref()) else {
                continue;
            };
            let name = c.name().trim();
            if name.eq_ignore_ascii_case(&format!("{}, {}", f.trim(), g.trim())) {
                last_first += 1;
            } else if name.eq_ignore_ascii_case(&format!("{} {}", g.trim(), f.trim())) {
                first_last += 1;
            }
        }
        if last_first > first_last {
            NamePattern::LastFirst
        } else {
            NamePattern::FirstLast
        }
    }

    fn display(self, given: &str, family: &str) -> String {
        match self {
            NamePattern::FirstLast => format!("{given} {family}"),
            NamePattern::LastFirst => format!("{family}, {given}"),
        }
    }
}

/// A new customer as it will be created: prefilled from the row (the display name in the
/// list's own pattern), every field editable before creating. An empty text clears a field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerDraft {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_line_1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
}

impl CustomerDraft {
    /// The row's donor as a new customer, named the way the list names people.
    pub fn from_row(record: &Donation, pattern: NamePattern) -> Self {
        let some = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(String::from);
        let org = some(record.payer.organization_name.as_deref());
        let person = some(record.payer.aliases.first().map(String::as_str));
        let (given, family) = match (&org, &person) {
            (None, Some(p)) => super::layout::split_name(p),
            _ => (None, None),
        };
        let display = match (&org, &given, &family) {
            (Some(o), _, _) => Some(o.clone()),
            (None, Some(g), Some(f)) => Some(pattern.display(g, f)),
            (None, None, Some(f)) => Some(f.clone()),
            _ => person.clone(),
        };
        let c = &record.contact;
        Self {
            display_name: display,
            given_name: given,
            family_name: family,
            company_name: org,
            email: some(c.email.as_deref()).filter(|e| e.contains('@')),
            phone: some(c.phone.as_deref()),
            address_line_1: some(c.address_line_1.as_deref()),
            city: some(c.city.as_deref()),
            state: some(c.state.as_deref()),
            zip: some(c.zip.as_deref()),
        }
    }

    /// `self` with each field the treasurer sent in `edits` replaced (blank: cleared).
    pub fn with(mut self, edits: &CustomerDraft) -> Self {
        let take = |mine: &mut Option<String>, theirs: &Option<String>| {
            if let Some(v) = theirs {
                let v = v.trim();
                *mine = (!v.is_empty()).then(|| v.to_string());
            }
        };
        take(&mut self.display_name, &edits.display_name);
        take(&mut self.given_name, &edits.given_name);
        take(&mut self.family_name, &edits.family_name);
        take(&mut self.company_name, &edits.company_name);
        take(&mut self.email, &edits.email);
        take(&mut self.phone, &edits.phone);
        take(&mut self.address_line_1, &edits.address_line_1);
        take(&mut self.city, &edits.city);
        take(&mut self.state, &edits.state);
        take(&mut self.zip, &edits.zip);
        self
    }

    /// The create request, or why the draft cannot be created.
    fn body(&self) -> Result<Value, QboError> {
        let name = self.display_name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(QboError::Refused(
                "the row has no donor name; type one before creating the customer".into(),
            ));
        }
        if name.contains(':') {
            return Err(QboError::Refused(
                "a QuickBooks customer name cannot contain a colon".into(),
            ));
        }
        let mut body = json!({ "DisplayName": clip(&name, 500) });
        for (key, value) in [
            ("GivenName", &self.given_name),
            ("FamilyName", &self.family_name),
            ("CompanyName", &self.company_name),
        ] {
            if let Some(v) = value {
                body[key] = json!(clip(v, 100));
            }
        }
        if self.address_line_1.is_some() || self.city.is_some() || self.zip.is_some() {
            body["BillAddr"] = serde_json::to_value(PhysicalAddress {
                line1: self.address_line_1.clone(),
                city: self.city.clone(),
                country_sub_division_code: self.state.clone(),
                postal_code: self.zip.clone(),
                ..PhysicalAddress::default()
            })
            .unwrap_or(Value::Null);
        }
        if let Some(e) = self.email.as_deref().filter(|e| e.contains('@')) {
            body["PrimaryEmailAddr"] = json!({"Address": e});
        }
        if let Some(p) = &self.phone {
            body["PrimaryPhone"] = json!({"FreeFormNumber": p});
        }
        Ok(body)
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn customer_body(record: &Donation, display_name: Option<&str>) -> Result<Value, QboError> {
        let edits = CustomerDraft {
            display_name: display_name.map(str::to_string),
            ..CustomerDraft::default()
        };
        CustomerDraft::from_row(record, NamePattern::FirstLast)
            .with(&edits)
            .body()
    }

    fn person(display: &str, given: &str, family: &str) -> Customer {
        Customer {
            id: Some("1".into()),
            display_name: Some(display.into()),
            given_name: Some(given.into()),
            family_name: Some(family.into()),
            ..Customer::default()
        }
    }

    #[test]
    fn new_customers_are_named_the_way_the_list_names_people() {
        let list = [
            person("O'Brien, Mary", "Mary", "O'Brien"),
            person("Kim, Grace", "Grace", "Kim"),
            person("Tom McDonald", "Tom", "McDonald"),
            Customer {
                display_name: Some("Acme, Inc.".into()),
                company_name: Some("Acme, Inc.".into()),
                ..Customer::default()
            },
        ];
        assert_eq!(NamePattern::learn(&list), NamePattern::LastFirst);
        assert_eq!(NamePattern::learn(&list[2..]), NamePattern::FirstLast);
        assert_eq!(NamePattern::learn(&[]), NamePattern::FirstLast);
        let mut d = Donation::new("scan.pdf");
        d.payer.aliases = vec!["John & Jane Smith".into()];
        d.contact.email = Some("smiths@example.org".into());
        let draft = CustomerDraft::from_row(&d, NamePattern::LastFirst);
        assert_eq!(draft.display_name.as_deref(), Some("Smith, John & Jane"));
        assert_eq!(draft.given_name.as_deref(), Some("John & Jane"));
        assert_eq!(draft.family_name.as_deref(), Some("Smith"));
        // The treasurer's edits win; a blank clears.
        let edited = draft.with(&CustomerDraft {
            display_name: Some(" Smith, John and Jane ".into()),
            email: Some(String::new()),
            ..CustomerDraft::default()
        });
        let b = edited.body().unwrap();
        assert_eq!(b["DisplayName"], "Smith, John and Jane");
        assert!(b.get("PrimaryEmailAddr").is_none());
    }

    #[test]
    fn customer_from_a_row_keeps_escaping_to_the_query_layer() {
        let mut d = Donation::new("scan.pdf");
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
