//! The leak scan applied to upstream responses (OWASP API3, excessive data exposure).
//!
//! Invariants: a textual response of at most `BUFFER_BYTES` (declared, or a JSON, XML or HTML
//! document of undeclared length) is read whole and scanned before its head leaves, so a leak
//! becomes a masked 502 and the client never sees a byte of it; any other (longer, or an event
//! stream, which must never be held back) streams, scanned frame by frame with a bounded overlap,
//! and is cut (the connection reset, never a clean end) at the first frame that shows a leak. Compressed
//! bodies (`Content-Encoding` other than `identity`) and binary media types are not scanned: the
//! markers are text.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

use super::leak::{LeakKind, LeakScan, LeakScanner};
use crate::body::{self, Body, BoxError};
use crate::error::GatewayError;
use crate::policy::validate::media;

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
    shape: TextShape,
    mut body: Body,
    found: &mut Option<&'static str>,
) -> Result<Body, GatewayError> {
    if !shape.scannable() {
        return Ok(body);
    }
    if !shape.bufferable {
        // An event stream or a long body: scanned as it passes, never held back.
        let streamed = Scanned {
            inner: body,
            scan: scanner.stream_shared(),
        };
        return Ok(streamed.boxed());
    }
    let mut prefix = body::Gathered::default();
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => return Err(GatewayError::UpstreamFailed(e.to_string())),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => prefix.push(data),
                // Trailers end the data: scan what came, then pass them on.
                Err(trailers) => {
                    let prefix = check(scanner, prefix.into_bytes(), found)?;
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
            if let Some(kind) = scan.feed(prefix.as_slice()) {
                *found = Some(kind.as_str());
                return Err(refused(kind));
            }
            let streamed = Scanned { inner: body, scan };
            return Ok(chain(prefix.into_bytes(), streamed.boxed()));
        }
    }
    Ok(body::full(check(scanner, prefix.into_bytes(), found)?))
}

/// Scans a response that is already whole in memory (read for the response contract): no copy,
/// and no size beyond which it would have to stream.
pub fn check_whole(
    scanner: &LeakScanner,
    shape: TextShape,
    bytes: &Bytes,
    found: &mut Option<&'static str>,
) -> Result<(), GatewayError> {
    if !shape.scannable() {
        return Ok(());
    }
    check(scanner, bytes.clone(), found).map(drop)
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

/// What the scan needs of a response head, read once per response: the gateway asks it twice
/// (whether a route that asked for `identity` got a body it cannot read, then how to scan), and
/// each question would otherwise look up the same three headers again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextShape {
    /// Not content-coded: no `Content-Encoding`, or `identity`.
    identity: bool,
    /// Text, JSON, XML, HTML or a body without a type, and not declared empty.
    text: bool,
    /// May be held back and scanned whole: a declared length up to `BUFFER_BYTES`, or a document
    /// type (JSON, XML, HTML) whose length is not declared (held up to `BUFFER_BYTES`, then
    /// streamed). Event streams and other bodies of unknown length pass frame by frame, so a
    /// server-sent event is never delayed.
    pub(super) bufferable: bool,
}

impl TextShape {
    pub fn of(head: &http::response::Parts) -> Self {
        let headers = &head.headers;
        let identity = headers
            .get(CONTENT_ENCODING)
            .is_none_or(|v| v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let length = headers.get(CONTENT_LENGTH).map(http::HeaderValue::as_bytes);
        let essence = headers
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().map(media::essence_of));
        let textual = match &essence {
            Some(Ok(essence)) => textual(essence),
            // No type, or one that is not visible ASCII: scanned, since scanning more is safe.
            None | Some(Err(_)) => true,
        };
        let declared = length
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<usize>().ok());
        let bufferable = match declared {
            Some(length) => length <= BUFFER_BYTES,
            None => matches!(&essence, Some(Ok(e))
                if !e.is_empty() && (media::is_json(e) || media::is_xml(e) || e == "text/html")),
        };
        Self {
            identity,
            text: textual && length != Some(b"0"),
            bufferable,
        }
    }

    /// Text, JSON, XML, HTML and bodies without a type are scanned; images, archives, octet
    /// streams and compressed bodies are not.
    pub(super) fn scannable(self) -> bool {
        self.identity && self.text
    }

    /// A textual response the scan cannot read because it is content-coded: on a route that
    /// asked its upstream for `identity`, such a response is refused rather than passed unread.
    pub fn unreadable_text(self) -> bool {
        !self.identity && self.text
    }
}

/// Broad on purpose (`application/x-ndjson`, `text/*`): scanning more is safe.
fn textual(essence: &str) -> bool {
    // An API's usual type first: it spares the substring searches below.
    essence == "application/json"
        || essence.starts_with("text/")
        || essence.contains("json")
        || essence.contains("xml")
        || essence.contains("javascript")
        || essence == "application/x-www-form-urlencoded"
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;
    use http_body_util::StreamBody;
    use tokio::sync::mpsc;

    use super::*;

    fn head(content_type: &str) -> http::response::Parts {
        let (parts, ()) = http::Response::builder()
            .header(CONTENT_TYPE, content_type)
            .body(())
            .unwrap_or_default()
            .into_parts();
        parts
    }

    /// A body fed frame by frame through a channel that stays open until the sender drops.
    fn channel_body() -> (mpsc::Sender<Bytes>, Body) {
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let stream = tokio_stream_from(rx).map(|b| Ok::<_, BoxError>(Frame::data(b)));
        (tx, BodyExt::boxed(StreamBody::new(stream)))
    }

    fn tokio_stream_from(
        mut rx: mpsc::Receiver<Bytes>,
    ) -> impl futures_util::Stream<Item = Bytes> + Send + Sync + 'static {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[tokio::test]
    async fn an_event_stream_is_never_held_back_and_is_cut_at_a_leak() {
        let Some(scanner) = scanner() else {
            panic!("the scanner compiles")
        };
        let (tx, body) = channel_body();
        let mut found = None;
        let guarded = tokio::time::timeout(
            Duration::from_secs(2),
            guard(
                scanner,
                TextShape::of(&head("text/event-stream")),
                body,
                &mut found,
            ),
        )
        .await;
        let Ok(Ok(mut guarded)) = guarded else {
            panic!("the guard must return at once for an event stream")
        };
        let _ = tx.send(Bytes::from_static(b"data: {\"tick\":1}\n\n")).await;
        let first = guarded.frame().await;
        assert!(
            matches!(first, Some(Ok(_))),
            "the first event passes at once"
        );
        let leak =
            "data: Traceback (most recent call last):\n  File \"/app/x.py\", line 3, in f\n\n";
        let _ = tx.send(Bytes::from(leak)).await;
        assert!(
            matches!(guarded.frame().await, Some(Err(_))),
            "cut at the leak"
        );
    }

    #[tokio::test]
    async fn a_json_document_of_unknown_length_is_scanned_whole_before_it_leaves() {
        let Some(scanner) = scanner() else {
            panic!("the scanner compiles")
        };
        let (tx, body) = channel_body();
        let _ = tx
            .send(Bytes::from_static(b"{\"error\":\"-----BEGIN "))
            .await;
        let _ = tx
            .send(Bytes::from_static(b"PRIVATE KEY-----\\nMIIE\"}"))
            .await;
        drop(tx);
        let mut found = None;
        let guarded = guard(
            scanner,
            TextShape::of(&head("application/json")),
            body,
            &mut found,
        )
        .await;
        assert!(matches!(
            guarded,
            Err(GatewayError::UpstreamResponseRefused(_))
        ));
        assert_eq!(found, Some("private-key"));
    }
}
