//! The web process's settings, all from environment variables, checked once at start-up
//! (every problem listed at once). Each variable is in `.env.example`.

use std::time::Duration;

use actix_web::cookie::Key;
use base64::Engine;
use fom_core::config::{ConfigError, EnvReader};
use fom_core::memory::Monitor;
use fom_core::normalize::Rules;
use fom_core::services::Settings;

pub struct Config {
    pub port: u16,
    pub workers: usize,
    /// What the web shares with the worker: Redis, the upload store, limits, QuickBooks.
    pub services: Settings,
    pub pool_size: usize,
    pub app_password: String,
    pub session_key: Key,
    /// Cookies without `Secure`, for plain-HTTP local use only.
    pub insecure_cookies: bool,
    /// Idle timeout: a session without a request for this long ends (`SESSION_TTL_HOURS`).
    pub session_ttl: Duration,
    /// Absolute lifetime: a session ends this long after sign-in however active
    /// (`SESSION_MAX_HOURS`); the cookie's Max-Age.
    pub session_max: Duration,
    pub login_max_attempts: u64,
    /// Take the client address from the last `X-Forwarded-For` entry (Heroku's router).
    pub trust_proxy: bool,
    pub max_upload_files: usize,
    /// `PHOTO_MAX_PIXELS_LONG`: the page shrinks JPEG and PNG photos to this long side before
    /// sending them.
    pub photo_max_long: u32,
    /// Parts (files and other fields) one upload may hold: ten times `MAX_UPLOAD_FILES`, so a
    /// person who picks too many files still gets a verdict for each.
    pub max_upload_parts: usize,
    /// Bytes one upload may carry, declared or not: `MAX_UPLOAD_FILES` files of `MAX_FILE_MB`,
    /// plus 1 MiB for the multipart framing.
    pub max_upload_bytes: u64,
    /// `UPLOAD_MIN_BYTES_PER_SEC` over `UPLOAD_RATE_WINDOW_SECS` of waiting: a slower body is
    /// ended.
    pub upload_min_bytes_per_sec: u64,
    pub upload_rate_window: Duration,
    pub request_timeout: Duration,
    /// Event streams one session may hold open (`EVENTS_MAX_PER_SESSION`).
    pub events_max_per_session: usize,
    /// Event streams this process holds open at most (`EVENTS_MAX`).
    pub events_max: usize,
    /// `HEALTH_TOKEN`: an `X-Health-Token` header with it shows /health's details without a
    /// session (for a monitor). Unset: only a signed-in person sees them.
    pub health_token: Option<String>,
    pub rules: Rules,
    pub monitor: Monitor,
}

const MB: u64 = 1024 * 1024;

impl Config {
    pub fn from_env(env: &mut EnvReader) -> Self {
        let port = env.number("PORT", 8080u16, 1, 65_535);
        let workers = env.number("WEB_CONCURRENCY", 2usize, 1, 64);
        let mut services = Settings::from_env(env);
        // A page action never sits out a throttle inside a request: it answers at once when to
        // ask again, and the page asks again by itself.
        if let Some(q) = services.qbo.as_mut() {
            q.wait_throttles = false;
        }
        let pool_size = env.number("REDIS_POOL_SIZE", 4usize, 1, 64);
        let app_password = env.raw("APP_PASSWORD").unwrap_or_default();
        if app_password.chars().count() < 8 {
            env.problem(
                "APP_PASSWORD",
                "required: the treasurer's sign-in password, at least 8 characters",
            );
        }
        let session_key = session_key(env);
        let insecure_cookies = env.flag("INSECURE_COOKIES", false);
        let session_ttl =
            Duration::from_secs(env.number("SESSION_TTL_HOURS", 2u64, 1, 24 * 30) * 3600);
        let session_max =
            Duration::from_secs(env.number("SESSION_MAX_HOURS", 12u64, 1, 24 * 30) * 3600);
        let login_max_attempts = env.number("LOGIN_MAX_ATTEMPTS", 10u64, 1, 1000);
        let trust_proxy = env.flag("TRUST_PROXY", false);
        let max_upload_files = env.number("MAX_UPLOAD_FILES", 30usize, 1, 500);
        let max_upload_parts = max_upload_files * 10;
        // A letter page at 200 DPI is 1,700 x 2,200: pages are rendered for reading at 150 DPI
        // and a hand-held photo fills only part of its frame, so 2,200 keeps that detail.
        let photo_max_long = env.number("PHOTO_MAX_PIXELS_LONG", 2200u32, 600, 8000);
        let max_upload_bytes = services.max_file_bytes * max_upload_files as u64 + MB;
        let upload_min_bytes_per_sec = env.number("UPLOAD_MIN_BYTES_PER_SEC", 1024u64, 1, 100 * MB);
        let upload_rate_window =
            Duration::from_secs(env.number("UPLOAD_RATE_WINDOW_SECS", 30u64, 1, 600));
        let request_timeout =
            Duration::from_secs(env.number("REQUEST_TIMEOUT_SECS", 15u64, 1, 600));
        let events_max_per_session = env.number("EVENTS_MAX_PER_SESSION", 4usize, 1, 100);
        let events_max = env.number("EVENTS_MAX", 200usize, 1, 10_000);
        let health_token = env.raw("HEALTH_TOKEN").filter(|t| !t.is_empty());
        if health_token
            .as_ref()
            .is_some_and(|t| t.chars().count() < 16)
        {
            env.problem(
                "HEALTH_TOKEN",
                "at least 16 characters (openssl rand -hex 16), or unset",
            );
        }
        let rules = Rules::from_env(env, chrono::Local::now().date_naive());
        let monitor = fom_core::runtime::memory_settings(env);
        Self {
            port,
            workers,
            services,
            pool_size,
            app_password,
            session_key,
            insecure_cookies,
            session_ttl,
            session_max,
            login_max_attempts,
            trust_proxy,
            max_upload_files,
            photo_max_long,
            max_upload_parts,
            max_upload_bytes,
            upload_min_bytes_per_sec,
            upload_rate_window,
            request_timeout,
            events_max_per_session,
            events_max,
            health_token,
            rules,
            monitor,
        }
    }

    pub fn load() -> Result<Self, ConfigError> {
        let mut env = EnvReader::from_process();
        let cfg = Self::from_env(&mut env);
        env.finish()?;
        Ok(cfg)
    }
}

/// `SESSION_SECRET`: at least 64 random bytes, base64 (`openssl rand -base64 64`), or at least
/// 64 hex digits (Heroku's generated secret).
fn session_key(env: &mut EnvReader) -> Key {
    const HOW: &str =
        "required: at least 64 random bytes, base64 (openssl rand -base64 64 | tr -d '\\n')";
    let Some(raw) = env.raw("SESSION_SECRET") else {
        env.problem("SESSION_SECRET", HOW);
        return Key::generate();
    };
    let raw = raw.trim();
    // Heroku's `secret` generator (app.json) makes 64 hex digits: 32 random bytes, from which
    // the signing and encryption keys are derived.
    if raw.len() >= 64 {
        if let Some(bytes) = fom_core::config::hex_bytes(raw) {
            return Key::derive_from(&bytes);
        }
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(raw))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw));
    match decoded {
        Ok(bytes) if bytes.len() >= 64 => match Key::try_from(bytes.as_slice()) {
            Ok(k) => k,
            Err(e) => {
                env.problem("SESSION_SECRET", format!("unusable key: {e}"));
                Key::generate()
            }
        },
        Ok(bytes) => {
            env.problem(
                "SESSION_SECRET",
                format!("decodes to {} bytes; {HOW}", bytes.len()),
            );
            Key::generate()
        }
        Err(_) => {
            env.problem("SESSION_SECRET", format!("is not base64; {HOW}"));
            Key::generate()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(pairs: &[(&str, &str)]) -> String {
        let mut env = EnvReader::from_pairs(pairs.iter().copied());
        let _ = Config::from_env(&mut env);
        env.finish()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn password_and_secret_are_required_and_checked() {
        let err = problems(&[]);
        assert!(
            err.contains("APP_PASSWORD") && err.contains("SESSION_SECRET"),
            "{err}"
        );
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let err = problems(&[("APP_PASSWORD", "long enough"), ("SESSION_SECRET", &short)]);
        assert!(err.contains("decodes to 32 bytes"), "{err}");
        let good = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
        assert_eq!(
            problems(&[("APP_PASSWORD", "long enough"), ("SESSION_SECRET", &good)]),
            ""
        );
        let err = problems(&[
            ("APP_PASSWORD", "long enough"),
            ("SESSION_SECRET", &good),
            ("HEALTH_TOKEN", "short"),
        ]);
        assert!(err.contains("HEALTH_TOKEN"), "{err}");
        // What Heroku's `secret` generator makes (app.json): 64 hex digits.
        let generated = "0123456789abcdef".repeat(4);
        assert_eq!(
            problems(&[
                ("APP_PASSWORD", "long enough"),
                ("SESSION_SECRET", &generated)
            ]),
            ""
        );
        let err = problems(&[
            ("APP_PASSWORD", "long enough"),
            ("SESSION_SECRET", &generated[..32]),
        ]);
        assert!(err.contains("SESSION_SECRET"), "{err}");
    }
}
