//! QuickBooks tokens at rest: AES-256-GCM under `TOKEN_ENCRYPTION_KEY` (32 random bytes,
//! base64), a fresh 96-bit nonce per write, stored as base64(nonce || ciphertext+tag). Redis
//! never holds a readable token, and `Debug` never prints one.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use serde::{Deserialize, Serialize};

const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("TOKEN_ENCRYPTION_KEY must be 32 random bytes, base64 (openssl rand -base64 32); {0}")]
    BadKey(String),
    #[error("the stored QuickBooks tokens cannot be decrypted (wrong TOKEN_ENCRYPTION_KEY, or damaged); reconnect QuickBooks")]
    Undecryptable,
    #[error("cannot encode the tokens: {0}")]
    Encode(String),
}

/// The key, ready to seal and open token records.
#[derive(Clone)]
pub struct TokenCipher {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCipher(<key>)")
    }
}

impl TokenCipher {
    /// From 32 bytes as base64 (`openssl rand -base64 32`) or as 64 hex digits (what Heroku's
    /// `secret` generator makes for app.json).
    pub fn from_base64(key: &str) -> Result<Self, TokenError> {
        let key = key.trim();
        let bytes = match crate::config::hex_bytes(key) {
            Some(bytes) if key.len() == 64 => bytes,
            _ => base64::engine::general_purpose::STANDARD
                .decode(key)
                .map_err(|_| TokenError::BadKey("it is not base64 (or 64 hex digits)".into()))?,
        };
        if bytes.len() != 32 {
            return Err(TokenError::BadKey(format!(
                "it decodes to {} bytes",
                bytes.len()
            )));
        }
        let cipher =
            Aes256Gcm::new_from_slice(&bytes).map_err(|e| TokenError::BadKey(e.to_string()))?;
        Ok(Self { cipher })
    }

    pub fn seal(&self, tokens: &Tokens) -> Result<String, TokenError> {
        let plain = serde_json::to_vec(tokens).map_err(|e| TokenError::Encode(e.to_string()))?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plain.as_slice())
            .map_err(|e| TokenError::Encode(e.to_string()))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    pub fn open(&self, stored: &str) -> Result<Tokens, TokenError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(stored.trim())
            .map_err(|_| TokenError::Undecryptable)?;
        if raw.len() <= NONCE_LEN {
            return Err(TokenError::Undecryptable);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| TokenError::Undecryptable)?;
        serde_json::from_slice(&plain).map_err(|_| TokenError::Undecryptable)
    }
}

/// One QuickBooks connection's tokens. Times are seconds since the epoch.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub realm_id: String,
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_at: i64,
    pub refresh_expires_at: i64,
    /// Set when Intuit refused the refresh token (`invalid_grant`): why the treasurer must
    /// reconnect. The tokens are kept only for the status page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("realm_id", &self.realm_id)
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("reconnect", &self.reconnect)
            .finish()
    }
}

impl Tokens {
    /// Refresh at least this long before the access token expires.
    pub const REFRESH_MARGIN_SECS: i64 = 5 * 60;

    pub fn needs_refresh(&self, now: i64) -> bool {
        now + Self::REFRESH_MARGIN_SECS >= self.access_expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    }

    fn tokens() -> Tokens {
        Tokens {
            realm_id: "9130".into(),
            access_token: "eyJ-access-SECRET".into(),
            refresh_token: "AB11-refresh-SECRET".into(),
            access_expires_at: 1_000_000,
            refresh_expires_at: 9_000_000,
            reconnect: None,
        }
    }

    #[test]
    fn tokens_round_trip_and_are_unreadable_without_the_key() {
        let c = TokenCipher::from_base64(&key(1)).unwrap();
        let sealed = c.seal(&tokens()).unwrap();
        assert!(!sealed.contains("SECRET"));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("SECRET"));
        assert_eq!(c.open(&sealed).unwrap(), tokens());
        // A fresh nonce each time: the same tokens never seal to the same text.
        assert_ne!(c.seal(&tokens()).unwrap(), sealed);
        let other = TokenCipher::from_base64(&key(2)).unwrap();
        assert_eq!(other.open(&sealed), Err(TokenError::Undecryptable));
        let mut tampered = raw.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(tampered);
        assert_eq!(c.open(&tampered), Err(TokenError::Undecryptable));
    }

    #[test]
    fn bad_keys_and_debug_output() {
        assert!(TokenCipher::from_base64("not base64!").is_err());
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        assert!(TokenCipher::from_base64(&short)
            .unwrap_err()
            .to_string()
            .contains("16 bytes"));
        // Heroku's generated secret: 64 hex digits are the same 32 bytes as their base64.
        let hex: String = [0xabu8; 32].iter().map(|b| format!("{b:02x}")).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode([0xabu8; 32]);
        let sealed = TokenCipher::from_base64(&hex)
            .unwrap()
            .seal(&tokens())
            .unwrap();
        assert_eq!(
            TokenCipher::from_base64(&b64)
                .unwrap()
                .open(&sealed)
                .unwrap(),
            tokens()
        );
        let shown = format!("{:?}", tokens());
        assert!(!shown.contains("SECRET") && shown.contains("redacted"));
        assert!(tokens().needs_refresh(1_000_000 - 299));
        assert!(!tokens().needs_refresh(1_000_000 - 301));
    }
}
