//! End-to-end: the real gateway over TLS in front of real loopback upstreams.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode, Version};
use http_body_util::Full;
use rampart_testkit::{RecordingUpstream, TestGateway, json};

fn route_to(upstream: &RecordingUpstream, extra_upstream: &str) -> String {
    format!(
        r#"
[[upstreams]]
name = "api"
targets = ["{}"]
{extra_upstream}

[[routes]]
name = "orders"
path_prefix = "/orders"
methods = ["GET", "POST"]
upstream = "api"
public = true
"#,
        upstream.url()
    )
}

#[tokio::test]
async fn request_reaches_upstream_with_forwarding_headers_and_request_id() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&route_to(&upstream, ""))
        .start()
        .await;
    let rsp = gw.get("/orders/42?page=2&sort=asc").await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert_eq!(rsp.json()["ok"], true);
    let seen = upstream.last();
    assert_eq!(seen.uri.path(), "/orders/42");
    assert_eq!(seen.uri.query(), Some("page=2&sort=asc"));
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(
        seen.headers["x-forwarded-host"],
        format!("localhost:{}", gw.addr.port()).as_str()
    );
    assert_eq!(
        seen.headers["host"],
        upstream.addr.to_string().as_str(),
        "Host is the target's by default"
    );
    let id = rsp.header("x-request-id").expect("request id echoed");
    assert_eq!(seen.headers["x-request-id"], id);
}

#[tokio::test]
async fn valid_incoming_request_id_is_kept_and_hostile_one_replaced() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&route_to(&upstream, ""))
        .start()
        .await;
    let client = gw.client();
    let req = client
        .request(Method::GET, "/orders")
        .header("x-request-id", "trace-abc.123")
        .body(Full::default())
        .unwrap();
    assert_eq!(
        client.send(req).await.header("x-request-id"),
        Some("trace-abc.123")
    );
    assert_eq!(upstream.last().headers["x-request-id"], "trace-abc.123");
    let req = client
        .request(Method::GET, "/orders")
        .header("x-request-id", "a\"b<script>")
        .body(Full::default())
        .unwrap();
    let rsp = client.send(req).await;
    assert_ne!(rsp.header("x-request-id"), Some("a\"b<script>"));
    assert_eq!(
        upstream.last().headers["x-request-id"],
        rsp.header("x-request-id").unwrap()
    );
}

#[tokio::test]
async fn http2_client_is_served_and_proxied_to_http1_upstream() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&route_to(&upstream, ""))
        .start()
        .await;
    let rsp = gw.client_h2().get("/orders/1").await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert_eq!(rsp.version, Version::HTTP_2);
    assert_eq!(upstream.last().version, Version::HTTP_11);
}

#[tokio::test]
async fn http2_upstream_protocol_is_used_when_configured() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&route_to(&upstream, "protocol = \"http2\""))
        .start()
        .await;
    assert_eq!(gw.get("/orders").await.status, StatusCode::OK);
    assert_eq!(upstream.last().version, Version::HTTP_2);
}

#[tokio::test]
async fn post_body_is_forwarded_intact() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&route_to(&upstream, ""))
        .start()
        .await;
    let client = gw.client();
    let req = client
        .request(Method::POST, "/orders")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"item":"lamp"}"#)))
        .unwrap();
    assert_eq!(client.send(req).await.status, StatusCode::OK);
    let seen = upstream.last();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(&seen.body[..], br#"{"item":"lamp"}"#);
}

#[tokio::test]
async fn hop_by_hop_headers_never_reach_the_upstream() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&route_to(&upstream, ""))
        .start()
        .await;
    let client = gw.client();
    let req = client
        .request(Method::GET, "/orders")
        .header("connection", "x-internal-token")
        .header("x-internal-token", "should-not-pass")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("x-kept", "yes")
        .body(Full::default())
        .unwrap();
    assert_eq!(client.send(req).await.status, StatusCode::OK);
    let seen = upstream.last();
    for name in [
        "x-internal-token",
        "keep-alive",
        "proxy-authorization",
        "te",
    ] {
        assert!(
            !seen.headers.contains_key(name),
            "{name} reached the upstream"
        );
    }
    assert_eq!(seen.headers["x-kept"], "yes");
}

#[tokio::test]
async fn spoofed_forwarded_headers_from_an_untrusted_peer_are_replaced() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&route_to(&upstream, ""))
        .start()
        .await;
    let client = gw.client();
    let req = client
        .request(Method::GET, "/orders")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-proto", "http")
        .header("x-real-ip", "10.0.0.1")
        .header("forwarded", "for=10.0.0.1")
        .body(Full::default())
        .unwrap();
    client.send(req).await;
    let seen = upstream.last();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert!(!seen.headers.contains_key("x-real-ip"));
    assert!(!seen.headers.contains_key("forwarded"));
    let audit = gw.audit().await;
    assert_eq!(audit[0]["client_ip"], "127.0.0.1");
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_is_appended_and_gives_the_client_ip() {
    let upstream = RecordingUpstream::start().await;
    let config = format!(
        "[proxy]\ntrusted_proxies = [\"127.0.0.0/8\"]\n{}",
        route_to(&upstream, "")
    );
    let gw = TestGateway::builder().config(&config).start().await;
    let client = gw.client();
    let req = client
        .request(Method::GET, "/orders")
        .header("x-forwarded-for", "198.51.100.7")
        .body(Full::default())
        .unwrap();
    client.send(req).await;
    assert_eq!(
        upstream.last().headers["x-forwarded-for"],
        "198.51.100.7, 127.0.0.1"
    );
    assert_eq!(gw.audit().await[0]["client_ip"], "198.51.100.7");
}

#[tokio::test]
async fn targets_are_used_round_robin() {
    let a = RecordingUpstream::start().await;
    let b = RecordingUpstream::start().await;
    let config = format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\", \"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n",
        a.url(),
        b.url()
    );
    let gw = TestGateway::builder().config(&config).start().await;
    for _ in 0..10 {
        assert_eq!(gw.get("/x").await.status, StatusCode::OK);
    }
    assert_eq!((a.count(), b.count()), (5, 5));
}

#[tokio::test]
async fn passive_health_ejects_a_failing_target_and_readmits_it_later() {
    let good = RecordingUpstream::start().await;
    // A port with nothing listening: connections are refused.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let config = format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\", \"http://{dead_addr}\"]\nhealth.passive = {{ eject_after_failures = 2, eject_ms = 700 }}\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n",
        good.url()
    );
    let gw = TestGateway::builder().config(&config).start().await;
    let mut failures = 0;
    for _ in 0..12 {
        if gw.get("/x").await.status == StatusCode::BAD_GATEWAY {
            failures += 1;
        }
    }
    assert_eq!(failures, 2, "the dead target is ejected after two failures");
    assert_eq!(good.count(), 10);
    assert!(
        gw.metrics()
            .await
            .contains("rampart_upstream_ejections_total{upstream=\"api\"} 1")
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut after = 0;
    for _ in 0..4 {
        if gw.get("/x").await.status == StatusCode::BAD_GATEWAY {
            after += 1;
        }
    }
    assert!(
        after >= 1,
        "the target gets traffic again after the ejection period"
    );
}

#[tokio::test]
async fn active_health_checks_take_a_target_out_of_rotation() {
    let good = RecordingUpstream::start().await;
    let sick = RecordingUpstream::with_reply(Arc::new(|r| {
        if r.uri.path() == "/health" {
            json(StatusCode::SERVICE_UNAVAILABLE, "{}")
        } else {
            json(StatusCode::OK, r#"{"sick":true}"#)
        }
    }))
    .await;
    let config = format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\", \"{}\"]\nhealth.active = {{ path = \"/health\", interval_ms = 100, unhealthy_threshold = 1 }}\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/api\"\nupstream = \"api\"\npublic = true\n",
        good.url(),
        sick.url()
    );
    let gw = TestGateway::builder().config(&config).start().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..6 {
        assert_eq!(gw.get("/api/x").await.status, StatusCode::OK);
    }
    let sick_api_calls = sick
        .requests()
        .iter()
        .filter(|r| r.uri.path() != "/health")
        .count();
    assert_eq!(
        sick_api_calls, 0,
        "a target failing its probe gets no traffic"
    );
    assert!(
        gw.metrics()
            .await
            .contains("rampart_upstream_healthy_targets{upstream=\"api\"} 1")
    );
}

#[tokio::test]
async fn silent_upstream_times_out_with_504() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let config = format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"http://{addr}\"]\nrequest_timeout_ms = 300\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n"
    );
    let gw = TestGateway::builder().config(&config).start().await;
    let rsp = gw.get("/slow").await;
    assert_eq!(rsp.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(rsp.json()["code"], "upstream_timeout");
}

#[tokio::test]
async fn refused_connection_is_a_502_problem_without_internal_detail() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let config = format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"http://{addr}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n"
    );
    let gw = TestGateway::builder().config(&config).start().await;
    let rsp = gw.get("/x").await;
    assert_eq!(rsp.status, StatusCode::BAD_GATEWAY);
    let text = rsp.text();
    assert!(
        !text.to_lowercase().contains("refused") && !text.contains("127.0.0.1"),
        "{text}"
    );
    let audit = gw.audit().await;
    assert!(
        audit[0]["reason"].as_str().unwrap().contains("connect"),
        "the cause is in the audit log"
    );
}

#[tokio::test]
async fn upstream_tls_is_verified_against_the_configured_ca() {
    let (upstream, cert) = RecordingUpstream::start_tls().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &cert).unwrap();
    let target = format!("https://localhost:{}", upstream.addr.port());
    let config = |tls: &str| {
        format!(
            "[[upstreams]]\nname = \"api\"\ntargets = [\"{target}\"]\ntls = {{ {tls} }}\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n"
        )
    };
    let trusted = TestGateway::builder()
        .config(&config(&format!(
            "ca_file = \"{}\"",
            dir.path().join("ca.pem").display()
        )))
        .start()
        .await;
    assert_eq!(trusted.get("/x").await.status, StatusCode::OK);
    let untrusted = TestGateway::builder().config(&config("")).start().await;
    assert_eq!(
        untrusted.get("/x").await.status,
        StatusCode::BAD_GATEWAY,
        "an unknown CA is refused"
    );
    let unverified = TestGateway::builder()
        .config(&config("verify = false"))
        .start()
        .await;
    assert_eq!(unverified.get("/x").await.status, StatusCode::OK);
    assert_eq!(upstream.count(), 2);
}
