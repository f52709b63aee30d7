//! The upstream request policy: what the upstream receives, set last, once every check passed.
//!
//! Threats: request smuggling through hop-by-hop headers; clients forging `X-Forwarded-*` or
//! identity headers (`X-Rampart-Subject: admin`) that upstreams trust; credentials the gateway has
//! consumed leaking to upstreams. Invariants, on every route, public ones included:
//! - hop-by-hop headers (RFC 9110 section 7.6.1, and any named in `Connection`) never reach the
//!   upstream;
//! - `X-Forwarded-*` and `Forwarded` from a peer outside `trusted_proxies` are replaced, not
//!   appended to, and the request id is set;
//! - the credential headers the route consumed (`Authorization`, `DPoP`, the API-key header) are
//!   removed unless the route forwards credentials;
//! - the configured identity headers are removed from the client's request, then set from the
//!   verified principal and client certificate only.

pub mod config;
pub mod forwarded;
pub mod identity;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::HeaderName;
use ipnet::IpNet;

pub use config::IdentityHeadersConfig;
pub use forwarded::{X_REQUEST_ID, strip_hop_by_hop};
pub use identity::IdentityHeaders;

use crate::context::RequestCtx;
use crate::error::GatewayError;
use crate::pipeline::{Flow, Policy, Stage};

/// The upstream request policy of one route.
pub struct UpstreamRequest {
    trusted_proxies: Arc<[IpNet]>,
    preserve_host: bool,
    /// Credential headers removed before forwarding (the gateway has consumed them).
    strip_credentials: Vec<HeaderName>,
    identity: Arc<IdentityHeaders>,
}

impl UpstreamRequest {
    pub fn new(
        trusted_proxies: Arc<[IpNet]>,
        preserve_host: bool,
        strip_credentials: Vec<HeaderName>,
        identity: Arc<IdentityHeaders>,
    ) -> Self {
        Self {
            trusted_proxies,
            preserve_host,
            strip_credentials,
            identity,
        }
    }

    /// Rewrites the request headers for the upstream.
    pub fn apply(&self, headers: &mut http::HeaderMap, cx: &RequestCtx) {
        forwarded::prepare(headers, cx, &self.trusted_proxies, self.preserve_host);
        for name in &self.strip_credentials {
            headers.remove(name);
        }
        self.identity.apply(
            headers,
            cx.principal.as_deref(),
            cx.conn.client_cert.as_deref(),
        );
    }
}

impl Policy for UpstreamRequest {
    fn name(&self) -> &'static str {
        "upstream_request"
    }

    fn stage(&self) -> Stage {
        Stage::UpstreamRequest
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut http::request::Parts,
        cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<Flow, GatewayError>> {
        self.apply(&mut req.headers, cx);
        Box::pin(std::future::ready(Ok(Flow::Continue)))
    }
}

#[cfg(test)]
mod tests;
