//! The request pipeline. The order of the stages is a security property, so it is written once,
//! as data (`order`), with each stage's reason on the `Stage` variant; `service::handle` runs the
//! stages in that order and `Pipeline::new` places each route's policies by it. `build` turns a
//! route's config into its policies; `docs/pipeline.md` draws the order and explains it (a test
//! keeps the drawing and `order` the same).

pub mod build;
pub mod order;
pub mod service;
pub mod validation;
mod view;

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::body::Body;
use crate::context::RequestCtx;

use crate::error::GatewayError;
pub use crate::stage::Stage;
pub use view::BodyView;

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
    /// The check on the request's head. Policies that only read bodies or responses keep the
    /// default, which lets every request through.
    fn on_request<'a>(
        &'a self,
        _req: &'a mut http::request::Parts,
        _cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<Flow, GatewayError>> {
        Box::pin(std::future::ready(Ok(Flow::Continue)))
    }
    /// Whether this policy reads this request's body (decided from the head, e.g. its content
    /// type). A request's body is read whole (up to the route's limit) only when a policy of its
    /// route reads it; otherwise it streams to the upstream unbuffered.
    fn reads_body(&self, _req: &http::request::Parts, _cx: &RequestCtx) -> bool {
        false
    }
    /// Checks, and may change, the whole request body (only called when `reads_body` said so).
    fn on_body<'a>(
        &'a self,
        _req: &'a http::request::Parts,
        _body: &'a mut BodyView,
        _cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(std::future::ready(Ok(())))
    }
    /// Checks the upstream response's head (its status, its content type) before any body is
    /// read; `request_method` is the client's. An `Err` replaces the response with a masked
    /// error.
    fn on_response_head(
        &self,
        _rsp: &http::response::Parts,
        _request_method: &http::Method,
        _cx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        Ok(())
    }
    /// Whether this policy reads this response's body (from its head and the request's context).
    fn reads_response_body(&self, _rsp: &http::response::Parts, _cx: &RequestCtx) -> bool {
        false
    }
    /// Checks, and may change, the whole upstream response body (bounded; only called when
    /// `reads_response_body` said so). An `Err` replaces the response with a masked error.
    fn on_response_body(
        &self,
        _rsp: &mut http::response::Parts,
        _body: &mut BodyView,
        _cx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        Ok(())
    }
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
    /// order in which the route declares them. A policy can only sit at a policy stage.
    pub fn new(mut policies: Vec<Arc<dyn Policy>>) -> Self {
        policies.sort_by_key(|p| order::position(p.stage()));
        debug_assert!(
            policies
                .iter()
                .all(|p| order::POLICY_STAGES.contains(&p.stage())),
            "a policy declared a stage that is not a policy stage"
        );
        Self { policies }
    }

    pub fn stages(&self) -> impl Iterator<Item = (Stage, &'static str)> + '_ {
        self.policies.iter().map(|p| (p.stage(), p.name()))
    }

    /// Runs the policies of the stages before the body is read (up to authorization), in order;
    /// stops at the first refusal or early response.
    pub async fn before_body(
        &self,
        req: &mut http::request::Parts,
        cx: &mut RequestCtx,
    ) -> Result<Flow, GatewayError> {
        self.run(req, cx, |stage| stage < Stage::Body).await
    }

    /// Whether any policy reads this request's body (then it is read whole, bounded).
    pub fn reads_body(&self, req: &http::request::Parts, cx: &RequestCtx) -> bool {
        self.policies.iter().any(|p| p.reads_body(req, cx))
    }

    /// Runs the body policies that read this body, in stage order.
    pub async fn on_body(
        &self,
        req: &http::request::Parts,
        body: &mut BodyView,
        cx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        for policy in &self.policies {
            if policy.reads_body(req, cx) {
                cx.enter(policy.stage());
                policy.on_body(req, body, cx).await?;
            }
        }
        Ok(())
    }

    /// Runs every policy's response head check, innermost first.
    pub fn on_response_head(
        &self,
        rsp: &http::response::Parts,
        request_method: &http::Method,
        cx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        cx.enter(Stage::ValidateResponse);
        for policy in self.policies.iter().rev() {
            policy.on_response_head(rsp, request_method, cx)?;
        }
        Ok(())
    }

    /// Whether any policy reads this response's body.
    pub fn reads_response_body(&self, rsp: &http::response::Parts, cx: &RequestCtx) -> bool {
        self.policies.iter().any(|p| p.reads_response_body(rsp, cx))
    }

    /// Runs the response-body policies that read this body, innermost first.
    pub fn on_response_body(
        &self,
        rsp: &mut http::response::Parts,
        body: &mut BodyView,
        cx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        for policy in self.policies.iter().rev() {
            if policy.reads_response_body(rsp, cx) {
                policy.on_response_body(rsp, body, cx)?;
            }
        }
        Ok(())
    }

    /// Runs the policies of the stages after the body is read (the upstream request policy and
    /// the concurrency limit, so that a slow body never holds a slot).
    pub async fn after_body(
        &self,
        req: &mut http::request::Parts,
        cx: &mut RequestCtx,
    ) -> Result<Flow, GatewayError> {
        self.run(req, cx, |stage| stage > Stage::ValidateBody).await
    }

    async fn run(
        &self,
        req: &mut http::request::Parts,
        cx: &mut RequestCtx,
        at: impl Fn(Stage) -> bool,
    ) -> Result<Flow, GatewayError> {
        for policy in self.policies.iter().filter(|p| at(p.stage())) {
            // Response-side policies sit in this list too; their request hook does nothing.
            if policy.stage() < Stage::Proxy {
                cx.enter(policy.stage());
            }
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
