//! Reloads of a running gateway: a reload that cannot build every route fails whole (the old
//! config keeps serving, every route keeps its own policies), settings opened at start are
//! refused on reload, reads of the watched files and bursts of SIGHUP cause at most one reload,
//! and the state users rely on (rate limits, blocks) survives reloads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::Duration;

use http::StatusCode;
use rampart_testkit::{RecordingUpstream, TestGateway, TestIssuer, TestResponse};

/// Three routes in a row: public `/a`, JWT-protected `/b`, public `/c`. `a_extra` is added to
/// route `a` (the first, so that a route dropped there would shift every later one), `tail` after
/// the routes.
fn config(upstream: &RecordingUpstream, issuer: &TestIssuer, a_extra: &str, tail: &str) -> String {
    format!(
        "{jwt}
[[upstreams]]
name = \"api\"
targets = [\"{url}\"]

[[routes]]
name = \"a\"
path = \"/a\"
upstream = \"api\"
{a_extra}

[[routes]]
name = \"b\"
path = \"/b\"
upstream = \"api\"
auth = {{ jwt = [\"corp\"] }}

[[routes]]
name = \"c\"
path = \"/c\"
upstream = \"api\"
public = true

{tail}
",
        jwt = issuer.jwt_config("corp", "api"),
        url = upstream.url(),
    )
}

/// Rewrites the part of the gateway's config file after the testkit's header.
fn rewrite(gw: &TestGateway, new_tail: &str) {
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let head = text.split("[[auth.jwt]]").next().unwrap().to_owned();
    std::fs::write(&gw.config_path, format!("{head}{new_tail}")).unwrap();
}

async fn start(upstream: &RecordingUpstream, issuer: &TestIssuer) -> TestGateway {
    TestGateway::builder()
        .config(&config(upstream, issuer, "public = true", ""))
        .start()
        .await
}

/// Every route still answers with its own policies and reaches the upstream only when allowed.
async fn assert_routes_keep_their_policies(
    gw: &TestGateway,
    upstream: &RecordingUpstream,
    issuer: &TestIssuer,
) {
    let before = upstream.count();
    let unauthenticated = gw.get("/b").await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        upstream.count(),
        before,
        "the protected route let a request through"
    );
    let bearer = format!("Bearer {}", issuer.token("ec-1", "api"));
    let authorized = gw.get_with("/b", &[("authorization", &bearer)]).await;
    assert_eq!(authorized.status, StatusCode::OK);
    assert_eq!(gw.get("/a").await.status, StatusCode::OK);
    assert_eq!(gw.get("/c").await.status, StatusCode::OK);
    assert_eq!(
        upstream.last().uri.path(),
        "/c",
        "each route reaches its own path"
    );
}

/// A failure applied on reload: what it is, what route `a` gets, extra sections, and the path
/// the error must name.
type Failure = (&'static str, &'static str, &'static str, &'static str);

/// Every way a route can fail to build, applied to the first route on reload.
const ROUTE_BUILD_FAILURES: [Failure; 6] = [
    (
        "quotas without the store or Redis",
        "public = true\nquotas = [{ name = \"daily\", key = \"ip\", limit = 100, per = \"day\" }]",
        "",
        "routes[0].quotas",
    ),
    (
        "API keys without a key service",
        "auth = { api_key = true }",
        "",
        "routes[0].auth",
    ),
    (
        "an issuer whose keys file is missing",
        "auth = { jwt = [\"gone\"] }",
        "[[auth.jwt]]
name = \"gone\"
issuer = \"https://gone.example\"
audiences = [\"api\"]
algorithms = [\"ES256\"]
keys_file = \"missing-keys.json\"
",
        "auth.jwt[1]",
    ),
    (
        "a rate-limit key that does not parse",
        "public = true\nrate_limits = [{ name = \"h\", key = \"header:bad header\", rate = 1, per = \"second\" }]",
        "",
        "routes[0].rate_limits",
    ),
    (
        "an upstream whose CA file is missing",
        "public = true\nupstream = \"broken\"",
        "[[upstreams]]
name = \"broken\"
targets = [\"https://127.0.0.1:9\"]
tls = { ca_file = \"missing-ca.pem\" }
",
        "upstreams[1]",
    ),
    (
        "a public route claiming the protected route's path",
        "public = true",
        "[[routes]]
name = \"d\"
path = \"/b\"
upstream = \"api\"
public = true
",
        "routes[3].path",
    ),
];

/// The config with `failure` applied to route `a`.
fn failing(upstream: &RecordingUpstream, issuer: &TestIssuer, failure: &Failure) -> String {
    let (_, a_extra, sections, _) = *failure;
    let text = config(upstream, issuer, a_extra, sections);
    if a_extra.contains("upstream =") {
        // Route `a` names the broken upstream instead of its own.
        let own = "name = \"a\"\npath = \"/a\"\nupstream = \"api\"\n";
        text.replacen(own, "name = \"a\"\npath = \"/a\"\n", 1)
    } else {
        text
    }
}

#[tokio::test]
async fn a_route_that_fails_to_build_fails_the_reload_and_every_route_keeps_its_policies() {
    let upstream = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let gw = start(&upstream, &issuer).await;
    assert_routes_keep_their_policies(&gw, &upstream, &issuer).await;
    for failure in &ROUTE_BUILD_FAILURES {
        let (what, _, _, pointer) = *failure;
        rewrite(&gw, &failing(&upstream, &issuer, failure));
        let error = rampart::run::reload(&gw.gateway, &gw.config_path)
            .expect_err(what)
            .to_string();
        assert!(error.contains(pointer), "{what}: {error}");
        assert_routes_keep_their_policies(&gw, &upstream, &issuer).await;
    }
}

#[tokio::test]
async fn check_refuses_what_a_reload_would_refuse() {
    let upstream = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let gw = start(&upstream, &issuer).await;
    // Quotas are fine for `check` (the store would be opened at start) but the other failures
    // are refused by `check` exactly as by the reload.
    for failure in &ROUTE_BUILD_FAILURES[1..] {
        let (what, _, _, pointer) = *failure;
        rewrite(&gw, &failing(&upstream, &issuer, failure));
        let source = rampart::config::ConfigSource::from_file(&gw.config_path).unwrap();
        let errors = match rampart::gateway::check(&source) {
            Ok(_) => panic!("{what}: check accepted it"),
            Err(errors) => errors.to_string(),
        };
        assert!(errors.contains(pointer), "{what}: {errors}");
    }
}

#[tokio::test]
async fn sections_opened_at_start_are_refused_on_reload_with_their_path() {
    let upstream = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let gw = start(&upstream, &issuer).await;
    let changes = [
        ("[redis]\nurl = \"redis://127.0.0.1:1\"\n", "redis"),
        ("[store]\nurl = \"sqlite:other.db\"\n", "store"),
        (
            "[api_keys]\nhmac_secret = { env = \"RAMPART_TEST_UNSET\" }\n",
            "api_keys",
        ),
    ];
    for (section, pointer) in changes {
        rewrite(&gw, &config(&upstream, &issuer, "public = true", section));
        let error = rampart::run::reload(&gw.gateway, &gw.config_path)
            .expect_err(pointer)
            .to_string();
        assert!(error.contains(pointer), "{error}");
        assert!(error.contains("restart"), "{error}");
        assert_routes_keep_their_policies(&gw, &upstream, &issuer).await;
    }
    // Listeners are in the testkit's header: change the bind address there.
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        text.replacen("127.0.0.1:0", "127.0.0.2:0", 1),
    )
    .unwrap();
    let error = rampart::run::reload(&gw.gateway, &gw.config_path)
        .unwrap_err()
        .to_string();
    assert!(error.contains("listeners"), "{error}");
}

async fn get_x(gw: &TestGateway) -> TestResponse {
    gw.get("/c").await
}

fn limited(
    upstream: &RecordingUpstream,
    issuer: &TestIssuer,
    rate: u32,
    extra_route: &str,
) -> String {
    config(
        upstream,
        issuer,
        "public = true",
        &format!(
            "{extra_route}\n[[routes]]\nname = \"limited\"\npath = \"/limited\"\nupstream = \"api\"\npublic = true\nrate_limits = [{{ name = \"per-ip\", key = \"ip\", rate = {rate}, per = \"hour\" }}]\n"
        ),
    )
}

async fn metric(gw: &TestGateway, line: &str) -> u64 {
    let text = gw.metrics().await;
    text.lines()
        .find(|l| l.starts_with(line))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn reading_the_watched_files_causes_no_reload_and_leaves_limits_exact() {
    let upstream = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let gw = TestGateway::builder()
        .watch_config()
        .config(&limited(&upstream, &issuer, 2, ""))
        .start()
        .await;
    for _ in 0..2 {
        assert_eq!(gw.get("/limited").await.status, StatusCode::OK);
    }
    // What `cat`, `rampart check` and `curl --cacert` do: open, read, close; and a touch.
    for _ in 0..20 {
        let _ = std::fs::read(&gw.config_path).unwrap();
        let _ = std::fs::read(gw.config_path.with_file_name("cert.pem")).unwrap();
        let source = rampart::config::ConfigSource::from_file(&gw.config_path).unwrap();
        assert!(rampart::gateway::check(&source).is_ok());
    }
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&gw.config_path)
        .unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
    drop(file);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gw.gateway.reloads(), 0, "a read is not a change");
    let certificate_reloads = "rampart_certificate_reloads_total{result=\"ok\"}";
    assert_eq!(
        metric(&gw, certificate_reloads).await,
        0,
        "nor for certificates"
    );
    assert_eq!(
        gw.get("/limited").await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "2 per hour allows exactly 2"
    );
    assert_eq!(get_x(&gw).await.status, StatusCode::OK);
    // A real change is one reload, and the limit still remembers the two requests.
    rewrite(
        &gw,
        &limited(
            &upstream,
            &issuer,
            2,
            "[[routes]]\nname = \"new\"\npath = \"/new\"\nupstream = \"api\"\npublic = true\n",
        ),
    );
    let mut reloaded = false;
    for _ in 0..50 {
        if gw.get("/new").await.status == StatusCode::OK {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "the changed file was reloaded");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(gw.gateway.reloads(), 1, "one change, one reload");
    assert_eq!(
        gw.get("/limited").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Metric handles are made once per build: a reload must keep counting into the same series, and
/// a route added by it must count into its own.
#[tokio::test]
async fn request_metrics_keep_counting_across_a_reload_and_a_new_route_counts_apart() {
    let upstream = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let gw = TestGateway::builder()
        .config(&limited(&upstream, &issuer, 100, ""))
        .start()
        .await;
    for _ in 0..2 {
        assert_eq!(gw.get("/limited").await.status, StatusCode::OK);
    }
    let other = "[[routes]]\nname = \"new\"\npath = \"/new\"\nupstream = \"api\"\npublic = true\n";
    rewrite(&gw, &limited(&upstream, &issuer, 100, other));
    rampart::run::reload(&gw.gateway, &gw.config_path).unwrap();
    for _ in 0..3 {
        assert_eq!(gw.get("/limited").await.status, StatusCode::OK);
    }
    assert_eq!(gw.get("/new").await.status, StatusCode::OK);
    let requests = |route: &str| {
        format!("rampart_requests_total{{route=\"{route}\",status=\"200\",decision=\"allow\"}}")
    };
    assert_eq!(metric(&gw, &requests("limited")).await, 5);
    assert_eq!(metric(&gw, &requests("new")).await, 1);
    let upstream_count = format!(
        "rampart_upstream_duration_seconds_count{{target=\"{}\"}}",
        upstream.url()
    );
    assert_eq!(metric(&gw, &upstream_count).await, 6);
}

/// Routing reads the request's host only while some route names hosts: a reload that adds a
/// host-specific route routes by host from the next request on (whatever the host's case or
/// port), one that removes it stops, and every route keeps its own policies throughout.
#[tokio::test]
async fn a_reload_adding_then_removing_a_host_route_routes_by_host_exactly_while_it_exists() {
    let upstream = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let gw = start(&upstream, &issuer).await;
    let open_host = [("host", "open.example")];
    let before = upstream.count();
    assert_eq!(
        gw.get_with("/b", &open_host).await.status,
        StatusCode::UNAUTHORIZED,
        "no route names a host: /b is the protected route from any host"
    );
    assert_eq!(upstream.count(), before);

    let host_route = "[[routes]]\nname = \"b-open\"\npath = \"/b\"\nhosts = [\"open.example\"]\nupstream = \"api\"\npublic = true\n";
    rewrite(
        &gw,
        &config(&upstream, &issuer, "public = true", host_route),
    );
    rampart::run::reload(&gw.gateway, &gw.config_path).unwrap();
    let before = upstream.count();
    for host in ["open.example", "OPEN.Example", "open.example:8443"] {
        let response = gw.get_with("/b", &[("host", host)]).await;
        assert_eq!(response.status, StatusCode::OK, "host {host}");
    }
    assert_eq!(upstream.count(), before + 3);
    // Any other host still gets the protected route.
    assert_routes_keep_their_policies(&gw, &upstream, &issuer).await;

    rewrite(&gw, &config(&upstream, &issuer, "public = true", ""));
    rampart::run::reload(&gw.gateway, &gw.config_path).unwrap();
    let before = upstream.count();
    assert_eq!(
        gw.get_with("/b", &open_host).await.status,
        StatusCode::UNAUTHORIZED,
        "the host route is gone: /b is protected again from every host"
    );
    assert_eq!(upstream.count(), before, "nothing reached the upstream");
    assert_routes_keep_their_policies(&gw, &upstream, &issuer).await;
}

#[tokio::test]
async fn rate_limits_survive_a_reload_and_a_changed_limit_starts_from_the_old_state() {
    let upstream = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let gw = TestGateway::builder()
        .config(&limited(&upstream, &issuer, 3, ""))
        .start()
        .await;
    for _ in 0..3 {
        assert_eq!(gw.get("/limited").await.status, StatusCode::OK);
    }
    // Another route added: the limit is unchanged and keeps its bucket.
    let other = "[[routes]]\nname = \"new\"\npath = \"/new\"\nupstream = \"api\"\npublic = true\n";
    rewrite(&gw, &limited(&upstream, &issuer, 3, other));
    rampart::run::reload(&gw.gateway, &gw.config_path).unwrap();
    assert_eq!(gw.get("/new").await.status, StatusCode::OK);
    assert_eq!(
        gw.get("/limited").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The limit raised to 4 per hour: the three requests already made still count.
    rewrite(&gw, &limited(&upstream, &issuer, 4, other));
    rampart::run::reload(&gw.gateway, &gw.config_path).unwrap();
    assert_eq!(
        gw.get("/limited").await.status,
        StatusCode::OK,
        "the fourth of four"
    );
    assert_eq!(
        gw.get("/limited").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        upstream
            .requests()
            .iter()
            .filter(|r| r.uri.path() == "/limited")
            .count(),
        4
    );
}

#[tokio::test]
async fn a_brute_force_block_survives_a_reload_and_new_thresholds_apply() {
    let upstream = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let thresholds =
        |max: u32| format!("[brute_force]\nmax_failures = {max}\nwindow_s = 60\nblock_s = 300\n");
    let gw = TestGateway::builder()
        .config(&config(&upstream, &issuer, "public = true", &thresholds(2)))
        .start()
        .await;
    let bad = async |gw: &TestGateway| {
        gw.get_with("/b", &[("authorization", "Bearer not.a.token")])
            .await
            .status
    };
    assert_eq!(bad(&gw).await, StatusCode::UNAUTHORIZED);
    assert_eq!(bad(&gw).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        bad(&gw).await,
        StatusCode::TOO_MANY_REQUESTS,
        "blocked after 2"
    );
    rewrite(
        &gw,
        &config(&upstream, &issuer, "public = true", &thresholds(5)),
    );
    rampart::run::reload(&gw.gateway, &gw.config_path).unwrap();
    assert_eq!(
        bad(&gw).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the block survived the reload"
    );
    // With the block lifted, the new threshold (5) applies.
    let client: std::net::IpAddr = [127, 0, 0, 1].into();
    assert!(gw.gateway.services.brute_force.unblock(client).await);
    for _ in 0..5 {
        assert_eq!(bad(&gw).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        bad(&gw).await,
        StatusCode::TOO_MANY_REQUESTS,
        "blocked after 5"
    );
}

#[tokio::test]
async fn a_reload_to_fail_closed_fails_closed_during_a_redis_outage() {
    let mut redis = rampart_testkit::RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let tail = |mode: &str| {
        format!(
            "[redis]\nurl = \"{}\"\n\n[rate_limit]\non_redis_failure = \"{mode}\"\n\n[[routes]]\nname = \"limited\"\npath = \"/limited\"\nupstream = \"api\"\npublic = true\nrate_limits = [{{ name = \"shared\", key = \"route\", rate = 60, per = \"minute\" }}]\n",
            redis.url
        )
    };
    let gw = TestGateway::builder()
        .config(&config(&upstream, &issuer, "public = true", &tail("open")))
        .start()
        .await;
    assert_eq!(gw.get("/limited").await.status, StatusCode::OK);
    rewrite(
        &gw,
        &config(&upstream, &issuer, "public = true", &tail("closed")),
    );
    rampart::run::reload(&gw.gateway, &gw.config_path).unwrap();
    redis.stop();
    let refused = gw.get("/limited").await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text()
    );
    assert_eq!(
        upstream
            .requests()
            .iter()
            .filter(|r| r.uri.path() == "/limited")
            .count(),
        1,
        "nothing passed while Redis was down"
    );
}
