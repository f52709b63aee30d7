//! The JSON threat limits as a policy: on every route, a body that announces itself as
//! JSON is read whole (bounded by the route's body limit) and checked by `json_limits` before any
//! other body policy parses it. A route that validates nothing else still streams its other
//! bodies (uploads, octet streams) unbuffered.

use futures_util::future::BoxFuture;

use super::json_limits::{self, JsonLimits};
use super::media;
use crate::context::RequestCtx;
use crate::error::{GatewayError, Invalid};
use crate::pipeline::{BodyView, Policy, Stage};

/// The limits every JSON body of a route must respect.
pub struct ThreatLimits {
    json: JsonLimits,
    keep_value: bool,
}

impl ThreatLimits {
    /// `keep_value`: a later policy of the route reads the JSON (a contract, sanitized fields),
    /// so the value is built while it is checked and handed on, and the body is parsed once.
    pub fn new(json: JsonLimits, keep_value: bool) -> Self {
        Self { json, keep_value }
    }
}

impl Policy for ThreatLimits {
    fn name(&self) -> &'static str {
        "threat_limits"
    }

    fn stage(&self) -> Stage {
        Stage::ValidateBody
    }

    fn reads_body(&self, req: &http::request::Parts, cx: &RequestCtx) -> bool {
        self.json.enabled
            && cx.body_present
            && media::essence(&req.headers).is_some_and(|e| media::is_json(&e))
    }

    fn on_body<'a>(
        &'a self,
        req: &'a http::request::Parts,
        body: &'a mut BodyView,
        _cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        if media::is_encoded(&req.headers) {
            // The limits count what the upstream will parse: compressed bytes would hide a bomb.
            let refused = GatewayError::UnsupportedMediaType("content-coded JSON body");
            return Box::pin(std::future::ready(Err(refused)));
        }
        let checked = if self.keep_value {
            json_limits::parse(body.bytes(), &self.json).map(|value| body.set_json(value))
        } else {
            json_limits::check(body.bytes(), &self.json)
        };
        let checked = checked.map_err(|violation| {
            GatewayError::RequestInvalid(Box::new(Invalid {
                status: http::StatusCode::BAD_REQUEST,
                operation: None,
                violations: vec![violation],
            }))
        });
        Box::pin(std::future::ready(checked))
    }
}
