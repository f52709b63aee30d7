//! Quotas per key per day or month: refused with the time to the period's end, persisted in the
//! store across restarts, exact across instances through Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::Duration;

use http::{Method, StatusCode};
use http_body_util::Full;
use rampart_testkit::{RecordingUpstream, RedisServer, TestGateway, TestResponse};

fn route(upstream: &RecordingUpstream, limit: u64) -> String {
    format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\nquotas = [{{ name = \"daily\", key = \"header:x-tenant\", limit = {limit}, per = \"day\" }}]\n",
        upstream.url()
    )
}

async fn get(gw: &TestGateway, tenant: &str) -> TestResponse {
    let client = gw.client();
    let request = client
        .request(Method::GET, "/x")
        .header("x-tenant", tenant)
        .body(Full::default())
        .unwrap();
    client.send(request).await
}

async fn start(upstream: &RecordingUpstream, extra: &str) -> TestGateway {
    TestGateway::builder()
        .config(&route(upstream, 3))
        .config(extra)
        .start()
        .await
}

#[tokio::test]
async fn spent_quota_is_refused_until_the_end_of_the_day() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, "").await;
    for _ in 0..3 {
        assert_eq!(get(&gw, "acme").await.status, StatusCode::OK);
    }
    let refused = get(&gw, "acme").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let to_midnight = 86_400 - now % 86_400;
    assert!(
        retry.abs_diff(to_midnight) <= 2,
        "retry {retry}, midnight in {to_midnight}"
    );
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some(r#""daily";q=3;w=86400"#)
    );
    assert_eq!(
        get(&gw, "globex").await.status,
        StatusCode::OK,
        "another tenant"
    );
    assert_eq!(upstream.count(), 4);
}

#[tokio::test]
async fn quota_use_survives_a_restart_in_the_store() {
    let upstream = RecordingUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = format!(
        "[store]\nurl = \"sqlite:{}\"\n",
        dir.path().join("q.db").display()
    );
    let first = start(&upstream, &store).await;
    assert_eq!(get(&first, "acme").await.status, StatusCode::OK);
    assert_eq!(get(&first, "acme").await.status, StatusCode::OK);
    // Counts reach the store within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.stop().await;
    let second = start(&upstream, &store).await;
    assert_eq!(get(&second, "acme").await.status, StatusCode::OK);
    assert_eq!(
        get(&second, "acme").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn instances_sharing_redis_share_one_quota() {
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let section = format!("[redis]\nurl = \"{}\"\n", redis.url);
    let a = start(&upstream, &section).await;
    let b = start(&upstream, &section).await;
    let mut admitted = 0;
    for i in 0..8 {
        let gw = if i % 2 == 0 { &a } else { &b };
        if get(gw, "acme").await.status == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
}
