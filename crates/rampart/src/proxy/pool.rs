//! HTTP/1.1 upstream connections, pooled per target and driven by the request's own task.
//!
//! Written by hand, on hyper's `client::conn`, because hyper-util's pooled client (which HTTP/2
//! upstreams still use) runs every connection in a task of its own: each request then costs two
//! cross-task wake-ups and a pool lookup by a hashed (scheme, authority) key under one lock,
//! 14 % of a plain request's instructions (docs/benchmarks.md, "Issue 10"). Here the request's
//! task polls the connection itself, while it waits for the response head and then through the
//! response body (`UpstreamBody`), which hands the connection back to its target's pool when the
//! body has ended. Every target has a pool of its own, so there is no key to hash.
//!
//! Invariants:
//! - a connection goes back to the pool only when its response ended cleanly and hyper says it
//!   can take the next request; a response dropped before its end closes the connection;
//! - an idle connection the upstream closed is seen at checkout (polling it reads the EOF) and
//!   dropped; idle connections older than the idle timeout are closed at the next checkout or
//!   checkin, and at most `max_idle` are kept;
//! - a request hyper hands back unsent (the reused connection closed under it) is sent once more
//!   on a new connection, as hyper-util's client does; a request that was sent is never resent.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::body::{Body, BoxError};

type Io = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Opens TCP (and TLS, verified) connections to targets.
pub type Connector = HttpsConnector<HttpConnector>;

/// One HTTP/1.1 connection: the handle requests are sent on, and the state machine that does
/// its I/O when polled.
pub struct Conn {
    sender: http1::SendRequest<Body>,
    /// Boxed: hyper's connection state (with the TLS session inline) is a kilobyte or more,
    /// and a connection moves in and out of the pool on every request.
    driver: Box<http1::Connection<Io, Body>>,
    /// The request timeout's timer, kept with the connection and moved to each request's
    /// deadline: tokio moves a registered timer whose deadline only grows without touching its
    /// timer wheel, where a new timer per request is registered and removed again each time.
    timer: Pin<Box<tokio::time::Sleep>>,
}

/// Where a connection stands, after one poll.
enum State {
    /// Open, idle, and hyper takes the next request.
    Ready,
    /// Open, still busy with the last exchange (the request body is being written).
    Busy,
    Closed,
}

impl Conn {
    /// Polls the connection once (its I/O makes progress) and says where it stands.
    fn poll_state(&mut self, cx: &mut Context<'_>) -> State {
        if self.driver.poll_without_shutdown(cx).is_ready() {
            State::Closed
        } else if self.sender.is_ready() {
            State::Ready
        } else {
            State::Busy
        }
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The idle connections of one target.
pub struct Pool {
    idle: Mutex<VecDeque<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect: {0}")]
    Connect(BoxError),
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    Shared(#[from] hyper_util::client::legacy::Error),
    /// No response head by the request's deadline (`request_timeout_ms`).
    #[error("no response in time")]
    Timeout,
}

impl SendError {
    /// Whether no connection could be opened.
    pub fn is_connect(&self) -> bool {
        match self {
            Self::Connect(_) => true,
            Self::Http(_) | Self::Timeout => false,
            Self::Shared(e) => e.is_connect(),
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().map_or(0, |idle| idle.len());
        f.debug_struct("Pool").field("idle", &idle).finish()
    }
}

impl Pool {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            idle: Mutex::new(VecDeque::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) to `target` on a pooled connection, or a
    /// new one from `connector`; `SendError::Timeout` if no response head came by `deadline`.
    pub async fn send(
        self: &Arc<Self>,
        connector: &Connector,
        target: &Uri,
        request: Request<Body>,
        deadline: tokio::time::Instant,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let (conn, reused) = match self.checkout() {
            Some(mut conn) => {
                conn.timer.as_mut().reset(deadline);
                (conn, true)
            }
            None => (connect(connector, target, deadline).await?, false),
        };
        let request = match exchange(conn, request).await {
            Ok((response, conn)) => return Ok(self.lease(response, conn)),
            Err(Failed::Unsent(request, _)) if reused => request,
            Err(failed) => return Err(failed.into()),
        };
        let conn = connect(connector, target, deadline).await?;
        match exchange(conn, request).await {
            Ok((response, conn)) => Ok(self.lease(response, conn)),
            Err(failed) => Err(failed.into()),
        }
    }

    fn lease(
        self: &Arc<Self>,
        response: Response<Incoming>,
        conn: Option<Conn>,
    ) -> Response<UpstreamBody> {
        let lease = conn.map(|conn| Lease {
            conn,
            pool: self.clone(),
        });
        response.map(|incoming| UpstreamBody { incoming, lease })
    }

    /// The most recently used idle connection that is still open and ready.
    fn checkout(&self) -> Option<Conn> {
        // A no-op waker: the request's task polls the connection with its own next.
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            let idle = {
                let mut idle = self.idle.lock().ok()?;
                let expired = self.expired(&mut idle);
                let newest = idle.pop_back();
                drop(idle);
                drop(expired);
                newest?
            };
            let mut conn = idle.conn;
            if matches!(conn.poll_state(&mut cx), State::Ready) {
                return Some(conn);
            }
        }
    }

    /// Keeps a connection whose response has ended, if it can take another request. One still
    /// writing its request body (the upstream answered early) finishes in a task of its own,
    /// for at most the idle timeout, as it would have in hyper-util's client.
    fn checkin(self: &Arc<Self>, mut conn: Conn) {
        if self.max_idle == 0 {
            return;
        }
        // A no-op waker: an idle connection wakes nobody; checkout polls it again.
        match conn.poll_state(&mut Context::from_waker(Waker::noop())) {
            State::Ready => self.keep(conn),
            State::Closed => {}
            State::Busy => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                let pool = self.clone();
                runtime.spawn(async move {
                    let finished = std::future::poll_fn(|cx| match conn.poll_state(cx) {
                        State::Busy => Poll::Pending,
                        state => Poll::Ready(matches!(state, State::Ready)),
                    });
                    if let Ok(true) = tokio::time::timeout(pool.idle_timeout, finished).await {
                        pool.keep(conn);
                    }
                });
            }
        }
    }

    fn keep(&self, conn: Conn) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let expired = self.expired(&mut idle);
        let oldest = (idle.len() >= self.max_idle)
            .then(|| idle.pop_front())
            .flatten();
        idle.push_back(Idle {
            conn,
            since: Instant::now(),
        });
        drop(idle);
        // Closed outside the lock.
        drop((expired, oldest));
    }

    /// Takes the connections idle for longer than the idle timeout (the oldest are in front).
    fn expired(&self, idle: &mut VecDeque<Idle>) -> Vec<Idle> {
        let fresh = idle
            .iter()
            .position(|entry| entry.since.elapsed() < self.idle_timeout)
            .unwrap_or(idle.len());
        idle.drain(..fresh).collect()
    }
}

/// A new connection to `target`, opened by `deadline`.
async fn connect(
    connector: &Connector,
    target: &Uri,
    deadline: tokio::time::Instant,
) -> Result<Conn, SendError> {
    // Boxed: the connect and handshake state is large and rarely needed; inline, every
    // request's future would carry (and move) it.
    let opened = Box::pin(async {
        let io = connector
            .clone()
            .call(target.clone())
            .await
            .map_err(SendError::Connect)?;
        Ok::<_, SendError>(http1::Builder::new().handshake(io).await?)
    });
    let (sender, driver) = tokio::time::timeout_at(deadline, opened)
        .await
        .map_err(|_| SendError::Timeout)??;
    Ok(Conn {
        sender,
        driver: Box::new(driver),
        timer: Box::pin(tokio::time::sleep_until(deadline)),
    })
}

#[expect(
    clippy::large_enum_variant,
    reason = "a transient return value; boxing the request would allocate on every failure"
)]
enum Failed {
    /// Hyper handed the request back: it was not written.
    Unsent(Request<Body>, hyper::Error),
    Sent(hyper::Error),
    /// No response head by the deadline (the request may have been written).
    TimedOut,
}

impl From<Failed> for SendError {
    fn from(failed: Failed) -> Self {
        match failed {
            Failed::Unsent(_, error) | Failed::Sent(error) => Self::Http(error),
            Failed::TimedOut => Self::Timeout,
        }
    }
}

/// Sends the request and drives the connection until the response head arrives or the
/// connection's timer (set to the request's deadline) fires. The connection comes back with the
/// response unless it closed meanwhile.
async fn exchange(
    conn: Conn,
    request: Request<Body>,
) -> Result<(Response<Incoming>, Option<Conn>), Failed> {
    let Conn {
        mut sender,
        driver,
        mut timer,
    } = conn;
    let mut response = std::pin::pin!(sender.try_send_request(request));
    let mut driver = Some(driver);
    let outcome = std::future::poll_fn(|cx| {
        if let Some(open) = &mut driver
            && open.poll_without_shutdown(cx).is_ready()
        {
            // Closed or failed. Dropping the connection is what resolves the response: with
            // hyper's error, or with the request handed back when it was never written (an
            // idle connection that saw the upstream's FIN only now).
            driver = None;
        }
        if let Poll::Ready(outcome) = response.as_mut().poll(cx) {
            return Poll::Ready(Some(outcome));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await;
    let Some(outcome) = outcome else {
        return Err(Failed::TimedOut);
    };
    match outcome {
        Ok(response) => Ok((
            response,
            driver.map(|driver| Conn {
                sender,
                driver,
                timer,
            }),
        )),
        Err(mut failed) => match failed.take_message() {
            Some(request) => Err(Failed::Unsent(request, failed.into_error())),
            None => Err(Failed::Sent(failed.into_error())),
        },
    }
}

/// A response body from a pooled connection. Polling it drives the connection; once the body
/// has ended, the connection goes back to its pool (also when the body is dropped right after
/// its last frame, as hyper's server does when `is_end_stream` says so).
pub struct UpstreamBody {
    incoming: Incoming,
    lease: Option<Lease>,
}

struct Lease {
    conn: Conn,
    pool: Arc<Pool>,
}

impl UpstreamBody {
    /// A body from hyper-util's shared client (HTTP/2 upstreams), which drives its own
    /// connections.
    pub fn shared(incoming: Incoming) -> Self {
        Self {
            incoming,
            lease: None,
        }
    }

    fn release(&mut self) {
        if let Some(Lease { conn, pool }) = self.lease.take() {
            pool.checkin(conn);
        }
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(lease) = &mut this.lease
            && lease.conn.driver.poll_without_shutdown(cx).is_ready()
        {
            // Closed or failed: the body ends or fails on its own.
            this.lease = None;
        }
        let frame = ready!(Pin::new(&mut this.incoming).poll_frame(cx));
        match &frame {
            Some(Ok(_)) if this.incoming.is_end_stream() => this.release(),
            None => this.release(),
            Some(Err(_)) => this.lease = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.incoming.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

    use std::time::Duration;

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Answers one request, keeps the connection open for `linger`, then closes it.
    async fn one_answer_then_close(linger: Duration) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            tokio::time::sleep(linger).await;
        });
        addr
    }

    async fn conn_to(addr: std::net::SocketAddr) -> Conn {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let io = MaybeHttpsStream::Http(TokioIo::new(tcp));
        let (sender, driver) = http1::handshake(io).await.unwrap();
        Conn {
            sender,
            driver: Box::new(driver),
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(60))),
        }
    }

    fn get() -> Request<Body> {
        let mut request = Request::new(crate::body::empty());
        request
            .headers_mut()
            .insert(http::header::HOST, http::HeaderValue::from_static("t"));
        request
    }

    #[tokio::test]
    async fn a_request_on_a_connection_closed_while_idle_comes_back_unsent() {
        let addr = one_answer_then_close(Duration::from_millis(100)).await;
        let pool = Arc::new(Pool::new(4, Duration::from_secs(60)));
        let (response, conn) = exchange(conn_to(addr).await, get()).await.ok().unwrap();
        let body = pool.lease(response, conn).into_body();
        assert_eq!(body.collect().await.unwrap().to_bytes(), "ok");
        let idle = pool
            .idle
            .lock()
            .unwrap()
            .pop_back()
            .expect("kept after a clean end");
        // The upstream closes meanwhile; this connection is used without checkout's poll, as
        // when the FIN arrives between checkout and the first poll of the exchange.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let outcome = tokio::time::timeout(Duration::from_secs(5), exchange(idle.conn, get()))
            .await
            .expect("the exchange must not wait for the request timeout");
        assert!(
            matches!(outcome, Err(Failed::Unsent(..))),
            "the request was not handed back for a retry"
        );
    }

    #[tokio::test]
    async fn expired_idle_connections_are_closed_at_the_next_checkin() {
        let pool = Arc::new(Pool::new(8, Duration::from_millis(50)));
        for _ in 0..3 {
            let addr = one_answer_then_close(Duration::from_secs(5)).await;
            let (response, conn) = exchange(conn_to(addr).await, get()).await.ok().unwrap();
            let body = pool.lease(response, conn).into_body();
            body.collect().await.unwrap();
            tokio::time::sleep(Duration::from_millis(80)).await;
        }
        // Each checkin found the one before expired.
        assert_eq!(pool.idle.lock().unwrap().len(), 1);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(
            pool.checkout().is_none(),
            "an expired connection was reused"
        );
        assert_eq!(pool.idle.lock().unwrap().len(), 0);
    }
}
