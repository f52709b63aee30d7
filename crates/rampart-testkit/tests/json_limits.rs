//! JSON threat limits on a route without a contract: each attack is refused with a problem
//! document naming the pointer, and the upstream sees nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use rampart_testkit::{RecordingUpstream, TestGateway, TestResponse};

async fn gateway(upstream: &RecordingUpstream, extra: &str) -> TestGateway {
    let config = format!(
        r#"{extra}
[[upstreams]]
name = "api"
targets = ["{}"]

[[routes]]
name = "public"
path_prefix = "/api"
methods = ["POST"]
upstream = "api"
public = true
max_body_bytes = 2097152
"#,
        upstream.url()
    );
    TestGateway::builder()
        .plaintext()
        .config(&config)
        .start()
        .await
}

async fn post(gw: &TestGateway, content_type: &str, body: impl Into<Bytes>) -> TestResponse {
    let client = gw.client();
    let request = client
        .request(Method::POST, "/api/orders")
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap();
    client.send(request).await
}

fn assert_refused_at(rsp: &TestResponse, pointer: &str) {
    assert_eq!(rsp.status, StatusCode::BAD_REQUEST, "{}", rsp.text());
    let problem = rsp.json();
    assert_eq!(problem["code"], "validation_failed", "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
}

#[tokio::test]
async fn a_deeply_nested_json_bomb_is_refused_and_never_reaches_the_upstream() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let bomb = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let rsp = post(&gw, "application/json", bomb).await;
    assert_refused_at(&rsp, &format!("/body{}", "/0".repeat(32)));
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn duplicate_member_names_are_refused_so_no_two_parsers_disagree() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let rsp = post(
        &gw,
        "application/json",
        r#"{"item":"pen","role":"user","role":"admin"}"#,
    )
    .await;
    assert_refused_at(&rsp, "/body/role");
    assert!(!rsp.text().contains("admin"), "no reflected input");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn an_oversized_string_in_a_vendor_json_type_is_refused() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let body = format!(r#"{{"note":"{}"}}"#, "x".repeat(70_000));
    let rsp = post(&gw, "application/vnd.orders+json; charset=utf-8", body).await;
    assert_refused_at(&rsp, "/body/note");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn invalid_utf8_and_truncated_json_are_refused() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let rsp = post(&gw, "application/json", &b"{\"a\":\"\xc3\x28\"}"[..]).await;
    assert_refused_at(&rsp, "/body");
    let rsp = post(&gw, "application/json", r#"{"a":[1,2"#).await;
    assert_refused_at(&rsp, "/body");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn a_conforming_json_body_arrives_byte_for_byte() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let body = r#"{ "item": "pen",  "qty": 2, "tags": ["a", "b"] }"#;
    let rsp = post(&gw, "application/json", body).await;
    assert_eq!(rsp.status, StatusCode::OK, "{}", rsp.text());
    assert_eq!(upstream.last().body, Bytes::from(body));
}

#[tokio::test]
async fn limits_are_configurable() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(
        &upstream,
        "[validation.json]\nmax_depth = 2\nmax_items = 3\n",
    )
    .await;
    let rsp = post(&gw, "application/json", r#"{"a":{"b":1}}"#).await;
    assert_eq!(rsp.status, StatusCode::OK, "{}", rsp.text());
    let rsp = post(&gw, "application/json", r#"{"a":{"b":{"c":1}}}"#).await;
    assert_refused_at(&rsp, "/body/a/b");
    let rsp = post(&gw, "application/json", r#"[1,2,3,4]"#).await;
    assert_refused_at(&rsp, "/body");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn json_limits_can_be_turned_off_and_other_bodies_stream_unchecked() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "[validation.json]\nenabled = false\n").await;
    let rsp = post(&gw, "application/json", r#"{"a":1,"a":2}"#).await;
    assert_eq!(rsp.status, StatusCode::OK, "{}", rsp.text());
    let gw2 = gateway(&upstream, "").await;
    let rsp = post(&gw2, "application/octet-stream", r#"{"a":1,"a":2}"#).await;
    assert_eq!(rsp.status, StatusCode::OK, "not JSON: not parsed");
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn a_reload_that_tightens_the_limits_applies_them_to_the_next_request() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let body = r#"{"a":{"b":{"c":1}}}"#;
    assert_eq!(
        post(&gw, "application/json", body).await.status,
        StatusCode::OK
    );
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        format!("[validation.json]\nmax_depth = 2\n{text}"),
    )
    .unwrap();
    rampart::run::reload(&gw.gateway, &gw.config_path).unwrap();
    let rsp = post(&gw, "application/json", body).await;
    assert_refused_at(&rsp, "/body/a/b");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn a_bomb_sent_over_h2_without_content_length_is_still_refused() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let bomb = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let rsp = rampart_testkit::h2c_send_unsized(
        &gw.base_url(),
        Method::POST,
        "/api/orders",
        &[("content-type", "application/json")],
        bomb,
    )
    .await;
    assert_refused_at(&rsp, &format!("/body{}", "/0".repeat(32)));
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn json_labelled_text_json_is_held_to_the_same_limits() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let rsp = post(&gw, "text/json", r#"{"a":1,"a":2}"#).await;
    assert_refused_at(&rsp, "/body/a");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn a_gzip_coded_json_body_is_415_never_passed_unchecked() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let client = gw.client();
    let request = client
        .request(Method::POST, "/api/orders")
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(Full::new(Bytes::from_static(b"\x1f\x8b\x08\x00not-really")))
        .unwrap();
    let rsp = client.send(request).await;
    assert_eq!(
        rsp.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        rsp.text()
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn two_content_types_are_refused_so_checker_and_upstream_cannot_disagree() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream, "").await;
    let client = gw.client();
    let request = client
        .request(Method::POST, "/api/orders")
        .header("content-type", "text/plain")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"a":1,"a":2}"#)))
        .unwrap();
    let rsp = client.send(request).await;
    assert_eq!(rsp.status, StatusCode::BAD_REQUEST, "{}", rsp.text());
    assert_eq!(upstream.count(), 0);
}
