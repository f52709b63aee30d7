//! JSON pointers (RFC 6901) as the compiler writes and reads them: tokens, children, and the
//! percent-encoded form a pointer takes inside a `$ref` URI fragment.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::policy::validate::violation::escape_token;

/// Characters that may not appear as such in a URI fragment (RFC 3986 section 3.5). `%` is
/// encoded too so that a literal `%` in a key survives the decoding on the other side.
const FRAGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `parent` extended by one member name or index.
pub(super) fn child(parent: &str, token: &str) -> String {
    format!("{parent}/{}", escape_token(token))
}

/// The tokens of a pointer, unescaped. `""` has none.
pub(super) fn tokens(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer
        .strip_prefix('/')
        .unwrap_or(pointer)
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// The `$ref` value that points at `pointer` inside the document with URI `base` (`""` for the
/// same document).
pub(super) fn reference(base: &str, pointer: &str) -> String {
    format!("{base}#{}", utf8_percent_encode(pointer, FRAGMENT))
}

/// The JSON pointer in a `$ref` fragment (`#/components/schemas/Pet`), percent-decoded. `None`
/// when the fragment is not a pointer (a plain-name anchor) or does not decode to UTF-8.
pub(super) fn from_fragment(fragment: &str) -> Option<String> {
    let decoded = percent_decode_str(fragment).decode_utf8().ok()?;
    if decoded.is_empty() || decoded.starts_with('/') {
        Some(decoded.into_owned())
    } else {
        None
    }
}

/// Whether `inner` is `outer` or lies inside it.
pub(super) fn is_within(inner: &str, outer: &str) -> bool {
    inner == outer || (inner.starts_with(outer) && inner.as_bytes().get(outer.len()) == Some(&b'/'))
}
