//! Content types as the validation policies compare them: the essence (`type/subtype`, lower
//! case, parameters dropped), and which essences are JSON or XML.

use std::borrow::Cow;

use http::HeaderMap;
use http::header::CONTENT_TYPE;

/// The essence of the request's `Content-Type` (`application/json; charset=utf-8` →
/// `application/json`), or `None` without one (or with one that is not text).
pub fn essence(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = essence_of(value);
    (!essence.is_empty()).then_some(essence)
}

/// The essence of one `Content-Type` value: `type/subtype`, lower-cased, without parameters or
/// surrounding space. Borrowed when already lower case (almost always): no allocation per
/// request. The one parser of content types for requests, contracts and responses.
///
/// Called several times per request and response (each body policy asks), so it works on
/// bytes, and most often in one pass (`str::split` and `trim` cost ~370 instructions a call).
pub fn essence_of(content_type: &str) -> Cow<'_, str> {
    // Most often the value is its own essence (`application/json`, and every essence passed in
    // again): one pass finds that.
    if content_type.bytes().all(|b| BARE[usize::from(b)]) {
        return Cow::Borrowed(content_type);
    }
    let (before_parameters, _) = split_at_ascii(content_type, b';').unwrap_or((content_type, ""));
    let ascii_trimmed = before_parameters.trim_ascii();
    // Only a contract's own media type can hold other white space (a header value is visible
    // ASCII): trimmed as `str::trim` does, so both agree on every input.
    let essence = if ascii_trimmed.is_ascii() {
        ascii_trimmed
    } else {
        ascii_trimmed.trim()
    };
    if essence.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(essence.to_ascii_lowercase())
    } else {
        Cow::Borrowed(essence)
    }
}

/// Bytes of a content type that is its own essence: visible ASCII, not `;`, not upper case. A
/// table, since every byte of every content type is looked up (~4 instructions a byte, not 13).
const BARE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_graphic() && byte != b';' && !byte.is_ascii_uppercase();
        b += 1;
    }
    table
};

/// `text` split around the first `byte` (ASCII, so never inside a multi-byte character: both
/// halves are on character boundaries).
fn split_at_ascii(text: &str, byte: u8) -> Option<(&str, &str)> {
    debug_assert!(byte.is_ascii());
    let at = memchr::memchr(byte, text.as_bytes())?;
    Some((text.get(..at)?, text.get(at + 1..)?))
}

/// Every JSON type: `*/json` (`application/json`, `text/json`) and `*/*+json`
/// (`application/problem+json`, vendor types). The one classifier every body policy and the
/// contract compiler use, so a type one of them reads as JSON is never skipped by another.
pub fn is_json(essence: &str) -> bool {
    split_at_ascii(essence, b'/')
        .is_some_and(|(kind, sub)| !kind.is_empty() && (sub == "json" || sub.ends_with("+json")))
}

/// `application/xml`, `text/xml` and every `+xml` type.
pub fn is_xml(essence: &str) -> bool {
    matches!(essence, "application/xml" | "text/xml")
        || split_at_ascii(essence, b'/')
            .is_some_and(|(kind, sub)| !kind.is_empty() && sub.ends_with("+xml"))
}

/// Whether the body is content-coded (`Content-Encoding` other than `identity`): no body policy
/// reads compressed bytes, so such a body is refused where one must be read (RFC 7694), never
/// passed unchecked.
pub fn is_encoded(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_xml_are_recognized_by_essence_and_suffix() {
        assert!(is_json("application/json"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("+json"));
        assert!(is_json("text/json"), "ASP.NET reads text/json as JSON");
        assert!(!is_json("application/jsonp"));
        assert!(is_xml("text/xml"));
        assert!(is_xml("application/soap+xml"));
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            http::HeaderValue::from_static("Application/JSON; charset=UTF-8"),
        );
        assert_eq!(essence(&headers).as_deref(), Some("application/json"));
    }

    /// The byte-level parser against the `str` one it replaced, on content types built from the
    /// pieces that matter: separators, ASCII and Unicode white space, upper case, multi-byte
    /// characters.
    #[test]
    fn essence_agrees_with_the_str_parser_on_random_content_types() {
        fn by_str(content_type: &str) -> String {
            content_type
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        }
        let pieces = [
            "application",
            "/",
            "json",
            ";",
            " ",
            "\t",
            "charset=UTF-8",
            "Text",
            "+xml",
            "\u{a0}",
            "\u{2003}",
            "é",
            "*",
            "",
            "\u{feff}",
            ";;",
            "A",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = next() % 8;
            let text: String = (0..len)
                .map(|_| pieces[usize::try_from(next() % pieces.len() as u64).unwrap()])
                .collect();
            assert_eq!(essence_of(&text), by_str(&text), "{text:?}");
            let (kind, sub) = text.split_once('/').unwrap_or_default();
            assert_eq!(
                split_at_ascii(&text, b'/').unwrap_or_default(),
                (kind, sub),
                "{text:?}"
            );
        }
    }
}
