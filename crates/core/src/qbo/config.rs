//! QuickBooks settings from the environment, validated at start-up by web and worker alike.
//! QuickBooks is optional: without `QBO_CLIENT_ID` the system runs offline and says so.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::EnvReader;
use crate::qbo::matching::Thresholds;
use crate::qbo::tokens::TokenCipher;

/// Which Intuit environment the keys belong to; it decides the API base and the badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Sandbox,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Sandbox => "sandbox",
            Environment::Production => "production",
        }
    }

    /// Intuit's OpenID discovery document for this environment.
    pub fn discovery_url(self) -> &'static str {
        match self {
            Environment::Sandbox => {
                "https://developer.api.intuit.com/.well-known/openid_sandbox_configuration"
            }
            Environment::Production => {
                "https://developer.api.intuit.com/.well-known/openid_configuration"
            }
        }
    }

    /// The Accounting API base URL (without the `/v3/company/{realm}` path).
    pub fn api_base(self) -> &'static str {
        match self {
            Environment::Sandbox => "https://sandbox-quickbooks.api.intuit.com",
            Environment::Production => "https://quickbooks.api.intuit.com",
        }
    }
}

#[derive(Clone)]
pub struct QboSettings {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub environment: Environment,
    pub discovery_url: String,
    pub api_base: String,
    pub cipher: TokenCipher,
    pub thresholds: Thresholds,
    /// Per request, QuickBooks and Intuit OAuth alike.
    pub timeout: Duration,
    /// Tries of a request that failed with 429/3001, 5xx or a timeout.
    pub max_attempts: u32,
    /// First backoff after a 5xx or timeout; doubles with jitter.
    pub retry_base: Duration,
    /// Wait after a 429 (Intuit asks for 60 s).
    pub throttle_wait: Duration,
    /// How long one request may keep waiting out throttles before it gives up with
    /// [`crate::qbo::QboError::Throttled`] (`QBO_THROTTLE_PATIENCE_SECS`).
    pub throttle_patience: Duration,
    /// `ONLINE_GIFTS`: whether online gifts are sent as receipts or only listed in the report
    /// (they reach the books through the platform's own sync or the bank feed); a deposit can
    /// say otherwise.
    pub online_gifts: OnlineGifts,
    /// `DUPLICATE_WINDOW_DAYS`: a receipt of the same customer and amount this many days
    /// either side of a row's date is a possible duplicate.
    pub duplicate_window_days: u32,
    /// `ATTACH_SOURCES`: each receipt gets the page image (or photo) it was read from as a
    /// QuickBooks attachment; uploads are then kept until their receipts are sent.
    pub attach_sources: bool,
    /// Whether a throttled request waits at all: the worker waits; the web answers a page
    /// action at once ("QuickBooks is busy, trying again in N s") and the page asks again.
    pub wait_throttles: bool,
    /// Requests in flight per process, so one process cannot take every company slot.
    pub max_concurrent: usize,
    /// Requests in flight for the company across all processes (Intuit: 10 per app and realm).
    pub realm_max_concurrent: usize,
    /// Steady request rate for the company across all processes (Intuit: 500 a minute).
    pub rate_per_minute: u32,
    /// Requests the rate allows back to back (Intuit: 10 a second).
    pub rate_burst: u32,
}

impl std::fmt::Debug for QboSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QboSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uri", &self.redirect_uri)
            .field("environment", &self.environment)
            .field("discovery_url", &self.discovery_url)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl QboSettings {
    /// Longer than any one call to Intuit may take: how long a refresh lock or an in-flight
    /// lease lives, so a process that dies holding one blocks the others only this long.
    pub fn hold_limit(&self) -> Duration {
        self.timeout + Duration::from_secs(10)
    }

    /// `None` when `QBO_CLIENT_ID` is unset (QuickBooks not configured). Problems are recorded
    /// on `env` so that start-up names every bad variable at once.
    pub fn from_env(env: &mut EnvReader) -> Option<Self> {
        let client_id = env.raw("QBO_CLIENT_ID")?;
        let mut required = |var: &str, why: &str| {
            env.raw(var).unwrap_or_else(|| {
                env.problem(
                    var,
                    format!("is required when QBO_CLIENT_ID is set ({why})"),
                );
                String::new()
            })
        };
        let client_secret = required("QBO_CLIENT_SECRET", "the app's client secret");
        let redirect_uri = required(
            "QBO_REDIRECT_URI",
            "https://<your-app>/qbo/callback, registered with Intuit",
        );
        let key = required("TOKEN_ENCRYPTION_KEY", "openssl rand -base64 32");
        let environment = match env
            .text("QBO_ENVIRONMENT", "sandbox")
            .to_ascii_lowercase()
            .as_str()
        {
            "sandbox" => Environment::Sandbox,
            "production" => Environment::Production,
            other => {
                env.problem(
                    "QBO_ENVIRONMENT",
                    format!("{other:?} is not sandbox or production"),
                );
                Environment::Sandbox
            }
        };
        if !redirect_uri.is_empty() && !redirect_uri.starts_with("http") {
            env.problem("QBO_REDIRECT_URI", "must be an http(s) URL");
        }
        let discovery_url = env.text("INTUIT_DISCOVERY_URL", environment.discovery_url());
        let api_base = env
            .text("QBO_API_BASE", environment.api_base())
            .trim_end_matches('/')
            .to_string();
        let auto = env.number("QBO_MATCH_AUTO", 90u8, 1, 100);
        let review = env.number("QBO_MATCH_REVIEW", 60u8, 0, 100);
        if review > auto {
            env.problem("QBO_MATCH_REVIEW", "must not be above QBO_MATCH_AUTO");
        }
        let timeout = Duration::from_secs(env.number("QBO_TIMEOUT_SECS", 30u64, 1, 300));
        let max_attempts = env.number("QBO_MAX_ATTEMPTS", 4u32, 1, 10);
        let retry_base = Duration::from_millis(env.number("QBO_RETRY_BASE_MS", 1000u64, 0, 60_000));
        let throttle_wait =
            Duration::from_millis(env.number("QBO_THROTTLE_WAIT_MS", 60_000u64, 0, 600_000));
        let online_gifts = match env
            .text("ONLINE_GIFTS", "report")
            .to_ascii_lowercase()
            .as_str()
        {
            "send" => OnlineGifts::Send,
            "report" => OnlineGifts::Report,
            _ => {
                env.problem("ONLINE_GIFTS", "must be report or send");
                OnlineGifts::Report
            }
        };
        let throttle_patience =
            Duration::from_secs(env.number("QBO_THROTTLE_PATIENCE_SECS", 900u64, 0, 86_400));
        // Intuit's limits are per company and app, counted in Redis over all processes
        // (qbo::gate); the per-process cap keeps one busy process from taking every slot.
        let max_concurrent = env.number("QBO_MAX_CONCURRENT", 5usize, 1, 10);
        let realm_max_concurrent = env.number("QBO_REALM_MAX_CONCURRENT", 10usize, 1, 10);
        let rate_per_minute = env.number("QBO_RATE_PER_MINUTE", 450u32, 1, 500);
        let rate_burst = env.number("QBO_RATE_BURST", 8u32, 1, 10);
        let cipher = match TokenCipher::from_base64(&key) {
            Ok(c) => c,
            Err(e) => {
                if !key.is_empty() {
                    env.problem("TOKEN_ENCRYPTION_KEY", e.to_string());
                }
                // Start-up fails on the recorded problem; this value is never used.
                TokenCipher::from_base64(&base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    [0u8; 32],
                ))
                .ok()?
            }
        };
        Some(Self {
            client_id,
            client_secret,
            redirect_uri,
            environment,
            discovery_url,
            api_base,
            cipher,
            thresholds: Thresholds { auto, review },
            timeout,
            max_attempts,
            retry_base,
            throttle_wait,
            throttle_patience,
            online_gifts,
            duplicate_window_days: env.number("DUPLICATE_WINDOW_DAYS", 60u32, 0, 3650),
            attach_sources: env.flag("ATTACH_SOURCES", false),
            wait_throttles: true,
            max_concurrent,
            realm_max_concurrent,
            rate_per_minute,
            rate_burst,
        })
    }
}

/// What happens to online gifts (rows read from CSV exports or printed as online) when the
/// deposit is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnlineGifts {
    /// Listed in the report only: not sent (the default, as the old system did).
    #[default]
    Report,
    /// Sent as sales receipts like checks.
    Send,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn absent_without_client_id_and_every_missing_var_named() {
        let mut env = EnvReader::from_pairs([]);
        assert!(QboSettings::from_env(&mut env).is_none());
        assert!(env.finish().is_ok());

        let mut env = EnvReader::from_pairs([("QBO_CLIENT_ID", "x"), ("QBO_ENVIRONMENT", "prod")]);
        assert!(QboSettings::from_env(&mut env).is_some());
        let msg = env.finish().unwrap_err().to_string();
        for var in [
            "QBO_CLIENT_SECRET",
            "QBO_REDIRECT_URI",
            "TOKEN_ENCRYPTION_KEY",
            "QBO_ENVIRONMENT",
        ] {
            assert!(msg.contains(var), "{var} missing from {msg}");
        }
    }

    #[test]
    fn defaults_follow_the_environment_and_overrides_win() {
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
        let mut env = EnvReader::from_pairs([
            ("QBO_CLIENT_ID", "x"),
            ("QBO_CLIENT_SECRET", "s"),
            ("QBO_REDIRECT_URI", "https://a.example/qbo/callback"),
            ("TOKEN_ENCRYPTION_KEY", key.as_str()),
            ("QBO_ENVIRONMENT", "Production"),
        ]);
        let s = QboSettings::from_env(&mut env).unwrap();
        env.finish().unwrap();
        assert_eq!(s.environment, Environment::Production);
        assert_eq!(s.api_base, "https://quickbooks.api.intuit.com");
        assert!(s.discovery_url.ends_with("openid_configuration"));
        assert!(!format!("{s:?}").contains("\"s\""));

        let mut env = EnvReader::from_pairs([
            ("QBO_CLIENT_ID", "x"),
            ("QBO_CLIENT_SECRET", "s"),
            ("QBO_REDIRECT_URI", "http://127.0.0.1/qbo/callback"),
            ("TOKEN_ENCRYPTION_KEY", "short"),
            ("QBO_API_BASE", "http://127.0.0.1:9/"),
        ]);
        let s = QboSettings::from_env(&mut env).unwrap();
        assert_eq!(s.api_base, "http://127.0.0.1:9");
        assert!(env
            .finish()
            .unwrap_err()
            .to_string()
            .contains("TOKEN_ENCRYPTION_KEY"));
    }
}
