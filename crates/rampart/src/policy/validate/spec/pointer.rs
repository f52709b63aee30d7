//! JSON pointers (RFC 6901) as the compiler writes and reads them: tokens, children, and the
//! percent-encoded form a pointer takes inside a `$ref` URI fragment.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use serde_json::Value;

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

/// The value `pointer` names inside `root`, as `Value::pointer`, without its two `String`s per
/// token (it unescapes every token by `replace`, even one with no `~`): the response check
/// resolves its schema and the schema's `$ref`s on every response.
pub(crate) fn lookup<'v>(root: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() {
        return Some(root);
    }
    pointer
        .strip_prefix('/')?
        .split('/')
        .try_fold(root, |target, token| {
            let token = unescape(token);
            match target {
                Value::Object(members) => members.get(token.as_ref()),
                Value::Array(elements) => array_index(&token).and_then(|i| elements.get(i)),
                _ => None,
            }
        })
}

fn unescape(token: &str) -> Cow<'_, str> {
    if token.contains('~') {
        Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(token)
    }
}

/// An array index as RFC 6901 spells it: digits, no sign, no leading zero.
fn array_index(token: &str) -> Option<usize> {
    let canonical = token == "0" || !(token.starts_with('0') || token.starts_with('+'));
    canonical.then(|| token.parse().ok()).flatten()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_exactly_what_value_pointer_finds() {
        let doc = serde_json::json!({
            "paths": { "/a/{id}": { "get": { "x~y": [10, 11, { "": "empty" }] } } },
            "0": "zero",
        });
        for pointer in [
            "",
            "/",
            "/0",
            "/paths",
            "/paths/~1a~1{id}/get",
            "/paths/~1a~1{id}/get/x~0y/1",
            "/paths/~1a~1{id}/get/x~0y/2/",
            "/paths/~1a~1{id}/get/x~0y/01",
            "/paths/~1a~1{id}/get/x~0y/+1",
            "/paths/~1a~1{id}/get/x~0y/-1",
            "/paths/~1a~1{id}/get/x~0y/3",
            "/paths/~01a",
            "paths",
            "/missing/deeper",
        ] {
            assert_eq!(lookup(&doc, pointer), doc.pointer(pointer), "{pointer}");
        }
    }
}
