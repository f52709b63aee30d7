//! The audit log and the admin listener.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use rampart_testkit::{Client, RecordingUpstream, TestGateway, read_audit};

fn config(upstream: &RecordingUpstream, audit_extra: &str) -> String {
    format!(
        "{audit_extra}\n[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nmethods = [\"GET\", \"POST\"]\nupstream = \"api\"\npublic = true\n",
        upstream.url()
    )
}

#[tokio::test]
async fn every_request_is_audited_with_its_decision() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&config(&upstream, ""))
        .start()
        .await;
    let ok = gw.get("/orders/7?secret=1").await;
    gw.get("/missing").await;
    let records = gw.audit().await;
    assert_eq!(records.len(), 2);
    let first = &records[0];
    assert_eq!(first["request_id"].as_str(), ok.header("x-request-id"));
    assert_eq!(first["method"], "GET");
    assert_eq!(first["route"], "orders");
    assert_eq!(first["path"], "/orders/7", "no query string");
    assert_eq!(first["status"], 200);
    assert_eq!(first["decision"], "allow");
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert_eq!(first["listener"], "public");
    assert_eq!(first["bytes_out"], 11);
    assert!(
        first["upstream_us"].as_u64().is_some()
            && first["duration_us"].as_u64() >= first["upstream_us"].as_u64()
    );
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    let second = &records[1];
    assert_eq!(second["status"], 404);
    assert_eq!(second["decision"], "deny");
    assert_eq!(second["reason"], "no route for host and path");
    assert!(second["route"].is_null());
}

#[tokio::test]
async fn credentials_never_reach_the_audit_log() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&config(&upstream, ""))
        .start()
        .await;
    let client = gw.client();
    let req = client
        .request(
            Method::POST,
            "/orders?api_key=QUERYSECRET&token=QUERYSECRET",
        )
        .header("authorization", "Bearer BEARERSECRET")
        .header("cookie", "session=COOKIESECRET")
        .header("x-api-key", "KEYSECRET")
        .body(Full::new(Bytes::from_static(b"password=BODYSECRET")))
        .unwrap();
    assert_eq!(client.send(req).await.status, StatusCode::OK);
    gw.audit().await;
    let text = std::fs::read_to_string(gw.dir.path().join("audit.log")).unwrap();
    for secret in [
        "QUERYSECRET",
        "BEARERSECRET",
        "COOKIESECRET",
        "KEYSECRET",
        "BODYSECRET",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the audit log: {text}"
        );
    }
    assert!(text.contains("\"bytes_in\":19"));
}

#[tokio::test]
async fn shutdown_flushes_every_served_request_to_the_audit_log() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&config(&upstream, ""))
        .start()
        .await;
    let client = gw.client_h2();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.get(&format!("/orders/{i}")).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let records = gw.stop().await;
    assert_eq!(records.len(), 50);
    let mut paths: Vec<String> = records
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_owned())
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 50, "one record per request");
}

#[tokio::test]
async fn in_flight_requests_finish_during_graceful_shutdown() {
    let upstream = RecordingUpstream::slow(std::time::Duration::from_millis(600)).await;
    let gw = TestGateway::builder()
        .config(&config(&upstream, ""))
        .start()
        .await;
    let client = gw.client();
    let slow = tokio::spawn(async move { client.get("/orders/slow").await.status });
    while upstream.count() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let m = gw.metrics().await;
    assert!(
        m.contains(r#"rampart_upstream_in_flight{upstream="api"} 1"#),
        "{m}"
    );
    let records = gw.stop().await;
    assert_eq!(
        slow.await.unwrap(),
        StatusCode::OK,
        "the request in flight was answered"
    );
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["status"], 200);
}

#[tokio::test]
async fn audit_file_rotates_by_size_and_keeps_max_files() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .audit("max_file_bytes = 1000\nmax_files = 2")
        .config(&config(&upstream, ""))
        .start()
        .await;
    for i in 0..30 {
        gw.get(&format!("/orders/{i}")).await;
    }
    let records = gw.audit().await;
    let dir = gw.dir.path();
    let rotated = read_audit(&dir.join("audit.log.1"));
    assert!(!rotated.is_empty(), "audit.log.1 exists after rotation");
    assert!(dir.join("audit.log.2").exists());
    assert!(
        !dir.join("audit.log.3").exists(),
        "only max_files rotated files are kept"
    );
    let older = read_audit(&dir.join("audit.log.2"));
    let all: Vec<_> = older.iter().chain(&rotated).chain(&records).collect();
    assert!(all.len() < 30, "the oldest records were rotated out");
    assert_eq!(
        all.last().unwrap()["path"],
        "/orders/29",
        "files are in order, newest last"
    );
}

#[tokio::test]
async fn admin_serves_metrics_liveness_and_readiness() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&config(&upstream, ""))
        .start()
        .await;
    gw.get("/orders/1").await;
    gw.get("/nope").await;
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .contains(r#"rampart_requests_total{route="orders",status="200",decision="allow"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"rampart_requests_total{route="(none)",status="404",decision="deny"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("rampart_request_duration_seconds_bucket"),
        "latency histogram"
    );
    assert!(metrics.contains(r#"rampart_upstream_healthy_targets{upstream="api"} 1"#));
    let admin = Client::new(&format!("http://{}", gw.admin), None, false);
    assert_eq!(admin.get("/live").await.status, StatusCode::OK);
    assert_eq!(admin.get("/ready").await.status, StatusCode::OK);
    let unknown = admin.get("/keys").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        unknown.header("content-type"),
        Some("application/problem+json")
    );
}

/// Sends one admin request from `source` (another loopback address) and returns the status line.
async fn admin_call_from(gw: &TestGateway, source: std::net::IpAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    let mut stream = socket.connect(gw.admin).await.unwrap();
    let token = gw.admin_token.clone().unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn admin_audit_records_the_real_peer_address() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .admin_token()
        .config(&config(&upstream, ""))
        .start()
        .await;
    let source: std::net::IpAddr = [127, 0, 0, 2].into();
    let status = admin_call_from(&gw, source, "/v1/status").await;
    assert!(status.contains("200"), "{status}");
    let audit = gw.audit().await;
    let record = audit
        .iter()
        .rev()
        .find(|r| r["listener"] == "admin")
        .unwrap();
    assert_eq!(record["client_ip"], "127.0.0.2", "{record}");
}

#[tokio::test]
async fn metrics_have_help_text_certificate_expiry_and_labelled_auth_failures() {
    let upstream = RecordingUpstream::start().await;
    let keyed = "\n[[routes]]\nname = \"keyed\"\npath_prefix = \"/keyed\"\nupstream = \"api\"\nauth = { api_key = true }\n";
    let gw = TestGateway::builder()
        .api_keys()
        .config(&format!("{}{keyed}", config(&upstream, "")))
        .start()
        .await;
    gw.get("/orders/1").await;
    gw.get("/keyed/1").await;
    let client = gw.client();
    let bad_key = client
        .request(Method::GET, "/keyed/1")
        .header("x-api-key", "rmp_attacker-controlled-text")
        .body(Full::default())
        .unwrap();
    assert_eq!(client.send(bad_key).await.status, StatusCode::UNAUTHORIZED);
    let metrics = gw.metrics().await;
    for name in [
        "rampart_requests_total",
        "rampart_request_duration_seconds",
        "rampart_auth_failures_total",
        "rampart_tls_certificate_expiry_seconds",
    ] {
        assert!(
            metrics.contains(&format!("# HELP {name} ")),
            "{name} has no help text:\n{metrics}"
        );
    }
    assert!(
        metrics.contains(r#"rampart_auth_failures_total{method="none",reason="missing"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"rampart_auth_failures_total{method="api_key",reason="invalid_token"} 1"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains("attacker"),
        "label values are never request input"
    );
    let expiry = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"rampart_tls_certificate_expiry_seconds{listener="public"} "#)
        })
        .unwrap_or_else(|| panic!("no certificate expiry gauge:\n{metrics}"));
    let expiry: f64 = expiry.parse().unwrap();
    let now = rampart_testkit::now() as f64;
    assert!(expiry > now, "the test certificate is valid: {expiry}");
}

/// The value of the one series `series` (name and labels as rendered) in a `/metrics` text.
fn metric_value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_carry_build_info_process_figures_open_connections_and_counters_at_zero() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&config(&upstream, ""))
        .start()
        .await;
    let metrics = gw.metrics().await;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        metric_value(
            &metrics,
            &format!(r#"rampart_build_info{{version="{version}"}}"#)
        ),
        1.0
    );
    assert!(metric_value(&metrics, "process_resident_memory_bytes") > 1e6);
    assert!(metric_value(&metrics, "process_open_fds") > 3.0);
    assert!(metric_value(&metrics, "process_start_time_seconds") > 1.7e9);
    for counter in [
        "rampart_audit_dropped_total",
        "rampart_clients_blocked_total",
        "rampart_tls_handshake_failures_total",
        "rampart_blocks_refused_total",
        "rampart_detections_dropped_total",
    ] {
        assert_eq!(metric_value(&metrics, counter), 0.0, "{counter}");
        assert!(metrics.contains(&format!("# HELP {counter} ")), "{counter}");
    }
    // Labelled counters whose labels are a small fixed set: every series at zero.
    for series in [
        r#"rampart_detections_total{detector="users_by_address"}"#,
        r#"rampart_detections_total{detector="scanning"}"#,
        r#"rampart_alerts_total{result="delivered"}"#,
        r#"rampart_alerts_total{result="dropped"}"#,
        r#"rampart_config_reloads_total{result="error"}"#,
        r#"rampart_certificate_reloads_total{result="ok"}"#,
    ] {
        assert_eq!(metric_value(&metrics, series), 0.0, "{series}");
    }

    let open = |m: &str| metric_value(m, r#"rampart_open_connections{listener="public"}"#);
    let before = open(&gw.metrics().await);
    let mut extra = Vec::new();
    for _ in 0..3 {
        extra.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        open(&gw.metrics().await),
        before + 3.0,
        "three more held open"
    );
    drop(extra);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        open(&gw.metrics().await),
        before,
        "and counted out when they close"
    );
}

#[tokio::test]
async fn records_name_the_protocols_the_client_and_the_upstreams_own_status() {
    let upstream = RecordingUpstream::with_reply(std::sync::Arc::new(|_| {
        rampart_testkit::json(StatusCode::SERVICE_UNAVAILABLE, r#"{"down":true}"#)
    }))
    .await;
    let gw = TestGateway::builder()
        .config(&config(&upstream, ""))
        .start()
        .await;
    let client = gw.client();
    let long_agent = format!("probe/1.0 {}", "x".repeat(1000));
    let request = client
        .request(Method::GET, "/orders/1")
        .header("user-agent", long_agent.as_str())
        .body(Full::default())
        .unwrap();
    let answer = client.send(request).await;
    assert!(
        !answer.text().contains("down"),
        "the upstream's error body is masked"
    );
    let h2 = gw.client_h2().get("/orders/2").await;
    assert!(h2.status.is_server_error());
    let audit = gw.audit().await;
    let first = audit.iter().find(|r| r["path"] == "/orders/1").unwrap();
    assert_eq!(first["status"], answer.status.as_u16());
    assert_eq!(first["upstream_status"], 503, "{first}");
    assert_eq!(first["http_version"], "HTTP/1.1");
    assert_eq!(first["tls_version"], "TLSv1.3");
    assert_eq!(
        first["host"],
        format!("localhost:{}", gw.addr.port()).as_str()
    );
    let agent = first["user_agent"].as_str().unwrap();
    assert!(agent.starts_with("probe/1.0 x"), "{agent}");
    assert_eq!(agent.len(), rampart::audit::CLIENT_TEXT_MAX, "bounded");
    let second = audit.iter().find(|r| r["path"] == "/orders/2").unwrap();
    assert_eq!(second["http_version"], "HTTP/2", "{second}");
    assert!(
        second["host"].as_str().unwrap().starts_with("localhost:"),
        "{second}"
    );
}
