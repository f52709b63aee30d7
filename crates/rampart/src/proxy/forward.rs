//! Sending a request to an upstream target and classifying the outcome.
//!
//! Invariant: only the upstream's own failures (connection errors, its timeouts, 502/503/504)
//! count against its passive health. A failure of the client's body (too slow, broken) and a
//! timeout while the gateway was waiting on the client's body are the client's fault.

use tokio::time::Instant;

use super::pool::{SendError, UpstreamBody};
use super::upstream::{Outcome, Upstream};
use crate::context::RequestCtx;
use crate::error::GatewayError;
use crate::policy::hygiene::body::{self, RequestBody};

/// Sends the request to the next healthy target; records health and upstream latency.
pub async fn forward(
    upstream: &Upstream,
    mut parts: http::request::Parts,
    body: RequestBody,
    cx: &mut RequestCtx,
) -> Result<http::Response<UpstreamBody>, GatewayError> {
    let target = upstream.pick().ok_or(GatewayError::UpstreamUnavailable)?;
    // The normalized path, as the policies saw it, in origin form. The client's URI already is
    // that when normalizing changed nothing (nearly always): it is kept rather than parsed again.
    if parts.uri.authority().is_some() || parts.uri.path() != cx.path {
        parts.uri = match parts.uri.query() {
            Some(query) => http::Uri::try_from(format!("{}?{query}", cx.path)),
            None => http::Uri::try_from(cx.path.as_str()),
        }
        .map_err(|e| GatewayError::Internal(format!("upstream URI: {e}")))?;
    }
    let started = Instant::now();
    let in_flight = crate::telemetry::Held::enter(&upstream.in_flight);
    let request = http::Request::from_parts(parts, body.body);
    let sent = upstream
        .send(target, request, started + upstream.request_timeout)
        .await;
    drop(in_flight);
    let elapsed = started.elapsed();
    target.latency.record(elapsed.as_secs_f64());
    cx.upstream = Some((target.label.clone(), elapsed));
    match sent {
        Err(SendError::Timeout)
            if body
                .progress
                .as_ref()
                .is_some_and(|p| p.waiting_on_client()) =>
        {
            Err(GatewayError::ClientBodyTimeout(
                "the upstream timed out waiting for the client's body".into(),
            ))
        }
        Err(SendError::Timeout) => {
            upstream.record(target, Outcome::Failure);
            crate::telemetry::upstream_error(&upstream.name, "timeout");
            Err(GatewayError::UpstreamTimeout {
                timeout_ms: u64::try_from(upstream.request_timeout.as_millis()).unwrap_or(u64::MAX),
            })
        }
        Err(e) => Err(classify_failure(upstream, target, &e)),
        Ok(response) => {
            // A proxying upstream answers 502-504 when *our client* was too slow with its body:
            // that is not the target's failure either.
            let client_incomplete = body.progress.as_ref().is_some_and(|p| !p.is_complete());
            let failed = matches!(response.status().as_u16(), 502..=504) && !client_incomplete;
            upstream.record(
                target,
                if failed {
                    Outcome::Failure
                } else {
                    Outcome::Success
                },
            );
            Ok(response)
        }
    }
}

/// A failure caused by the client's body (too large, client gone) is not the target's fault.
fn classify_failure(
    upstream: &Upstream,
    target: &super::upstream::Target,
    error: &SendError,
) -> GatewayError {
    if let Some(client_fault) = body::client_body_error(error) {
        return client_fault;
    }
    upstream.record(target, Outcome::Failure);
    let kind = if error.is_connect() {
        "connect"
    } else {
        "request"
    };
    crate::telemetry::upstream_error(&upstream.name, kind);
    GatewayError::UpstreamFailed(format!("{kind}: {}", chain(error)))
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
