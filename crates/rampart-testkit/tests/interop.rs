//! Interoperability with implementations no one here wrote: a real OAuth server from npm
//! (oauth2-mock-server: discovery, JWKS, client_credentials issuance, RFC 7662 introspection,
//! RFC 7009 revocation), and tokens minted by npm `jose` and by PyJWT.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use http::{Method, StatusCode};
use http_body_util::Full;
use rampart_testkit::interop::{OAuthServer, mint_with_jose, mint_with_pyjwt};
use rampart_testkit::{RecordingUpstream, TestGateway, TestResponse};

const AUD: &str = "orders-api";

async fn call(gw: &TestGateway, path: &str, token: &str) -> TestResponse {
    let client = gw.client();
    let req = client
        .request(Method::GET, path)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    client.send(req).await
}

fn oauth_config(
    server: &OAuthServer,
    upstream: &RecordingUpstream,
    dir: &std::path::Path,
) -> String {
    std::fs::write(dir.join("client.secret"), "s3cret-client").unwrap();
    format!(
        r#"
[[auth.jwt]]
name = "mock"
issuer = "{iss}"
audiences = ["{AUD}"]
algorithms = ["RS256"]
discovery = true
allow_insecure_http = true

[[auth.introspection]]
name = "mock-introspection"
endpoint = "{iss}/introspect"
client_id = "rampart"
client_secret = {{ file = "{secret}" }}
issuer = "{iss}"
audiences = ["{AUD}"]
allow_insecure_http = true

[[upstreams]]
name = "api"
targets = ["{up}"]

[[routes]]
name = "jwt"
path = "/jwt"
upstream = "api"
auth = {{ jwt = ["mock"] }}

[[routes]]
name = "opaque"
path = "/opaque"
upstream = "api"
auth = {{ introspection = ["mock-introspection"] }}
authorize = {{ scopes = ["orders:read"] }}
"#,
        iss = server.issuer,
        secret = dir.join("client.secret").display(),
        up = upstream.url()
    )
}

#[tokio::test]
async fn tokens_issued_by_a_real_oauth_server_verify_through_discovery() {
    let server = OAuthServer::start(AUD);
    let upstream = RecordingUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::builder()
        .config(&oauth_config(&server, &upstream, dir.path()))
        .start()
        .await;
    let token = server.client_credentials_token("orders:read").await;
    let rsp = call(&gw, "/jwt", &token).await;
    assert_eq!(rsp.status, StatusCode::OK, "{}", rsp.text());
    let tampered = format!("{}x", token);
    assert_eq!(
        call(&gw, "/jwt", &tampered).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn introspection_against_a_real_oauth_server_honours_revocation() {
    let server = OAuthServer::start(AUD);
    let upstream = RecordingUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::builder()
        .config(&oauth_config(&server, &upstream, dir.path()))
        .start()
        .await;
    let token = server.client_credentials_token("orders:read").await;
    let ok = call(&gw, "/opaque", &token).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", gw.audit().await.last());
    assert_eq!(
        upstream.last().headers["x-rampart-auth-method"],
        "introspection"
    );
    let unknown = call(&gw, "/opaque", "opaque-token-the-server-never-issued").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let narrow = server.client_credentials_token("billing:read").await;
    assert_eq!(
        call(&gw, "/opaque", &narrow).await.status,
        StatusCode::FORBIDDEN,
        "scopes from introspection are enforced"
    );
    // A revoked token is inactive at the server. (A token seen before is cached for up to
    // `max_cache_ttl_s`, so this uses one the gateway has not seen: a different scope set.)
    let second = server
        .client_credentials_token("orders:read orders:audit")
        .await;
    server.revoke(&second).await;
    assert_eq!(
        call(&gw, "/opaque", &second).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn introspection_fails_closed_when_the_server_is_down() {
    let server = OAuthServer::start(AUD);
    let upstream = RecordingUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::builder()
        .config(&oauth_config(&server, &upstream, dir.path()))
        .start()
        .await;
    let token = server.client_credentials_token("orders:read").await;
    drop(server);
    let rsp = call(&gw, "/opaque", &token).await;
    assert_eq!(rsp.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rsp.json()["code"], "auth_unavailable");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn introspection_uses_client_authentication() {
    let server = OAuthServer::start(AUD);
    let upstream = RecordingUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = oauth_config(&server, &upstream, dir.path());
    std::fs::write(dir.path().join("client.secret"), "wrong-secret").unwrap();
    let gw = TestGateway::builder().config(&config).start().await;
    let token = server.client_credentials_token("orders:read").await;
    assert_eq!(
        call(&gw, "/opaque", &token).await.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the server refused our client credentials"
    );
}

async fn third_party_tokens(
    mint: fn(&str, &str, &str) -> rampart_testkit::interop::Minted,
    algs: &[&str],
) {
    let upstream = RecordingUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let issuer = "https://third-party.example";
    let minted: Vec<_> = algs.iter().map(|alg| mint(alg, issuer, AUD)).collect();
    let jwks =
        serde_json::json!({ "keys": minted.iter().map(|m| m.jwk.clone()).collect::<Vec<_>>() });
    std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).unwrap();
    let algorithms: Vec<String> = algs.iter().map(|a| format!("\"{a}\"")).collect();
    let config = format!(
        "[[auth.jwt]]\nname = \"ext\"\nissuer = \"{issuer}\"\naudiences = [\"{AUD}\"]\nalgorithms = [{}]\nkeys_file = \"{}\"\n\n[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath = \"/r\"\nupstream = \"api\"\nauth = {{ jwt = [\"ext\"] }}\n",
        algorithms.join(", "),
        dir.path().join("jwks.json").display(),
        upstream.url()
    );
    let gw = TestGateway::builder().config(&config).start().await;
    for (alg, m) in algs.iter().zip(&minted) {
        let rsp = call(&gw, "/r", &m.token).await;
        assert_eq!(
            rsp.status,
            StatusCode::OK,
            "{alg}: {:?}",
            gw.audit().await.last()
        );
    }
}

#[tokio::test]
async fn tokens_minted_by_npm_jose_are_accepted() {
    third_party_tokens(
        mint_with_jose,
        &["RS256", "PS256", "ES256", "ES384", "EdDSA"],
    )
    .await;
}

#[tokio::test]
async fn tokens_minted_by_pyjwt_are_accepted() {
    third_party_tokens(mint_with_pyjwt, &["RS256", "PS256", "ES256", "EdDSA"]).await;
}
