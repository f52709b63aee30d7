//! The request pipeline. The order of the stages is a security property, so it is written once,
//! here, and `Pipeline::new` refuses policies out of order.
//!
//! Request path, outer to inner (`service::handle` runs it):
//!  1. request id and span: a valid incoming `X-Request-Id` is kept, otherwise one is generated;
//!  2. audit: the audit body records the final status, bytes and latency when the response ends;
//!  3. error mapping and panic catching: `error::into_response` is the one place an error becomes
//!     a response, and a panic anywhere below becomes a 500 problem;
//!  4. transport limits and hygiene: framing (the HTTP/1 guard, before hyper), refused methods,
//!     URI length, header count, path normalization, body size (cheap checks first);
//!  5. routing: host, normalized path and method; no route is a 404, never a proxied request;
//!  6. CORS preflight, answered here without credentials and without reaching the upstream;
//!  7. request validation (OpenAPI, JSON/XML limits, sanitization: later issues);
//!  8. rate limits keyed by client address, route or header, before any cryptography;
//!  9. authentication sets the principal (JWT, introspection, API key, mTLS, Basic; DPoP and
//!     certificate binding; the revocation list);
//! 10. rate limits keyed by principal, key, client or claim; quotas;
//! 11. authorization (scopes, roles, RBAC permissions, claims);
//! 12. upstream request policy: hop-by-hop headers stripped, `X-Forwarded-*` and the request id
//!     set, client-supplied copies replaced unless the peer is a trusted proxy;
//! 13. proxy to the upstream.
//!
//! Response path, inner to outer: upstream header scrubbing and 5xx masking, security headers,
//! CORS headers, audit.

pub mod build;
pub mod service;

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::body::Body;
use crate::context::RequestCtx;
use crate::error::GatewayError;

/// Where a policy runs. The derive order is the pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Cors,
    Validate,
    RateLimitByAddress,
    Authenticate,
    RateLimitByPrincipal,
    Authorize,
    UpstreamRequest,
}

/// What a policy decided about a request that it did not refuse.
pub enum Flow {
    /// Go on to the next stage.
    Continue,
    /// Answer now with this response (e.g. a CORS preflight); the upstream is not called.
    Respond(http::Response<Body>),
}

/// One security practice applied to the requests of a route. A refusal is an `Err`: policies never
/// build error responses themselves.
pub trait Policy: Send + Sync + 'static {
    /// Name used in configuration, audit and metrics.
    fn name(&self) -> &'static str;
    /// Place in the pipeline.
    fn stage(&self) -> Stage;
    fn on_request<'a>(
        &'a self,
        req: &'a mut http::request::Parts,
        cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<Flow, GatewayError>>;
    /// Adjusts the response on its way out (inner policies first).
    fn on_response(&self, _rsp: &mut http::response::Parts, _cx: &RequestCtx) {}
}

/// The policies of one route, in stage order.
#[derive(Clone, Default)]
pub struct Pipeline {
    policies: Vec<Arc<dyn Policy>>,
}

impl Pipeline {
    /// Sorts the policies by stage; the sort is stable so that two policies of one stage keep the
    /// order in which the route declares them.
    pub fn new(mut policies: Vec<Arc<dyn Policy>>) -> Self {
        policies.sort_by_key(|p| p.stage());
        Self { policies }
    }

    pub fn stages(&self) -> impl Iterator<Item = (Stage, &'static str)> + '_ {
        self.policies.iter().map(|p| (p.stage(), p.name()))
    }

    /// Runs the request side in order; stops at the first refusal or early response.
    pub async fn on_request(
        &self,
        req: &mut http::request::Parts,
        cx: &mut RequestCtx,
    ) -> Result<Flow, GatewayError> {
        for policy in &self.policies {
            if let Flow::Respond(rsp) = policy.on_request(req, cx).await? {
                return Ok(Flow::Respond(rsp));
            }
        }
        Ok(Flow::Continue)
    }

    /// Runs the response side, innermost policy first.
    pub fn on_response(&self, rsp: &mut http::response::Parts, cx: &RequestCtx) {
        for policy in self.policies.iter().rev() {
            policy.on_response(rsp, cx);
        }
    }
}
