use super::*;
use http::HeaderValue;

#[test]
fn revealing_and_cors_headers_are_removed() {
    let mut h = HeaderMap::new();
    h.insert("server", HeaderValue::from_static("Apache/2.4.1 (Unix)"));
    h.insert("x-powered-by", HeaderValue::from_static("PHP/5.4"));
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert("content-type", HeaderValue::from_static("application/json"));
    scrub_upstream_headers(&mut h);
    assert_eq!(h.len(), 1);
    assert!(h.contains_key("content-type"));
}

#[test]
fn only_server_errors_are_masked() {
    assert!(must_mask(true, http::StatusCode::INTERNAL_SERVER_ERROR));
    assert!(!must_mask(true, http::StatusCode::NOT_FOUND));
    assert!(!must_mask(false, http::StatusCode::BAD_GATEWAY));
}
