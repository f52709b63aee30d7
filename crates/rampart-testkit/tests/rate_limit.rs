//! Rate limits end to end: 429 with Retry-After and RateLimit headers, several limits, per-key
//! isolation, spoofed forwarding headers, throttling, concurrency limits, and limits shared by
//! instances through a real Redis, including an outage.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use http_body_util::Full;
use rampart_testkit::{
    RecordingUpstream, RedisCluster, RedisServer, TestGateway, TestIssuer, TestResponse,
};

fn route(upstream: &RecordingUpstream, extra: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n{extra}\n",
        upstream.url()
    )
}

async fn get(gw: &TestGateway, headers: &[(&str, &str)]) -> TestResponse {
    let client = gw.client();
    let mut request = client.request(Method::GET, "/x");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    client.send(request.body(Full::default()).unwrap()).await
}

#[tokio::test]
async fn burst_over_the_limit_gets_429_with_retry_after_and_ratelimit_headers() {
    let upstream = RecordingUpstream::start().await;
    let limit = r#"rate_limits = [{ name = "per-ip", key = "ip", rate = 3, per = "minute" }]"#;
    let gw = TestGateway::builder()
        .config(&route(&upstream, limit))
        .start()
        .await;
    for _ in 0..3 {
        assert_eq!(get(&gw, &[]).await.status, StatusCode::OK);
    }
    let refused = get(&gw, &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.json()["code"], "rate_limited");
    assert!(
        refused.json()["title"]
            .as_str()
            .unwrap()
            .contains("Retry-After")
    );
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((19..=20).contains(&retry), "one request per 20 s: {retry}");
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some(r#""per-ip";q=3;w=60"#)
    );
    assert!(
        refused
            .header("ratelimit")
            .unwrap()
            .starts_with(r#""per-ip";r=0;t="#)
    );
    assert_eq!(
        upstream.count(),
        3,
        "a limited request reached the upstream"
    );
    let audit = gw.stop().await;
    let last = audit.last().unwrap();
    assert_eq!(last["status"], 429);
    assert!(last["reason"].as_str().unwrap().contains("per-ip"));
}

#[tokio::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_does_not_reset_the_limit() {
    let upstream = RecordingUpstream::start().await;
    let limit = r#"rate_limits = [{ name = "per-ip", key = "ip", rate = 2, per = "minute" }]"#;
    let gw = TestGateway::builder()
        .config(&route(&upstream, limit))
        .start()
        .await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let spoofed = format!("203.0.113.{i}");
        statuses.push(get(&gw, &[("x-forwarded-for", &spoofed)]).await.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 2);
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn every_limit_of_a_route_applies_and_keys_are_independent() {
    let upstream = RecordingUpstream::start().await;
    let limits = r#"rate_limits = [
  { name = "burst", key = "ip", rate = 100, per = "second", burst = 100 },
  { name = "tenant-hourly", key = ["ip", "header:x-tenant"], rate = 2, per = "hour" },
]"#;
    let gw = TestGateway::builder()
        .config(&route(&upstream, limits))
        .config("[rate_limit]\nheaders_on_success = true\n")
        .start()
        .await;
    let first = get(&gw, &[("x-tenant", "a")]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.header("ratelimit-policy"),
        Some(r#""burst";q=100;w=1, "tenant-hourly";q=2;w=3600"#)
    );
    assert!(
        first
            .header("ratelimit")
            .unwrap()
            .starts_with(r#""tenant-hourly";r=1;"#)
    );
    assert_eq!(get(&gw, &[("x-tenant", "a")]).await.status, StatusCode::OK);
    let refused = get(&gw, &[("x-tenant", "a")]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused
            .header("ratelimit")
            .unwrap()
            .starts_with(r#""tenant-hourly""#)
    );
    assert_eq!(
        get(&gw, &[("x-tenant", "b")]).await.status,
        StatusCode::OK,
        "another tenant"
    );
}

#[tokio::test]
async fn principal_limits_run_after_authentication_per_subject() {
    let issuer = TestIssuer::start().await;
    let upstream = RecordingUpstream::start().await;
    let config = format!(
        r#"
{jwt}

[[upstreams]]
name = "api"
targets = ["{up}"]

[[routes]]
name = "r"
path_prefix = "/"
upstream = "api"
auth = {{ jwt = ["corp"] }}
rate_limits = [{{ name = "per-user", key = "principal", rate = 2, per = "minute" }}]
"#,
        jwt = issuer.jwt_config("corp", "api"),
        up = upstream.url()
    );
    let gw = TestGateway::builder().config(&config).start().await;
    let token_for = |sub: &str| {
        let mut claims = issuer.claims("api");
        claims["sub"] = serde_json::json!(sub);
        format!("Bearer {}", issuer.key("ec-1").sign(&claims, "JWT"))
    };
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    let statuses: Vec<StatusCode> = {
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(get(&gw, &[("authorization", &alice)]).await.status);
        }
        out
    };
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(
        get(&gw, &[("authorization", &bob)]).await.status,
        StatusCode::OK
    );
    // Unauthenticated requests are refused by authentication, not counted against anyone.
    assert_eq!(get(&gw, &[]).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn throttled_requests_wait_their_turn_instead_of_failing() {
    let upstream = RecordingUpstream::start().await;
    let limit = r#"rate_limits = [{ name = "smooth", key = "ip", rate = 10, per = "second", burst = 1, max_delay_ms = 500 }]"#;
    let gw = TestGateway::builder()
        .config(&route(&upstream, limit))
        .start()
        .await;
    let started = Instant::now();
    let calls: Vec<_> = (0..4).map(|_| get(&gw, &[])).collect();
    let statuses: Vec<StatusCode> = futures_join(calls).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not spaced: {:?}",
        started.elapsed()
    );
    // Far over the delay budget: refused.
    let calls: Vec<_> = (0..12).map(|_| get(&gw, &[])).collect();
    let statuses = futures_join(calls).await;
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS));
}

async fn futures_join(
    calls: Vec<impl std::future::Future<Output = TestResponse>>,
) -> Vec<StatusCode> {
    let mut handles = Vec::new();
    for call in calls {
        handles.push(call);
    }
    let mut out = Vec::new();
    for response in join_all(handles).await {
        out.push(response.status);
    }
    out
}

async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out = Vec::new();
    // Poll all concurrently.
    let results = std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out.len() <= i {
                out.push(None);
            }
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(std::mem::take(&mut out))
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

#[tokio::test]
async fn concurrency_limit_sheds_with_503_and_retry_after() {
    let upstream = RecordingUpstream::slow(Duration::from_millis(400)).await;
    let gw = TestGateway::builder()
        .config(&route(&upstream, "max_in_flight = 1"))
        .start()
        .await;
    let statuses = futures_join(vec![get(&gw, &[]), get(&gw, &[])]).await;
    assert!(statuses.contains(&StatusCode::OK));
    assert!(
        statuses.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    let shed = get(&gw, &[]).await;
    assert_eq!(
        shed.status,
        StatusCode::OK,
        "the slot is released after the request"
    );
}

async fn redis_gateway(
    upstream: &RecordingUpstream,
    redis: &RedisServer,
    mode: &str,
) -> TestGateway {
    let limit = r#"rate_limits = [{ name = "shared", key = "route", rate = 60, per = "minute" }]"#;
    TestGateway::builder()
        .config(&route(upstream, limit))
        .config(&format!(
            "[redis]\nurl = \"{}\"\n\n[rate_limit]\non_redis_failure = \"{mode}\"\nexpected_instances = 3\n",
            redis.url
        ))
        .start()
        .await
}

#[tokio::test]
async fn three_instances_sharing_redis_admit_at_most_the_limit() {
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let instances = [
        redis_gateway(&upstream, &redis, "open").await,
        redis_gateway(&upstream, &redis, "open").await,
        redis_gateway(&upstream, &redis, "open").await,
    ];
    let started = Instant::now();
    let mut admitted: u64 = 0;
    for i in 0..180 {
        if get(&instances[i % 3], &[]).await.status == StatusCode::OK {
            admitted += 1;
        }
    }
    // 60 per minute with a burst of 60; the test takes a few seconds, so a few refills may land.
    assert!(admitted >= 60, "admitted only {admitted}");
    // A burst of 60, then one more per second while the test runs; 2% on top of that.
    let refills = started.elapsed().as_secs() + 1;
    let bound = (60 + refills) * 102 / 100;
    assert!(admitted <= bound, "admitted {admitted}, bound {bound}");
    assert_eq!(upstream.count() as u64, admitted);
}

#[tokio::test]
async fn redis_outage_fails_open_to_local_limits_and_recovers() {
    let mut redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let gw = redis_gateway(&upstream, &redis, "open").await;
    assert_eq!(get(&gw, &[]).await.status, StatusCode::OK);
    redis.stop();
    // Local fallback: 60/min divided by 3 instances = a burst of 20.
    let started = Instant::now();
    let mut admitted: u64 = 0;
    for _ in 0..30 {
        if get(&gw, &[]).await.status == StatusCode::OK {
            admitted += 1;
        }
    }
    // One more every 3 s at the divided rate, should the machine be slow.
    let bound = 20 + started.elapsed().as_secs() / 3;
    assert!(
        (20..=bound).contains(&admitted),
        "fail-open uses the divided local limit: {admitted} admitted"
    );
    assert!(gw.metrics().await.contains("rampart_redis_errors_total"));
    redis.restart();
    // Redis is asked again within about a second; the shared bucket is fresh (Redis kept nothing),
    // so a run of requests passes that the drained local fallback (1 per 3 s) could not admit.
    let back = Instant::now();
    while get(&gw, &[]).await.status != StatusCode::OK {
        assert!(back.elapsed() < Duration::from_secs(5), "did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        assert_eq!(
            get(&gw, &[]).await.status,
            StatusCode::OK,
            "not back on Redis"
        );
    }
}

#[tokio::test]
async fn redis_outage_fails_closed_with_503_rate_limit_unavailable_and_retry_after() {
    let mut redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let gw = redis_gateway(&upstream, &redis, "closed").await;
    assert_eq!(get(&gw, &[]).await.status, StatusCode::OK);
    redis.stop();
    let refused = get(&gw, &[]).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused.json()["code"],
        "rate_limit_unavailable",
        "a public code, not the admin API's service_unavailable"
    );
    assert_eq!(
        refused
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert_eq!(upstream.count(), 1);
    redis.restart();
    let back = Instant::now();
    while get(&gw, &[]).await.status != StatusCode::OK {
        assert!(back.elapsed() < Duration::from_secs(5), "did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn instances_sharing_a_redis_cluster_admit_at_most_the_limit() {
    let cluster = RedisCluster::start();
    let upstream = RecordingUpstream::start().await;
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| format!("\"{n}\"")).collect();
    let section = format!("[redis]\ncluster_nodes = [{}]\n", nodes.join(", "));
    let limit = r#"rate_limits = [{ name = "per-tenant", key = "header:x-tenant", rate = 20, per = "minute" }]"#;
    let mut instances = Vec::new();
    for _ in 0..2 {
        instances.push(
            TestGateway::builder()
                .config(&route(&upstream, limit))
                .config(&section)
                .start()
                .await,
        );
    }
    // Several tenants, so that their buckets land on different nodes' slots.
    for tenant in ["a", "b", "c", "d"] {
        let started = Instant::now();
        let mut admitted: u64 = 0;
        for i in 0..40 {
            let response = get(&instances[i % 2], &[("x-tenant", tenant)]).await;
            if response.status == StatusCode::OK {
                admitted += 1;
            }
        }
        // A burst of 20, then one more every 3 s while this tenant's requests run.
        let bound = 20 + started.elapsed().as_secs() / 3 + 1;
        assert!(
            (20..=bound).contains(&admitted),
            "tenant {tenant}: {admitted} admitted, bound {bound}"
        );
    }
}
