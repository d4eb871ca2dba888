//! QuickBooks Online: the connection (Intuit OAuth 2.0, tokens at rest, one refresher), the
//! Accounting API client (query language, faults, retries, requestid), donor matching, the
//! lists a receipt refers to, customers, and sales receipts sent exactly once.

pub mod attach;
pub mod bank;
pub mod catalog;
pub mod client;
pub mod config;
pub mod connection;
pub mod customers;
pub mod duplicates;
pub mod entities;
pub mod fault;
pub mod gate;
pub mod layout;
pub mod matching;
pub mod query;
pub mod receipts;
pub mod sync;
pub mod tokens;

use serde::Serialize;

/// Everything a QuickBooks operation can fail with, in words a treasurer can act on.
#[derive(Debug, thiserror::Error)]
pub enum QboError {
    #[error("QuickBooks is not set up on this server")]
    NotConfigured,
    #[error("QuickBooks is not connected; connect it first")]
    NotConnected,
    #[error("{0}")]
    ReconnectNeeded(String),
    #[error("the QuickBooks sign-in could not be checked (missing, expired or from another session); start the connection again")]
    BadState,
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    OAuth(String),
    #[error("QuickBooks: {}", fault.describe())]
    Fault {
        status: u16,
        action: fault::Action,
        fault: fault::Fault,
        intuit_tid: Option<String>,
    },
    #[error("{0}")]
    Unavailable(String),
    /// QuickBooks asks us to slow down (429, fault 3001) and the wait we allow is used up (or
    /// this process does not wait: the web). Nothing was written.
    #[error("QuickBooks is busy (too many requests right now); trying again in {} s", wait.as_secs().max(1))]
    Throttled { wait: std::time::Duration },
    #[error("QuickBooks sent an answer we cannot read: {0}")]
    Decode(String),
    #[error(transparent)]
    Query(#[from] query::QueryError),
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Token(#[from] tokens::TokenError),
    #[error(transparent)]
    Deposit(#[from] crate::deposits::DepositError),
    /// Our own refusal before calling QuickBooks (a row without a customer, say).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
}

/// The kind of failure, for HTTP status mapping and the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotConfigured,
    NotConnected,
    ReconnectNeeded,
    BadState,
    Denied,
    Unavailable,
    Throttled,
    Invalid,
    DuplicateName,
    ChooseReference,
    Conflict,
    NotFound,
    Internal,
}

impl QboError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            QboError::NotConfigured => ErrorKind::NotConfigured,
            QboError::NotConnected => ErrorKind::NotConnected,
            QboError::ReconnectNeeded(_) | QboError::Token(_) => ErrorKind::ReconnectNeeded,
            QboError::BadState => ErrorKind::BadState,
            QboError::Denied(_) => ErrorKind::Denied,
            QboError::OAuth(_) | QboError::Unavailable(_) | QboError::Decode(_) => {
                ErrorKind::Unavailable
            }
            QboError::Throttled { .. } => ErrorKind::Throttled,
            QboError::Fault { action, .. } => match action {
                fault::Action::Reconnect | fault::Action::RefreshToken => {
                    ErrorKind::ReconnectNeeded
                }
                fault::Action::RetryLater => ErrorKind::Unavailable,
                fault::Action::Reread => ErrorKind::Conflict,
                fault::Action::DuplicateName => ErrorKind::DuplicateName,
                fault::Action::ChooseReference => ErrorKind::ChooseReference,
                fault::Action::Show => ErrorKind::Invalid,
            },
            QboError::Query(_) | QboError::Refused(_) => ErrorKind::Invalid,
            QboError::NotFound(_) => ErrorKind::NotFound,
            QboError::Redis(_) | QboError::Deposit(_) => ErrorKind::Internal,
        }
    }

    /// For a reference fault: which list the treasurer should choose from or add to.
    pub fn reference(&self) -> Option<&'static str> {
        let QboError::Fault { fault, action, .. } = self else {
            return None;
        };
        if *action != fault::Action::ChooseReference {
            return None;
        }
        fault.errors.iter().find_map(|e| {
            let text =
                format!("{} {}", e.element.as_deref().unwrap_or(""), e.detail).to_ascii_lowercase();
            if text.contains("item") {
                Some("item")
            } else if text.contains("account") {
                Some("account")
            } else if text.contains("paymentmethod") || text.contains("payment method") {
                Some("payment_method")
            } else if text.contains("customer") {
                Some("customer")
            } else {
                None
            }
        })
    }

    /// What the treasurer sees.
    pub fn user_message(&self) -> String {
        match self.reference() {
            Some("item") => {
                format!("{self}. Choose or create the item for donations, then send again.")
            }
            Some("account") => {
                format!("{self}. Choose or create the deposit account, then send again.")
            }
            Some("payment_method") => {
                format!("{self}. Choose or create the payment method, then send again.")
            }
            Some("customer") => format!(
                "{self}. The matched customer no longer exists in QuickBooks; match the row again."
            ),
            _ => self.to_string(),
        }
    }
}
