//! Reading the client's request body: limit, minimum rate, and buffering of small bodies.
//!
//! Threat: a client that sends its body slowly (slowloris on the body) ties up an upstream
//! connection and, if its stall were blamed on the upstream, takes healthy targets out of
//! rotation: a handful of slow clients could eject the only target. Invariants:
//! - a body over the limit (declared or streamed) never reaches the upstream in full; a body of
//!   unknown length, or of at most `limits.buffer_body_bytes`, is read completely before an
//!   upstream connection is used, so a slow or vanished client never sends a partial request;
//! - after a grace period (`limits.body_rate_grace_ms`) the body must keep arriving at an average
//!   of at least `limits.min_body_rate_bytes_per_s`, or the client gets 408 and the connection is
//!   closed;
//! - a failure of the client's body is the client's fault: it is never recorded against the
//!   upstream's passive health (`Progress` tells the proxy whether the gateway was waiting on the
//!   client when an exchange failed).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::body::{self, Body, BoxError};
use crate::config::LimitsConfig;
use crate::error::GatewayError;

/// The body to forward, and, for a streamed body, where its reading stands.
pub struct RequestBody {
    pub body: Body,
    pub progress: Option<Arc<Progress>>,
}

/// Reads the request body according to the limits; see the module doc.
pub async fn read(
    incoming: Incoming,
    limit: u64,
    limits: &LimitsConfig,
    bytes_in: &mut u64,
) -> Result<RequestBody, GatewayError> {
    if incoming.is_end_stream() {
        return Ok(RequestBody {
            body: body::empty(),
            progress: None,
        });
    }
    let declared = incoming.size_hint().exact();
    if declared.is_some_and(|length| length > limit) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let progress = Arc::new(Progress::default());
    let paced = MinRate::new(incoming, limits, progress.clone());
    match declared {
        Some(length) if length > limits.buffer_body_bytes => {
            *bytes_in = length;
            Ok(RequestBody {
                body: paced.boxed(),
                progress: Some(progress),
            })
        }
        _ => {
            let bytes = buffer(paced, limit).await?;
            *bytes_in = bytes.len() as u64;
            Ok(RequestBody {
                body: body::full(bytes),
                progress: None,
            })
        }
    }
}

/// Reads the whole body (for a route whose policies read it), up to `limit` bytes, under the same
/// declared-length check and minimum rate as `read`.
pub async fn read_whole(
    incoming: Incoming,
    limit: u64,
    limits: &LimitsConfig,
    bytes_in: &mut u64,
) -> Result<Bytes, GatewayError> {
    if incoming.is_end_stream() {
        return Ok(Bytes::new());
    }
    if incoming
        .size_hint()
        .exact()
        .is_some_and(|length| length > limit)
    {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let paced = MinRate::new(incoming, limits, Arc::new(Progress::default()));
    let bytes = buffer(paced, limit).await?;
    *bytes_in = bytes.len() as u64;
    Ok(bytes)
}

/// Reads the whole body, up to `limit` bytes, into one contiguous buffer. Frames are copied as
/// they arrive (not queued one `Bytes` per frame, which would let a client sending one-byte chunks
/// make the gateway hold tens of bytes per byte received).
async fn buffer(mut paced: MinRate<Incoming>, limit: u64) -> Result<Bytes, GatewayError> {
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut buffered = BytesMut::new();
    while let Some(frame) = paced.frame().await {
        let frame = frame.map_err(|e| {
            client_body_error(&*e).unwrap_or_else(|| GatewayError::ClientBody(e.to_string()))
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: not forwarded
        };
        if buffered.len().saturating_add(data.len()) > cap {
            return Err(GatewayError::BodyTooLarge { limit });
        }
        buffered.extend_from_slice(&data);
    }
    Ok(buffered.freeze())
}

/// The client's fault, if `error` (or one of its sources) is a failure of the client's body.
pub fn client_body_error(error: &(dyn std::error::Error + 'static)) -> Option<GatewayError> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(failure) = e.downcast_ref::<ClientBodyError>() {
            return Some(failure.to_gateway_error());
        }
        source = e.source();
    }
    None
}

/// A failure of the client's request body: too slow, or the stream broke (client gone).
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    #[error("request body slower than {0} bytes/s")]
    TooSlow(u64),
    #[error("request body stream failed: {0}")]
    Failed(String),
}

impl ClientBodyError {
    fn to_gateway_error(&self) -> GatewayError {
        match self {
            Self::TooSlow(_) => GatewayError::ClientBodyTimeout(self.to_string()),
            Self::Failed(_) => GatewayError::ClientBody(self.to_string()),
        }
    }
}

const WAITING_ON_CLIENT: u8 = 0;
const WAITING_ON_UPSTREAM: u8 = 1;
const COMPLETE: u8 = 2;

/// Where the reading of a streamed body stands, shared with the proxy. It starts as not waiting
/// on the client: until the upstream connection pulls the body, a timeout is the upstream's.
#[derive(Debug)]
pub struct Progress(AtomicU8);

impl Default for Progress {
    fn default() -> Self {
        Self(AtomicU8::new(WAITING_ON_UPSTREAM))
    }
}

impl Progress {
    /// The body is incomplete and the last read was waiting for the client's bytes: an exchange
    /// that times out now is waiting on the client, not on the upstream.
    pub fn waiting_on_client(&self) -> bool {
        self.0.load(Ordering::Relaxed) == WAITING_ON_CLIENT
    }

    /// The whole body has been read.
    pub fn is_complete(&self) -> bool {
        self.0.load(Ordering::Relaxed) == COMPLETE
    }

    fn set(&self, state: u8) {
        self.0.store(state, Ordering::Relaxed);
    }
}

/// A body that fails with `ClientBodyError::TooSlow` when the client falls below the minimum
/// average rate after the grace period. Only the time spent waiting for the client's bytes counts
/// (not the time the upstream took to accept them): it may not exceed `grace + received / rate`,
/// so a client that keeps the average is never cut.
struct MinRate<B> {
    inner: B,
    grace: Duration,
    rate: u64,
    received: u64,
    /// Time spent waiting on the client so far, and since when it is being waited on now.
    waited: Duration,
    waiting_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    progress: Arc<Progress>,
}

impl<B> MinRate<B> {
    fn new(inner: B, limits: &LimitsConfig, progress: Arc<Progress>) -> Self {
        let grace = Duration::from_millis(limits.body_rate_grace_ms);
        Self {
            inner,
            grace,
            rate: limits.min_body_rate_bytes_per_s.max(1),
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: Box::pin(tokio::time::sleep(grace)),
            progress,
        }
    }

    /// Starts a wait on the client: the timer fires when the allowance is used up.
    fn start_waiting(&mut self) {
        if self.waiting_since.is_some() {
            return;
        }
        let now = Instant::now();
        let earned = Duration::from_millis(self.received.saturating_mul(1000) / self.rate);
        let allowance = (self.grace + earned).saturating_sub(self.waited);
        self.waiting_since = Some(now);
        self.timer.as_mut().reset(now + allowance);
        self.progress.set(WAITING_ON_CLIENT);
    }

    fn stop_waiting(&mut self) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
        }
    }
}

impl<B> http_body::Body for MinRate<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.stop_waiting();
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                }
                this.progress.set(WAITING_ON_UPSTREAM);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(ClientBodyError::Failed(e.to_string()).into())))
            }
            Poll::Ready(None) => {
                this.progress.set(COMPLETE);
                Poll::Ready(None)
            }
            Poll::Pending => {
                this.start_waiting();
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(ClientBodyError::TooSlow(this.rate).into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body that yields one byte per `every`, `total` times.
    struct Trickle {
        left: usize,
        sleep: Pin<Box<Sleep>>,
        every: Duration,
    }

    impl http_body::Body for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            std::task::ready!(self.sleep.as_mut().poll(cx));
            self.left -= 1;
            let next = Instant::now() + self.every;
            self.sleep.as_mut().reset(next);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    fn limits(rate: u64, grace_ms: u64) -> LimitsConfig {
        LimitsConfig {
            min_body_rate_bytes_per_s: rate,
            body_rate_grace_ms: grace_ms,
            ..LimitsConfig::default()
        }
    }

    async fn collect(every_ms: u64, total: usize, limits: &LimitsConfig) -> Result<usize, String> {
        let every = Duration::from_millis(every_ms);
        let trickle = Trickle {
            left: total,
            sleep: Box::pin(tokio::time::sleep(every)),
            every,
        };
        let progress = Arc::new(Progress::default());
        let paced = MinRate::new(trickle, limits, progress.clone());
        let got = paced.collect().await.map(|c| c.to_bytes().len());
        if got.is_ok() {
            assert!(!progress.waiting_on_client());
        }
        got.map_err(|e| e.to_string())
    }

    #[tokio::test(start_paused = true)]
    async fn slow_body_is_cut_after_the_grace_period() {
        // 10 bytes/s against a 100 bytes/s minimum and a 1 s grace.
        let got = collect(100, 50, &limits(100, 1000)).await;
        assert!(got.is_err_and(|e| e.contains("slower than 100")));
    }

    #[tokio::test(start_paused = true)]
    async fn body_at_the_minimum_rate_is_never_cut() {
        // 100 bytes/s exactly, for longer than the grace period.
        assert_eq!(collect(10, 300, &limits(100, 1000)).await, Ok(300));
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_upstream_takes_is_not_counted_against_the_client() {
        let trickle = Trickle {
            left: 20,
            sleep: Box::pin(tokio::time::sleep(Duration::from_millis(10))),
            every: Duration::from_millis(10),
        };
        let mut paced = MinRate::new(trickle, &limits(100, 100), Arc::new(Progress::default()));
        while let Some(frame) = paced.frame().await {
            assert!(frame.is_ok(), "the client kept its rate");
            // The consumer (the upstream) stalls far longer than the grace period.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
