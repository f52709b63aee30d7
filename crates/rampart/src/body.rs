//! The body type the gateway serves, and small adapters.

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;

/// Errors carried by bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response and forwarded-request body type.
pub type Body = BoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Reads a whole body of at most `limit` bytes into one buffer; `Err` says why not (too large,
/// or the stream failed), for the audit log.
pub async fn collect_bounded(mut body: Body, limit: u64) -> Result<Bytes, String> {
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut buffered = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("response body failed: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not kept for a checked body
        };
        if buffered.len().saturating_add(data.len()) > cap {
            return Err(format!("response body over {limit} bytes"));
        }
        buffered.extend_from_slice(&data);
    }
    Ok(buffered.freeze())
}
