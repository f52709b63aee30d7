//! What clients get back: problem documents, masking, security headers and CORS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use rampart_testkit::{RecordingUpstream, TestGateway, json};

fn leaky_upstream_reply() -> rampart_testkit::Reply {
    Arc::new(|r| {
        if r.uri.path().ends_with("/crash") {
            let mut rsp = Response::new(Full::new(Bytes::from_static(
                b"Traceback: psycopg2.OperationalError at db.internal:5432",
            )));
            *rsp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            rsp.headers_mut()
                .insert("server", "Werkzeug/2.0.1 Python/3.8.10".parse().unwrap());
            rsp
        } else {
            let mut rsp = json(StatusCode::OK, r#"{"ok":true}"#);
            let h = rsp.headers_mut();
            h.insert("server", "nginx/1.18.0".parse().unwrap());
            h.insert("x-powered-by", "Express".parse().unwrap());
            h.insert("x-frame-options", "ALLOWALL".parse().unwrap());
            h.insert("access-control-allow-origin", "*".parse().unwrap());
            h.insert("access-control-allow-credentials", "true".parse().unwrap());
            rsp
        }
    })
}

fn config(upstream: &RecordingUpstream) -> String {
    format!(
        r#"
[[upstreams]]
name = "api"
targets = ["{}"]

[[routes]]
name = "masked"
path_prefix = "/api"
methods = ["GET", "POST"]
upstream = "api"
public = true
cors = {{ allow_origins = ["https://app.example.com", "https://*.partner.example"], allow_headers = ["content-type"], allow_credentials = true, expose_headers = ["x-total"] }}

[[routes]]
name = "raw"
path_prefix = "/raw"
upstream = "api"
public = true
mask_upstream_errors = false
# The leak scan (on by default) would mask the stack trace this route's tests pass through.
leak_scan = false
security_headers = {{ content_security_policy = "default-src 'self'", x_frame_options = "" }}
"#,
        upstream.url()
    )
}

async fn start() -> (RecordingUpstream, TestGateway) {
    let upstream = RecordingUpstream::with_reply(leaky_upstream_reply()).await;
    let gw = TestGateway::builder()
        .config(&config(&upstream))
        .start()
        .await;
    (upstream, gw)
}

fn assert_problem(rsp: &rampart_testkit::TestResponse, status: StatusCode, code: &str) {
    assert_eq!(rsp.status, status);
    assert_eq!(rsp.header("content-type"), Some("application/problem+json"));
    assert_eq!(rsp.header("cache-control"), Some("no-store"));
    assert_eq!(rsp.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(rsp.header("x-frame-options"), Some("DENY"));
    assert!(rsp.header("strict-transport-security").is_some());
    let body = rsp.json();
    assert_eq!(body["code"], code);
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["request_id"].as_str(), rsp.header("x-request-id"));
    assert_eq!(body["type"], format!("urn:rampart:problem:{code}"));
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.len(),
        5,
        "only type, title, status, code and request_id: {keys:?}"
    );
}

#[tokio::test]
async fn unknown_route_is_a_404_problem_and_nothing_is_proxied() {
    let (upstream, gw) = start().await;
    assert_problem(
        &gw.get("/nothing-here").await,
        StatusCode::NOT_FOUND,
        "route_not_found",
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn wrong_method_is_a_405_problem_with_allow() {
    let (upstream, gw) = start().await;
    let client = gw.client();
    let rsp = client
        .send(
            client
                .request(Method::DELETE, "/api/x")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_problem(&rsp, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(rsp.header("allow"), Some("GET, POST"));
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn upstream_500_body_and_server_header_are_masked() {
    let (upstream, gw) = start().await;
    let rsp = gw.get("/api/crash").await;
    assert_problem(&rsp, StatusCode::INTERNAL_SERVER_ERROR, "upstream_error");
    assert!(!rsp.text().contains("Traceback") && !rsp.text().contains("db.internal"));
    assert!(rsp.header("server").is_none());
    assert_eq!(upstream.count(), 1);
    let audit = gw.audit().await;
    assert_eq!(audit[0]["decision"], "error");
    assert_eq!(
        audit[0]["reason"],
        "upstream answered 500 Internal Server Error"
    );
}

#[tokio::test]
async fn unmasked_route_passes_the_body_but_never_software_headers() {
    let (_upstream, gw) = start().await;
    let rsp = gw.get("/raw/crash").await;
    assert_eq!(rsp.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(rsp.text().contains("Traceback"));
    assert!(rsp.header("server").is_none());
}

#[tokio::test]
async fn security_headers_replace_weak_upstream_ones() {
    let (_upstream, gw) = start().await;
    let rsp = gw.get("/api/ok").await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert_eq!(rsp.header("x-frame-options"), Some("DENY"));
    assert_eq!(rsp.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        rsp.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    assert_eq!(rsp.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(
        rsp.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    assert!(rsp.header("server").is_none() && rsp.header("x-powered-by").is_none());
}

#[tokio::test]
async fn route_overrides_security_headers() {
    let (_upstream, gw) = start().await;
    let rsp = gw.get("/raw/ok").await;
    assert_eq!(
        rsp.header("content-security-policy"),
        Some("default-src 'self'")
    );
    assert_eq!(
        rsp.header("x-frame-options"),
        Some("ALLOWALL"),
        "an empty value leaves the header to the upstream"
    );
    assert_eq!(rsp.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn plaintext_listener_sends_no_hsts_and_serves_h2c_prior_knowledge() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .plaintext()
        .config(&config(&upstream))
        .start()
        .await;
    let rsp = gw.client_h2().get("/api/ok").await;
    assert_eq!(rsp.version, http::Version::HTTP_2);
    assert_eq!(rsp.status, StatusCode::OK);
    assert!(rsp.header("strict-transport-security").is_none());
    assert_eq!(rsp.header("x-content-type-options"), Some("nosniff"));
}

fn preflight(gw: &TestGateway, origin: &str, method: &str) -> http::Request<Full<Bytes>> {
    gw.client()
        .request(Method::OPTIONS, "/api/orders")
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "content-type")
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn cors_preflight_is_answered_by_the_gateway() {
    let (upstream, gw) = start().await;
    let rsp = gw
        .client()
        .send(preflight(&gw, "https://app.example.com", "POST"))
        .await;
    assert_eq!(rsp.status, StatusCode::NO_CONTENT);
    assert_eq!(
        rsp.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        rsp.header("access-control-allow-methods"),
        Some("GET, POST")
    );
    assert_eq!(
        rsp.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(rsp.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(rsp.header("access-control-max-age"), Some("600"));
    assert_eq!(upstream.count(), 0, "preflights never reach the upstream");
}

#[tokio::test]
async fn cors_lookalike_origin_is_refused_without_cors_headers() {
    let (upstream, gw) = start().await;
    for origin in [
        "https://example.com.evil.net",
        "https://app.example.com.evil.net",
        "https://partner.example",
        "null",
        "http://app.example.com",
    ] {
        let rsp = gw.client().send(preflight(&gw, origin, "POST")).await;
        assert_eq!(rsp.status, StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(rsp.json()["code"], "cors_rejected");
        assert!(
            rsp.header("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn cors_wildcard_subdomain_is_allowed() {
    let (_upstream, gw) = start().await;
    let rsp = gw
        .client()
        .send(preflight(&gw, "https://eu.partner.example", "GET"))
        .await;
    assert_eq!(rsp.status, StatusCode::NO_CONTENT);
    assert_eq!(
        rsp.header("access-control-allow-origin"),
        Some("https://eu.partner.example")
    );
}

#[tokio::test]
async fn cors_allowed_origin_in_another_case_is_echoed_in_canonical_form() {
    let (upstream, gw) = start().await;
    for (sent, echoed) in [
        ("HTTPS://App.Example.COM", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("https://EU.Partner.Example", "https://eu.partner.example"),
    ] {
        let rsp = gw.client().send(preflight(&gw, sent, "GET")).await;
        assert_eq!(rsp.status, StatusCode::NO_CONTENT, "{sent}");
        assert_eq!(
            rsp.header("access-control-allow-origin"),
            Some(echoed),
            "{sent}"
        );
        let client = gw.client();
        let actual = client
            .send(
                client
                    .request(Method::GET, "/api/x")
                    .header("origin", sent)
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
        assert_eq!(
            actual.header("access-control-allow-origin"),
            Some(echoed),
            "{sent}"
        );
    }
    assert_eq!(upstream.count(), 3, "only the three actual requests");
}

#[tokio::test]
async fn cors_actual_request_gets_headers_only_for_allowed_origins_and_upstream_cors_is_dropped() {
    let (_upstream, gw) = start().await;
    let client = gw.client();
    let allowed = client
        .send(
            client
                .request(Method::GET, "/api/x")
                .header("origin", "https://app.example.com")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        allowed.header("access-control-expose-headers"),
        Some("x-total")
    );
    assert_eq!(allowed.header("vary"), Some("Origin"));
    let refused = client
        .send(
            client
                .request(Method::GET, "/api/x")
                .header("origin", "https://evil.example")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::OK,
        "the browser, not the gateway, blocks the read"
    );
    assert!(
        refused.header("access-control-allow-origin").is_none(),
        "the upstream's `*` must not leak through"
    );
    assert!(refused.header("access-control-allow-credentials").is_none());
    let no_cors_route = client
        .send(
            client
                .request(Method::GET, "/raw/x")
                .header("origin", "https://app.example.com")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert!(
        no_cors_route
            .header("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn preflight_on_a_route_without_cors_is_refused() {
    let (upstream, gw) = start().await;
    let req = gw
        .client()
        .request(Method::OPTIONS, "/raw/x")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .body(Full::default())
        .unwrap();
    let rsp = gw.client().send(req).await;
    assert_eq!(rsp.status, StatusCode::FORBIDDEN);
    assert_eq!(upstream.count(), 0);
}
