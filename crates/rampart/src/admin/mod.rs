//! The admin listener (loopback by default): Prometheus `/metrics`, `/live`, `/ready`, and, when
//! `admin.token_sha256` is set, the admin API under `/v1`.
//!
//! Threat: anyone who reaches the admin port minting keys or reloading config. Invariants: every
//! `/v1` call needs `Authorization: Bearer <admin token>`; only the token's SHA-256 is configured
//! (a 256-bit random token needs no slow hash) and it is compared in constant time; the admin API
//! never accepts data-plane credentials; every `/v1` call, refused ones included, is written to
//! the audit log on the `admin` listener with the client's real peer address; a key's plaintext is returned once, at creation or
//! rotation, and never again.

pub mod api;
mod blocks;
mod certificates;
mod revocations;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body as AxumBody;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::context::RequestId;
use crate::error::{self, GatewayError};
use crate::gateway::Gateway;

/// Serves the admin endpoints until `stop` is cancelled.
pub async fn serve(gateway: Arc<Gateway>, listener: TcpListener, stop: CancellationToken) {
    // The peer address goes into each request, so that the audit names the real admin client.
    let app = router(gateway).into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "admin listener failed");
    }
}

/// The admin application.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/live", get(live))
        .route("/ready", get(ready))
        .merge(api::routes(gateway.clone()))
        .fallback(not_found)
        .with_state(gateway)
}

async fn metrics() -> Response {
    text(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        crate::telemetry::metrics_handle().render(),
    )
}

async fn live() -> Response {
    text(
        StatusCode::OK,
        "application/json",
        r#"{"status":"live"}"#.to_owned(),
    )
}

async fn ready(axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>) -> Response {
    if gateway.is_ready() {
        text(
            StatusCode::OK,
            "application/json",
            r#"{"status":"ready"}"#.to_owned(),
        )
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "application/json",
            r#"{"status":"draining"}"#.to_owned(),
        )
    }
}

async fn not_found() -> Result<Response, Infallible> {
    Ok(problem(&GatewayError::RouteNotFound))
}

/// An error as a problem document (the one mapping in `error`).
pub(crate) fn problem(err: &GatewayError) -> Response {
    error::into_response(err, RequestId::generate().as_str()).map(AxumBody::new)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
