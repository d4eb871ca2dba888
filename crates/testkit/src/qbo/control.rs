//! What a test does to a running fake besides HTTP: move its clock, mint or expire tokens,
//! inject faults, seed customers, and read back what it stored (uploaded bytes included) and
//! the requests it answered.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::entity::Kind;
use super::oauth::{new_grant, refresh_status};
use super::state::{delta, Injection};
use super::{FakeQbo, GrantTokens, Inject, LoggedRequest, RefreshStatus};

impl FakeQbo {
    /// The fake's clock: real time plus everything [`advance`](Self::advance)d.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.lock().now()
    }

    /// Moves the fake's clock forward.
    pub fn advance(&self, by: Duration) {
        let mut g = self.shared.lock();
        g.offset += delta(by);
    }

    /// Every access token issued so far is expired from now on.
    pub fn expire_access_tokens(&self) {
        let mut g = self.shared.lock();
        let now = g.now();
        for info in g.access.values_mut() {
            info.expires_at = info.expires_at.min(now);
        }
    }

    /// A new grant for the realm, as if the authorization-code flow had run.
    pub fn issue_grant(&self) -> GrantTokens {
        let mut g = self.shared.lock();
        let now = g.now();
        let (access_token, refresh_token) = new_grant(&mut g, &self.shared.opts, now);
        GrantTokens {
            access_token,
            refresh_token,
            realm_id: self.shared.opts.realm_id.clone(),
        }
    }

    pub fn refresh_token_status(&self, token: &str) -> RefreshStatus {
        let g = self.shared.lock();
        refresh_status(&g, &self.shared.opts, token, g.now())
    }

    /// POSTs to the token endpoint (both grants, failures included).
    pub fn token_calls(&self) -> usize {
        self.shared.lock().token_calls
    }

    /// Successful revokes.
    pub fn revoked(&self) -> usize {
        self.shared.lock().revoked
    }

    /// The next `/connect/oauth2` redirects with `error=access_denied`.
    pub fn deny_next_authorization(&self) {
        self.shared.lock().deny_next = true;
    }

    /// Injects `fault` into the next `times` API calls whose path contains `path_contains`
    /// (`None`: any API call). Injections are consumed in the order they were added.
    pub fn inject(&self, fault: Inject, times: usize, path_contains: Option<&str>) {
        if times == 0 {
            return;
        }
        self.shared.lock().injections.push(Injection {
            fault,
            remaining: times,
            path_contains: path_contains.map(String::from),
        });
    }

    /// On (the default): a repeated `requestid` gets the stored answer. Off: it runs again.
    pub fn set_requestid_dedupe(&self, on: bool) {
        self.shared.lock().dedupe = on;
    }

    /// Stores a customer the way a create would, minus the validation (duplicates and
    /// nameless customers are allowed here); returns its Id ("" when `customer` is not an
    /// object with string name fields).
    pub fn add_customer(&self, customer: Value) -> String {
        self.add(Kind::Customer, customer, false)
    }

    /// Creates an entity as a person would in QuickBooks; its id ("" when refused).
    fn add(&self, kind: Kind, entity: Value, validate: bool) -> String {
        let mut g = self.shared.lock();
        let now = g.now();
        let body = match entity {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        match g.company.create(kind, body, now, validate) {
            Ok(v) => v
                .get("Id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            Err(_) => String::new(),
        }
    }

    /// A sales receipt entered by hand in QuickBooks (no marker of ours); its id.
    pub fn add_sales_receipt(&self, receipt: Value) -> String {
        self.add(Kind::SalesReceipt, receipt, true)
    }

    /// A Vendor or Employee display name: customers cannot use it (6240).
    pub fn add_vendor_name(&self, name: &str) {
        self.shared
            .lock()
            .company
            .other_names
            .push(name.trim().to_string());
    }

    pub fn customers(&self) -> Vec<Value> {
        self.entities(Kind::Customer)
    }

    pub fn customer(&self, id: &str) -> Option<Value> {
        let g = self.shared.lock();
        g.company.get(Kind::Customer, id).cloned()
    }

    pub fn sales_receipts(&self) -> Vec<Value> {
        self.entities(Kind::SalesReceipt)
    }

    /// Makes the item named `name` inactive (a company without a usable donations item);
    /// false when there is none.
    pub fn deactivate_item(&self, name: &str) -> bool {
        let mut g = self.shared.lock();
        match g.company.find_by_name(Kind::Item, name) {
            Some(id) => g.company.deactivate(Kind::Item, &id),
            None => false,
        }
    }

    pub fn items(&self) -> Vec<Value> {
        self.entities(Kind::Item)
    }

    pub fn accounts(&self) -> Vec<Value> {
        self.entities(Kind::Account)
    }

    pub fn payment_methods(&self) -> Vec<Value> {
        self.entities(Kind::PaymentMethod)
    }

    /// Stored deposits, in Id order.
    pub fn deposits(&self) -> Vec<Value> {
        self.entities(Kind::Deposit)
    }

    /// Stored attachables (uploaded files and notes), in Id order; the files' bytes are in
    /// [`attachment_bytes`](Self::attachment_bytes).
    pub fn attachables(&self) -> Vec<Value> {
        self.entities(Kind::Attachable)
    }

    /// The bytes uploaded for Attachable `id` (`None` for a note-only attachable).
    pub fn attachment_bytes(&self, id: &str) -> Option<Vec<u8>> {
        self.shared.lock().company.attachment_bytes.get(id).cloned()
    }

    fn entities(&self, kind: Kind) -> Vec<Value> {
        let g = self.shared.lock();
        g.company.table(kind).values().cloned().collect()
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.lock().log.clone()
    }

    /// The most API requests that were in flight at once (never above `max_concurrent`).
    pub fn max_concurrency_seen(&self) -> usize {
        self.shared.lock().max_seen
    }
}
