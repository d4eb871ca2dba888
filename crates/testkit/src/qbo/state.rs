//! The fake's state behind one mutex: OAuth codes, grants and tokens, injections, the
//! `requestid` memory, the company, the request log and the rate gate's counters; and the
//! fake's clock with the two time formats QuickBooks answers in.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Offset, TimeDelta, Utc};

use super::company::Company;
use super::{FakeQboOptions, Inject, LoggedRequest};

/// An authorization code waiting to be exchanged.
pub(super) struct AuthCode {
    pub(super) redirect_uri: String,
    pub(super) expires_at: DateTime<Utc>,
}

/// One connection of the app to the realm; revoking it kills all its tokens.
pub(super) struct Grant {
    pub(super) realm: String,
    pub(super) current_refresh: String,
    pub(super) revoked: bool,
    pub(super) hard_expires_at: DateTime<Utc>,
}

/// A refresh token: its grant, its rolling expiry, and when rotation replaced it.
pub(super) struct RefreshInfo {
    pub(super) grant: u64,
    pub(super) expires_at: DateTime<Utc>,
    pub(super) superseded_at: Option<DateTime<Utc>>,
}

pub(super) struct AccessInfo {
    pub(super) grant: u64,
    pub(super) expires_at: DateTime<Utc>,
}

/// A fault waiting for the next `remaining` API calls that match its path filter.
pub(super) struct Injection {
    pub(super) fault: Inject,
    pub(super) remaining: usize,
    pub(super) path_contains: Option<String>,
}

/// The answer remembered under a `requestid`.
pub(super) struct Stored {
    pub(super) status: u16,
    pub(super) body: String,
    pub(super) at: DateTime<Utc>,
}

/// Everything a fake remembers, behind [`Shared::lock`].
pub(super) struct Inner {
    pub(super) offset: TimeDelta,
    pub(super) codes: HashMap<String, AuthCode>,
    pub(super) grants: HashMap<u64, Grant>,
    pub(super) next_grant: u64,
    pub(super) refresh: HashMap<String, RefreshInfo>,
    pub(super) access: HashMap<String, AccessInfo>,
    pub(super) token_calls: usize,
    pub(super) revoked: usize,
    pub(super) deny_next: bool,
    pub(super) injections: Vec<Injection>,
    pub(super) dedupe: bool,
    pub(super) requestids: HashMap<String, Stored>,
    pub(super) company: Company,
    pub(super) log: Vec<LoggedRequest>,
    pub(super) in_flight: usize,
    pub(super) max_seen: usize,
    pub(super) minute_bucket: f64,
    pub(super) second_bucket: f64,
    pub(super) bucket_time: DateTime<Utc>,
}

impl Inner {
    /// A fresh fake: no grants, the seeded company, full token buckets.
    pub(super) fn new(opts: &FakeQboOptions, now: DateTime<Utc>) -> Inner {
        Inner {
            offset: TimeDelta::zero(),
            codes: HashMap::new(),
            grants: HashMap::new(),
            next_grant: 1,
            refresh: HashMap::new(),
            access: HashMap::new(),
            token_calls: 0,
            revoked: 0,
            deny_next: false,
            injections: Vec::new(),
            dedupe: true,
            requestids: HashMap::new(),
            company: Company::seeded(now),
            log: Vec::new(),
            in_flight: 0,
            max_seen: 0,
            minute_bucket: f64::from(opts.per_minute),
            second_bucket: f64::from(opts.per_second),
            bucket_time: now,
        }
    }

    /// The fake's clock: real time plus everything advanced.
    pub(super) fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

/// What every handler gets: the options, the base URL and the state.
pub(super) struct Shared {
    pub(super) opts: FakeQboOptions,
    pub(super) base: String,
    inner: Mutex<Inner>,
}

impl Shared {
    /// The state of a fake that starts now and answers at `base`.
    pub(super) fn new(opts: FakeQboOptions, base: String) -> Shared {
        let mut inner = Inner::new(&opts, Utc::now());
        inner.company.base = base.clone();
        Shared {
            opts,
            base,
            inner: Mutex::new(inner),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A `Duration` as a `TimeDelta` (saturating).
pub(super) fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

pub(super) fn random_hex(len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
        .collect()
}

/// QuickBooks answers in the company's time zone; the fake's is -08:00.
pub(super) fn pacific(now: DateTime<Utc>) -> DateTime<FixedOffset> {
    let offset = FixedOffset::west_opt(8 * 3600).unwrap_or_else(|| Utc.fix());
    now.with_timezone(&offset)
}

/// The `time` member of API answers: ISO-8601 with milliseconds and the -08:00 offset.
pub(super) fn api_time(now: DateTime<Utc>) -> String {
    pacific(now).format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
}

/// `MetaData` times: ISO-8601 with the -08:00 offset, whole seconds.
pub(super) fn meta_time(now: DateTime<Utc>) -> String {
    pacific(now).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}
