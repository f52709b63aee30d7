//! The leak scan on every route: an upstream response carrying a stack trace, SQL error text or a
//! private key never reaches the client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use rampart_testkit::{RecordingUpstream, TestGateway};

const JAVA_TRACE: &str = r#"{"error":"java.lang.NullPointerException\n\tat com.shop.orders.OrderService.total(OrderService.java:42)\n\tat com.shop.api.Handler.handle(Handler.java:17)"}"#;
const SQL_ERROR: &str = r#"{"message":"ERROR: syntax error at or near \"'\" LINE 1: SELECT * FROM orders WHERE id = '1''"}"#;
const PRIVATE_KEY: &str = "{\"key\":\"-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEA\"}";

fn reply_with(
    body: String,
    headers: &'static [(&'static str, &'static str)],
) -> rampart_testkit::Reply {
    Arc::new(move |_| {
        let mut builder = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Full::new(Bytes::from(body.clone()))).unwrap()
    })
}

async fn gateway(upstream: &RecordingUpstream, route_extra: &str) -> TestGateway {
    let config = format!(
        r#"
[[upstreams]]
name = "api"
targets = ["{}"]

[[routes]]
name = "public"
path_prefix = "/api"
upstream = "api"
public = true
{route_extra}
"#,
        upstream.url()
    );
    TestGateway::builder()
        .plaintext()
        .config(&config)
        .start()
        .await
}

async fn assert_masked(body: &str) {
    let upstream = RecordingUpstream::with_reply(reply_with(body.to_owned(), &[])).await;
    let gw = gateway(&upstream, "").await;
    let rsp = gw.get("/api/orders/1").await;
    assert_eq!(rsp.status, StatusCode::BAD_GATEWAY, "{}", rsp.text());
    assert_eq!(rsp.json()["code"], "upstream_error");
    let text = rsp.text();
    for marker in ["OrderService", "SELECT", "PRIVATE KEY", "MIIE"] {
        assert!(!text.contains(marker), "{marker} leaked: {text}");
    }
    let audit = gw.stop().await;
    assert!(
        audit.iter().any(|r| r["validation"]["leak"].is_string()),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_stack_trace_in_a_200_response_is_masked() {
    assert_masked(JAVA_TRACE).await;
}

#[tokio::test]
async fn sql_error_text_in_a_response_is_masked() {
    assert_masked(SQL_ERROR).await;
}

#[tokio::test]
async fn a_private_key_in_a_response_is_masked() {
    assert_masked(PRIVATE_KEY).await;
}

#[tokio::test]
async fn ordinary_json_passes_untouched() {
    let body = r#"{"id":1,"item":"Exception Bike","note":"ships at 9, see line 3"}"#;
    let upstream = RecordingUpstream::with_reply(reply_with(body.to_owned(), &[])).await;
    let gw = gateway(&upstream, "").await;
    let rsp = gw.get("/api/orders/1").await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert_eq!(rsp.text(), body);
}

#[tokio::test]
async fn a_leak_deep_in_a_long_streamed_response_cuts_it() {
    let filler = format!(r#"{{"rows":["{}"],"#, "x".repeat(200 * 1024));
    let body = format!(r#"{filler}"trace":{JAVA_TRACE}}}"#);
    let upstream = RecordingUpstream::with_reply(reply_with(body, &[])).await;
    let gw = gateway(&upstream, "").await;
    let client = gw.client();
    let request = client
        .request(http::Method::GET, "/api/export")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let got = client.try_send(request).await;
    assert!(got.is_err(), "the response must be cut, not end cleanly");
}

#[tokio::test]
async fn a_route_with_unmasked_upstream_errors_still_has_stack_traces_masked() {
    let upstream = RecordingUpstream::with_reply(reply_with(JAVA_TRACE.to_owned(), &[])).await;
    let gw = gateway(&upstream, "mask_upstream_errors = false").await;
    let rsp = gw.get("/api/orders/1").await;
    assert_eq!(rsp.status, StatusCode::BAD_GATEWAY, "{}", rsp.text());
    assert!(!rsp.text().contains("OrderService"));
}

#[tokio::test]
async fn the_scan_can_be_turned_off_for_a_route_whose_job_is_such_text() {
    let upstream = RecordingUpstream::with_reply(reply_with(PRIVATE_KEY.to_owned(), &[])).await;
    let gw = gateway(&upstream, "leak_scan = false").await;
    let rsp = gw.get("/api/keys/1").await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert!(rsp.text().contains("PRIVATE KEY"));
}

/// Sends GET `path` with `Accept-Encoding: gzip, br` and returns what the upstream was asked for.
async fn accept_encoding_upstream_sees(route_extra: &str) -> Option<String> {
    let upstream = RecordingUpstream::with_reply(reply_with("{}".to_owned(), &[])).await;
    let gw = gateway(&upstream, route_extra).await;
    let client = gw.client();
    let request = client
        .request(http::Method::GET, "/api/orders/1")
        .header("accept-encoding", "gzip, br")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(client.send(request).await.status, StatusCode::OK);
    let seen = upstream.last();
    seen.headers
        .get("accept-encoding")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_scanned_route_asks_the_upstream_for_bytes_it_can_read_not_a_compressed_body() {
    assert_eq!(
        accept_encoding_upstream_sees("").await.as_deref(),
        Some("identity"),
        "a gzip body would pass the scan unread"
    );
    assert_eq!(
        accept_encoding_upstream_sees("leak_scan = false")
            .await
            .as_deref(),
        Some("gzip, br"),
        "without the scan the client's preference stands"
    );
}

#[tokio::test]
async fn an_upstream_that_compresses_anyway_gets_a_masked_502_not_an_unread_pass() {
    let upstream = RecordingUpstream::with_reply(reply_with(
        "\u{1f}\u{8b}compressed-stack-trace".to_owned(),
        &[("content-encoding", "gzip")],
    ))
    .await;
    let gw = gateway(&upstream, "").await;
    let rsp = gw.get("/api/orders/1").await;
    assert_eq!(rsp.status, StatusCode::BAD_GATEWAY, "{}", rsp.text());
    let upstream = RecordingUpstream::with_reply(reply_with(
        "\u{1f}\u{8b}compressed".to_owned(),
        &[("content-encoding", "gzip")],
    ))
    .await;
    let gw = gateway(&upstream, "leak_scan = false").await;
    assert_eq!(gw.get("/api/orders/1").await.status, StatusCode::OK);
}
