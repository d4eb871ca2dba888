//! The audit log: what was done, when, and from where, for the treasurer and the operator.
//! Append-only, in a Redis stream capped at `AUDIT_MAX_EVENTS` (oldest events go first).
//!
//! An event names its kind, the time, the client address, a digest of the session (never the
//! session id itself) and the request id, plus a few details chosen per kind. Details never hold
//! an e-mail address, a phone number, a street address or a token: the callers pass ids, names
//! of fields, amounts and counts, and [`AuditLog::record`] drops any detail that looks like an
//! e-mail address or a phone number as a last guard.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::Keys;
use crate::redis_conn::{RedisError, RedisPool};

/// Default cap of the stream.
pub const DEFAULT_MAX_EVENTS: u64 = 10_000;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    SignIn,
    SignInFailed,
    SignOut,
    QboConnect,
    QboDisconnect,
    QboReconnectNeeded,
    Upload,
    RecordEdit,
    RecordDeleted,
    CustomerCreated,
    CustomerUpdated,
    ReceiptCreated,
    ReceiptFoundExisting,
    /// A sent row's receipt was updated after an edit.
    ReceiptUpdated,
    SendAllStarted,
    SendAllFinished,
    DepositDeleted,
    ReportDownloaded,
    /// The treasurer chose which column of a CSV layout holds what.
    ColumnsChosen,
    /// The receipt layout (Description, DocNumber, customer memo) was changed.
    ReceiptLayoutChanged,
    /// The deposit's receipts were moved into a bank account by a QuickBooks Deposit.
    BankDepositRecorded,
    /// A receipt got its scan as a QuickBooks attachment.
    SourceAttached,
    /// The text of a legal page (licence agreement, privacy policy) was changed or reset.
    LegalTextChanged,
    /// A failed or dead job was queued again from the operations page.
    JobRetried,
    /// Finished jobs were purged from the operations page.
    JobsPurged,
    /// The year-end statements' settings (letterhead, EIN, signer, paragraphs) were changed.
    StatementSettingsChanged,
    /// A year-end statements run was started.
    StatementsStarted,
}

impl AuditKind {
    pub const ALL: [AuditKind; 27] = [
        Self::SignIn,
        Self::SignInFailed,
        Self::SignOut,
        Self::QboConnect,
        Self::QboDisconnect,
        Self::QboReconnectNeeded,
        Self::Upload,
        Self::RecordEdit,
        Self::RecordDeleted,
        Self::CustomerCreated,
        Self::CustomerUpdated,
        Self::ReceiptCreated,
        Self::ReceiptFoundExisting,
        Self::ReceiptUpdated,
        Self::SendAllStarted,
        Self::SendAllFinished,
        Self::DepositDeleted,
        Self::ReportDownloaded,
        Self::ColumnsChosen,
        Self::ReceiptLayoutChanged,
        Self::BankDepositRecorded,
        Self::SourceAttached,
        Self::LegalTextChanged,
        Self::JobRetried,
        Self::JobsPurged,
        Self::StatementSettingsChanged,
        Self::StatementsStarted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "sign_in",
            Self::SignInFailed => "sign_in_failed",
            Self::SignOut => "sign_out",
            Self::QboConnect => "qbo_connect",
            Self::QboDisconnect => "qbo_disconnect",
            Self::QboReconnectNeeded => "qbo_reconnect_needed",
            Self::Upload => "upload",
            Self::RecordEdit => "record_edit",
            Self::RecordDeleted => "record_deleted",
            Self::CustomerCreated => "customer_created",
            Self::CustomerUpdated => "customer_updated",
            Self::ReceiptCreated => "receipt_created",
            Self::ReceiptFoundExisting => "receipt_found_existing",
            Self::ReceiptUpdated => "receipt_updated",
            Self::SendAllStarted => "send_all_started",
            Self::SendAllFinished => "send_all_finished",
            Self::DepositDeleted => "deposit_deleted",
            Self::ReportDownloaded => "report_downloaded",
            Self::ColumnsChosen => "columns_chosen",
            Self::ReceiptLayoutChanged => "receipt_layout_changed",
            Self::BankDepositRecorded => "bank_deposit_recorded",
            Self::SourceAttached => "source_attached",
            Self::LegalTextChanged => "legal_text_changed",
            Self::JobRetried => "job_retried",
            Self::JobsPurged => "jobs_purged",
            Self::StatementSettingsChanged => "statement_settings_changed",
            Self::StatementsStarted => "statements_started",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Who did it: filled in by the web from the request; empty for the worker's own events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// [`session_digest`] of the session, never the id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A short, one-way digest of a session id: events of one session can be told apart and
/// grouped, but the id (a bearer credential) cannot be recovered from the log.
pub fn session_digest(session_id: &str) -> String {
    let d = Sha256::digest(format!("fom-audit:{session_id}").as_bytes());
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// One event as stored and as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The stream id (`<ms>-<n>`): the cursor for paging (`before`).
    #[serde(default)]
    pub id: String,
    pub kind: AuditKind,
    /// Milliseconds since the epoch.
    pub at: i64,
    #[serde(flatten)]
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("Redis error: {0}")]
    Redis(#[from] RedisError),
}

/// Writes and reads the audit stream.
#[derive(Clone)]
pub struct AuditLog {
    redis: RedisPool,
    keys: Keys,
    max_events: u64,
}

/// A page of events, newest first; `next` is the `before` of the following page.
#[derive(Debug, Clone, Serialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Stream entries read per round trip when filtering by kind, and the most a listing scans.
const SCAN_BATCH: usize = 200;
const SCAN_MAX: usize = 20_000;

impl AuditLog {
    pub fn new(redis: impl Into<RedisPool>, keys: Keys, max_events: u64) -> Self {
        Self {
            redis: redis.into(),
            keys,
            max_events: max_events.max(1),
        }
    }

    /// A writer that leaves trimming to the others (for a rare event recorded where the
    /// configured cap is not known; the next ordinary event trims the stream).
    pub fn untrimmed(redis: impl Into<RedisPool>, keys: Keys) -> Self {
        Self {
            redis: redis.into(),
            keys,
            max_events: 0,
        }
    }

    /// Appends an event. Never fails the action it records: a write error is logged and
    /// dropped (the action itself already happened).
    pub async fn record(&self, kind: AuditKind, actor: &Actor, details: serde_json::Value) {
        if let Err(e) = self.try_record(kind, actor, details).await {
            tracing::warn!(error = %e, kind = kind.as_str(), "audit event not written");
        }
    }

    pub async fn try_record(
        &self,
        kind: AuditKind,
        actor: &Actor,
        details: serde_json::Value,
    ) -> Result<(), AuditError> {
        let event = AuditEvent {
            id: String::new(),
            kind,
            at: crate::jobs::now_ms(),
            actor: actor.clone(),
            details: scrub(details),
        };
        let json = serde_json::to_string(&event).unwrap_or_default();
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.keys.audit());
        if self.max_events > 0 {
            // Approximate trimming: whole macro nodes go, which costs Redis almost nothing.
            cmd.arg("MAXLEN").arg("~").arg(self.max_events);
        }
        let _: String = cmd
            .arg("*")
            .arg("e")
            .arg(json)
            .query_async(&mut self.redis.get().await?)
            .await?;
        Ok(())
    }

    /// Newest first, at most `limit`, older than `before` (a stream id) when given, of one
    /// kind when given.
    pub async fn list(
        &self,
        kind: Option<AuditKind>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<AuditPage, AuditError> {
        let limit = limit.clamp(1, 500);
        let mut conn = self.redis.get().await?;
        let mut out = Vec::new();
        let mut cursor = before.map(|b| format!("({b}"));
        let mut scanned = 0;
        let mut exhausted = false;
        while out.len() < limit && scanned < SCAN_MAX {
            let end = cursor.clone().unwrap_or_else(|| "+".into());
            let batch = if kind.is_some() {
                SCAN_BATCH
            } else {
                limit - out.len()
            };
            let rows: Vec<(String, HashMap<String, String>)> = redis::cmd("XREVRANGE")
                .arg(self.keys.audit())
                .arg(&end)
                .arg("-")
                .arg("COUNT")
                .arg(batch)
                .query_async(&mut conn)
                .await?;
            scanned += rows.len();
            let got = rows.len();
            for (id, fields) in rows {
                cursor = Some(format!("({id}"));
                let Some(event) = parse_entry(&id, &fields) else {
                    continue;
                };
                if kind.is_none_or(|k| k == event.kind) {
                    out.push(event);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            if got < batch {
                exhausted = true;
                break;
            }
        }
        let next = if exhausted && out.len() < limit {
            None
        } else {
            out.last().map(|e| e.id.clone())
        };
        Ok(AuditPage { events: out, next })
    }
}

fn parse_entry(id: &str, fields: &HashMap<String, String>) -> Option<AuditEvent> {
    let json = fields.get("e")?;
    let mut event: AuditEvent = serde_json::from_str(json).ok()?;
    event.id = id.to_string();
    Some(event)
}

/// Keeps scalar details and drops any string that looks like an e-mail address or a phone
/// number: the log is read by more people than the books are.
fn scrub(details: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(map) = details else {
        return serde_json::Map::new();
    };
    map.into_iter()
        .filter(|(_, v)| match v {
            serde_json::Value::String(s) => !looks_personal(s),
            serde_json::Value::Array(a) => a
                .iter()
                .all(|x| x.as_str().is_none_or(|s| !looks_personal(s))),
            serde_json::Value::Object(_) => false,
            _ => true,
        })
        .collect()
}

/// An e-mail address, or seven or more digits among phone punctuation.
pub fn looks_personal(s: &str) -> bool {
    if s.contains('@') && s.contains('.') {
        return true;
    }
    let digits = s.chars().filter(char::is_ascii_digit).count();
    digits >= 7
        && s.chars()
            .all(|c| c.is_ascii_digit() || " ()+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_details_are_dropped() {
        let kept = scrub(serde_json::json!({
            "file": "march.pdf",
            "email": "ada@example.org",
            "phone": "(608) 555-0134",
            "amount": "25.00",
            "fields": ["amount", "memo"],
            "nested": {"x": 1},
            "receipt_id": "1234",
        }));
        assert_eq!(
            kept.keys().map(String::as_str).collect::<Vec<_>>(),
            vec!["amount", "fields", "file", "receipt_id"]
        );
    }

    #[test]
    fn kinds_round_trip_and_digests_hide_the_session() {
        for k in AuditKind::ALL {
            assert_eq!(AuditKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        let d = session_digest("0123456789abcdef");
        assert_eq!(d.len(), 12);
        assert!(!d.contains("0123456789"));
        assert_eq!(d, session_digest("0123456789abcdef"));
    }
}
