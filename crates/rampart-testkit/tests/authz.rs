//! Authorization (scopes, roles, RBAC permissions, claims), verified identity headers, and
//! brute-force blocking, against a real issuer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::Duration;

use http::{Method, StatusCode};
use http_body_util::Full;
use rampart_testkit::{RecordingUpstream, TestGateway, TestIssuer, TestResponse};
use serde_json::json;

const AUD: &str = "orders-api";

async fn setup() -> (TestIssuer, RecordingUpstream, TestGateway) {
    let issuer = TestIssuer::start().await;
    let upstream = RecordingUpstream::start().await;
    let config = format!(
        r#"
[brute_force]
max_failures = 3
window_s = 60
block_s = 2

[rbac.roles]
reader = ["orders.read"]
admin = ["orders.read", "orders.delete"]

[[auth.jwt]]
name = "corp"
issuer = "{iss}"
audiences = ["{AUD}"]
algorithms = ["ES256"]
jwks_url = "{iss}/jwks.json"
allow_insecure_http = true

[[upstreams]]
name = "api"
targets = ["{up}"]

[[routes]]
name = "read"
path = "/orders/{{id}}"
methods = ["GET"]
upstream = "api"
auth = {{ jwt = ["corp"] }}
authorize = {{ scopes = ["orders:read"] }}

[[routes]]
name = "delete"
path = "/orders/{{id}}"
methods = ["DELETE"]
upstream = "api"
auth = {{ jwt = ["corp"] }}
authorize = {{ permissions = ["orders.delete"] }}

[[routes]]
name = "export"
path = "/export"
upstream = "api"
auth = {{ jwt = ["corp"] }}
authorize = {{ scopes = ["orders:export"] }}

[[routes]]
name = "tenant"
path = "/tenant"
upstream = "api"
auth = {{ jwt = ["corp"] }}
authorize = {{ claims = {{ tenant = "acme" }}, any_roles = ["reader", "admin"] }}

[[routes]]
name = "open"
path = "/open"
upstream = "api"
public = true
"#,
        iss = issuer.issuer,
        up = upstream.url()
    );
    let gw = TestGateway::builder().config(&config).start().await;
    (issuer, upstream, gw)
}

async fn call(gw: &TestGateway, method: Method, path: &str, token: Option<&str>) -> TestResponse {
    let client = gw.client();
    let mut req = client.request(method, path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    client.send(req.body(Full::default()).unwrap()).await
}

fn token_with(issuer: &TestIssuer, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut claims = issuer.claims(AUD);
    edit(&mut claims);
    issuer.key("ec-1").sign(&claims, "JWT")
}

#[tokio::test]
async fn granted_scope_passes_with_verified_identity_headers_upstream() {
    let (issuer, upstream, gw) = setup().await;
    let token = issuer.token("ec-1", AUD);
    let client = gw.client();
    let req = client
        .request(Method::GET, "/orders/7")
        .header("authorization", format!("Bearer {token}"))
        .header("x-rampart-subject", "admin")
        .header("x-rampart-roles", "admin")
        .body(Full::default())
        .unwrap();
    assert_eq!(client.send(req).await.status, StatusCode::OK);
    let seen = upstream.last();
    assert_eq!(
        seen.headers["x-rampart-subject"], "user-42",
        "the verified subject, not the client's copy"
    );
    assert_eq!(seen.headers["x-rampart-scopes"], "orders:read orders:write");
    assert_eq!(seen.headers["x-rampart-roles"], "reader");
    assert_eq!(seen.headers["x-rampart-auth-method"], "jwt");
    assert_eq!(seen.headers["x-rampart-client-id"], "app-1");
}

#[tokio::test]
async fn spoofed_identity_headers_are_stripped_on_public_routes() {
    let (_issuer, upstream, gw) = setup().await;
    let client = gw.client();
    let req = client
        .request(Method::GET, "/open")
        .header("x-rampart-subject", "admin")
        .header("x-rampart-auth-method", "jwt")
        .body(Full::default())
        .unwrap();
    assert_eq!(client.send(req).await.status, StatusCode::OK);
    let seen = upstream.last();
    assert!(
        !seen.headers.contains_key("x-rampart-subject")
            && !seen.headers.contains_key("x-rampart-auth-method")
    );
}

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope_naming_the_scope() {
    let (issuer, upstream, gw) = setup().await;
    let rsp = call(
        &gw,
        Method::GET,
        "/export",
        Some(&issuer.token("ec-1", AUD)),
    )
    .await;
    assert_eq!(rsp.status, StatusCode::FORBIDDEN);
    assert_eq!(rsp.json()["code"], "insufficient_scope");
    assert_eq!(
        rsp.header("www-authenticate"),
        Some(r#"Bearer realm="rampart", error="insufficient_scope", scope="orders:export""#)
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn permission_comes_from_rbac_roles() {
    let (issuer, upstream, gw) = setup().await;
    let reader = issuer.token("ec-1", AUD);
    let rsp = call(&gw, Method::DELETE, "/orders/7", Some(&reader)).await;
    assert_eq!(rsp.status, StatusCode::FORBIDDEN);
    assert_eq!(rsp.json()["code"], "forbidden");
    let admin = token_with(&issuer, |c| c["roles"] = json!(["admin"]));
    assert_eq!(
        call(&gw, Method::DELETE, "/orders/7", Some(&admin))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(upstream.count(), 1);
    let audit = gw.audit().await;
    assert_eq!(
        audit[0]["reason"],
        r#"not authorized: no role grants permission "orders.delete""#
    );
}

#[tokio::test]
async fn claim_requirements_must_match_exactly() {
    let (issuer, _upstream, gw) = setup().await;
    let acme = token_with(&issuer, |c| c["tenant"] = json!("acme"));
    let evil = token_with(&issuer, |c| c["tenant"] = json!("acme-evil"));
    assert_eq!(
        call(&gw, Method::GET, "/tenant", Some(&acme)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&gw, Method::GET, "/tenant", Some(&evil)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(
            &gw,
            Method::GET,
            "/tenant",
            Some(&issuer.token("ec-1", AUD))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn repeated_bad_credentials_block_the_client_address_for_a_while() {
    let (issuer, upstream, gw) = setup().await;
    let good = issuer.token("ec-1", AUD);
    // Requests without credentials are not failures.
    for _ in 0..5 {
        assert_eq!(
            call(&gw, Method::GET, "/orders/1", None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    for _ in 0..3 {
        assert_eq!(
            call(&gw, Method::GET, "/orders/1", Some("eyJ.bad.token"))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let blocked = call(&gw, Method::GET, "/orders/1", Some(&good)).await;
    assert_eq!(
        blocked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even a good token is refused while blocked"
    );
    assert_eq!(blocked.json()["code"], "too_many_failures");
    assert!(blocked.header("retry-after").is_some());
    assert_eq!(upstream.count(), 0);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("rampart_clients_blocked_total 1"),
        "{metrics}"
    );
    let audit = gw.audit().await;
    assert!(audit.iter().any(|r| {
        r["reason"]
            .as_str()
            .is_some_and(|s| s.ends_with("(client now blocked)"))
    }));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        call(&gw, Method::GET, "/orders/1", Some(&good))
            .await
            .status,
        StatusCode::OK,
        "the block expires"
    );
}
