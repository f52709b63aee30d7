//! Path normalization before routing.
//!
//! Threat: a path that the gateway and the upstream read differently (`/public/..%2Fadmin`,
//! `/admin;x`, `//admin`, `/%61dmin`) reaching a route that the plain path could not. Invariant:
//! routing and the upstream see one canonical form: unreserved characters decoded (RFC 3986
//! section 6.2.2.2), hex upper-cased, dot segments removed (section 5.2.4), empty segments
//! collapsed. Encoded `/` and `\`, raw `\`, NUL and broken percent-encoding are refused: they have
//! no canonical form that every upstream agrees on (Envoy's `path_with_escaped_slashes_action:
//! REJECT_REQUEST` does the same).
//!
//! Hand-written because no maintained crate does RFC 3986 normalization with these refusals.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotOriginForm,
    BadPercentEncoding,
    EncodedSeparator,
    Backslash,
    Nul,
}

impl PathError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotOriginForm => "path does not start with /",
            Self::BadPercentEncoding => "invalid percent-encoding",
            Self::EncodedSeparator => "encoded slash or backslash",
            Self::Backslash => "backslash in path",
            Self::Nul => "NUL byte in path",
        }
    }
}

/// Returns the canonical path, borrowing when it is already canonical (the common case).
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    if is_canonical(path) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    Ok(Cow::Owned(remove_dot_segments(&decoded)))
}

/// No `%`, `\`, empty segment or dot segment: nothing to do.
fn is_canonical(path: &str) -> bool {
    let bytes = path.as_bytes();
    // Anything but visible ASCII (NUL, controls, space, non-ASCII) takes the full path, which
    // refuses it; found by the `path_normalize` fuzz target.
    if bytes
        .iter()
        .any(|&b| b == b'%' || b == b'\\' || !b.is_ascii_graphic())
    {
        return false;
    }
    // Segments between slashes, ignoring the leading one; a trailing empty segment is fine.
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment == "." || segment == ".." || (segment.is_empty() && !last) {
            return false;
        }
    }
    true
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadPercentEncoding);
                };
                let decoded = hi << 4 | lo;
                match decoded {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0 => return Err(PathError::Nul),
                    b if is_unreserved(b) => out.push(char::from(b)),
                    b => {
                        out.push('%');
                        out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                        out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xF)]));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            // hyper's URI parser only lets visible ASCII through; anything else is refused.
            b if b.is_ascii_graphic() => {
                out.push(char::from(b));
                i += 1;
            }
            0 => return Err(PathError::Nul),
            _ => return Err(PathError::BadPercentEncoding),
        }
    }
    Ok(out)
}

/// RFC 3986 section 5.2.4 on a decoded path, also dropping empty segments.
fn remove_dot_segments(path: &str) -> String {
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path[1..].split('/') {
        trailing_slash = false;
        match segment {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                stack.pop();
                trailing_slash = true;
            }
            s => stack.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &stack {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p).map(Cow::into_owned)
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        assert!(matches!(normalize("/orders/42"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/orders/"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(n("/a/./b/../c").as_deref(), Ok("/a/c"));
        assert_eq!(n("/../../etc/passwd").as_deref(), Ok("/etc/passwd"));
        assert_eq!(n("/a/b/..").as_deref(), Ok("/a/"));
    }

    #[test]
    fn encoded_traversal_is_resolved_like_the_plain_one() {
        assert_eq!(n("/public/%2e%2e/admin"), n("/public/../admin"));
        assert_eq!(n("/public/%2E%2E/admin").as_deref(), Ok("/admin"));
        assert_eq!(n("/public/.%2e/admin").as_deref(), Ok("/admin"));
    }

    #[test]
    fn encoded_slash_is_refused() {
        assert_eq!(n("/public/..%2Fadmin"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a%5Cb"), Err(PathError::EncodedSeparator));
    }

    #[test]
    fn duplicate_slashes_collapse() {
        assert_eq!(n("//admin").as_deref(), Ok("/admin"));
        assert_eq!(n("/a//b///c").as_deref(), Ok("/a/b/c"));
    }

    #[test]
    fn unreserved_characters_are_decoded_and_others_uppercased() {
        assert_eq!(n("/%61dmin").as_deref(), Ok("/admin"));
        assert_eq!(n("/caf%c3%a9").as_deref(), Ok("/caf%C3%A9"));
        assert_eq!(n("/a%20b").as_deref(), Ok("/a%20b"));
    }

    #[test]
    fn double_encoding_stays_encoded() {
        assert_eq!(n("/a/%252e%252e/b").as_deref(), Ok("/a/%252e%252e/b"));
    }

    #[test]
    fn raw_control_bytes_and_spaces_are_refused_on_the_fast_path_too() {
        // Found by the `path_normalize` fuzz target: the canonical fast path returned "/\0" as is.
        for path in ["/\0", "/a b", "/a\tb", "/\u{e9}"] {
            assert!(n(path).is_err(), "{path:?}");
        }
    }

    #[test]
    fn malformed_paths_are_refused() {
        assert_eq!(n("/a%2"), Err(PathError::BadPercentEncoding));
        assert_eq!(n("/a%zz"), Err(PathError::BadPercentEncoding));
        assert_eq!(n("/a%00b"), Err(PathError::Nul));
        assert_eq!(n("/a\\b"), Err(PathError::Backslash));
        assert_eq!(n("*"), Err(PathError::NotOriginForm));
        assert_eq!(n("a/b"), Err(PathError::NotOriginForm));
    }
}
