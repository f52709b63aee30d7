//! The built-in demo API: a few JSON endpoints, and one that fails the way real services do (a
//! stack trace and a `Server` header) so that masking can be seen.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Serves the demo API on `listener` forever.
pub(crate) async fn serve_demo_api(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path();
    let response = match (&parts.method, path) {
        (&Method::GET, "/health") => json(StatusCode::OK, r#"{"status":"ok"}"#.into()),
        (&Method::GET, "/api/status") => {
            json(StatusCode::OK, r#"{"status":"ok","version":"demo"}"#.into())
        }
        (&Method::GET, "/api/reports") => json(StatusCode::OK, r#"{"orders_today":2}"#.into()),
        (&Method::GET, "/api/orders") => json(
            StatusCode::OK,
            r#"[{"id":41,"item":"keyboard","qty":1},{"id":42,"item":"monitor","qty":2}]"#.into(),
        ),
        (&Method::POST, "/api/orders") => json(
            StatusCode::CREATED,
            format!(r#"{{"id":43,"received_bytes":{}}}"#, body.len()),
        ),
        (&Method::GET, p) if p.starts_with("/api/orders/") => {
            let id = &p["/api/orders/".len()..];
            match id.parse::<u32>() {
                Ok(id) => json(
                    StatusCode::OK,
                    format!(r#"{{"id":{id},"item":"monitor","qty":2}}"#),
                ),
                Err(_) => json(StatusCode::NOT_FOUND, r#"{"error":"no such order"}"#.into()),
            }
        }
        (&Method::GET, "/api/crash") => {
            let mut r = Response::new(Full::new(Bytes::from_static(
                b"Traceback (most recent call last):\n  File \"/srv/app/orders.py\", line 88, in get\n    db.query(sql)\npsycopg2.OperationalError: FATAL: password authentication failed for user \"orders\"\n",
            )));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r.headers_mut().insert(
                "server",
                HeaderValue::from_static("Werkzeug/2.0.1 Python/3.8.10"),
            );
            r.headers_mut()
                .insert("x-powered-by", HeaderValue::from_static("Flask"));
            r
        }
        _ => json(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.into()),
    };
    Ok(response)
}

fn json(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
