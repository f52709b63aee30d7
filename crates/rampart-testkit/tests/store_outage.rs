//! A store outage is the gateway's problem, not the caller's: API keys answer 503
//! `auth_unavailable` with `Retry-After` within `store.timeout_ms` (never a hang, never 401), are
//! never counted as failed authentications, and keys verified just before keep working.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use rampart_testkit::{PgServer, RecordingUpstream, TestGateway, TestResponse};
use serde_json::json;

fn config(upstream: &RecordingUpstream) -> String {
    format!(
        "[brute_force]\nmax_failures = 3\n\n[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nupstream = \"api\"\nauth = {{ api_key = true }}\n",
        upstream.url()
    )
}

async fn create(gw: &TestGateway, name: &str) -> String {
    let rsp = gw
        .admin(
            Method::POST,
            "/v1/keys",
            json!({"name": name, "owner": "o"}),
        )
        .await;
    assert_eq!(rsp.status, StatusCode::CREATED, "{}", rsp.text());
    rsp.json()["key"].as_str().unwrap().to_owned()
}

async fn call(gw: &TestGateway, key: &str) -> TestResponse {
    gw.get_with("/orders/1", &[("x-api-key", key)]).await
}

#[tokio::test]
async fn store_outage_is_503_auth_unavailable_fast_never_a_credential_failure() {
    let mut pg = PgServer::start();
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .api_keys()
        .admin_token()
        .store_url(&pg.url)
        .config(&config(&upstream))
        .start()
        .await;
    let recent = create(&gw, "recent").await;
    let unseen = create(&gw, "unseen").await;
    let rsp = gw
        .admin(
            Method::POST,
            "/v1/keys",
            json!({"name": "revoked", "owner": "o"}),
        )
        .await;
    let (revoked, revoked_id) = (
        rsp.json()["key"].as_str().unwrap().to_owned(),
        rsp.json()["record"]["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(call(&gw, &recent).await.status, StatusCode::OK);
    assert_eq!(call(&gw, &revoked).await.status, StatusCode::OK);
    assert_eq!(upstream.count(), 2);
    gw.admin(
        Method::POST,
        &format!("/v1/keys/{revoked_id}/revoke"),
        json!(null),
    )
    .await;

    pg.stop();
    // Past the one-second lookup cache: from here on every lookup asks the dead store.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let cached = call(&gw, &recent).await;
    assert_eq!(
        cached.status,
        StatusCode::OK,
        "a key verified just before the outage keeps working: {}",
        cached.text()
    );
    assert_eq!(upstream.count(), 3);
    assert_eq!(
        call(&gw, &revoked).await.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a key revoked before the outage is not served from the outage cache"
    );

    // More attempts than `max_failures`: none may count toward a block.
    for attempt in 0..5 {
        let started = Instant::now();
        let refused = call(&gw, &unseen).await;
        let took = started.elapsed();
        assert_eq!(
            refused.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "attempt {attempt}: {}",
            refused.text()
        );
        assert_eq!(refused.json()["code"], "auth_unavailable");
        assert!(refused.headers.contains_key("retry-after"));
        assert!(
            !refused.headers.contains_key("www-authenticate"),
            "an outage is not a credential challenge"
        );
        assert!(
            took < Duration::from_secs(3),
            "attempt {attempt} took {took:?}"
        );
        // After a failed lookup the store counts as down for a second: no request waits for
        // its timeout again in the meantime.
        assert!(
            attempt == 0 || took < Duration::from_millis(500),
            "attempt {attempt} waited {took:?} for a store known to be down"
        );
    }
    assert_eq!(
        upstream.count(),
        3,
        "nothing unverified reached the upstream"
    );

    pg.restart();
    let back = Instant::now();
    loop {
        let rsp = call(&gw, &unseen).await;
        assert_ne!(
            rsp.status,
            StatusCode::TOO_MANY_REQUESTS,
            "the outage counted as failed authentications"
        );
        if rsp.status == StatusCode::OK {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "store did not come back: {} {}",
            rsp.status,
            rsp.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(upstream.count(), 4);
    assert_eq!(call(&gw, &revoked).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unreachable_store_at_start_is_named_quickly_with_its_password_redacted() {
    // A port nothing listens on: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://rampart:hunter2-secret@127.0.0.1:{port}/gw");
    let started = Instant::now();
    let Err(error) = rampart::store::Store::connect_with(&url, Duration::from_secs(2)).await else {
        panic!("connected to nothing");
    };
    let text = error.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("rampart:***@"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        !text.contains("pool timed out"),
        "the cause, not the pool: {text}"
    );
}

#[tokio::test]
async fn unreachable_redis_at_start_is_named_quickly_with_its_password_redacted() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:hunter2-secret@127.0.0.1:{port}/0");
    let started = Instant::now();
    let Err(text) = rampart::store::redis::connect_single(&url).await else {
        panic!("connected to nothing");
    };
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
