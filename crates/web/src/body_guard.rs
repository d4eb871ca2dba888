//! Limits on an upload's request body as it streams, whether or not it declared a
//! `Content-Length`: a byte ceiling and a floor rate (a body that trickles is ended), plus a
//! response body that closes the connection instead of reading the rest of a body we stopped.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// Why the guard ended a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// More bytes than the request may carry.
    TooLarge,
    /// Fewer bytes than the floor rate over a window of waiting.
    TooSlow,
}

/// What one upload request's body may do.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: u64,
    /// The floor: at least this many bytes per second of waiting for the client ...
    pub min_bytes_per_sec: u64,
    /// ... measured over this much waiting.
    pub window: Duration,
}

/// The floor rate's bookkeeping. Only time spent waiting for the client counts: while the
/// handler is busy (writing a chunk to the store), the client is held back by us, not slow.
#[derive(Debug)]
struct RateWindow {
    window: Duration,
    /// Bytes a window of waiting must bring.
    need: u64,
    bytes: u64,
    waited: Duration,
    waiting_since: Option<Instant>,
}

#[derive(Debug, PartialEq, Eq)]
struct TooSlow;

impl RateWindow {
    fn new(limits: &BodyLimits) -> Self {
        let need = (limits.min_bytes_per_sec as f64 * limits.window.as_secs_f64()).ceil() as u64;
        Self {
            window: limits.window,
            need,
            bytes: 0,
            waited: Duration::ZERO,
            waiting_since: None,
        }
    }

    /// Ends a full window: too few bytes in it is the end of the body, else a new one starts.
    fn close_window(&mut self) -> Result<(), TooSlow> {
        if self.bytes < self.need {
            return Err(TooSlow);
        }
        self.bytes = 0;
        self.waited = Duration::ZERO;
        Ok(())
    }

    /// The body has nothing for us at `now`. Returns when the current window of waiting ends.
    fn pending(&mut self, now: Instant) -> Result<Instant, TooSlow> {
        let since = *self.waiting_since.get_or_insert(now);
        let mut waited = self.waited + now.saturating_duration_since(since);
        if waited >= self.window {
            self.close_window()?;
            self.waiting_since = Some(now);
            waited = Duration::ZERO;
        }
        Ok(now + (self.window - waited))
    }

    /// `n` bytes arrived at `now`.
    fn arrived(&mut self, n: u64, now: Instant) -> Result<(), TooSlow> {
        if let Some(since) = self.waiting_since.take() {
            self.waited += now.saturating_duration_since(since);
        }
        self.bytes = self.bytes.saturating_add(n);
        if self.waited >= self.window {
            self.close_window()?;
        }
        Ok(())
    }
}

/// The request body with the limits applied: past either, it ends with an error and records
/// why in the shared [`Cut`] cell, which the handler reads to word its answer.
pub struct BodyGuard<S> {
    inner: S,
    max_bytes: u64,
    seen: u64,
    rate: RateWindow,
    timer: Pin<Box<Sleep>>,
    cut: Rc<Cell<Option<Cut>>>,
}

impl<S> BodyGuard<S> {
    pub fn new(inner: S, limits: BodyLimits) -> (Self, Rc<Cell<Option<Cut>>>) {
        let cut = Rc::new(Cell::new(None));
        let guard = Self {
            inner,
            max_bytes: limits.max_bytes,
            seen: 0,
            rate: RateWindow::new(&limits),
            timer: Box::pin(tokio::time::sleep(limits.window)),
            cut: cut.clone(),
        };
        (guard, cut)
    }

    fn stop(&mut self, why: Cut) -> Poll<Option<Result<Bytes, PayloadError>>> {
        self.cut.set(Some(why));
        Poll::Ready(Some(Err(match why {
            Cut::TooLarge => PayloadError::Overflow,
            Cut::TooSlow => PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request body slower than the floor rate",
            )),
        })))
    }
}

impl<S> Stream for BodyGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.cut.get().is_some() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                this.seen = this.seen.saturating_add(n);
                if this.seen > this.max_bytes {
                    return this.stop(Cut::TooLarge);
                }
                if this.rate.arrived(n, Instant::now()).is_err() {
                    return this.stop(Cut::TooSlow);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(end_or_error) => Poll::Ready(end_or_error),
            Poll::Pending => match this.rate.pending(Instant::now()) {
                Err(TooSlow) => this.stop(Cut::TooSlow),
                Ok(window_ends) => {
                    this.timer.as_mut().reset(window_ends);
                    if this.timer.as_mut().poll(cx).is_ready() {
                        // Already over (a late wake-up): look again at once.
                        cx.waker().wake_by_ref();
                    }
                    Poll::Pending
                }
            },
        }
    }
}

/// A response body that keeps the request body alive until the answer is written. actix-web
/// then answers with `Connection: close` and, once the answer is out, discards what the client
/// still sends for at most the client disconnect timeout before closing, so the client can read
/// the answer. (A request body dropped earlier is read to its end when it is chunked: actix
/// keeps such a connection for the next request.)
pub struct Holding<B, T> {
    body: B,
    _request_body: T,
}

impl<B, T> Holding<B, T> {
    pub fn new(body: B, request_body: T) -> Self {
        Self {
            body,
            _request_body: request_body,
        }
    }
}

impl<B: MessageBody + Unpin, T: Unpin> MessageBody for Holding<B, T> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn limits(max_bytes: u64) -> BodyLimits {
        BodyLimits {
            max_bytes,
            min_bytes_per_sec: 100,
            window: Duration::from_secs(10),
        }
    }

    #[test]
    fn only_waiting_counts_and_each_window_must_bring_the_floor() {
        let mut r = RateWindow::new(&limits(u64::MAX));
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // 6 s waiting, 600 bytes, then 20 s of our own work (not waiting), 4 s waiting and
        // 400 bytes: 10 s of waiting brought 1,000 bytes, the floor exactly.
        assert_eq!(r.pending(t0), Ok(t0 + s(10)));
        assert_eq!(r.arrived(600, t0 + s(6)), Ok(()));
        assert_eq!(r.pending(t0 + s(26)), Ok(t0 + s(30)));
        assert_eq!(r.arrived(400, t0 + s(30)), Ok(()));
        // A new window: 10 s of waiting with only 999 bytes ends the body.
        assert_eq!(r.pending(t0 + s(30)), Ok(t0 + s(40)));
        assert_eq!(r.arrived(999, t0 + s(39)), Ok(()));
        assert_eq!(r.pending(t0 + s(39)), Ok(t0 + s(40)));
        assert_eq!(r.pending(t0 + s(40)), Err(TooSlow));
    }

    #[test]
    fn a_body_that_never_makes_us_wait_is_never_too_slow() {
        let mut r = RateWindow::new(&limits(u64::MAX));
        let t0 = Instant::now();
        for i in 0..1000 {
            assert_eq!(r.arrived(1, t0 + Duration::from_secs(i)), Ok(()));
        }
    }

    #[test]
    fn a_stall_is_forgiven_when_the_window_still_brings_the_floor() {
        let mut r = RateWindow::new(&limits(u64::MAX));
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // 9 s of nothing (a tunnel), then 2,000 bytes; the window ends 1 s later, satisfied.
        r.pending(t0).unwrap();
        assert_eq!(r.arrived(2_000, t0 + s(9)), Ok(()));
        assert_eq!(r.pending(t0 + s(9)), Ok(t0 + s(10)));
        assert_eq!(r.pending(t0 + s(10)), Ok(t0 + s(20)));
    }

    #[tokio::test]
    async fn bytes_are_counted_as_they_stream() {
        let chunks = (0..10).map(|_| Ok(Bytes::from_static(&[b'x'; 100])));
        let (mut guard, cut) = BodyGuard::new(futures_util::stream::iter(chunks), limits(950));
        let mut got = 0;
        while let Some(Ok(c)) = guard.next().await {
            got += c.len();
        }
        assert_eq!(
            got, 900,
            "the chunk that crosses the ceiling is not passed on"
        );
        assert_eq!(cut.get(), Some(Cut::TooLarge));
        assert!(guard.next().await.is_none(), "nothing after the cut");
    }

    #[tokio::test]
    async fn a_body_that_stops_sending_is_ended() {
        let body = futures_util::stream::iter([Ok(Bytes::from_static(b"%PDF-1.7\n"))])
            .chain(futures_util::stream::pending());
        let (mut guard, cut) = BodyGuard::new(
            body,
            BodyLimits {
                max_bytes: u64::MAX,
                min_bytes_per_sec: 1_000,
                window: Duration::from_millis(200),
            },
        );
        assert!(matches!(guard.next().await, Some(Ok(_))));
        assert!(matches!(guard.next().await, Some(Err(PayloadError::Io(_)))));
        assert_eq!(cut.get(), Some(Cut::TooSlow));
    }
}
