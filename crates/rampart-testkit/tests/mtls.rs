//! mTLS: client certificates verified on the listener, certificate identities in policies and
//! upstream headers, and RFC 8705 certificate-bound access tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use http::{Method, StatusCode};
use http_body_util::Full;
use rampart_testkit::{
    Client, ClientIdentity, RecordingUpstream, TestCa, TestGateway, TestIssuer, TestResponse,
};
use serde_json::json;

const AUD: &str = "orders-api";

fn listener(required: bool) -> String {
    format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\ntls = {{ cert_file = \"cert.pem\", key_file = \"key.pem\", client_auth = {{ ca_file = \"clients.pem\", required = {required} }} }}\n"
    )
}

fn routes(upstream: &RecordingUpstream, issuer: &TestIssuer) -> String {
    format!(
        r#"
{jwt}

[[upstreams]]
name = "api"
targets = ["{up}"]

[[routes]]
name = "services"
path_prefix = "/svc"
upstream = "api"
auth = {{ mtls = true }}

[[routes]]
name = "orders"
path_prefix = "/orders"
upstream = "api"
auth = {{ jwt = ["corp"] }}

[[routes]]
name = "open"
path_prefix = "/open"
upstream = "api"
public = true
"#,
        jwt = issuer.jwt_config("corp", AUD),
        up = upstream.url()
    )
}

async fn gateway(ca: &TestCa, required: bool) -> (RecordingUpstream, TestIssuer, TestGateway) {
    let upstream = RecordingUpstream::start().await;
    let issuer = TestIssuer::start().await;
    let gw = TestGateway::builder()
        .file("clients.pem", &ca.pem())
        .listeners(&listener(required))
        .config(&routes(&upstream, &issuer))
        .start()
        .await;
    (upstream, issuer, gw)
}

fn client(gw: &TestGateway, id: &ClientIdentity) -> Client {
    Client::with_identity(&gw.base_url(), &gw.ca_pem, id)
}

async fn get_with(client: &Client, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    let mut request = client.request(Method::GET, path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    client.send(request.body(Full::default()).unwrap()).await
}

#[tokio::test]
async fn required_client_auth_refuses_handshakes_without_a_trusted_certificate() {
    let ca = TestCa::new("Clients CA");
    let rogue = TestCa::new("Rogue CA");
    let (upstream, _issuer, gw) = gateway(&ca, true).await;

    let plain = gw.client();
    let anonymous = plain
        .try_send(
            plain
                .request(Method::GET, "/open/x")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert!(anonymous.is_err(), "no certificate, no connection");

    let stranger = client(&gw, &rogue.client("svc-a", &[]));
    let refused = stranger
        .try_send(
            stranger
                .request(Method::GET, "/open/x")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert!(refused.is_err(), "a certificate from another CA is refused");

    let trusted = client(&gw, &ca.client("svc-a", &[]));
    assert_eq!(trusted.get("/open/x").await.status, StatusCode::OK);
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn client_certificate_identifies_the_caller_on_mtls_routes() {
    let ca = TestCa::new("Clients CA");
    let (upstream, _issuer, gw) = gateway(&ca, false).await;
    let id = ca.client("svc-billing", &["spiffe://example.org/billing"]);

    let anonymous = gw.get("/svc/pay").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        upstream.count(),
        0,
        "no certificate: the upstream saw nothing"
    );

    let forged = [
        ("x-rampart-client-cert-sha256", "forged"),
        ("x-rampart-subject", "admin"),
    ];
    let response = get_with(&client(&gw, &id), "/svc/pay", &forged).await;
    assert_eq!(response.status, StatusCode::OK);
    let seen = upstream.last();
    let header = |name: &str| seen.headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("x-rampart-subject"), "svc-billing");
    assert_eq!(header("x-rampart-auth-method"), "mtls");
    assert_eq!(header("x-rampart-client-cert-sha256"), id.thumbprint());
    assert!(header("x-rampart-client-cert-subject").contains("CN=svc-billing"));

    let audit = gw.stop().await;
    let last = audit.last().unwrap();
    assert_eq!(last["principal"], "svc-billing");
    assert_eq!(last["auth_method"], "mtls");
}

#[tokio::test]
async fn certificate_bound_token_is_refused_from_another_client() {
    let ca = TestCa::new("Clients CA");
    let (upstream, issuer, gw) = gateway(&ca, false).await;
    let owner = ca.client("svc-a", &[]);
    let thief = ca.client("svc-b", &[]);
    let mut claims = issuer.claims(AUD);
    claims["cnf"] = json!({ "x5t#S256": owner.thumbprint() });
    let token = issuer.key("ec-1").sign(&claims, "JWT");
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];

    let stolen = get_with(&client(&gw, &thief), "/orders/1", &auth).await;
    assert_eq!(stolen.status, StatusCode::UNAUTHORIZED);
    assert!(
        stolen
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    let no_cert = get_with(&gw.client(), "/orders/1", &auth).await;
    assert_eq!(no_cert.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        upstream.count(),
        0,
        "a replayed bound token reached the upstream"
    );

    let legit = get_with(&client(&gw, &owner), "/orders/1", &auth).await;
    assert_eq!(legit.status, StatusCode::OK);
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn tls_client_certificate_does_not_satisfy_token_routes() {
    let ca = TestCa::new("Clients CA");
    let (upstream, _issuer, gw) = gateway(&ca, false).await;
    let response = client(&gw, &ca.client("svc-a", &[])).get("/orders/1").await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.count(), 0);
}
