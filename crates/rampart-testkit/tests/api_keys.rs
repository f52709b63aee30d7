//! API keys end to end: issued by the admin API, used, rotated, revoked, expired; stored as hashes;
//! revocation across instances sharing PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::Duration;

use http::{Method, StatusCode};
use http_body_util::Full;
use rampart_testkit::{PgServer, RecordingUpstream, TestGateway, TestResponse};
use serde_json::json;

fn routes(upstream: &RecordingUpstream) -> String {
    format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nupstream = \"api\"\nauth = {{ api_key = true }}\n",
        upstream.url()
    )
}

async fn start(upstream: &RecordingUpstream, store: Option<&str>) -> TestGateway {
    let mut builder = TestGateway::builder()
        .api_keys()
        .admin_token()
        .config(&routes(upstream));
    if let Some(url) = store {
        builder = builder.store_url(url);
    }
    builder.start().await
}

async fn create(gw: &TestGateway, body: serde_json::Value) -> (String, String) {
    let rsp = gw.admin(Method::POST, "/v1/keys", body).await;
    assert_eq!(rsp.status, StatusCode::CREATED, "{}", rsp.text());
    let json = rsp.json();
    (
        json["key"].as_str().unwrap().to_owned(),
        json["record"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn call(gw: &TestGateway, key: &str) -> TestResponse {
    gw.get_with("/orders/1", &[("x-api-key", key)]).await
}

#[tokio::test]
async fn issued_key_works_and_the_store_holds_only_its_keyed_hash() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, None).await;
    let (key, id) = create(
        &gw,
        json!({"name": "ci", "owner": "team-a", "scopes": ["orders:read"]}),
    )
    .await;
    assert!(key.starts_with("rmp_") && key.len() == 40);
    assert_eq!(call(&gw, &key).await.status, StatusCode::OK);
    assert!(
        !upstream.last().headers.contains_key("x-api-key"),
        "the verified key is not forwarded"
    );
    let audit = gw.audit().await;
    let used = audit.iter().find(|r| r["route"] == "orders").unwrap();
    assert_eq!(used["principal"], "team-a");
    assert_eq!(used["auth_method"], "api_key");
    let db = std::fs::read(gw.dir.path().join("rampart.db")).unwrap();
    assert!(
        !db.windows(key.len()).any(|w| w == key.as_bytes()),
        "the plaintext key is not in the database"
    );
    let listed = gw.admin(Method::GET, "/v1/keys", json!(null)).await.json();
    assert!(!listed.to_string().contains(&key) && !listed.to_string().contains("key_hash"));
    let record = gw
        .admin(Method::GET, &format!("/v1/keys/{id}"), json!(null))
        .await
        .json();
    assert_eq!(record["status"], "active");
}

#[tokio::test]
async fn unknown_malformed_revoked_and_expired_keys_get_the_same_401() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, None).await;
    let (revoked, id) = create(&gw, json!({"name": "a", "owner": "o"})).await;
    assert_eq!(
        gw.admin(Method::POST, &format!("/v1/keys/{id}/revoke"), json!(null))
            .await
            .status,
        StatusCode::OK
    );
    let (expiring, _) = create(&gw, json!({"name": "b", "owner": "o", "expires_in_s": 3})).await;
    assert_eq!(call(&gw, &expiring).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let unknown = rampart::policy::authn::api_key::generate();
    let mut bodies = Vec::new();
    for key in [
        revoked.as_str(),
        expiring.as_str(),
        unknown.as_str(),
        "rmp_not-a-key",
        "guess",
    ] {
        let rsp = call(&gw, key).await;
        assert_eq!(rsp.status, StatusCode::UNAUTHORIZED, "{key}");
        let mut body = rsp.json();
        body.as_object_mut().unwrap().remove("request_id");
        bodies.push(body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one public answer for every kind of bad key: {bodies:?}"
    );
    assert_eq!(upstream.count(), 1);
    let reasons: Vec<String> = gw
        .audit()
        .await
        .iter()
        .filter_map(|r| r["reason"].as_str().map(str::to_owned))
        .collect();
    for internal in [
        "revoked API key",
        "expired API key",
        "unknown API key",
        "malformed API key",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(internal)),
            "{internal} in {reasons:?}"
        );
    }
}

#[tokio::test]
async fn revocation_takes_effect_at_once() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, None).await;
    let (key, id) = create(&gw, json!({"name": "a", "owner": "o"})).await;
    assert_eq!(call(&gw, &key).await.status, StatusCode::OK);
    gw.admin(Method::POST, &format!("/v1/keys/{id}/revoke"), json!(null))
        .await;
    assert_eq!(call(&gw, &key).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rotated_key_works_inside_the_grace_window_and_not_after() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, None).await;
    let (old, id) = create(&gw, json!({"name": "a", "owner": "o", "scopes": ["s1"]})).await;
    let rsp = gw
        .admin(
            Method::POST,
            &format!("/v1/keys/{id}/rotate"),
            json!({"grace_s": 2}),
        )
        .await;
    assert_eq!(rsp.status, StatusCode::CREATED);
    let new = rsp.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(rsp.json()["record"]["scopes"], json!(["s1"]));
    assert_eq!(
        call(&gw, &old).await.status,
        StatusCode::OK,
        "old key inside the grace window"
    );
    assert_eq!(call(&gw, &new).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        call(&gw, &old).await.status,
        StatusCode::UNAUTHORIZED,
        "old key after the grace window"
    );
    assert_eq!(call(&gw, &new).await.status, StatusCode::OK);
}

#[tokio::test]
async fn keys_are_refused_in_the_query_string() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, None).await;
    let (key, _) = create(&gw, json!({"name": "a", "owner": "o"})).await;
    let rsp = gw.get(&format!("/orders/1?api_key={key}")).await;
    assert_eq!(rsp.status, StatusCode::BAD_REQUEST);
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn admin_api_refuses_missing_and_wrong_tokens_and_audits_every_call() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, None).await;
    let admin = gw.admin_client();
    let anonymous = admin
        .send(
            admin
                .request(Method::POST, "/v1/keys")
                .body(Full::from(r#"{"name":"x","owner":"y"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.header("content-type"),
        Some("application/problem+json")
    );
    let wrong = admin
        .send(
            admin
                .request(Method::GET, "/v1/keys")
                .header("authorization", "Bearer not-the-token")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let bad_input = gw
        .admin(
            Method::POST,
            "/v1/keys",
            json!({"name": "x", "owner": "y", "admin": true}),
        )
        .await;
    assert_eq!(bad_input.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        gw.admin(Method::POST, "/v1/keys/key_missing/revoke", json!(null))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let (_, id) = create(&gw, json!({"name": "a", "owner": "o"})).await;
    assert_eq!(
        admin.get("/v1/openapi.json").await.json()["openapi"],
        "3.1.0"
    );
    let audit = gw.audit().await;
    let admin_records: Vec<_> = audit.iter().filter(|r| r["listener"] == "admin").collect();
    assert_eq!(admin_records.len(), 5, "{admin_records:#?}");
    assert_eq!(admin_records[0]["status"], 401);
    assert!(admin_records[0]["principal"].is_null());
    assert_eq!(
        admin_records[4]["reason"],
        format!("created key {id} for o")
    );
    assert_eq!(admin_records[4]["principal"], "admin");
}

#[tokio::test]
async fn every_admin_route_is_in_the_openapi_document() {
    let doc: serde_json::Value = serde_json::from_str(rampart::admin::api::OPENAPI).unwrap();
    for path in [
        "/v1/keys",
        "/v1/keys/{id}",
        "/v1/keys/{id}/rotate",
        "/v1/keys/{id}/revoke",
        "/v1/revocations",
        "/v1/blocks",
        "/v1/blocks/{subject}",
        "/v1/reload",
        "/v1/status",
        "/v1/openapi.json",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[tokio::test]
async fn revocation_reaches_every_instance_sharing_postgresql_within_one_second() {
    let pg = PgServer::start();
    let upstream = RecordingUpstream::start().await;
    let first = start(&upstream, Some(&pg.url)).await;
    // The second instance shares the store and must share the server secret too.
    let secret = std::fs::read(first.dir.path().join("keys.secret")).unwrap();
    let second = start(&upstream, Some(&pg.url)).await;
    assert_eq!(
        std::fs::read(second.dir.path().join("keys.secret")).unwrap(),
        secret
    );
    let (key, id) = create(&first, json!({"name": "shared", "owner": "o"})).await;
    assert_eq!(
        call(&second, &key).await.status,
        StatusCode::OK,
        "a key issued on one instance works on another"
    );
    first
        .admin(Method::POST, &format!("/v1/keys/{id}/revoke"), json!(null))
        .await;
    let revoked_at = std::time::Instant::now();
    loop {
        if call(&second, &key).await.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_millis(1500),
            "still accepted after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        revoked_at.elapsed() <= Duration::from_millis(1100),
        "took {:?}",
        revoked_at.elapsed()
    );
}

#[tokio::test]
async fn api_key_only_route_challenges_with_apikey_not_bearer() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, None).await;
    let challenges = |rsp: &TestResponse| -> Vec<String> {
        rsp.headers
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    let missing = gw.get("/orders/1").await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenges(&missing),
        [r#"ApiKey realm="rampart", header="x-api-key""#]
    );
    let wrong = call(&gw, "rmp_not-a-key").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenges(&wrong),
        [r#"ApiKey realm="rampart", header="x-api-key", error="invalid_token""#]
    );
    let client = gw.client();
    let bearer = client
        .send(
            client
                .request(Method::GET, "/orders/1")
                .header("authorization", "Bearer abc.def.ghi")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(bearer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenges(&bearer),
        [r#"ApiKey realm="rampart", header="x-api-key""#],
        "a route that takes no tokens never asks for one"
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn expired_key_is_listed_as_expired_and_revoked_and_rotated_keep_their_states() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, None).await;
    let (_, expiring) = create(&gw, json!({"name": "e", "owner": "o", "expires_in_s": 1})).await;
    let (_, revoked) = create(&gw, json!({"name": "r", "owner": "o", "expires_in_s": 1})).await;
    let (_, rotated) = create(&gw, json!({"name": "t", "owner": "o"})).await;
    let (_, active) = create(
        &gw,
        json!({"name": "a", "owner": "o", "expires_in_s": 3600}),
    )
    .await;
    gw.admin(
        Method::POST,
        &format!("/v1/keys/{revoked}/revoke"),
        json!(null),
    )
    .await;
    let replacement = gw
        .admin(
            Method::POST,
            &format!("/v1/keys/{rotated}/rotate"),
            json!(null),
        )
        .await
        .json()["record"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let listed = gw.admin(Method::GET, "/v1/keys", json!(null)).await.json();
    let status_of = |id: &str| {
        listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .map(|k| k["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(status_of(&expiring), "expired");
    assert_eq!(
        status_of(&revoked),
        "revoked",
        "revocation says more than expiry"
    );
    assert_eq!(status_of(&rotated), "rotated");
    assert_eq!(status_of(&replacement), "active");
    assert_eq!(status_of(&active), "active");
    let one = gw
        .admin(Method::GET, &format!("/v1/keys/{expiring}"), json!(null))
        .await
        .json();
    assert_eq!(one["status"], "expired");
}

#[tokio::test]
async fn brute_force_block_is_listed_and_cleared_through_the_admin_api() {
    let upstream = RecordingUpstream::start().await;
    let config = format!("[brute_force]\nmax_failures = 3\n\n{}", routes(&upstream));
    let gw = TestGateway::builder()
        .api_keys()
        .admin_token()
        .config(&config)
        .start()
        .await;
    let (key, _) = create(&gw, json!({"name": "a", "owner": "o"})).await;
    for _ in 0..3 {
        call(&gw, "rmp_guess").await;
    }
    let blocked = call(&gw, &key).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(upstream.count(), 0);

    let listed = gw.admin(Method::GET, "/v1/blocks", json!(null)).await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed = listed.json();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["blocks"][0]["subject"], "127.0.0.1");
    assert_eq!(listed["blocks"][0]["by"], "brute_force");
    assert!(listed["blocks"][0]["retry_after_s"].as_u64().unwrap() > 0);

    let bad = gw
        .admin(Method::DELETE, "/v1/blocks/not-an-ip", json!(null))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let other = gw
        .admin(Method::DELETE, "/v1/blocks/10.9.9.9", json!(null))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let client = gw.admin_client();
    let anonymous = client
        .send(
            client
                .request(Method::DELETE, "/v1/blocks/127.0.0.1")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "the admin token is required"
    );
    let cleared = gw
        .admin(Method::DELETE, "/v1/blocks/127.0.0.1", json!(null))
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text());
    assert_eq!(
        call(&gw, &key).await.status,
        StatusCode::OK,
        "unblocked without a restart"
    );
    let listed = gw
        .admin(Method::GET, "/v1/blocks", json!(null))
        .await
        .json();
    assert_eq!(listed["total"], 0);
    let audit = gw.audit().await;
    assert!(
        audit.iter().any(|r| r["listener"] == "admin"
            && r["method"] == "DELETE"
            && r["reason"] == "lifted the block on 127.0.0.1"),
        "the unblock is audited"
    );
}
