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
    let mut buffered = Gathered::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("response body failed: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not kept for a checked body
        };
        if buffered.len().saturating_add(data.len()) > cap {
            return Err(format!("response body over {limit} bytes"));
        }
        buffered.push(data);
    }
    Ok(buffered.into_bytes())
}

/// Data frames gathered into one contiguous buffer, copied only once a second frame comes: a
/// response that arrives as a single frame (most upstream answers) is passed on as the `Bytes`
/// hyper read, without an allocation and a copy. Later frames are copied as they arrive, so it
/// never holds more than one frame besides its own buffer. The cost of the kept frame: it shares
/// the upstream connection's read buffer (8 KiB, up to hyper's ~400 KiB on a connection that
/// carried large messages), which stays allocated until the response has been written to the
/// client, a slow reader included; one such buffer per response in flight, as for a streamed
/// response's frames.
#[derive(Debug, Default)]
pub struct Gathered {
    first: Bytes,
    joined: Option<bytes::BytesMut>,
}

impl Gathered {
    pub fn len(&self) -> usize {
        self.joined
            .as_ref()
            .map_or(self.first.len(), bytes::BytesMut::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, data: Bytes) {
        if let Some(joined) = &mut self.joined {
            joined.extend_from_slice(&data);
        } else if self.first.is_empty() {
            self.first = data;
        } else if !data.is_empty() {
            let first = std::mem::take(&mut self.first);
            let mut joined = bytes::BytesMut::with_capacity(first.len() + data.len());
            joined.extend_from_slice(&first);
            joined.extend_from_slice(&data);
            self.joined = Some(joined);
        }
    }

    /// What has been gathered so far.
    pub fn as_slice(&self) -> &[u8] {
        self.joined.as_deref().unwrap_or(&self.first)
    }

    pub fn into_bytes(self) -> Bytes {
        self.joined.map_or(self.first, bytes::BytesMut::freeze)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_frame_is_passed_on_without_a_copy() {
        let frame = Bytes::from_static(b"{\"ok\":true}");
        let mut gathered = Gathered::default();
        gathered.push(frame.clone());
        gathered.push(Bytes::new());
        let bytes = gathered.into_bytes();
        assert_eq!(bytes, frame);
        assert_eq!(
            bytes.as_ptr(),
            frame.as_ptr(),
            "the frame itself, not a copy"
        );
    }

    #[test]
    fn frames_are_joined_in_order_whatever_their_sizes() {
        let parts: [&[u8]; 5] = [b"", b"a", b"", b"bc", b"def"];
        let mut gathered = Gathered::default();
        let mut expected = Vec::new();
        for part in parts {
            gathered.push(Bytes::copy_from_slice(part));
            expected.extend_from_slice(part);
            assert_eq!(gathered.as_slice(), &expected[..]);
            assert_eq!(gathered.len(), expected.len());
        }
        assert_eq!(gathered.into_bytes(), Bytes::from(expected));
    }
}
