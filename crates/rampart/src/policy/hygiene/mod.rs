//! Transport hygiene: framing, limits and methods, checked before routing.
//!
//! Threat: input the upstream or another proxy reads differently, or that costs memory out of
//! proportion. Invariants: the request target is measured against `max_uri_bytes` and the header
//! section against `max_header_bytes` separately, on HTTP/1 (the framing guard) and HTTP/2 (here)
//! alike, so each limit answers with its own status (414, 431). hyper's own HTTP/2 header-list
//! limit is set above ours (`h2_header_list_ceiling`) so that our problem document, audited and
//! counted, is what a client over the configured limit gets, not hyper's bare 431.

pub mod body;

use http::Method;

use crate::config::LimitsConfig;
use crate::error::GatewayError;

/// Bytes counted per header field beside name and value: `": "` and CRLF, as written on HTTP/1,
/// so that `max_header_bytes` means the same on both protocols.
const FIELD_OVERHEAD: usize = 4;

/// Request-level checks that apply to HTTP/1 and HTTP/2 alike (the framing guard has already
/// enforced the byte-level ones on HTTP/1).
pub fn check_request(
    req: &http::request::Parts,
    limits: &LimitsConfig,
    refused: &[Method],
) -> Result<(), GatewayError> {
    if refused.contains(&req.method) {
        // The route's `Allow` is filled in by the caller, which knows the routes.
        return Err(GatewayError::MethodRefused {
            method: req.method.clone(),
            allow: None,
        });
    }
    let target_len = req.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > limits.max_uri_bytes {
        return Err(GatewayError::UriTooLong {
            limit: limits.max_uri_bytes,
        });
    }
    if req.headers.len() > limits.max_headers {
        return Err(GatewayError::HeadersTooLarge("too many headers"));
    }
    if req.version == http::Version::HTTP_2 {
        check_h2_fields(req, limits)?;
    }
    if req.headers.get_all(http::header::HOST).iter().count() > 1 {
        return Err(GatewayError::MalformedRequest("multiple Host headers"));
    }
    // `Content-Type` is a singleton (RFC 9110 section 8.3): with two, a checker that reads the
    // first and an upstream that reads the last would parse the body differently.
    if req
        .headers
        .get_all(http::header::CONTENT_TYPE)
        .iter()
        .count()
        > 1
    {
        return Err(GatewayError::MalformedRequest(
            "multiple Content-Type headers",
        ));
    }
    Ok(())
}

/// HTTP/2 field rules the h2 crate leaves to us: the configured header-section size, and no
/// leading or trailing whitespace in a value (RFC 9113 section 8.2.1: such a request is malformed;
/// an HTTP/1 upstream would trim it and read another value than a checker that did not).
fn check_h2_fields(req: &http::request::Parts, limits: &LimitsConfig) -> Result<(), GatewayError> {
    let authority = req.uri.authority().map_or(0, |a| a.as_str().len());
    let mut size = authority;
    for (name, value) in &req.headers {
        let bytes = value.as_bytes();
        if bytes.first().is_some_and(is_ws) || bytes.last().is_some_and(is_ws) {
            return Err(GatewayError::MalformedRequest(
                "HTTP/2 header value with leading or trailing whitespace",
            ));
        }
        size = size.saturating_add(name.as_str().len() + bytes.len() + FIELD_OVERHEAD);
    }
    if size > limits.max_header_bytes {
        return Err(GatewayError::HeadersTooLarge("request head too large"));
    }
    Ok(())
}

fn is_ws(b: &u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// The HTTP/2 header-list size hyper is told to accept (SETTINGS_MAX_HEADER_LIST_SIZE): twice our
/// own limits plus the per-field overhead of RFC 9113, so that a list over the configured limit
/// reaches `check_request` and gets our 431 or 414. Only a list beyond this ceiling is refused by
/// the h2 crate itself (a bare 431), which bounds the memory one stream can hold.
pub fn h2_header_list_ceiling(limits: &LimitsConfig) -> u32 {
    let fields = limits.max_headers.saturating_add(8).saturating_mul(32);
    let ceiling = limits
        .max_header_bytes
        .saturating_add(limits.max_uri_bytes)
        .saturating_mul(2)
        .saturating_add(fields);
    u32::try_from(ceiling).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
