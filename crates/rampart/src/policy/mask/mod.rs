//! Response scrubbing: no upstream internals reach the client.
//!
//! Threat: stack traces, framework versions and internal host names in upstream error pages and
//! headers, which help an attacker pick an exploit. Invariants: headers that name software
//! (`Server`, `X-Powered-By`, ...) never leave the gateway; upstream CORS headers never leave it
//! either (the `cors` policy is the only authority); on routes that mask (the default) an upstream
//! 5xx becomes a problem document with the request id, and the original body goes to the log only,
//! read off the request path, bounded to 1 KiB and redacted (`excerpt`).

use http::HeaderMap;
use http::header::{self, HeaderName};

mod excerpt;
pub mod guard;
pub mod leak;

/// Headers that reveal the upstream's software, always removed from upstream responses.
const REVEALING: [HeaderName; 8] = [
    header::SERVER,
    HeaderName::from_static("x-powered-by"),
    HeaderName::from_static("x-aspnet-version"),
    HeaderName::from_static("x-aspnetmvc-version"),
    HeaderName::from_static("x-runtime"),
    HeaderName::from_static("x-generator"),
    HeaderName::from_static("x-backend-server"),
    HeaderName::from_static("x-envoy-upstream-service-time"),
];

fn is_scrubbed(name: &HeaderName) -> bool {
    REVEALING.contains(name) || name.as_str().starts_with("access-control-")
}

pub use excerpt::MASKED_BODY_LOG_BYTES;

/// Removes headers that reveal upstream software and the upstream's own CORS headers.
pub fn scrub_upstream_headers(headers: &mut HeaderMap) {
    // Nearly every upstream names itself in `Server`; the rest are rare, so one pass over the
    // names decides whether any hashed removal (and the list it needs) is due.
    headers.remove(header::SERVER);
    if !headers.keys().any(is_scrubbed) {
        return;
    }
    let scrubbed: Vec<HeaderName> = headers.keys().filter(|n| is_scrubbed(n)).cloned().collect();
    for name in scrubbed {
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
