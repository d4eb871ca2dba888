//! Places for event streams (`GET /api/deposits/{id}/events`): each open stream polls Redis,
//! so their number is limited per session (`EVENTS_MAX_PER_SESSION`) and in this process
//! (`EVENTS_MAX`). A place is held by a [`StreamSlot`] and given back when the stream is
//! dropped (it ended, or the client went away). Signing out ends the session's streams here at
//! once ([`StreamSlots::end_session`]); a stream also re-checks its session at every heartbeat,
//! which covers a sign-out on another web process and a session that timed out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Why no place was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Session,
    Server,
}

pub struct StreamSlots {
    max_per_session: usize,
    max_total: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    total: usize,
    /// Open streams and their shared end signal, by session id.
    sessions: HashMap<String, (usize, CancellationToken)>,
}

impl StreamSlots {
    pub fn new(max_per_session: usize, max_total: usize) -> Arc<Self> {
        Arc::new(Self {
            max_per_session,
            max_total,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// A place for one more stream of `session`, or why not.
    pub fn take(self: &Arc<Self>, session: &str) -> Result<StreamSlot, Full> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let open = inner.sessions.get(session).map_or(0, |(n, _)| *n);
        if open >= self.max_per_session {
            return Err(Full::Session);
        }
        if inner.total >= self.max_total {
            return Err(Full::Server);
        }
        inner.total += 1;
        let entry = inner
            .sessions
            .entry(session.to_string())
            .or_insert_with(|| (0, CancellationToken::new()));
        entry.0 += 1;
        let ended = entry.1.clone();
        Ok(StreamSlot {
            slots: self.clone(),
            session: session.to_string(),
            ended,
        })
    }

    /// Ends every open stream of `session` in this process (sign-out).
    pub fn end_session(&self, session: &str) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, token)) = inner.sessions.get(session) {
            token.cancel();
        }
    }

    /// Streams open now (all sessions).
    #[cfg(test)]
    fn open(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.total)
    }

    fn give_back(&self, session: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.total = inner.total.saturating_sub(1);
        if let Some(entry) = inner.sessions.get_mut(session) {
            entry.0 = entry.0.saturating_sub(1);
            if entry.0 == 0 {
                inner.sessions.remove(session);
            }
        }
    }
}

/// One stream's place; given back on drop.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    session: String,
    /// Cancelled when the session signs out in this process.
    pub ended: CancellationToken,
}

impl StreamSlot {
    pub fn session(&self) -> &str {
        &self.session
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.slots.give_back(&self.session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_per_session_and_overall_come_back_on_drop() {
        let slots = StreamSlots::new(2, 3);
        let a1 = slots.take("a").unwrap();
        let a2 = slots.take("a").unwrap();
        assert_eq!(slots.take("a").err(), Some(Full::Session));
        let b1 = slots.take("b").unwrap();
        assert_eq!(slots.take("b").err(), Some(Full::Server));
        drop(a1);
        assert_eq!(slots.open(), 2);
        let _b2 = slots.take("b").unwrap();
        drop((a2, b1));
        assert_eq!(slots.open(), 1);
    }

    #[test]
    fn sign_out_ends_only_that_session() {
        let slots = StreamSlots::new(4, 10);
        let a = slots.take("a").unwrap();
        let b = slots.take("b").unwrap();
        slots.end_session("a");
        assert!(a.ended.is_cancelled());
        assert!(!b.ended.is_cancelled());
        // A stream opened after the last one of a session closed starts afresh.
        drop(a);
        assert!(!slots.take("a").unwrap().ended.is_cancelled());
    }
}
