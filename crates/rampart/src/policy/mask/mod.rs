//! Response scrubbing: no upstream internals reach the client.
//!
//! Threat: stack traces, framework versions and internal host names in upstream error pages and
//! headers, which help an attacker pick an exploit. Invariants: headers that name software
//! (`Server`, `X-Powered-By`, ...) never leave the gateway; upstream CORS headers never leave it
//! either (the `cors` policy is the only authority); on routes that mask (the default) an upstream
//! 5xx becomes a problem document with the request id, and the original body goes to the log only,
//! read off the request path, bounded to 1 KiB and redacted (`excerpt`).

use http::HeaderMap;
use http::header::HeaderName;

mod excerpt;
pub mod guard;
pub mod leak;

/// Headers that reveal the upstream's software, always removed from upstream responses.
const REVEALING: [&str; 8] = [
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-runtime",
    "x-generator",
    "x-backend-server",
    "x-envoy-upstream-service-time",
];

pub use excerpt::MASKED_BODY_LOG_BYTES;

/// Removes headers that reveal upstream software and the upstream's own CORS headers.
pub fn scrub_upstream_headers(headers: &mut HeaderMap) {
    for name in REVEALING {
        headers.remove(name);
    }
    let cors: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in cors {
        headers.remove(name);
    }
}

/// Whether an upstream response must be replaced by a problem document.
pub fn must_mask(route_masks: bool, status: http::StatusCode) -> bool {
    route_masks && status.is_server_error()
}

/// Logs a bounded, redacted excerpt of a masked upstream body (see `excerpt`) from a separate
/// task, so that the client's answer never waits for the upstream to finish sending it.
pub fn log_masked_body<B>(body: B, request_id: String, status: http::StatusCode)
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
{
    tokio::spawn(async move {
        let text = match excerpt::read_prefix(body).await {
            Ok((prefix, truncated)) => excerpt::excerpt(&prefix, truncated),
            Err(why) => why.to_owned(),
        };
        tracing::warn!(%request_id, status = status.as_u16(), body = %text, "masked upstream error");
    });
}

#[cfg(test)]
mod tests;
