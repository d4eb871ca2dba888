//! The 429 gate in front of the accounting API: at most `max_concurrent` requests in
//! flight, and a token from both the per-minute and the per-second bucket for each one.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::state::{Inner, Shared};
use super::FakeQboOptions;

/// One admitted API request; dropping it frees its slot.
pub(super) struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut g = self.0.lock();
        g.in_flight = g.in_flight.saturating_sub(1);
    }
}

/// Admits one API request: a free slot first, then a token from both buckets (none is taken
/// when the slots are full). `None`: answer 429/3001.
pub(super) fn admit(shared: &Arc<Shared>, g: &mut Inner, now: DateTime<Utc>) -> Option<InFlight> {
    if g.in_flight >= shared.opts.max_concurrent || !take_rate_token(g, &shared.opts, now) {
        return None;
    }
    g.in_flight += 1;
    g.max_seen = g.max_seen.max(g.in_flight);
    Some(InFlight(shared.clone()))
}

/// Refills both buckets for the time since the last request, then takes one token from each.
fn take_rate_token(g: &mut Inner, opts: &FakeQboOptions, now: DateTime<Utc>) -> bool {
    let elapsed = (now - g.bucket_time).num_milliseconds().max(0) as f64 / 1000.0;
    g.bucket_time = g.bucket_time.max(now);
    let per_minute = f64::from(opts.per_minute);
    let per_second = f64::from(opts.per_second);
    g.minute_bucket = (g.minute_bucket + elapsed * per_minute / 60.0).min(per_minute);
    g.second_bucket = (g.second_bucket + elapsed * per_second).min(per_second);
    if g.minute_bucket >= 1.0 && g.second_bucket >= 1.0 {
        g.minute_bucket -= 1.0;
        g.second_bucket -= 1.0;
        true
    } else {
        false
    }
}
