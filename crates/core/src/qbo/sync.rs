//! The `Qbo` service: what the treasurer does with QuickBooks, on top of the client. Its
//! operations live with their concern ([`crate::qbo::catalog`], [`crate::qbo::customers`],
//! [`crate::qbo::receipts`]); this module holds the service and the record access they share,
//! and keeps the public names callers have used from here.

use std::ops::ControlFlow;

use uuid::Uuid;

use crate::deposits::{Deposit, DepositStore};
use crate::donation::Donation;
use crate::qbo::client::QboClient;
use crate::qbo::QboError;

pub use crate::qbo::catalog::SendDefaults;
pub use crate::qbo::customers::{address_of_customer, CreateOutcome, CustomerView, MatchSummary};
pub use crate::qbo::receipts::{marker, receipt_body, SendAll, SendOutcome, SendResult};

#[derive(Clone)]
pub struct Qbo {
    pub client: QboClient,
    pub deposits: DepositStore,
    /// Where receipts and customers made in QuickBooks are recorded.
    pub audit: Option<crate::audit::AuditLog>,
}

fn find_record<'a>(d: &'a Deposit, record_id: &Uuid) -> Option<&'a Donation> {
    d.records.iter().find(|r| &r.id == record_id)
}

/// The first `max` characters of `text`.
pub(super) fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

impl Qbo {
    pub fn new(client: QboClient, deposits: DepositStore) -> Self {
        Self {
            client,
            deposits,
            audit: None,
        }
    }

    pub fn with_audit(mut self, audit: crate::audit::AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Records an audit event, when an audit log is attached.
    pub(super) async fn audit(
        &self,
        kind: crate::audit::AuditKind,
        actor: &crate::audit::Actor,
        details: serde_json::Value,
    ) {
        if let Some(a) = &self.audit {
            a.record(kind, actor, details).await;
        }
    }

    /// A deposit as stored now.
    pub(super) async fn deposit(&self, deposit_id: &str) -> Result<Deposit, QboError> {
        self.deposits
            .get(deposit_id)
            .await?
            .ok_or_else(|| QboError::NotFound(format!("no deposit {deposit_id}")))
    }

    /// One record of a deposit, as stored now.
    pub(super) async fn record(
        &self,
        deposit_id: &str,
        record_id: &Uuid,
    ) -> Result<Donation, QboError> {
        let d = self.deposit(deposit_id).await?;
        find_record(&d, record_id)
            .cloned()
            .ok_or_else(|| QboError::NotFound(format!("no record {record_id} in this deposit")))
    }

    /// Changes one record under compare-and-set; the record must still exist.
    pub(super) async fn change_record(
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
}
