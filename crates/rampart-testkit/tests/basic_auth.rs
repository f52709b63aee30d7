//! HTTP Basic: only where enabled, only over TLS, argon2id hashes, same answer for unknown users
//! and wrong passwords, and failures feed the brute-force guard.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use http::StatusCode;
use rampart_testkit::{RecordingUpstream, TestGateway, TestResponse};

fn config(upstream: &RecordingUpstream) -> String {
    let hash = rampart::policy::authn::basic::hash_password("s3cret-pass").unwrap();
    format!(
        r#"
[brute_force]
max_failures = 3
window_s = 60
block_s = 60

[[auth.basic.users]]
username = "ops"
password_hash = "{hash}"
roles = ["operator"]

[[upstreams]]
name = "api"
targets = ["{up}"]

[[routes]]
name = "ops"
path_prefix = "/ops"
upstream = "api"
auth = {{ basic = true }}
"#,
        up = upstream.url()
    )
}

async fn call(gw: &TestGateway, user: &str, password: &str) -> TestResponse {
    gw.get_basic("/ops/status", user, password).await
}

#[tokio::test]
async fn basic_user_with_the_right_password_is_let_through_without_the_password() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&config(&upstream))
        .start()
        .await;
    let response = call(&gw, "ops", "s3cret-pass").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let seen = upstream.last();
    assert_eq!(seen.headers["x-rampart-subject"], "ops");
    assert_eq!(seen.headers["x-rampart-auth-method"], "basic");
    assert_eq!(seen.headers["x-rampart-roles"], "operator");
    assert!(
        seen.headers.get("authorization").is_none(),
        "password forwarded"
    );
    // Cached: the second call does not pay argon2 again, and still works.
    assert_eq!(call(&gw, "ops", "s3cret-pass").await.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401_and_then_a_block() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&config(&upstream))
        .start()
        .await;
    let wrong = call(&gw, "ops", "guess").await;
    let unknown = call(&gw, "root", "guess").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json()["code"], unknown.json()["code"]);
    assert_eq!(
        wrong.header("www-authenticate"),
        unknown.header("www-authenticate")
    );
    call(&gw, "ops", "guess-3").await;
    let blocked = call(&gw, "ops", "s3cret-pass").await;
    assert_eq!(
        blocked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "guessing is blocked"
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn basic_credentials_over_plaintext_are_refused_even_when_right() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .plaintext()
        .config(&config(&upstream))
        .start()
        .await;
    let response = call(&gw, "ops", "s3cret-pass").await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["code"], "invalid_request");
    assert_eq!(upstream.count(), 0);
}
