//! Transport faults found by the outside tests: slow request bodies, staged closes after early
//! refusals, HTTP/2 field rules and limits, URI limits beyond hyper's buffer, and requests cut at
//! the drain deadline. Each test checks what the client got and what the upstream saw.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use rampart_testkit::{
    RawExchange, RecordingUpstream, TestGateway, TestResponse, WAIT, raw_tls_exchange,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One upstream, one public route `/public` (POST allowed, 64-byte body limit) and `/big`
/// (default body limit), plus `extra` sections (`[limits]`).
async fn gateway(upstream: &RecordingUpstream, upstream_extra: &str, extra: &str) -> TestGateway {
    let config = format!(
        r#"{extra}
[[upstreams]]
name = "api"
targets = ["{}"]
{upstream_extra}

[[routes]]
name = "public"
path_prefix = "/public"
methods = ["GET", "POST"]
upstream = "api"
public = true
max_body_bytes = 64

[[routes]]
name = "big"
path_prefix = "/big"
methods = ["GET", "POST"]
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

/// Sends `head`, then one body byte every `every` (up to `bytes`), while reading the answer.
async fn slow_body_client(
    addr: SocketAddr,
    head: String,
    bytes: usize,
    every: Duration,
) -> RawExchange {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        for _ in 0..bytes {
            tokio::time::sleep(every).await;
            writer.write_all(b"x").await?;
        }
        std::io::Result::Ok(())
    });
    let got = read_until_closed(&mut reader, Duration::from_secs(5)).await;
    trickle.abort();
    got
}

async fn read_until_closed(
    reader: &mut (impl AsyncReadExt + Unpin),
    wait: Duration,
) -> RawExchange {
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + wait;
    let closed = loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => response.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    RawExchange { response, closed }
}

/// The body of a raw response: everything after the head.
fn raw_body(got: &RawExchange) -> String {
    let text = got.text();
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

fn assert_problem(rsp: &TestResponse, status: StatusCode, code: &str) {
    assert_eq!(rsp.status, status, "{}", rsp.text());
    assert_eq!(
        rsp.header("content-type"),
        Some("application/problem+json"),
        "{}",
        rsp.text()
    );
    assert_eq!(rsp.json()["code"], code);
    assert_eq!(rsp.header("x-content-type-options"), Some("nosniff"));
}

const SLOW_LIMITS: &str = "[limits]\nmin_body_rate_bytes_per_s = 1000\nbody_rate_grace_ms = 300\n";
const FRAGILE_HEALTH: &str =
    "request_timeout_ms = 1500\nhealth.passive = { eject_after_failures = 2, eject_ms = 60000 }";

async fn assert_slow_clients_get_408_and_target_stays(gw: &TestGateway, length: usize) {
    let head = format!("POST /big/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n");
    let every = Duration::from_millis(100);
    let clients: Vec<_> = (0..5)
        .map(|_| tokio::spawn(slow_body_client(gw.addr, head.clone(), length, every)))
        .collect();
    for client in clients {
        let got = client.await.unwrap();
        assert_eq!(got.statuses(), vec![408], "{}", got.text());
        assert!(
            got.text().contains("application/problem+json"),
            "{}",
            got.text()
        );
        assert!(
            raw_body(&got).contains("\"code\":\"request_timeout\""),
            "{}",
            got.text()
        );
        assert!(got.closed, "the connection is closed after a 408");
    }
    assert_eq!(gw.get("/big/after").await.status, StatusCode::OK);
    let metrics = gw.metrics().await;
    assert!(
        !metrics.contains("rampart_upstream_ejections_total{upstream=\"api\"}"),
        "a slow client is never the upstream's fault:\n{metrics}"
    );
}

#[tokio::test]
async fn slow_buffered_bodies_get_408_and_never_reach_or_eject_the_only_target() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, FRAGILE_HEALTH, SLOW_LIMITS).await;
    assert_slow_clients_get_408_and_target_stays(&gw, 100).await;
    assert_eq!(
        upstream.count(),
        1,
        "only the normal request: a buffered body is never sent in part"
    );
    assert_eq!(upstream.last().uri.path(), "/big/after");
    let audit = gw.audit().await;
    assert_eq!(audit.iter().filter(|r| r["status"] == 408).count(), 5);
}

#[tokio::test]
async fn slow_streamed_bodies_get_408_and_do_not_eject_the_only_target() {
    let upstream = RecordingUpstream::start().await;
    let limits = format!("{SLOW_LIMITS}buffer_body_bytes = 16\n");
    let gw = gateway(&upstream, FRAGILE_HEALTH, &limits).await;
    // 100 bytes over a 16-byte buffer: streamed, so the upstream is contacted, but the client's
    // stall is still the client's fault.
    assert_slow_clients_get_408_and_target_stays(&gw, 100).await;
}

#[tokio::test]
async fn body_at_a_steady_rate_is_not_cut() {
    let upstream = RecordingUpstream::start().await;
    let limits = "[limits]\nmin_body_rate_bytes_per_s = 10\nbody_rate_grace_ms = 200\n";
    let gw = gateway(&upstream, "", limits).await;
    let head =
        "POST /big/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nConnection: close\r\n\r\n";
    let got = slow_body_client(gw.addr, head.to_owned(), 8, Duration::from_millis(50)).await;
    assert_eq!(got.statuses(), vec![200], "{}", got.text());
    assert_eq!(upstream.last().body.as_ref(), b"xxxxxxxx");
}

/// Writes all of `request`, then reads the answer: the client must get it whole even though the
/// gateway refused before reading everything.
async fn send_all_then_read(addr: SocketAddr, request: &[u8]) -> RawExchange {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(request)
        .await
        .expect("the gateway keeps reading until the client is done (no reset)");
    read_until_closed(&mut stream, WAIT).await
}

fn assert_full_problem(got: &RawExchange, status: u16, code: &str) {
    assert_eq!(got.statuses(), vec![status], "{}", got.text());
    assert!(got.closed);
    let text = got.text();
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    let body = raw_body(got);
    assert_eq!(
        body.len(),
        length,
        "the whole problem document arrives: {text}"
    );
    assert!(body.contains(&format!("\"code\":\"{code}\"")), "{text}");
}

#[tokio::test]
async fn early_413_with_unread_body_is_delivered_before_a_staged_close() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "", "").await;
    // More than the socket buffers hold: the client is still writing when the answer comes.
    let mut request =
        b"POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 8000000\r\n\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'x', 8_000_000));
    let got = send_all_then_read(gw.addr, &request).await;
    assert_full_problem(&got, 413, "body_too_large");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn early_431_with_unread_head_is_delivered_before_a_staged_close() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "", "").await;
    let big = "b".repeat(8_000_000);
    let request = format!("GET /public/a HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let got = send_all_then_read(gw.addr, request.as_bytes()).await;
    assert_full_problem(&got, 431, "headers_too_large");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn early_413_over_tls_is_delivered_before_a_staged_close() {
    let upstream = RecordingUpstream::start().await;
    let config = format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nmethods = [\"POST\"]\nupstream = \"api\"\npublic = true\nmax_body_bytes = 64\n",
        upstream.url()
    );
    let gw = TestGateway::builder().config(&config).start().await;
    let mut request =
        b"POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8000000\r\n\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'x', 8_000_000));
    // `raw_tls_exchange` writes everything first and fails the test on a write error.
    let got = raw_tls_exchange(gw.addr, &gw.ca_pem, &request, WAIT).await;
    assert_full_problem(&got, 413, "body_too_large");
    assert_eq!(upstream.count(), 0);
}

async fn h2_get_with(gw: &TestGateway, name: &str, value: &str) -> TestResponse {
    let client = gw.client_h2();
    let request = client
        .request(Method::GET, "/public/a")
        .header(name, http::HeaderValue::from_str(value).unwrap())
        .body(Full::<Bytes>::default())
        .unwrap();
    let rsp = client.send(request).await;
    assert_eq!(rsp.version, http::Version::HTTP_2);
    rsp
}

#[tokio::test]
async fn h2_header_value_with_leading_or_trailing_whitespace_is_refused() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "", "").await;
    for value in [" admin", "admin ", "\tadmin", "admin\t"] {
        let rsp = h2_get_with(&gw, "x-role", value).await;
        assert_problem(&rsp, StatusCode::BAD_REQUEST, "malformed_request");
    }
    assert_eq!(upstream.count(), 0, "the upstream sees nothing");
    let rsp = h2_get_with(&gw, "x-role", "admin user").await;
    assert_eq!(rsp.status, StatusCode::OK, "inner whitespace is fine");
}

#[tokio::test]
async fn h2_header_list_over_the_limit_is_a_problem_document_audited_and_counted() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "", "").await;
    let rsp = h2_get_with(&gw, "x-big", &"b".repeat(20_000)).await;
    assert_problem(
        &rsp,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
    );
    assert!(rsp.header("content-security-policy").is_some());
    assert!(rsp.header("x-request-id").is_some());
    assert_eq!(upstream.count(), 0);
    let audit = gw.audit().await;
    let record = audit
        .iter()
        .find(|r| r["status"] == 431)
        .expect("an audit record for the 431");
    assert_eq!(record["request_id"], rsp.header("x-request-id").unwrap());
    assert!(gw.metrics().await.contains("status=\"431\""));
}

async fn get_both(gw: &TestGateway, path: &str) -> [TestResponse; 2] {
    [gw.client().get(path).await, gw.client_h2().get(path).await]
}

#[tokio::test]
async fn uri_over_max_uri_bytes_is_414_on_http1_and_http2_even_beyond_16_kib() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "", "[limits]\nmax_uri_bytes = 32768\n").await;
    let prefix = "/public/";
    let accepted = format!("{prefix}{}", "a".repeat(20 * 1024 - prefix.len()));
    for rsp in get_both(&gw, &accepted).await {
        assert_eq!(
            rsp.status,
            StatusCode::OK,
            "a 20 KiB URI under a 32 KiB limit"
        );
    }
    assert_eq!(upstream.count(), 2);
    assert_eq!(upstream.last().uri.path().len(), 20 * 1024);
    let refused = format!("{prefix}{}", "a".repeat(32768 + 1 - prefix.len()));
    for rsp in get_both(&gw, &refused).await {
        assert_problem(&rsp, StatusCode::URI_TOO_LONG, "uri_too_long");
    }
    assert_eq!(upstream.count(), 2, "the upstream sees nothing more");
}

#[tokio::test]
async fn uri_of_20_kib_is_414_not_431_with_default_limits() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "", "").await;
    let long = format!("/public/{}", "a".repeat(20 * 1024));
    for rsp in get_both(&gw, &long).await {
        assert_problem(&rsp, StatusCode::URI_TOO_LONG, "uri_too_long");
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn request_cut_at_the_drain_deadline_gets_503_and_is_audited() {
    let upstream = RecordingUpstream::slow(Duration::from_secs(10)).await;
    let config = format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"slow\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n",
        upstream.url()
    );
    let gw = TestGateway::builder()
        .plaintext()
        .drain_timeout_ms(300)
        .config(&config)
        .start()
        .await;
    let client = gw.client();
    let request = tokio::spawn(async move { client.get("/slow").await });
    while upstream.count() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    let audit = gw.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the drain is bounded"
    );
    let rsp = request.await.unwrap();
    assert_problem(&rsp, StatusCode::SERVICE_UNAVAILABLE, "shutting_down");
    let record = audit
        .iter()
        .find(|r| r["status"] == 503)
        .expect("the cut request is audited");
    assert_eq!(record["route"], "slow");
    assert_eq!(record["request_id"], rsp.header("x-request-id").unwrap());
    assert_eq!(record["decision"], "error");
}

#[test]
fn transport_limits_out_of_range_are_each_reported() {
    let text = "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\nplaintext = true\n\n[limits]\nmax_uri_bytes = 70000\nbuffer_body_bytes = 100000000\nmin_body_rate_bytes_per_s = 0\nbody_rate_grace_ms = 10\n";
    let source =
        rampart::config::ConfigSource::from_text("t.toml", text, std::path::Path::new("/tmp"));
    let errors = match rampart::config::parse(&source) {
        Ok(_) => panic!("the config should be refused"),
        Err(e) => e.errors,
    };
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for key in [
        "max_uri_bytes",
        "buffer_body_bytes",
        "min_body_rate_bytes_per_s",
        "body_rate_grace_ms",
    ] {
        assert!(
            paths.iter().any(|p| p.ends_with(key)),
            "{key} missing in {paths:?}"
        );
    }
    // A URI limit above the header limit is valid now: the two are measured separately.
    let text = "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\nplaintext = true\n\n[limits]\nmax_uri_bytes = 32768\n";
    let source =
        rampart::config::ConfigSource::from_text("t.toml", text, std::path::Path::new("/tmp"));
    assert!(rampart::config::parse(&source).is_ok());
}
