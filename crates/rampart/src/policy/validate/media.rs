//! Content types as the validation policies compare them: the essence (`type/subtype`, lower
//! case, parameters dropped), and which essences are JSON or XML.

use http::HeaderMap;
use http::header::CONTENT_TYPE;

/// The essence of the request's `Content-Type` (`application/json; charset=utf-8` →
/// `application/json`), or `None` without one (or with one that is not text).
pub fn essence(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim();
    (!essence.is_empty()).then(|| essence.to_ascii_lowercase())
}

/// `application/json` and every `+json` type (`application/problem+json`, vendor types).
pub fn is_json(essence: &str) -> bool {
    essence == "application/json" || (essence.ends_with("+json") && essence.contains('/'))
}

/// `application/xml`, `text/xml` and every `+xml` type.
pub fn is_xml(essence: &str) -> bool {
    matches!(essence, "application/xml" | "text/xml")
        || (essence.ends_with("+xml") && essence.contains('/'))
}

/// Whether the request announces a body (a length above zero, or chunked).
pub fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
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
