//! The two pages Intuit's developer portal asks an app to link to before it issues production
//! keys: the end-user licence agreement and the privacy policy. Each has a default fit for one
//! organisation running fom-qbo for its own books; the operator can replace either on the
//! settings page (kept in Redis, no TTL) and go back to the default.

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::keys::Keys;
use crate::redis_conn::RedisPool;

/// The longest text kept (about 15 printed pages).
pub const MAX_CHARS: usize = 50_000;

/// A legal page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalPage {
    Eula,
    Privacy,
}

impl LegalPage {
    pub const ALL: [LegalPage; 2] = [LegalPage::Eula, LegalPage::Privacy];

    /// Its name in paths and keys.
    pub fn slug(self) -> &'static str {
        match self {
            LegalPage::Eula => "eula",
            LegalPage::Privacy => "privacy",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            LegalPage::Eula => "End-user licence agreement",
            LegalPage::Privacy => "Privacy policy",
        }
    }

    /// The text until the operator writes their own: paragraphs separated by blank lines.
    pub fn default_text(self) -> &'static str {
        match self {
            LegalPage::Eula => EULA,
            LegalPage::Privacy => PRIVACY,
        }
    }
}

const EULA: &str = "\
This site is run by the organisation that deployed it, for its own bookkeeping. It turns the \
organisation's deposit paperwork (scanned checks, envelopes, deposit lists and exports of \
online gifts) into sales receipts in the organisation's own QuickBooks Online company.

Only people the organisation gives the password to may use it. They use it on the \
organisation's behalf and remain responsible for what is recorded in its books: every receipt \
can be reviewed before it is sent, and the treasurer decides what is sent.

The software is provided as it is, without warranty of any kind. The organisation and the \
authors of the software are not liable for any loss arising from its use, including errors in \
what is read from a document; check the receipts against the documents.

Connecting QuickBooks Online gives this site access to the one company the person who \
connected it chose. Anyone with the password can disconnect it on this site, and any \
administrator of the company can disconnect it from QuickBooks at any time.

Questions about this site go to the organisation that runs it.";

const PRIVACY: &str = "\
This site is run by the organisation that deployed it, for its own bookkeeping, and collects \
nothing for any other purpose.

What it holds: the documents uploaded to it (kept only until they are read, or until their \
receipts are sent and attached when that is switched on), the donations read from them \
(donor names, addresses, e-mail addresses, phone numbers, amounts, check numbers and memos) \
for as long as a deposit is kept (30 days unless the operator says otherwise), a log of what \
was done on the site, and the connection to QuickBooks Online (its tokens are encrypted).

Where it goes: the donations are written to the organisation's own QuickBooks Online company. \
When the organisation uses Google's Gemini to read documents, the pages are sent to Google \
for that purpose only. Nothing is sold, shared for advertising, or used to track anyone; the \
site sets one cookie, to keep the treasurer signed in.

Donors who want to know what is held about them, or to have it corrected or removed, can ask \
the organisation that runs this site.";

/// The texts as the operator set them.
#[derive(Clone)]
pub struct LegalTexts {
    redis: RedisPool,
    keys: Keys,
}

/// Why a text was not saved.
#[derive(Debug, thiserror::Error)]
pub enum LegalError {
    #[error("the text is empty; write one, or go back to the default")]
    Empty,
    #[error("the text has {0} characters; at most {MAX_CHARS} are kept")]
    TooLong(usize),
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

impl LegalTexts {
    pub fn new(redis: impl Into<RedisPool>, keys: Keys) -> Self {
        Self {
            redis: redis.into(),
            keys,
        }
    }

    /// The page's text and whether it is the operator's own.
    pub async fn get(&self, page: LegalPage) -> Result<(String, bool), LegalError> {
        let own: Option<String> = self
            .redis
            .get()
            .await?
            .get(self.keys.legal_text(page.slug()))
            .await?;
        Ok(match own {
            Some(text) => (text, true),
            None => (page.default_text().to_string(), false),
        })
    }

    /// Sets the page's text; `None` goes back to the default.
    pub async fn set(&self, page: LegalPage, text: Option<&str>) -> Result<(), LegalError> {
        let key = self.keys.legal_text(page.slug());
        let mut conn = self.redis.get().await?;
        match text.map(str::trim) {
            None => {
                let _: () = conn.del(key).await?;
            }
            Some("") => return Err(LegalError::Empty),
            Some(t) if t.chars().count() > MAX_CHARS => {
                return Err(LegalError::TooLong(t.chars().count()))
            }
            Some(t) => {
                let _: () = conn.set(key, t).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_say_who_runs_the_site_and_what_is_held() {
        for page in LegalPage::ALL {
            let text = page.default_text();
            assert!(text.contains("organisation"), "{}", page.slug());
            assert!(text.split("\n\n").count() >= 4, "{}", page.slug());
        }
        assert!(LegalPage::Privacy.default_text().contains("QuickBooks"));
        assert!(LegalPage::Eula.default_text().contains("without warranty"));
    }
}
