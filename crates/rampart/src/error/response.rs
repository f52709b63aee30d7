//! The one place where an error becomes a response: an RFC 9457 problem document with the public
//! status, code and title, the request id and the error's own headers, never internal detail.

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderValue};

use super::{GatewayError, Problem, violation};
use crate::body::Body;

/// Serializes the RFC 9457 body for `err`.
pub fn problem_body(err: &GatewayError, request_id: &str) -> Bytes {
    let code = err.public_code();
    let kind = format!("urn:rampart:problem:{code}");
    let problem = Problem {
        kind: &kind,
        title: err.title(),
        status: err.status().as_u16(),
        code,
        request_id,
        errors: err
            .violations()
            .map(|all| all.iter().map(violation::Violation::shown).collect()),
    };
    // Serializing a struct of strings and a u16 cannot fail; fall back to an empty object anyway
    // rather than panic on the error path.
    Bytes::from(serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec()))
}

/// The one function that turns an error into a response. Security headers are added afterwards by
/// the response stage, like on every other response.
pub fn into_response(err: &GatewayError, request_id: &str) -> http::Response<Body> {
    let body = problem_body(err, request_id);
    let mut rsp = http::Response::new(crate::body::full(body));
    *rsp.status_mut() = err.status();
    let headers = rsp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    err.extra_headers(headers);
    rsp
}

/// The same response as raw HTTP/1.1 bytes, for the framing guard that answers before hyper has
/// parsed anything. `headers` are the listener's default security headers.
pub fn into_raw_http1(err: &GatewayError, request_id: &str, headers: &HeaderMap) -> Vec<u8> {
    let body = problem_body(err, request_id);
    let rsp = into_response(err, request_id);
    let status = rsp.status();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Error").as_bytes());
    out.extend_from_slice(b"\r\n");
    let write = |out: &mut Vec<u8>, name: &str, value: &[u8]| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    // The guard always closes the connection after its answer; `connection` is written once below.
    let all = rsp.headers().iter().chain(headers.iter());
    for (name, value) in all.filter(|(name, _)| *name != CONNECTION) {
        write(&mut out, name.as_str(), value.as_bytes());
    }
    write(&mut out, "x-request-id", request_id.as_bytes());
    write(&mut out, "connection", b"close");
    write(
        &mut out,
        "content-length",
        body.len().to_string().as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}
