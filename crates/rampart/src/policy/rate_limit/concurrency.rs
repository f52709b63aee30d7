//! Concurrency limits: at most `max_in_flight` requests of a route at the upstream at once; more
//! get 503 with `Retry-After` at once instead of piling up.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::Semaphore;

use crate::context::RequestCtx;
use crate::error::GatewayError;
use crate::pipeline::{Flow, Policy, Stage};

pub struct ConcurrencyLimit {
    permits: Arc<Semaphore>,
}

impl ConcurrencyLimit {
    /// `permits` comes from `RateLimitState::slots`, so requests in flight are still counted
    /// after a reload.
    pub fn new(permits: Arc<Semaphore>) -> Self {
        Self { permits }
    }
}

impl Policy for ConcurrencyLimit {
    fn name(&self) -> &'static str {
        "concurrency"
    }

    fn stage(&self) -> Stage {
        Stage::UpstreamRequest
    }

    fn on_request<'a>(
        &'a self,
        _req: &'a mut http::request::Parts,
        cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<Flow, GatewayError>> {
        Box::pin(async move {
            // Held by the request context until the request is done.
            let permit =
                self.permits
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| GatewayError::Overloaded {
                        reason: "route concurrency limit reached",
                    })?;
            cx.in_flight = Some(permit);
            Ok(Flow::Continue)
        })
    }
}
