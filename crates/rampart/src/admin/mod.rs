//! The admin listener: Prometheus `/metrics`, `/live` and `/ready`. Loopback by default; `check`
//! warns when it is not. The authenticated admin API (keys, reloads) joins it with authentication.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::body::{self, Body};
use crate::context::RequestId;
use crate::error::{self, GatewayError};
use crate::gateway::Gateway;

/// Serves the admin endpoints until `stop` is cancelled.
pub async fn serve(gateway: Arc<Gateway>, listener: TcpListener, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(route(&gateway, &req)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn route(gateway: &Gateway, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET {
        let allow = HeaderValue::from_static("GET");
        return error::into_response(
            &GatewayError::MethodNotAllowed { allow },
            RequestId::generate().as_str(),
        );
    }
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            crate::telemetry::metrics_handle().render(),
        ),
        "/live" => text(
            StatusCode::OK,
            "application/json",
            r#"{"status":"live"}"#.to_owned(),
        ),
        "/ready" if gateway.is_ready() => text(
            StatusCode::OK,
            "application/json",
            r#"{"status":"ready"}"#.to_owned(),
        ),
        "/ready" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "application/json",
            r#"{"status":"draining"}"#.to_owned(),
        ),
        _ => error::into_response(&GatewayError::RouteNotFound, RequestId::generate().as_str()),
    }
}

fn text(status: StatusCode, content_type: &'static str, body_text: String) -> Response<Body> {
    let mut response = Response::new(body::full(body_text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
