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
//!   dropped; idle connections older than the idle timeout are dropped, and at most `max_idle`
//!   are kept;
//! - a request hyper hands back unsent (the reused connection closed under it) is sent once more
//!   on a new connection, as hyper-util's client does; a request that was sent is never resent.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Mutex;
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
    driver: http1::Connection<Io, Body>,
}

impl Conn {
    /// Polls the connection once: whether it is still open and ready for a request.
    fn is_reusable(&mut self, cx: &mut Context<'_>) -> bool {
        self.driver.poll_without_shutdown(cx).is_pending() && self.sender.is_ready()
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
}

impl SendError {
    /// Whether no connection could be opened.
    pub fn is_connect(&self) -> bool {
        match self {
            Self::Connect(_) => true,
            Self::Http(_) => false,
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
    /// new one from `connector`.
    pub async fn send(
        self: &std::sync::Arc<Self>,
        connector: &Connector,
        target: &Uri,
        request: Request<Body>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let (conn, reused) = match self.checkout() {
            Some(conn) => (conn, true),
            None => (connect(connector, target).await?, false),
        };
        let request = match exchange(conn, request).await {
            Ok((response, conn)) => return Ok(self.lease(response, conn)),
            Err(Failed::Unsent(request, _)) if reused => request,
            Err(Failed::Unsent(_, error) | Failed::Sent(error)) => return Err(error.into()),
        };
        let conn = connect(connector, target).await?;
        match exchange(conn, request).await {
            Ok((response, conn)) => Ok(self.lease(response, conn)),
            Err(Failed::Unsent(_, error) | Failed::Sent(error)) => Err(error.into()),
        }
    }

    fn lease(
        self: &std::sync::Arc<Self>,
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
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            let idle = self.idle.lock().ok()?.pop_back()?;
            if idle.since.elapsed() >= self.idle_timeout {
                // The rest are older still.
                self.idle.lock().ok()?.clear();
                return None;
            }
            let mut conn = idle.conn;
            if conn.is_reusable(&mut cx) {
                return Some(conn);
            }
        }
    }

    /// Keeps a connection whose response has ended, if it can take another request.
    fn checkin(&self, mut conn: Conn) {
        // A no-op waker: an idle connection wakes nobody; checkout polls it again.
        let mut cx = Context::from_waker(Waker::noop());
        if self.max_idle == 0 || !conn.is_reusable(&mut cx) {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        if idle.len() >= self.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle {
            conn,
            since: Instant::now(),
        });
    }
}

async fn connect(connector: &Connector, target: &Uri) -> Result<Conn, SendError> {
    let io = connector
        .clone()
        .call(target.clone())
        .await
        .map_err(SendError::Connect)?;
    let (sender, driver) = http1::Builder::new().handshake(io).await?;
    Ok(Conn { sender, driver })
}

#[expect(
    clippy::large_enum_variant,
    reason = "a transient return value; boxing the request would allocate on every failure"
)]
enum Failed {
    /// Hyper handed the request back: it was not written.
    Unsent(Request<Body>, hyper::Error),
    Sent(hyper::Error),
}

/// Sends the request and drives the connection until the response head arrives. The connection
/// comes back with the response unless it closed meanwhile.
async fn exchange(
    mut conn: Conn,
    request: Request<Body>,
) -> Result<(Response<Incoming>, Option<Conn>), Failed> {
    let mut response = std::pin::pin!(conn.sender.try_send_request(request));
    let mut open = true;
    let outcome = std::future::poll_fn(|cx| {
        if open && conn.driver.poll_without_shutdown(cx).is_ready() {
            // Closed or failed: the response future now resolves with hyper's error.
            open = false;
        }
        response.as_mut().poll(cx)
    })
    .await;
    match outcome {
        Ok(response) => Ok((response, open.then_some(conn))),
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
    pool: std::sync::Arc<Pool>,
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
