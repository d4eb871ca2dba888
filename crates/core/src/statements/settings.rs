//! What the statements say and whom they leave out: the organisation's letterhead, EIN,
//! signer and paragraphs (defaults that meet IRS Publication 1771), and the QuickBooks
//! customers marked as not donors (a bank, a vendor), remembered for every run.

use std::collections::BTreeMap;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::deposits::FieldProblem;
use crate::keys::Keys;
use crate::redis_conn::RedisPool;

/// The longest a field may be (a paragraph); names and lines are far shorter.
pub const MAX_FIELD_CHARS: usize = 2_000;

/// The statements' words. Paragraphs may name `{organization}`, `{ein}`, `{from}`, `{to}`,
/// `{year}` and `{donor}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatementSettings {
    pub organization: String,
    /// The letterhead's address, one line per line.
    pub address: String,
    /// The Employer Identification Number, `12-3456789`.
    pub ein: String,
    pub signer_name: String,
    pub signer_title: String,
    /// After the greeting: what the letter is.
    pub opening: String,
    /// The written acknowledgement: the organisation, that it is tax-exempt, and that no goods
    /// or services were given for the gifts (Publication 1771).
    pub acknowledgement: String,
    /// Before the signature.
    pub closing: String,
}

pub const DEFAULT_OPENING: &str = "Thank you for your generous support of {organization}. This \
     letter lists the gifts we received from you between {from} and {to}. Please keep it with \
     your tax records.";
pub const DEFAULT_ACKNOWLEDGEMENT: &str = "{organization} is a tax-exempt organization under \
     section 501(c)(3) of the Internal Revenue Code (EIN {ein}). No goods or services were \
     provided in exchange for these contributions.";
pub const DEFAULT_CLOSING: &str = "Your gifts make our work possible. We are grateful for your \
     support.";

impl Default for StatementSettings {
    fn default() -> Self {
        Self {
            organization: String::new(),
            address: String::new(),
            ein: String::new(),
            signer_name: String::new(),
            signer_title: "Treasurer".into(),
            opening: DEFAULT_OPENING.into(),
            acknowledgement: DEFAULT_ACKNOWLEDGEMENT.into(),
            closing: DEFAULT_CLOSING.into(),
        }
    }
}

impl StatementSettings {
    /// What must be fixed before letters can be written: the organisation, a well-formed EIN,
    /// the signer, and an acknowledgement that still says no goods or services were given.
    pub fn problems(&self) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        let mut need = |field: &'static str, ok: bool, message: &str| {
            if !ok {
                out.push(FieldProblem {
                    field: field.into(),
                    message: message.into(),
                });
            }
        };
        need(
            "organization",
            !self.organization.trim().is_empty(),
            "the organization's name is needed: the IRS asks for it on every acknowledgement",
        );
        need(
            "ein",
            is_ein(&self.ein),
            "the EIN is nine digits, written 12-3456789",
        );
        need(
            "signer_name",
            !self.signer_name.trim().is_empty(),
            "who signs the letters is needed",
        );
        need(
            "acknowledgement",
            self.acknowledgement
                .to_ascii_lowercase()
                .contains("goods or services"),
            "the acknowledgement must say whether goods or services were given for the gifts \
             (IRS Publication 1771)",
        );
        out.extend(self.too_long());
        out
    }

    /// The fields over [`MAX_FIELD_CHARS`]: never saved, not even as a draft.
    pub fn too_long(&self) -> Vec<FieldProblem> {
        self.fields()
            .into_iter()
            .filter(|(_, text)| text.chars().count() > MAX_FIELD_CHARS)
            .map(|(field, _)| FieldProblem {
                field: field.into(),
                message: format!("at most {MAX_FIELD_CHARS} characters"),
            })
            .collect()
    }

    fn fields(&self) -> [(&'static str, &str); 8] {
        [
            ("organization", &self.organization),
            ("address", &self.address),
            ("ein", &self.ein),
            ("signer_name", &self.signer_name),
            ("signer_title", &self.signer_title),
            ("opening", &self.opening),
            ("acknowledgement", &self.acknowledgement),
            ("closing", &self.closing),
        ]
    }

    /// The address as letterhead lines, blank lines dropped.
    pub fn address_lines(&self) -> Vec<String> {
        self.address
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }
}

/// `12-3456789`.
fn is_ein(s: &str) -> bool {
    let b = s.trim().as_bytes();
    b.len() == 10
        && b[2] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit())
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the stored statement settings cannot be read: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("{0:?} is not a QuickBooks customer id")]
    BadCustomer(String),
}

/// The settings and the customers left out, in Redis.
#[derive(Clone)]
pub struct StatementStore {
    redis: RedisPool,
    keys: Keys,
}

impl StatementStore {
    pub fn new(redis: impl Into<RedisPool>, keys: Keys) -> Self {
        Self {
            redis: redis.into(),
            keys,
        }
    }

    pub async fn settings(&self) -> Result<StatementSettings, SettingsError> {
        let raw: Option<String> = self
            .redis
            .get()
            .await?
            .get(self.keys.statements_settings())
            .await?;
        Ok(match raw {
            Some(json) => serde_json::from_str(&json)?,
            None => StatementSettings::default(),
        })
    }

    /// Saves the settings as given (the caller has checked [`StatementSettings::problems`]
    /// or chosen to keep a draft).
    pub async fn set_settings(&self, settings: &StatementSettings) -> Result<(), SettingsError> {
        let json = serde_json::to_string(settings)?;
        let _: () = self
            .redis
            .get()
            .await?
            .set(self.keys.statements_settings(), json)
            .await?;
        Ok(())
    }

    /// The customers marked as not donors: id to name.
    pub async fn excluded(&self) -> Result<BTreeMap<String, String>, SettingsError> {
        Ok(self
            .redis
            .get()
            .await?
            .hgetall(self.keys.statements_excluded())
            .await?)
    }

    /// Marks a customer as not a donor (`name` is what the page shows).
    pub async fn exclude(&self, customer_id: &str, name: &str) -> Result<(), SettingsError> {
        if !is_customer_id(customer_id) {
            return Err(SettingsError::BadCustomer(customer_id.into()));
        }
        let name: String = name.chars().take(200).collect();
        let _: () = self
            .redis
            .get()
            .await?
            .hset(self.keys.statements_excluded(), customer_id, name)
            .await?;
        Ok(())
    }

    /// A customer counts as a donor again; false when it was not left out.
    pub async fn include(&self, customer_id: &str) -> Result<bool, SettingsError> {
        let n: u64 = self
            .redis
            .get()
            .await?
            .hdel(self.keys.statements_excluded(), customer_id)
            .await?;
        Ok(n > 0)
    }
}

/// QuickBooks ids are short strings of digits.
pub fn is_customer_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_need_the_organization_ein_and_signer_and_nothing_else() {
        let fields: Vec<String> = StatementSettings::default()
            .problems()
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(fields, ["organization", "ein", "signer_name"]);
        let ready = StatementSettings {
            organization: "Friends of Music".into(),
            ein: "12-3456789".into(),
            signer_name: "Ruth Alvarez".into(),
            ..Default::default()
        };
        assert!(ready.problems().is_empty());
        let vague = StatementSettings {
            acknowledgement: "Thanks!".into(),
            ein: "123456789".into(),
            ..ready
        };
        let fields: Vec<String> = vague.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["ein", "acknowledgement"]);
    }

    #[test]
    fn customer_ids_are_digits() {
        assert!(is_customer_id("58"));
        assert!(!is_customer_id(""));
        assert!(!is_customer_id("5 OR 1=1"));
    }
}
