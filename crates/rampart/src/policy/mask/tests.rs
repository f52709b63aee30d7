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

// What the leak scan reads of a response head.

fn shape(headers: &[(&'static str, &'static str)]) -> guard::TextShape {
    let mut response = http::Response::new(());
    for (name, value) in headers {
        response.headers_mut().append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    guard::TextShape::of(&response.into_parts().0)
}

#[test]
fn a_short_json_response_is_scanned_whole() {
    let json = shape(&[
        ("content-type", "application/json"),
        ("content-length", "50"),
    ]);
    assert!(json.scannable() && json.bufferable && !json.unreadable_text());
}

#[test]
fn a_compressed_text_response_is_unreadable_and_not_scanned() {
    let gzipped = shape(&[("content-type", "text/html"), ("content-encoding", "gzip")]);
    assert!(gzipped.unreadable_text() && !gzipped.scannable());
    let identity = shape(&[
        ("content-type", "text/html"),
        ("content-encoding", "Identity"),
    ]);
    assert!(identity.scannable() && !identity.unreadable_text());
}

#[test]
fn binary_and_declared_empty_responses_are_not_scanned() {
    for headers in [
        &[("content-type", "image/png")][..],
        &[
            ("content-type", "application/octet-stream"),
            ("content-encoding", "gzip"),
        ],
        &[
            ("content-type", "application/json"),
            ("content-length", "0"),
        ],
    ] {
        let shape = shape(headers);
        assert!(
            !shape.scannable() && !shape.unreadable_text(),
            "{headers:?}"
        );
    }
}

#[test]
fn long_or_streamed_text_is_scanned_as_it_passes() {
    let long = shape(&[("content-type", "text/plain"), ("content-length", "65537")]);
    assert!(long.scannable() && !long.bufferable);
    let events = shape(&[("content-type", "text/event-stream")]);
    assert!(events.scannable() && !events.bufferable);
    // A document of undeclared length is held (up to the buffer), and so is an untyped body
    // with a declared short length; an untyped body of unknown length streams.
    let document = shape(&[("content-type", "application/problem+json; charset=utf-8")]);
    assert!(document.scannable() && document.bufferable);
    let untyped = shape(&[("content-length", "10")]);
    assert!(untyped.scannable() && untyped.bufferable);
    assert!(!shape(&[]).bufferable && shape(&[]).scannable());
}
