//! The built-in demo API: a few JSON endpoints, and one that fails the way real services do (a
//! stack trace and a `Server` header) so that masking can be seen.
//!
//! Its order documents carry two internal fields (`supplier_id`, `internal_cost`) that its
//! contract (`openapi.yaml`) does not declare, the way a real service leaks its storage model:
//! the gateway strips them from every response. With `RAMPART_DEMO_REQUEST_LOG=<file>` it
//! appends every request it receives to that file as one JSON line (method, path, query, content
//! type, body), so that a test can prove what reached it (`scripts/schemathesis`).

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The variable naming the file every received request is appended to.
pub(crate) const REQUEST_LOG_ENV: &str = "RAMPART_DEMO_REQUEST_LOG";

/// Where received requests are logged, when asked for.
type RequestLog = Option<Arc<Mutex<std::fs::File>>>;

/// Serves the demo API on `listener` forever.
pub(crate) async fn serve_demo_api(listener: TcpListener) {
    let log = open_request_log();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let log = log.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, log.clone()));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn open_request_log() -> RequestLog {
    let path = std::env::var_os(REQUEST_LOG_ENV)?;
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(file) => Some(Arc::new(Mutex::new(file))),
        Err(e) => {
            // The demo still runs; whoever asked for the log sees it is missing.
            eprintln!(
                "warning: {REQUEST_LOG_ENV}: cannot open {}: {e}",
                std::path::Path::new(&path).display()
            );
            None
        }
    }
}

/// Appends one request to the log as a JSON line. The body is kept as text when it is UTF-8,
/// else as a lossy copy flagged `body_utf8: false` (a checker then knows it is not the original).
fn log_request(log: &RequestLog, parts: &http::request::Parts, body: &[u8]) {
    let Some(log) = log else {
        return;
    };
    let (text, utf8) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), true),
        Err(_) => (String::from_utf8_lossy(body).into_owned(), false),
    };
    let line = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or_default(),
        "content_type": parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        "body": text,
        "body_utf8": utf8,
    });
    if let Ok(mut file) = log.lock() {
        let _ = writeln!(file, "{line}");
    }
}

async fn handle(
    req: Request<Incoming>,
    log: RequestLog,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    log_request(&log, &parts, &body);
    let path = parts.uri.path();
    let response = match (&parts.method, path) {
        (&Method::GET, "/health") => json(StatusCode::OK, r#"{"status":"ok"}"#.into()),
        (&Method::GET, "/api/status") => {
            json(StatusCode::OK, r#"{"status":"ok","version":"demo"}"#.into())
        }
        (&Method::GET, "/api/reports") => json(StatusCode::OK, r#"{"orders_today":2}"#.into()),
        (&Method::GET, "/api/orders") => json(
            StatusCode::OK,
            serde_json::Value::Array(vec![
                stored_order(41, "keyboard", 1),
                stored_order(42, "monitor", 2),
            ])
            .to_string(),
        ),
        (&Method::POST, "/api/orders") => create_order(&body),
        (&Method::GET, p) if p.starts_with("/api/orders/") => {
            let id = &p["/api/orders/".len()..];
            match id.parse::<u32>() {
                Ok(id) => json(StatusCode::OK, stored_order(id, "monitor", 2).to_string()),
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

/// An order as the service stores it, internal fields included (the contract declares none of
/// them, so the gateway strips them).
fn stored_order(id: u32, item: &str, quantity: u64) -> serde_json::Value {
    serde_json::json!({
        "id": id, "item": item, "quantity": quantity,
        "supplier_id": "SUP-7731", "internal_cost": 113.4,
    })
}

/// Echoes the order it was sent, the way a service answers with what it stored. It trusts its
/// input like many services do: the gateway's contract is what keeps it safe.
fn create_order(body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(order) = serde_json::from_slice::<serde_json::Value>(body) else {
        return json(StatusCode::BAD_REQUEST, r#"{"error":"not JSON"}"#.into());
    };
    let item = order["item"].as_str().unwrap_or_default();
    let quantity = order["quantity"].as_u64().unwrap_or(1);
    let mut stored = stored_order(43, item, quantity);
    if let Some(note) = order.get("note") {
        stored["note"] = note.clone();
    }
    json(StatusCode::CREATED, stored.to_string())
}

fn json(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
