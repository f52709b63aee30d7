//! The leak scan applied to upstream responses (OWASP API3, excessive data exposure).
//!
//! Invariants: a textual response of at most `BUFFER_BYTES` (declared or not) is read whole and
//! scanned before its head leaves, so a leak becomes a masked 502 and the client never sees a
//! byte of it; a longer one streams, scanned frame by frame with a bounded overlap, and is cut
//! (the connection reset, never a clean end) at the first frame that shows a leak. Compressed
//! bodies (`Content-Encoding` other than `identity`) and binary media types are not scanned: the
//! markers are text.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

use super::leak::{LeakKind, LeakScan, LeakScanner};
use crate::body::{self, Body, BoxError};
use crate::error::GatewayError;

/// Responses up to this size are scanned whole before they are sent.
pub const BUFFER_BYTES: usize = 64 * 1024;

/// The scanner, compiled once per process (its signals are constants). `None` only if a
/// built-in pattern failed to compile, which the unit tests rule out; then nothing is scanned
/// and an error is logged once.
pub fn scanner() -> Option<&'static Arc<LeakScanner>> {
    static SCANNER: std::sync::OnceLock<Option<Arc<LeakScanner>>> = std::sync::OnceLock::new();
    SCANNER
        .get_or_init(|| match LeakScanner::new() {
            Ok(scanner) => Some(Arc::new(scanner)),
            Err(e) => {
                tracing::error!(error = %e, "the leak scanner does not compile; responses are not scanned");
                None
            }
        })
        .as_ref()
}

/// Scans `body`; `Err` (a masked 502) when a leak is found in a buffered response. `found` is
/// set to the leak's kind for the audit record.
pub async fn guard(
    scanner: &Arc<LeakScanner>,
    head: &http::response::Parts,
    mut body: Body,
    found: &mut Option<&'static str>,
) -> Result<Body, GatewayError> {
    if !scannable(head) {
        return Ok(body);
    }
    let mut prefix = BytesMut::new();
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => return Err(GatewayError::UpstreamFailed(e.to_string())),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => prefix.extend_from_slice(&data),
                // Trailers end the data: scan what came, then pass them on.
                Err(trailers) => {
                    let prefix = check(scanner, prefix.freeze(), found)?;
                    let rest = http_body_util::StreamBody::new(futures_util::stream::iter([Ok::<
                        _,
                        BoxError,
                    >(
                        trailers,
                    )]));
                    return Ok(chain(prefix, rest.boxed()));
                }
            },
        }
        if prefix.len() > BUFFER_BYTES {
            let mut scan = scanner.stream_shared();
            if let Some(kind) = scan.feed(&prefix) {
                *found = Some(kind.as_str());
                return Err(refused(kind));
            }
            let streamed = Scanned { inner: body, scan };
            return Ok(chain(prefix.freeze(), streamed.boxed()));
        }
    }
    Ok(body::full(check(scanner, prefix.freeze(), found)?))
}

fn check(
    scanner: &LeakScanner,
    bytes: Bytes,
    found: &mut Option<&'static str>,
) -> Result<Bytes, GatewayError> {
    match scanner.scan(&bytes) {
        Some(kind) => {
            *found = Some(kind.as_str());
            Err(refused(kind))
        }
        None => Ok(bytes),
    }
}

fn refused(kind: LeakKind) -> GatewayError {
    GatewayError::UpstreamResponseRefused(format!("leak scan: {}", kind.as_str()))
}

/// Text, JSON, XML, HTML and bodies without a type are scanned; images, archives, octet
/// streams and compressed bodies are not.
fn scannable(head: &http::response::Parts) -> bool {
    let identity = head
        .headers
        .get(CONTENT_ENCODING)
        .is_none_or(|v| v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let empty = head
        .headers
        .get(CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    let textual = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| {
            let ct = ct.trim_start().to_ascii_lowercase();
            ct.starts_with("text/")
                || ct.contains("json")
                || ct.contains("xml")
                || ct.contains("javascript")
                || ct.starts_with("application/x-www-form-urlencoded")
        });
    identity && textual && !empty
}

/// `prefix` then `rest`, as one body.
fn chain(prefix: Bytes, rest: Body) -> Body {
    let first = http_body_util::Full::new(prefix).map_err(|never| match never {});
    Chain {
        first: Some(first.boxed()),
        rest,
    }
    .boxed()
}

struct Chain {
    first: Option<Body>,
    rest: Body,
}

impl http_body::Body for Chain {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.as_mut() {
            match Pin::new(first).poll_frame(cx) {
                Poll::Ready(None) => self.first = None,
                other => return other,
            }
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A streamed response scanned frame by frame; a frame that shows a leak is replaced by an
/// error, which cuts the response.
struct Scanned {
    inner: Body,
    scan: LeakScan<Arc<LeakScanner>>,
}

#[derive(Debug, thiserror::Error)]
#[error("response cut by the leak scan: {0}")]
struct LeakCut(&'static str);

impl http_body::Body for Scanned {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && let Some(kind) = self.scan.feed(data)
        {
            tracing::warn!(
                leak = kind.as_str(),
                "streamed response cut by the leak scan"
            );
            return Poll::Ready(Some(Err(Box::new(LeakCut(kind.as_str())))));
        }
        polled
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
