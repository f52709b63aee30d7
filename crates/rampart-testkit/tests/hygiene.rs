//! Attacks on framing, paths, limits and methods, sent as raw bytes or through real clients. Each
//! test also checks that nothing reached the upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use rampart_testkit::{RecordingUpstream, TestGateway, WAIT, raw_exchange, raw_tls_exchange};

async fn gateway(upstream: &RecordingUpstream, extra: &str) -> TestGateway {
    let config = format!(
        r#"{extra}
[[upstreams]]
name = "api"
targets = ["{}"]

[[routes]]
name = "public"
path_prefix = "/public"
methods = ["GET", "POST"]
upstream = "api"
public = true
max_body_bytes = 64

[[routes]]
name = "internal"
hosts = ["internal.example"]
path_prefix = "/admin"
upstream = "api"
public = true
"#,
        upstream.url()
    );
    TestGateway::builder()
        .plaintext()
        .config(&config)
        .start()
        .await
}

/// Sends raw bytes to a plaintext gateway; asserts a single 400 problem and a closed connection.
async fn assert_refused_and_closed(request: &[u8], expected: u16) {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let got = raw_exchange(gw.addr, request, WAIT).await;
    assert_eq!(got.statuses(), vec![expected], "{}", got.text());
    assert!(got.closed, "the connection must be closed");
    assert!(
        got.text().contains("application/problem+json"),
        "{}",
        got.text()
    );
    assert!(
        got.text().contains("x-content-type-options: nosniff"),
        "{}",
        got.text()
    );
    assert_eq!(upstream.count(), 0, "the upstream must see nothing");
}

#[tokio::test]
async fn cl_te_smuggling_is_refused_and_closes() {
    assert_refused_and_closed(
        b"POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
        400,
    )
    .await;
}

#[tokio::test]
async fn te_cl_smuggling_is_refused_and_closes() {
    assert_refused_and_closed(
        b"POST /public/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn duplicate_content_length_is_refused() {
    assert_refused_and_closed(
        b"POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
        400,
    )
    .await;
}

#[tokio::test]
async fn obfuscated_transfer_encoding_is_refused() {
    assert_refused_and_closed(
        b"POST /public/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn obs_fold_header_is_refused() {
    assert_refused_and_closed(
        b"GET /public/a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tcontinued\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn bare_lf_line_endings_are_refused() {
    assert_refused_and_closed(b"GET /public/a HTTP/1.1\nHost: x\n\n", 400).await;
}

#[tokio::test]
async fn bare_cr_in_a_header_is_refused() {
    assert_refused_and_closed(
        b"GET /public/a HTTP/1.1\r\nHost: x\rX-Injected: 1\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn invalid_header_bytes_are_refused() {
    assert_refused_and_closed(
        b"GET /public/a HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
        400,
    )
    .await;
    assert_refused_and_closed(
        b"GET /public/a HTTP/1.1\r\nHost: x\r\nBad Name: a\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn multiple_host_headers_are_refused() {
    assert_refused_and_closed(
        b"GET /admin HTTP/1.1\r\nHost: x\r\nHost: internal.example\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn oversized_request_line_is_414_and_many_headers_431() {
    let long = format!(
        "GET /public/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(9000)
    );
    assert_refused_and_closed(long.as_bytes(), 414).await;
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_refused_and_closed(
        format!("GET /public/a HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        431,
    )
    .await;
    let big = format!(
        "GET /public/a HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    assert_refused_and_closed(big.as_bytes(), 431).await;
}

#[tokio::test]
async fn smuggled_request_pipelined_after_a_valid_one_is_not_forwarded() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let got = raw_exchange(
        gw.addr,
        b"GET /public/ok HTTP/1.1\r\nHost: x\r\n\r\nPOST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: internal.example\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(got.statuses(), vec![200, 400], "{}", got.text());
    assert!(got.closed);
    assert_eq!(upstream.count(), 1);
    assert_eq!(upstream.last().uri.path(), "/public/ok");
}

#[tokio::test]
async fn keep_alive_pipelining_of_valid_requests_still_works() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let got = raw_exchange(
        gw.addr,
        b"POST /public/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /public/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(got.statuses(), vec![200, 200], "{}", got.text());
    assert_eq!(upstream.requests()[0].body, Bytes::from_static(b"abc"));
}

#[tokio::test]
async fn framing_attack_over_tls_is_refused_too() {
    let upstream = RecordingUpstream::start().await;
    let config = format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nmethods = [\"POST\"]\nupstream = \"api\"\npublic = true\n",
        upstream.url()
    );
    let gw = TestGateway::builder().config(&config).start().await;
    let got = raw_tls_exchange(
        gw.addr,
        &gw.ca_pem,
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(got.statuses(), vec![400]);
    assert!(
        got.text().contains("strict-transport-security"),
        "HSTS on TLS refusals too"
    );
    assert_eq!(upstream.count(), 0);
    let audit = gw.audit().await;
    assert_eq!(audit[0]["status"], 400);
    assert_eq!(
        audit[0]["reason"],
        "malformed request: Content-Length with Transfer-Encoding"
    );
}

#[tokio::test]
async fn encoded_slash_traversal_is_refused() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    for path in [
        "/public/..%2Fadmin",
        "/public/%2e%2e%2fadmin",
        "/public/a%5c..%5cadmin",
        "/public/a%00",
    ] {
        let rsp = gw.get(path).await;
        assert_eq!(rsp.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(rsp.json()["code"], "invalid_path");
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn dot_segment_traversal_cannot_reach_a_route_the_plain_path_cannot() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    // `/admin` only exists for host internal.example; from any other host it is a 404 however
    // the path is spelled.
    for path in [
        "/admin",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/.%2E/admin",
        "//admin",
        "/%61dmin",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let got = raw_exchange(gw.addr, raw.as_bytes(), WAIT).await;
        assert_eq!(got.statuses(), vec![404], "{path}: {}", got.text());
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn normalized_path_is_what_the_upstream_receives() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let raw = b"GET /public//a/./b/../%63?q=%2F HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let got = raw_exchange(gw.addr, raw, WAIT).await;
    assert_eq!(got.statuses(), vec![200]);
    assert_eq!(upstream.last().uri.to_string(), "/public/a/c?q=%2F");
}

#[tokio::test]
async fn trace_and_connect_are_refused_by_default() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let client = gw.client();
    let trace = client
        .request(Method::TRACE, "/public/a")
        .body(Full::default())
        .unwrap();
    let rsp = client.send(trace).await;
    assert_eq!(rsp.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(rsp.json()["code"], "method_not_allowed");
    let got = raw_exchange(
        gw.addr,
        b"CONNECT /public/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(got.statuses(), vec![405]);
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn refused_trace_405_carries_allow() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let client = gw.client();
    let on_route = client
        .send(
            client
                .request(Method::TRACE, "/public/a")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(on_route.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(on_route.json()["code"], "method_not_allowed");
    assert_eq!(
        on_route.header("allow"),
        Some("GET, POST"),
        "what the route allows"
    );
    let no_route = client
        .send(
            client
                .request(Method::TRACE, "/nowhere")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(no_route.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        no_route.header("allow"),
        Some(""),
        "no route: an empty Allow, no method is allowed here (RFC 9110 section 10.2.1)"
    );
    let connect = raw_exchange(
        gw.addr,
        b"CONNECT /public/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(connect.statuses(), vec![405]);
    assert!(
        connect
            .text()
            .to_ascii_lowercase()
            .contains("\r\nallow: get, post\r\n"),
        "{}",
        connect.text()
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn body_over_the_limit_by_content_length_is_413() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let client = gw.client();
    let req = client
        .request(Method::POST, "/public/a")
        .body(Full::new(Bytes::from(vec![b'x'; 65])))
        .unwrap();
    let rsp = client.send(req).await;
    assert_eq!(rsp.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(rsp.json()["code"], "body_too_large");
    let req = client
        .request(Method::POST, "/public/a")
        .body(Full::new(Bytes::from(vec![b'x'; 64])))
        .unwrap();
    assert_eq!(client.send(req).await.status, StatusCode::OK);
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413_and_never_reaches_the_upstream() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let raw = b"POST /public/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n28\r\n0123456789012345678901234567890123456789\r\n28\r\n0123456789012345678901234567890123456789\r\n0\r\n\r\n";
    let got = raw_exchange(gw.addr, raw, WAIT).await;
    assert_eq!(got.statuses().first(), Some(&413), "{}", got.text());
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn slowloris_client_is_cut_off_by_the_header_timeout() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "[limits]\nheader_read_timeout_ms = 300\n").await;
    let started = std::time::Instant::now();
    let got = raw_exchange(
        gw.addr,
        b"GET /public/a HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        got.closed,
        "the gateway must close a connection whose head never completes"
    );
    assert_eq!(got.statuses(), vec![408], "{}", got.text());
    assert!(
        got.text().contains("application/problem+json") && got.text().contains("request_timeout"),
        "not the masked problem document: {}",
        got.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!(upstream.count(), 0);
}
