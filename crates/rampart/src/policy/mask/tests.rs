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

// Header scrubbing.

#[test]
fn software_names_and_upstream_cors_headers_are_scrubbed_and_the_rest_kept() {
    let mut h = HeaderMap::new();
    for name in [
        "server",
        "x-powered-by",
        "x-envoy-upstream-service-time",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "content-type",
        "x-kept",
    ] {
        h.insert(HeaderName::from_static(name), HeaderValue::from_static("v"));
    }
    scrub_upstream_headers(&mut h);
    let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
    left.sort_unstable();
    assert_eq!(left, ["content-type", "x-kept"]);
}

#[test]
fn a_response_naming_only_its_server_loses_only_that() {
    let mut h = HeaderMap::new();
    h.insert(header::SERVER, HeaderValue::from_static("nginx/1.22"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    scrub_upstream_headers(&mut h);
    assert_eq!(h.len(), 1);
    assert!(h.contains_key(header::CONTENT_TYPE));
}
