//! Detectors end to end: real attack patterns through the real gateway, signed alerts at a real
//! webhook receiver, blocks that hold (on every instance sharing Redis), are listed and lifted
//! through the admin API, and survive a reload.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::sync::Arc;

use hmac::{Hmac, Mac};
use http::{Method, StatusCode};
use rampart_testkit::{
    RecordingUpstream, RedisServer, TestGateway, TestIssuer, TestResponse, eventually,
};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "webhook-secret-0123456789-0123456789";

/// The `[alerts]` section sending to `receiver`, signed with `SECRET` (from a file).
fn alerts(receiver: &RecordingUpstream) -> String {
    format!(
        "[alerts]\nwebhooks = [{{ name = \"soc\", url = \"{}/hook\", secret = {{ file = \"hook.secret\" }} }}]\n",
        receiver.url()
    )
}

fn upstream_section(upstream: &RecordingUpstream) -> String {
    format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n",
        upstream.url()
    )
}

/// The alerts the receiver got, each checked as a receiver must: the signature recomputed over
/// the timestamp and the raw body with the shared secret.
fn signed_alerts(receiver: &RecordingUpstream) -> Vec<Value> {
    receiver
        .requests()
        .iter()
        .map(|r| {
            let header = r.headers["rampart-signature"].to_str().unwrap();
            let (t, v1) = header.split_once(",v1=").unwrap();
            let timestamp = t.strip_prefix("t=").unwrap();
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(&r.body);
            let expected = hex::encode(mac.finalize().into_bytes());
            assert_eq!(v1, expected, "the alert's signature verifies");
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect()
}

/// A gateway whose scanning detector fires on three unknown paths, alerts `receiver`, and
/// does not block.
async fn alerting_on_scans(
    receiver: &RecordingUpstream,
    upstream: &RecordingUpstream,
) -> TestGateway {
    let config = format!(
        "{alerts}\n[detect.scanning]\nthreshold = 3\nblock_s = 0\n\n{up}",
        alerts = alerts(receiver),
        up = upstream_section(upstream),
    );
    TestGateway::builder()
        .file("hook.secret", SECRET)
        .config(&config)
        .start()
        .await
}

fn basic_config(upstream: &RecordingUpstream, receiver: &RecordingUpstream) -> String {
    let hash = rampart::policy::authn::basic::hash_password("s3cret-pass").unwrap();
    format!(
        "{alerts}
[[auth.basic.users]]
username = \"ops\"
password_hash = \"{hash}\"

{up}
[[routes]]
name = \"ops\"
path_prefix = \"/ops\"
upstream = \"api\"
auth = {{ basic = true }}
",
        alerts = alerts(receiver),
        up = upstream_section(upstream),
    )
}

async fn login(gw: &TestGateway, user: &str, password: &str) -> TestResponse {
    gw.get_basic("/ops/status", user, password).await
}

#[tokio::test]
async fn a_credential_stuffing_run_raises_one_signed_alert_and_a_block_that_holds_until_lifted() {
    let upstream = RecordingUpstream::start().await;
    let receiver = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .admin_token()
        .file("hook.secret", SECRET)
        .config(&basic_config(&upstream, &receiver))
        .start()
        .await;
    // Ten leaked user names tried from one address, then more while the alert is deduplicated.
    for i in 0..12 {
        let refused = login(&gw, &format!("user{i}@example.com"), "Winter2026!").await;
        assert!(
            matches!(refused.status.as_u16(), 401 | 403),
            "{}",
            refused.status
        );
    }
    let alert = eventually(async || signed_alerts(&receiver).pop()).await;
    assert_eq!(alert["detector"], "users_by_address");
    assert_eq!(alert["subject"], "127.0.0.1");
    assert_eq!(alert["subject_kind"], "address");
    assert_eq!(alert["action"], "blocked");
    assert_eq!(alert["observed"], 10);
    assert!(alert["blocked_until"].is_string());

    // The right password no longer helps: the address is blocked before authentication.
    let blocked = login(&gw, "ops", "s3cret-pass").await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN);
    assert_eq!(blocked.json()["code"], "blocked");
    let retry: u64 = blocked.header("retry-after").unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry), "{retry}");
    assert_eq!(upstream.count(), 0, "nothing reached the upstream");

    let listed = gw
        .admin(Method::GET, "/v1/blocks", json!(null))
        .await
        .json();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["blocks"][0]["subject"], "127.0.0.1");
    assert_eq!(listed["blocks"][0]["by"], "users_by_address");

    let audit = gw.audit().await;
    assert!(
        audit
            .iter()
            .any(|r| r["code"] == "blocked" && r["reason"] == "blocked by `users_by_address`"),
        "the refusal is audited with the detector's name"
    );
    let trail = rampart_testkit::read_audit_lines(&gw.dir.path().join("audit.log"));
    assert!(trail.iter().any(|e| e["event"] == "detection"
        && e["detection"]["detector"] == "users_by_address"
        && e["outcome"] == "blocked"));

    let lifted = gw
        .admin(Method::DELETE, "/v1/blocks/127.0.0.1", json!(null))
        .await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.text());
    assert_eq!(
        login(&gw, "ops", "s3cret-pass").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn repeated_detections_of_one_subject_alert_once_within_the_dedup_window() {
    let upstream = RecordingUpstream::start().await;
    let receiver = RecordingUpstream::start().await;
    let gw = alerting_on_scans(&receiver, &upstream).await;
    // Three detections in a row (each needs three new paths).
    for i in 0..9 {
        assert_eq!(
            gw.get(&format!("/probe/{i}")).await.status,
            StatusCode::NOT_FOUND
        );
    }
    let metric = async |name: &str| {
        gw.metrics()
            .await
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    eventually(async || {
        (metric("rampart_detections_total{detector=\"scanning\"}").await == 3).then_some(())
    })
    .await;
    eventually(async || (receiver.count() >= 1).then_some(())).await;
    assert_eq!(
        metric("rampart_alerts_total{result=\"deduplicated\"}").await,
        2
    );
    assert_eq!(signed_alerts(&receiver).len(), 1, "one alert, not three");
}

fn orders_config(
    upstream: &RecordingUpstream,
    issuer: &TestIssuer,
    receiver: &RecordingUpstream,
) -> String {
    format!(
        "{jwt}
{alerts}
[detect.object_enumeration]
threshold = 10
block_s = 120

{up}
[[routes]]
name = \"orders\"
path = \"/orders/{{id}}\"
upstream = \"api\"
auth = {{ jwt = [\"corp\"] }}
",
        jwt = issuer.jwt_config("corp", "api"),
        alerts = alerts(receiver),
        up = upstream_section(upstream),
    )
}

fn bearer(issuer: &TestIssuer, sub: &str) -> String {
    let mut claims = issuer.claims("api");
    claims["sub"] = json!(sub);
    format!("Bearer {}", issuer.key("ec-1").sign(&claims, "JWT"))
}

#[tokio::test]
async fn an_id_walk_into_other_users_orders_blocks_that_caller_and_no_one_else() {
    // The API answers 404 for orders that are not the caller's (BOLA done right upstream).
    let upstream = RecordingUpstream::with_reply(Arc::new(|r| {
        let status = match r.uri.path() {
            "/orders/1" => StatusCode::OK,
            _ => StatusCode::NOT_FOUND,
        };
        rampart_testkit::json(status, r#"{"ok":false}"#)
    }))
    .await;
    let receiver = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let gw = TestGateway::builder()
        .file("hook.secret", SECRET)
        .config(&orders_config(&upstream, &issuer, &receiver))
        .start()
        .await;
    let mallory = bearer(&issuer, "mallory");
    for id in 100..110 {
        let probe = gw
            .get_with(&format!("/orders/{id}"), &[("authorization", &mallory)])
            .await;
        assert_eq!(probe.status, StatusCode::NOT_FOUND);
    }
    let alert = eventually(async || signed_alerts(&receiver).pop()).await;
    assert_eq!(alert["detector"], "object_enumeration");
    assert_eq!(alert["subject"], "sub:mallory");
    assert_eq!(alert["route"], "orders");
    assert_eq!(alert["action"], "blocked");

    let seen = upstream.count();
    let again = gw
        .get_with("/orders/1", &[("authorization", &mallory)])
        .await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    assert_eq!(again.json()["code"], "blocked");
    assert_eq!(upstream.count(), seen, "the blocked caller reached nothing");
    let alice = bearer(&issuer, "alice");
    let other = gw.get_with("/orders/1", &[("authorization", &alice)]).await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "another caller from the same address is served"
    );
}

#[tokio::test]
async fn one_api_key_used_from_many_networks_is_reported_as_key_sharing() {
    let upstream = RecordingUpstream::start().await;
    let receiver = RecordingUpstream::start().await;
    let config = format!(
        "[proxy]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n{alerts}\n{up}
[[routes]]
name = \"data\"
path_prefix = \"/data\"
upstream = \"api\"
auth = {{ api_key = true }}
",
        alerts = alerts(&receiver),
        up = upstream_section(&upstream),
    );
    let gw = TestGateway::builder()
        .api_keys()
        .admin_token()
        .file("hook.secret", SECRET)
        .config(&config)
        .start()
        .await;
    let created = gw
        .admin(
            Method::POST,
            "/v1/keys",
            json!({"name": "partner", "owner": "acme"}),
        )
        .await
        .json();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["record"]["id"].as_str().unwrap().to_owned();
    // The same key from five networks on three continents, as a leaked key is used.
    for network in [
        "198.51.100.4",
        "203.0.113.9",
        "192.0.2.77",
        "100.64.1.1",
        "2001:db8:5::1",
    ] {
        let seen = gw
            .get_with(
                "/data/x",
                &[("x-api-key", &key), ("x-forwarded-for", network)],
            )
            .await;
        assert_eq!(seen.status, StatusCode::OK);
    }
    let alert = eventually(async || signed_alerts(&receiver).pop()).await;
    assert_eq!(alert["detector"], "key_sharing");
    assert_eq!(alert["subject"], format!("key:{id}"));
    assert_eq!(
        alert["action"], "alert",
        "key sharing alerts by default, it does not block"
    );
    let audit = gw.audit().await;
    assert!(
        audit.iter().any(|r| r["key_id"] == id.as_str()),
        "records name the key id"
    );
}

async fn instance(redis: &RedisServer, upstream: &RecordingUpstream) -> TestGateway {
    let config = format!(
        "[redis]\nurl = \"{url}\"\n\n[proxy]\ntrusted_proxies = [\"127.0.0.1/32\"]\n
[detect]\nblock_sync_ms = 100\n[detect.scanning]\nthreshold = 5\nblock_s = 120\n\n{up}
[[routes]]
name = \"api\"
path_prefix = \"/api\"
upstream = \"api\"
public = true
",
        url = redis.url,
        up = upstream_section(upstream),
    );
    TestGateway::builder()
        .admin_token()
        .config(&config)
        .start()
        .await
}

async fn status_from(gw: &TestGateway, address: &str) -> StatusCode {
    gw.get_with("/api/x", &[("x-forwarded-for", address)])
        .await
        .status
}

#[tokio::test]
async fn a_block_raised_on_one_instance_is_enforced_by_all_three_and_lifted_on_all() {
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let a = instance(&redis, &upstream).await;
    let b = instance(&redis, &upstream).await;
    let c = instance(&redis, &upstream).await;
    let scanner = "203.0.113.66";
    // The scanner probes instance A only.
    for path in [
        "/.env",
        "/wp-login.php",
        "/admin",
        "/.git/config",
        "/phpinfo.php",
    ] {
        let probe = a.get_with(path, &[("x-forwarded-for", scanner)]).await;
        assert_eq!(probe.status, StatusCode::NOT_FOUND);
    }
    for gw in [&a, &b, &c] {
        eventually(async || {
            (status_from(gw, scanner).await == StatusCode::FORBIDDEN).then_some(())
        })
        .await;
        assert_eq!(
            status_from(gw, "198.51.100.1").await,
            StatusCode::OK,
            "others pass"
        );
    }
    let listed = b.admin(Method::GET, "/v1/blocks", json!(null)).await.json();
    assert_eq!(listed["blocks"][0]["subject"], scanner);
    assert_eq!(listed["blocks"][0]["by"], "scanning");

    // An operator lifts it on C; A and B follow.
    let lifted = c
        .admin(
            Method::DELETE,
            &format!("/v1/blocks/{scanner}"),
            json!(null),
        )
        .await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.text());
    for gw in [&a, &b, &c] {
        eventually(async || (status_from(gw, scanner).await == StatusCode::OK).then_some(())).await;
    }

    // An operator's block of a network on B holds on A, and a restarted instance reads it back.
    let added = b
        .admin(
            Method::POST,
            "/v1/blocks",
            json!({"subject": "192.0.2.0/24", "duration_s": 600}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text());
    eventually(async || {
        (status_from(&a, "192.0.2.200").await == StatusCode::FORBIDDEN).then_some(())
    })
    .await;
    let d = instance(&redis, &upstream).await;
    eventually(async || {
        (status_from(&d, "192.0.2.1").await == StatusCode::FORBIDDEN).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_failing_webhook_gets_the_same_alert_again_until_it_accepts() {
    // The receiver fails its first delivery, then accepts.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let receiver = RecordingUpstream::with_reply(Arc::new(move |_| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let status = if n == 0 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        rampart_testkit::json(status, "{}")
    }))
    .await;
    let upstream = RecordingUpstream::start().await;
    let gw = alerting_on_scans(&receiver, &upstream).await;
    for path in ["/a", "/b", "/c"] {
        assert_eq!(gw.get(path).await.status, StatusCode::NOT_FOUND);
    }
    let delivered = eventually(async || {
        let alerts = signed_alerts(&receiver);
        (alerts.len() == 2).then_some(alerts)
    })
    .await;
    assert_eq!(
        delivered[0]["id"], delivered[1]["id"],
        "a retry, not a new alert"
    );
    assert_eq!(delivered[0]["action"], "alert");
    let ids: Vec<_> = receiver
        .requests()
        .iter()
        .map(|r| r.headers["rampart-alert-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids[0], ids[1]);
    // Not blocked (block_s = 0): the scanner is still answered normally.
    assert_eq!(gw.get("/d").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_reload_changing_thresholds_keeps_the_blocks_in_force() {
    let upstream = RecordingUpstream::start().await;
    let base = |threshold: u32| {
        format!(
            "[detect.scanning]\nthreshold = {threshold}\nblock_s = 300\n\n{}",
            upstream_section(&upstream)
        )
    };
    let gw = TestGateway::builder()
        .admin_token()
        .plaintext()
        .config(&base(3))
        .start()
        .await;
    // A first scanner is blocked under the first config.
    for path in ["/a", "/b", "/c"] {
        gw.get(path).await;
    }
    eventually(async || (gw.get("/x").await.status == StatusCode::FORBIDDEN).then_some(())).await;
    let before = gw
        .admin(Method::GET, "/v1/blocks", json!(null))
        .await
        .json();
    assert_eq!(before["total"], 1);

    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        text.replace("threshold = 3", "threshold = 5"),
    )
    .unwrap();
    let reloaded = gw.admin(Method::POST, "/v1/reload", json!(null)).await;
    assert_eq!(reloaded.status, StatusCode::OK, "{}", reloaded.text());
    assert_eq!(
        gw.get("/x").await.status,
        StatusCode::FORBIDDEN,
        "the block survives the reload"
    );
    let after = gw
        .admin(Method::GET, "/v1/blocks", json!(null))
        .await
        .json();
    assert_eq!(after["blocks"][0]["until"], before["blocks"][0]["until"]);

    // The new threshold is the one in force: the next detection counts five paths.
    let lifted = gw
        .admin(Method::DELETE, "/v1/blocks/127.0.0.1", json!(null))
        .await;
    assert_eq!(lifted.status, StatusCode::OK);
    for path in ["/d", "/e", "/f", "/g", "/h"] {
        gw.get(path).await;
    }
    eventually(async || (gw.get("/y").await.status == StatusCode::FORBIDDEN).then_some(())).await;
    // The block is in force before its detection event reaches the audit file (the writer
    // writes in batches): wait for the event, then compare.
    let observed = eventually(async || {
        gw.audit().await;
        let trail = rampart_testkit::read_audit_lines(&gw.dir.path().join("audit.log"));
        let observed: Vec<u64> = trail
            .iter()
            .filter(|e| e["event"] == "detection")
            .map(|e| e["detection"]["observed"].as_u64().unwrap())
            .collect();
        (observed.len() >= 2).then_some(observed)
    })
    .await;
    assert_eq!(observed, vec![3, 5]);
}

#[tokio::test]
async fn a_block_raised_while_redis_is_down_holds_locally_and_is_shared_once_redis_is_back() {
    let mut redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let a = instance(&redis, &upstream).await;
    let b = instance(&redis, &upstream).await;
    redis.stop();
    let added = a
        .admin(
            Method::POST,
            "/v1/blocks",
            json!({"subject": "198.51.100.0/24", "duration_s": 600}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text());
    assert_eq!(status_from(&a, "198.51.100.5").await, StatusCode::FORBIDDEN);
    // Redis comes back empty (it keeps nothing on disk): A's syncs must not drop its own
    // unshared block, and must write it again so that B enforces it too.
    redis.restart();
    // A holds it at every moment (a sync that read the empty set must not have dropped it),
    // until B holds it too.
    eventually(async || {
        assert_eq!(status_from(&a, "198.51.100.5").await, StatusCode::FORBIDDEN);
        (status_from(&b, "198.51.100.5").await == StatusCode::FORBIDDEN).then_some(())
    })
    .await;
}
