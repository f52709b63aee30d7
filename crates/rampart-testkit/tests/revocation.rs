//! Token revocation through the admin API: by `jti` or by token hash, at once on the instance that
//! revoked, within a second on every instance sharing the store, and never storing the token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use http_body_util::Full;
use rampart_testkit::{PgServer, RecordingUpstream, TestGateway, TestIssuer, TestResponse};
use serde_json::json;

const AUD: &str = "orders-api";

fn config(issuer: &TestIssuer, upstream: &RecordingUpstream) -> String {
    format!(
        r#"
{jwt}

[[upstreams]]
name = "api"
targets = ["{up}"]

[[routes]]
name = "orders"
path_prefix = "/orders"
upstream = "api"
auth = {{ jwt = ["corp"] }}
"#,
        jwt = issuer.jwt_config("corp", AUD),
        up = upstream.url()
    )
}

async fn start(
    issuer: &TestIssuer,
    upstream: &RecordingUpstream,
    store: Option<&str>,
) -> TestGateway {
    let mut builder = TestGateway::builder()
        .admin_token()
        .config(&config(issuer, upstream));
    if let Some(url) = store {
        builder = builder.store_url(url);
    }
    builder.start().await
}

async fn call(gw: &TestGateway, token: &str) -> TestResponse {
    let client = gw.client();
    let request = client
        .request(Method::GET, "/orders/1")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    client.send(request).await
}

#[tokio::test]
async fn revoked_jti_is_refused_at_once_and_on_every_instance_within_a_second() {
    let pg = PgServer::start();
    let issuer = TestIssuer::start().await;
    let upstream = RecordingUpstream::start().await;
    let first = start(&issuer, &upstream, Some(&pg.url)).await;
    let second = start(&issuer, &upstream, Some(&pg.url)).await;
    let claims = issuer.claims(AUD);
    let jti = claims["jti"].as_str().unwrap().to_owned();
    let token = issuer.key("ec-1").sign(&claims, "JWT");
    assert_eq!(call(&first, &token).await.status, StatusCode::OK);
    assert_eq!(call(&second, &token).await.status, StatusCode::OK);

    let revoked = first
        .admin(
            Method::POST,
            "/v1/revocations",
            json!({"jti": jti, "reason": "laptop stolen"}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::CREATED, "{}", revoked.text());
    let at = Instant::now();
    let refused = call(&first, &token).await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "not refused at once"
    );
    assert_eq!(refused.json()["code"], "invalid_token");
    while call(&second, &token).await.status != StatusCode::UNAUTHORIZED {
        assert!(
            at.elapsed() < Duration::from_millis(1100),
            "still accepted after {:?}",
            at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let other = issuer.token("ec-1", AUD);
    assert_eq!(
        call(&second, &other).await.status,
        StatusCode::OK,
        "other tokens still work"
    );
}

#[tokio::test]
async fn token_revoked_by_value_is_stored_and_logged_only_as_a_hash() {
    let issuer = TestIssuer::start().await;
    let upstream = RecordingUpstream::start().await;
    let gw = start(&issuer, &upstream, None).await;
    let token = issuer.token("ec-1", AUD);
    let revoked = gw
        .admin(Method::POST, "/v1/revocations", json!({"token": token}))
        .await;
    assert_eq!(revoked.status, StatusCode::CREATED, "{}", revoked.text());
    assert!(
        revoked.json()["token_id"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(call(&gw, &token).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.count(), 0);

    let listed = gw.admin(Method::GET, "/v1/revocations", json!(null)).await;
    assert_eq!(listed.json()["revocations"].as_array().unwrap().len(), 1);
    assert!(!listed.text().contains(&token));
    let db = std::fs::read(gw.dir.path().join("rampart.db")).unwrap();
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains(signature),
        "token stored"
    );
    let audit = gw.stop().await;
    assert!(
        audit.iter().all(|r| !r.to_string().contains(signature)),
        "token logged"
    );
}

#[tokio::test]
async fn revocation_requests_must_name_exactly_one_token_and_be_authenticated() {
    let issuer = TestIssuer::start().await;
    let upstream = RecordingUpstream::start().await;
    let gw = start(&issuer, &upstream, None).await;
    for body in [
        json!({}),
        json!({"jti": "a", "token": "b"}),
        json!({"jti": "a", "expires_in_s": 0}),
    ] {
        let response = gw
            .admin(Method::POST, "/v1/revocations", body.clone())
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let anonymous = rampart_testkit::Client::new(&format!("http://{}", gw.admin), None, false)
        .send(
            http::Request::post(format!("http://{}/v1/revocations", gw.admin))
                .header("content-type", "application/json")
                .body(Full::from(r#"{"jti":"x"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}
