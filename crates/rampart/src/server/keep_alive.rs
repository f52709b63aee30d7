//! HTTP/1 keep-alive connections that cost almost nothing while idle.
//!
//! hyper 1.x gives every HTTP/1 connection an 8 KiB read buffer and an 8 KiB write buffer for the
//! connection's whole life, with no setting to release them: 10,000 idle keep-alive clients held
//! 260 MB. nginx frees a connection's buffers between keep-alive requests; this does the same
//! around hyper. Once a connection has been idle for [`PARK_AFTER`] (no bytes either way, no
//! request waiting for its response head, nothing buffered in the framing guard), hyper hands the
//! socket back (`into_parts`) and the connection is *parked*: it holds only the socket and the
//! guard and waits for the socket to become readable; the next request gets a fresh hyper
//! connection. A parked connection is closed after the listener's `idle_timeout_ms` (or its
//! `header_read_timeout_ms` if it never sent a request), and at once when the server drains.
//!
//! Parking never changes what a client sees: hyper is asked to finish (`graceful_shutdown`) only
//! after every response head of the busy period has been written, so it never adds
//! `Connection: close`; a response still streaming is completed first; and bytes hyper read but
//! did not parse go back to the guard.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::coop;
use tokio::time::Instant;

use super::drain::DrainWatch;
use super::h1_guard::{H1Guard, HeadLimits};
use crate::audit::AuditBody;

/// How long a connection must be idle before its hyper buffers are released. Checked every
/// `PARK_AFTER`, so a connection is parked between one and two of these after its last byte; a
/// client that keeps sending never pays for a new hyper connection.
pub const PARK_AFTER: Duration = Duration::from_millis(500);

/// What the framing guard and the request service report to the idle check. Everything that
/// touches it runs on the connection's own task, so relaxed atomics suffice.
#[derive(Debug, Default)]
pub struct Activity {
    /// Bytes moved, either way, since the last idle check.
    touched: AtomicBool,
    /// The guard was written to and not flushed since: hyper may still hold bytes to send (a
    /// client that stopped reading), which taking the connection apart would drop.
    unflushed: AtomicBool,
    /// The guard is between requests, holds no bytes, and its last read found none.
    guard_idle: AtomicBool,
    /// Requests handed to the service, and those whose response head the service has returned.
    started: AtomicU64,
    answered: AtomicU64,
}

/// A request's service future, counted as unanswered until it returns the response head (or is
/// dropped). A struct around the box rather than an `async` block around the future: the
/// pipeline's future is kilobytes, and an `async` wrapper copied it twice per request.
pub struct Counted<F> {
    future: Pin<Box<F>>,
    unanswered: Option<Unanswered>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let output = ready!(self.future.as_mut().poll(cx));
        self.unanswered = None;
        Poll::Ready(output)
    }
}

struct Unanswered(Arc<Activity>);

impl Drop for Unanswered {
    fn drop(&mut self) {
        self.0.answered.fetch_add(1, Relaxed);
    }
}

/// The idle check's verdict.
#[derive(Debug, PartialEq, Eq)]
enum Idle {
    No,
    /// Idle, and this hyper connection never received a request: it wrote nothing and holds
    /// nothing, so it can be taken apart at once.
    Untouched,
    /// Idle after serving requests: hyper finishes writing, then hands the socket back.
    AfterRequests,
}

impl Activity {
    /// A request was handed to the service, whose future is `future`.
    pub fn count<F: Future>(self: &Arc<Self>, future: Pin<Box<F>>) -> Counted<F> {
        self.started.fetch_add(1, Relaxed);
        Counted {
            future,
            unanswered: Some(Unanswered(self.clone())),
        }
    }

    /// The guard read bytes.
    pub fn bytes_read(&self) {
        self.touched.store(true, Relaxed);
        self.guard_idle.store(false, Relaxed);
    }

    /// The guard was asked to write (whether or not the socket took the bytes).
    pub fn bytes_written(&self) {
        self.touched.store(true, Relaxed);
        self.unflushed.store(true, Relaxed);
    }

    /// The guard flushed: hyper flushes its transport only once its own buffer is empty.
    pub fn flushed(&self) {
        self.unflushed.store(false, Relaxed);
    }

    /// The guard, between requests with nothing buffered, found nothing to read.
    pub fn guard_waiting(&self) {
        self.guard_idle.store(true, Relaxed);
    }

    fn requests(&self) -> u64 {
        self.started.load(Relaxed)
    }

    /// Clears the touched mark; `requests_before` is the request count when the current hyper
    /// connection started.
    fn check(&self, requests_before: u64) -> Idle {
        let touched = self.touched.swap(false, Relaxed);
        let started = self.started.load(Relaxed);
        if touched
            || self.unflushed.load(Relaxed)
            || !self.guard_idle.load(Relaxed)
            || self.answered.load(Relaxed) != started
        {
            Idle::No
        } else if started == requests_before {
            Idle::Untouched
        } else {
            Idle::AfterRequests
        }
    }
}

/// A transport whose readability can be awaited without reading, so that a parked connection
/// needs no buffer.
pub trait ReadReady {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl ReadReady for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

/// A TLS connection is parked only after its last read came back empty, so rustls holds no
/// plaintext: the next record arrives on the socket.
impl ReadReady for tokio_rustls::server::TlsStream<TcpStream> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_ref().0.poll_read_ready(cx)
    }
}

/// How long a connection stays parked, counted from its parking.
#[derive(Debug, Clone, Copy)]
pub struct ParkedTimeouts {
    /// After at least one request (the listener's `idle_timeout_ms`).
    pub idle: Duration,
    /// Before the first request (`header_read_timeout_ms`, as for a head that never completes).
    pub first_request: Duration,
}

impl ParkedTimeouts {
    fn after(&self, requests: u64) -> Duration {
        if requests == 0 {
            self.first_request
        } else {
            self.idle
        }
    }
}

/// What a connection's next busy period runs with, taken from the running config each time it
/// resumes: a reload's limits reach kept-alive connections at their next request after a pause,
/// not only new connections.
pub(crate) struct H1Settings {
    pub builder: http1::Builder,
    pub head_limits: HeadLimits,
}

/// Serves an HTTP/1 connection to its end, parking it whenever it is idle. `current` gives the
/// settings of each busy period, `timeouts` the parked timeouts at each parking (both from the
/// running config).
pub(crate) async fn serve<IO, S>(
    current: impl Fn() -> H1Settings,
    timeouts: impl Fn() -> ParkedTimeouts,
    mut guard: H1Guard<IO>,
    mut service: S,
    activity: &Arc<Activity>,
    drain: &mut DrainWatch,
) where
    IO: AsyncRead + AsyncWrite + ReadReady + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = AuditBody, Error = Infallible> + Unpin,
    S::Future: Unpin,
{
    // When a parked connection is closed, and the request count it was set at: waking up without
    // a request (a TLS record with no data, say) does not push it back.
    let mut close_at: Option<(u64, Instant)> = None;
    loop {
        let H1Settings {
            builder,
            head_limits,
        } = current();
        guard.set_limits(head_limits);
        // Boxed so that a parked connection's task does not keep room for hyper's state; the
        // builder is not kept while the connection is served or parked.
        let conn = Box::new(builder.serve_connection(TokioIo::new(guard), service));
        drop(builder);
        let Some(parts) = serve_until_idle(conn, activity, drain).await else {
            return;
        };
        guard = parts.io.into_inner();
        guard.park();
        guard.unread(&parts.read_buf);
        service = parts.service;
        // hyper's read buffer (8 KiB) would otherwise live on in `parts` while parked.
        drop(parts.read_buf);
        // Taken apart with no request since the last time: the deadline set then still holds.
        let requests = activity.requests();
        let timeouts = timeouts();
        let deadline = match close_at {
            Some((at_requests, deadline)) if at_requests == requests => deadline,
            _ if !guard.is_between_requests() => Instant::now() + timeouts.first_request,
            _ => Instant::now() + timeouts.after(requests),
        };
        close_at = Some((requests, deadline));
        if !guard.is_between_requests() {
            // hyper gave back bytes of an incomplete head (empty lines before a request line):
            // serve them at once, but a client cycling through this never outlives the deadline.
            if Instant::now() >= deadline {
                let _ = guard.shutdown().await;
                return;
            }
            continue;
        }
        if !wait_for_bytes(&mut guard, deadline, drain).await {
            let _ = guard.shutdown().await;
            return;
        }
    }
}

type Parts<IO, S> = http1::Parts<TokioIo<H1Guard<IO>>, S>;

/// Drives one hyper connection until it ends (`None`: the socket was shut down or dropped, as
/// hyper itself does) or has been idle long enough to park (`Some`: the socket and what hyper
/// read but did not parse).
async fn serve_until_idle<IO, S>(
    mut conn: Box<http1::Connection<TokioIo<H1Guard<IO>>, S>>,
    activity: &Activity,
    drain: &mut DrainWatch,
) -> Option<Parts<IO, S>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = AuditBody, Error = Infallible> + Unpin,
    S::Future: Unpin,
{
    let requests_before = activity.requests();
    let mut draining = drain.has_started();
    if draining {
        Pin::new(&mut *conn).graceful_shutdown();
    }
    let mut parking = false;
    let mut check = pin!(tokio::time::sleep(PARK_AFTER));
    // The idle timer is polled once after each reset, which registers its wake-up, and then only
    // read: polled on every wake-up of a busy connection, it cost 300 instructions per request.
    let mut check_armed = false;
    // Draining is watched the same way: its wait is polled once (outside the task budget, as the
    // timer is), which registers the wake-up, and then only the probe is read. Polled on every
    // wake-up, the wait took its channel's lock each time: 500 instructions per request. Both
    // rest on the task's waker staying the same, which it does for a spawned task.
    let probe = drain.probe();
    let mut drain_wait = pin!(coop::unconstrained(drain.started()));
    let mut drain_armed = false;
    let ended = loop {
        let step = poll_fn(|cx| {
            if let Poll::Ready(ended) = conn.poll_without_shutdown(cx) {
                return Poll::Ready(Some(ended));
            }
            if parking || draining {
                return Poll::Pending;
            }
            let due = if check_armed {
                check.is_elapsed()
            } else {
                check_armed = true;
                // Outside tokio's task budget: with the budget spent, a poll would return at once
                // without registering the wake-up, and a timer only read from then on would
                // never wake this task.
                Pin::new(&mut coop::unconstrained(check.as_mut()))
                    .poll(cx)
                    .is_ready()
            };
            if due {
                Poll::Ready(None)
            } else {
                Poll::Pending
            }
        });
        tokio::select! {
            biased; // the connection's own progress first
            step = step => {
                let Some(ended) = step else {
                    check_armed = false;
                    match activity.check(requests_before) {
                        Idle::No => check.as_mut().reset(Instant::now() + PARK_AFTER),
                        Idle::Untouched => return Some(conn.into_parts()),
                        Idle::AfterRequests => {
                            parking = true;
                            Pin::new(&mut *conn).graceful_shutdown();
                        }
                    }
                    continue;
                };
                break ended;
            }
            () = poll_fn(|cx| {
                if !drain_armed {
                    drain_armed = true;
                    drain_wait.as_mut().poll(cx)
                } else if probe.started() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }), if !draining => {
                draining = true;
                Pin::new(&mut *conn).graceful_shutdown();
            }
        }
    };
    match ended {
        Ok(()) if parking && !draining => Some(conn.into_parts()),
        Ok(()) => {
            // hyper's own future flushes what it still holds (a `Connection: close` response
            // larger than the socket's buffer), then shuts the socket down (the guard's staged
            // close); `into_parts` here would drop the unsent bytes.
            let _ = Pin::new(&mut *conn).await;
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "HTTP/1 connection ended with an error");
            None
        }
    }
}

/// Waits until the parked connection's socket is readable (true), or the deadline or draining
/// (false). Takes `&mut` only so that the future is `Send` without the guard being `Sync`.
async fn wait_for_bytes<IO: ReadReady>(
    guard: &mut H1Guard<IO>,
    deadline: Instant,
    drain: &mut DrainWatch,
) -> bool {
    tokio::select! {
        ready = poll_fn(move |cx| guard.poll_read_ready(cx)) => ready.is_ok(),
        () = tokio::time::sleep_until(deadline) => false,
        () = drain.started() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_that_moved_bytes_since_the_last_check_is_not_idle() {
        let activity = Arc::new(Activity::default());
        activity.guard_waiting();
        activity.bytes_written();
        activity.flushed();
        assert_eq!(activity.check(0), Idle::No);
        assert_eq!(activity.check(0), Idle::Untouched, "the mark is cleared");
    }

    #[test]
    fn bytes_written_and_not_yet_flushed_keep_the_connection_busy() {
        let activity = Arc::new(Activity::default());
        activity.guard_waiting();
        activity.bytes_written();
        activity.check(0);
        assert_eq!(
            activity.check(0),
            Idle::No,
            "hyper may still hold bytes to send"
        );
        activity.flushed();
        assert_eq!(activity.check(0), Idle::Untouched);
    }

    #[test]
    fn a_request_waiting_for_its_response_head_keeps_the_connection_busy() {
        let activity = Arc::new(Activity::default());
        activity.guard_waiting();
        let counted = activity.count(Box::pin(std::future::ready(())));
        assert_eq!(activity.check(0), Idle::No);
        drop(counted);
        assert_eq!(activity.check(0), Idle::AfterRequests);
        assert_eq!(activity.check(1), Idle::Untouched);
    }

    #[tokio::test]
    async fn a_request_counts_as_answered_once_its_future_returns_the_head() {
        let activity = Arc::new(Activity::default());
        activity.guard_waiting();
        activity.count(Box::pin(std::future::ready(()))).await;
        assert_eq!(activity.check(0), Idle::AfterRequests);
    }

    #[test]
    fn a_guard_with_bytes_or_a_read_under_way_keeps_the_connection_busy() {
        let activity = Activity::default();
        assert_eq!(activity.check(0), Idle::No, "no empty read yet");
        activity.guard_waiting();
        activity.bytes_read();
        activity.check(0);
        assert_eq!(
            activity.check(0),
            Idle::No,
            "bytes arrived after the empty read"
        );
    }
}
