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
pub fn essence_of(content_type: &str) -> Cow<'_, str> {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(essence.to_ascii_lowercase())
    } else {
        Cow::Borrowed(essence)
    }
}

/// Every JSON type: `*/json` (`application/json`, `text/json`) and `*/*+json`
/// (`application/problem+json`, vendor types). The one classifier every body policy and the
/// contract compiler use, so a type one of them reads as JSON is never skipped by another.
pub fn is_json(essence: &str) -> bool {
    essence
        .split_once('/')
        .is_some_and(|(kind, sub)| !kind.is_empty() && (sub == "json" || sub.ends_with("+json")))
}

/// `application/xml`, `text/xml` and every `+xml` type.
pub fn is_xml(essence: &str) -> bool {
    matches!(essence, "application/xml" | "text/xml")
        || essence
            .split_once('/')
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
}
