//! Sanitization of the fields a route's config names (`sanitize = [{ pointer = "/comment" }]`), on
//! JSON bodies, with or without a contract. Runs at `Stage::ValidateBody`, after the JSON
//! threat limits and the contract's body check, so it only ever cleans a body that is otherwise
//! acceptable.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::apply;
use super::config::OnUnsafe;
use super::field_path::FieldPath;
use super::html::HtmlSanitizer;
use crate::context::RequestCtx;
use crate::error::{GatewayError, Invalid};
use crate::pipeline::{BodyView, Flow, Policy, Stage};
use crate::policy::validate::media;

/// The configured fields of one route and the shared allow-list.
pub struct SanitizeFields {
    fields: Vec<(FieldPath, OnUnsafe)>,
    sanitizer: Arc<HtmlSanitizer>,
}

impl SanitizeFields {
    pub fn new(fields: Vec<(FieldPath, OnUnsafe)>, sanitizer: Arc<HtmlSanitizer>) -> Self {
        Self { fields, sanitizer }
    }
}

impl Policy for SanitizeFields {
    fn name(&self) -> &'static str {
        "sanitize"
    }

    fn stage(&self) -> Stage {
        Stage::ValidateBody
    }

    fn on_request<'a>(
        &'a self,
        _req: &'a mut http::request::Parts,
        _cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<Flow, GatewayError>> {
        Box::pin(std::future::ready(Ok(Flow::Continue)))
    }

    /// Every body is read: one this policy cannot clean (not JSON, or content-coded) is
    /// refused rather than passed, since the upstream may parse it as JSON all the same.
    fn reads_body(&self, _req: &http::request::Parts, cx: &RequestCtx) -> bool {
        cx.body_present
    }

    fn on_body<'a>(
        &'a self,
        req: &'a http::request::Parts,
        body: &'a mut BodyView,
        cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        let json = media::essence(&req.headers).is_some_and(|e| media::is_json(&e));
        let cleaned = if !json {
            Err(GatewayError::UnsupportedMediaType(
                "a route with sanitized fields takes JSON bodies only",
            ))
        } else if media::is_encoded(&req.headers) {
            Err(GatewayError::UnsupportedMediaType("content-coded body"))
        } else {
            self.clean(body, cx)
        };
        Box::pin(std::future::ready(cleaned))
    }
}

impl SanitizeFields {
    fn clean(&self, body: &mut BodyView, cx: &mut RequestCtx) -> Result<(), GatewayError> {
        let refuse = |violation| {
            GatewayError::RequestInvalid(Box::new(Invalid {
                status: http::StatusCode::BAD_REQUEST,
                operation: cx.validation.operation.clone(),
                violations: vec![violation],
            }))
        };
        let value = body.json().map_err(refuse)?;
        let fields = self.fields.iter().map(|(path, on)| (path, *on));
        match apply::apply(value, fields, &self.sanitizer) {
            Ok(applied) => {
                cx.validation.sanitized += u32::try_from(applied.removed).unwrap_or(u32::MAX);
                // Any rewritten field is re-serialized, counted as a removal or not (see
                // `Applied::rewritten`): the raw bytes of a rewritten field never go on.
                if applied.rewritten > 0 {
                    body.mark_json_changed();
                }
                Ok(())
            }
            Err(violation) => {
                cx.validation.violations.push(violation.pointer.clone());
                Err(refuse(violation))
            }
        }
    }
}
