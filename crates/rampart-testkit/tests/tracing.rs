//! W3C Trace Context through the real gateway, and OTLP spans at a real HTTP receiver: a trusted
//! peer's trace is continued upstream, a client's is replaced, and a sampled request's spans
//! name the stage that refused it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use http::StatusCode;
use rampart_testkit::{RecordingUpstream, TestGateway, TestIssuer, eventually};
use serde_json::Value;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn config(upstream: &RecordingUpstream, issuer: &TestIssuer, head: &str) -> String {
    format!(
        "{head}\n{jwt}\n[[upstreams]]\nname = \"api\"\ntargets = [\"{up}\"]\n
[[routes]]
name = \"open\"
path = \"/open\"
upstream = \"api\"
public = true

[[routes]]
name = \"orders\"
path = \"/orders\"
upstream = \"api\"
auth = {{ jwt = [\"corp\"] }}
",
        jwt = issuer.jwt_config("corp", "api"),
        up = upstream.url(),
    )
}

#[tokio::test]
async fn a_trusted_proxys_trace_is_continued_upstream_and_recorded_in_the_audit() {
    let upstream = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let head = "[proxy]\ntrusted_proxies = [\"127.0.0.1/32\"]\n";
    let gw = TestGateway::builder()
        .config(&config(&upstream, &issuer, head))
        .start()
        .await;
    let answered = gw
        .get_with(
            "/open",
            &[("traceparent", PARENT), ("tracestate", "congo=t61rcWkgMzE")],
        )
        .await;
    assert_eq!(answered.status, StatusCode::OK);
    let seen = upstream.last();
    let sent = seen.headers["traceparent"].to_str().unwrap();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts[1], TRACE, "the same trace");
    assert_ne!(
        parts[2], "00f067aa0ba902b7",
        "the gateway's own span is the parent"
    );
    assert_eq!(parts[3], "01", "the caller's sampling decision");
    assert_eq!(seen.headers["tracestate"], "congo=t61rcWkgMzE");
    let audit = gw.audit().await;
    assert_eq!(audit.last().unwrap()["trace_id"], TRACE);
}

#[tokio::test]
async fn a_clients_own_trace_context_is_replaced_and_never_forwarded() {
    let upstream = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let gw = TestGateway::builder()
        .config(&config(&upstream, &issuer, ""))
        .start()
        .await;
    gw.get_with(
        "/open",
        &[("traceparent", PARENT), ("tracestate", "evil=1")],
    )
    .await;
    let seen = upstream.last();
    let sent = seen.headers["traceparent"].to_str().unwrap();
    assert!(!sent.contains(TRACE), "{sent}");
    assert!(
        sent.ends_with("-00"),
        "a client cannot force sampling: {sent}"
    );
    assert!(!seen.headers.contains_key("tracestate"));
    let audit = gw.audit().await;
    assert_eq!(
        audit.last().unwrap()["trace_id"].as_str().unwrap(),
        sent.split('-').nth(1).unwrap(),
        "the audit names the trace the upstream saw"
    );
}

#[tokio::test]
async fn a_refusal_on_the_response_path_names_its_own_stage() {
    // The upstream leaks a private key: the leak scan answers a masked 502.
    let upstream = RecordingUpstream::with_reply(std::sync::Arc::new(|_| {
        rampart_testkit::json(
            StatusCode::OK,
            "{\"key\":\"-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEA\"}",
        )
    }))
    .await;
    let issuer = TestIssuer::start().await;
    let gw = TestGateway::builder()
        .config(&config(&upstream, &issuer, ""))
        .start()
        .await;
    let bearer = format!("Bearer {}", issuer.token("ec-1", "api"));
    let masked = gw.get_with("/orders", &[("authorization", &bearer)]).await;
    assert_eq!(masked.status, StatusCode::BAD_GATEWAY);
    let audit = gw.audit().await;
    assert_eq!(
        audit.last().unwrap()["refused_by"],
        "mask_upstream",
        "not authenticate, the route's first policy: {:?}",
        audit.last()
    );
    assert_eq!(gw.get("/orders").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        gw.audit().await.last().unwrap()["refused_by"],
        "authenticate"
    );
}

/// The spans the receiver got, from every OTLP JSON post.
fn received_spans(receiver: &RecordingUpstream) -> Vec<Value> {
    receiver
        .requests()
        .iter()
        .filter(|r| r.uri.path() == "/v1/traces")
        .flat_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(
                body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
                "rampart"
            );
            body["resourceSpans"][0]["scopeSpans"][0]["spans"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect()
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[tokio::test]
async fn a_sampled_request_is_exported_as_spans_naming_the_stage_that_refused_it() {
    let upstream = RecordingUpstream::start().await;
    let receiver = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let head = format!(
        "[proxy]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n[tracing]\notlp_endpoint = \"{}\"\nsample_ratio = 0.0\n",
        receiver.url()
    );
    let gw = TestGateway::builder()
        .config(&config(&upstream, &issuer, &head))
        .start()
        .await;
    // Unsampled first (a new trace at ratio 0), then one whose sampled parent is followed.
    assert_eq!(gw.get("/orders").await.status, StatusCode::UNAUTHORIZED);
    let refused = gw.get_with("/orders", &[("traceparent", PARENT)]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let spans = eventually(async || {
        let spans = received_spans(&receiver);
        (!spans.is_empty()).then_some(spans)
    })
    .await;
    assert!(
        spans.iter().all(|s| s["traceId"] == TRACE),
        "only the sampled request is exported"
    );
    let root = spans
        .iter()
        .find(|s| s["kind"] == 2)
        .expect("a server span");
    assert_eq!(root["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(root["name"], "GET orders");
    assert_eq!(
        attribute(root, "rampart.refused_by").unwrap()["stringValue"],
        "authenticate"
    );
    assert_eq!(
        attribute(root, "http.response.status_code").unwrap()["intValue"],
        "401"
    );
    let stages: Vec<&str> = spans
        .iter()
        .filter(|s| s["kind"] == 1)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["blocklist", "hygiene", "routing", "authenticate"]);
    let refusing = spans.iter().find(|s| s["name"] == "authenticate").unwrap();
    assert_eq!(refusing["status"]["code"], 2);
    assert_eq!(refusing["status"]["message"], "unauthenticated");
    assert!(
        spans
            .iter()
            .filter(|s| s["kind"] == 1)
            .all(|s| s["parentSpanId"] == root["spanId"]),
        "stage spans hang under the request's span"
    );
    let start: u128 = root["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u128 = root["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(end >= start);
}

#[tokio::test]
async fn a_reload_changes_whose_trace_is_believed_and_every_route_keeps_its_policies() {
    let upstream = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let head =
        "[proxy]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n[tracing]\naccept_from = \"none\"\n";
    let gw = TestGateway::builder()
        .admin_token()
        .config(&config(&upstream, &issuer, head))
        .start()
        .await;
    let trace_seen = async || {
        gw.get_with("/open", &[("traceparent", PARENT)]).await;
        let seen = upstream.last();
        seen.headers["traceparent"]
            .to_str()
            .unwrap()
            .contains(TRACE)
    };
    assert!(!trace_seen().await, "accept_from = none");

    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        text.replace(
            "accept_from = \"none\"",
            "accept_from = \"trusted_proxies\"",
        ),
    )
    .unwrap();
    let reloaded = gw
        .admin(http::Method::POST, "/v1/reload", serde_json::json!(null))
        .await;
    assert_eq!(reloaded.status, StatusCode::OK, "{}", reloaded.text());
    assert!(trace_seen().await, "the reloaded setting applies");
    let before = upstream.count();
    assert_eq!(gw.get("/orders").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        upstream.count(),
        before,
        "the protected route kept its authentication"
    );
}
