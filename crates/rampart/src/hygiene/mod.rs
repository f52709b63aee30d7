//! Transport hygiene: framing, limits and methods, checked before routing.

pub mod h1_guard;

use http::Method;

use crate::config::LimitsConfig;
use crate::error::GatewayError;

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
    if req.headers.get_all(http::header::HOST).iter().count() > 1 {
        return Err(GatewayError::MalformedRequest("multiple Host headers"));
    }
    Ok(())
}
