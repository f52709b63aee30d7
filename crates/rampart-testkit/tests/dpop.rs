//! DPoP (RFC 9449) end to end: proofs made by a real client key for tokens from a real issuer, each
//! attack refused before the upstream, replay refused across instances sharing Redis, nonces.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use http::{Method, StatusCode};
use http_body_util::Full;
use jsonwebtoken::Algorithm;
use rampart_testkit::{
    DpopKey, Proof, RecordingUpstream, RedisServer, TestGateway, TestIssuer, TestResponse, now,
};
use serde_json::json;

const AUD: &str = "orders-api";

fn config(issuer: &TestIssuer, upstream: &RecordingUpstream, dpop: &str, redis: &str) -> String {
    format!(
        r#"
{redis}
[auth.dpop]
{dpop}

{jwt}

[[upstreams]]
name = "api"
targets = ["{up}"]

[[routes]]
name = "orders"
path_prefix = "/orders"
upstream = "api"
auth = {{ jwt = ["corp"] }}

[[routes]]
name = "strict"
path_prefix = "/strict"
upstream = "api"
auth = {{ jwt = ["corp"], require_dpop = true }}
"#,
        jwt = issuer.jwt_config("corp", AUD),
        up = upstream.url()
    )
}

struct Setup {
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    gw: TestGateway,
    key: DpopKey,
}

async fn setup_with(dpop: &str, redis: &str) -> Setup {
    let issuer = TestIssuer::start().await;
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&config(&issuer, &upstream, dpop, redis))
        .start()
        .await;
    Setup {
        issuer,
        upstream,
        gw,
        key: DpopKey::generate(Algorithm::ES256),
    }
}

async fn setup() -> Setup {
    setup_with("", "").await
}

impl Setup {
    /// An access token bound to `jkt`.
    fn bound_token(&self, jkt: &str) -> String {
        let mut claims = self.issuer.claims(AUD);
        claims["cnf"] = json!({ "jkt": jkt });
        self.issuer.key("ec-1").sign(&claims, "JWT")
    }

    fn htu(&self, path: &str) -> String {
        format!("{}{path}", self.gw.base_url())
    }

    async fn call(&self, path: &str, authorization: &str, proof: Option<&str>) -> TestResponse {
        let client = self.gw.client();
        let mut request = client
            .request(Method::GET, path)
            .header("authorization", authorization);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        client.send(request.body(Full::default()).unwrap()).await
    }
}

fn assert_refused(response: &TestResponse, code: &str) {
    assert_eq!(
        response.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        response.text()
    );
    assert_eq!(response.json()["code"], code);
}

#[tokio::test]
async fn bound_token_with_a_valid_proof_reaches_the_upstream_without_the_proof() {
    let s = setup().await;
    let token = s.bound_token(&s.key.jkt());
    let htu = s.htu("/orders/1");
    let proof = s.key.proof(&Proof::new("GET", &htu, &token));
    let response = s
        .call("/orders/1", &format!("DPoP {token}"), Some(&proof))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let seen = s.upstream.last();
    assert!(seen.headers.get("dpop").is_none(), "proof forwarded");
    assert!(
        seen.headers.get("authorization").is_none(),
        "token forwarded"
    );
}

#[tokio::test]
async fn replayed_proof_is_refused() {
    let s = setup().await;
    let token = s.bound_token(&s.key.jkt());
    let htu = s.htu("/orders/1");
    let proof = s.key.proof(&Proof::new("GET", &htu, &token));
    let auth = format!("DPoP {token}");
    assert_eq!(
        s.call("/orders/1", &auth, Some(&proof)).await.status,
        StatusCode::OK
    );
    let replay = s.call("/orders/1", &auth, Some(&proof)).await;
    assert_refused(&replay, "invalid_dpop_proof");
    assert_eq!(
        replay.header("www-authenticate"),
        Some(r#"DPoP error="invalid_dpop_proof", algs="ES256 ES384 EdDSA PS256 RS256""#)
    );
    assert_eq!(s.upstream.count(), 1, "the replay reached the upstream");
}

#[tokio::test]
async fn bound_token_downgraded_to_bearer_is_refused() {
    let s = setup().await;
    let token = s.bound_token(&s.key.jkt());
    let htu = s.htu("/orders/1");
    let proof = s.key.proof(&Proof::new("GET", &htu, &token));
    let response = s
        .call("/orders/1", &format!("Bearer {token}"), Some(&proof))
        .await;
    assert_refused(&response, "invalid_dpop_proof");
    let response = s.call("/orders/1", &format!("Bearer {token}"), None).await;
    assert_refused(&response, "invalid_dpop_proof");
    assert_eq!(s.upstream.count(), 0);
}

#[tokio::test]
async fn proof_for_another_request_time_token_or_key_is_refused() {
    let s = setup().await;
    let token = s.bound_token(&s.key.jkt());
    let auth = format!("DPoP {token}");
    let htu = s.htu("/orders/1");
    let thief = DpopKey::generate(Algorithm::ES256);
    let other_token = s.bound_token(&s.key.jkt());
    let other_htu = s.htu("/orders/2");
    let other_host = htu.replace("localhost", "127.0.0.1");
    let cases: Vec<(&str, String)> = vec![
        ("missing proof", String::new()),
        (
            "wrong htm",
            s.key.proof(&Proof {
                htm: "POST",
                ..Proof::new("GET", &htu, &token)
            }),
        ),
        (
            "wrong htu path",
            s.key.proof(&Proof::new("GET", &other_htu, &token)),
        ),
        (
            "wrong htu host",
            s.key.proof(&Proof::new("GET", &other_host, &token)),
        ),
        (
            "stale iat",
            s.key.proof(&Proof {
                iat: now() - 600,
                ..Proof::new("GET", &htu, &token)
            }),
        ),
        (
            "future iat",
            s.key.proof(&Proof {
                iat: now() + 600,
                ..Proof::new("GET", &htu, &token)
            }),
        ),
        (
            "wrong ath",
            s.key.proof(&Proof::new("GET", &htu, &other_token)),
        ),
        (
            "no ath",
            s.key.proof(&Proof {
                token: None,
                ..Proof::new("GET", &htu, &token)
            }),
        ),
        (
            "jkt mismatch",
            thief.proof(&Proof::new("GET", &htu, &token)),
        ),
        (
            "typ JWT",
            s.key.proof_with_header(
                &json!({"typ": "JWT", "alg": "ES256", "jwk": s.key.public_jwk()}),
                &Proof::new("GET", &htu, &token),
            ),
        ),
        (
            "no jwk",
            s.key.proof_with_header(
                &json!({"typ": "dpop+jwt", "alg": "ES256"}),
                &Proof::new("GET", &htu, &token),
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(
                    &json!({"typ": "dpop+jwt", "alg": "none", "jwk": s.key.public_jwk()})
                        .to_string()
                ),
                b64(&json!({"jti": "x", "htm": "GET", "htu": htu, "iat": now()}).to_string()),
            ),
        ),
    ];
    for (attack, proof) in &cases {
        let proof = (!proof.is_empty()).then_some(proof.as_str());
        let response = s.call("/orders/1", &auth, proof).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{attack}: {}",
            response.text()
        );
        assert_eq!(response.json()["code"], "invalid_dpop_proof", "{attack}");
    }
    assert_eq!(s.upstream.count(), 0, "an attack reached the upstream");
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

const ALGS: &str = "ES256 ES384 EdDSA PS256 RS256";

fn challenges(response: &TestResponse) -> Vec<&str> {
    response
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[tokio::test]
async fn dpop_scheme_with_an_unbound_token_gets_a_dpop_invalid_token_challenge() {
    let s = setup().await;
    let token = s.issuer.token("ec-1", AUD);
    let htu = s.htu("/orders/1");
    let proof = s.key.proof(&Proof::new("GET", &htu, &token));
    let response = s
        .call("/orders/1", &format!("DPoP {token}"), Some(&proof))
        .await;
    assert_refused(&response, "invalid_token");
    assert_eq!(
        challenges(&response),
        [format!(r#"DPoP error="invalid_token", algs="{ALGS}""#)],
        "RFC 9449 section 7.1: the DPoP scheme is answered with a DPoP challenge"
    );
    assert_eq!(s.upstream.count(), 0);
}

#[tokio::test]
async fn dpop_refusals_name_the_accepted_algs() {
    let s = setup().await;
    let token = s.bound_token(&s.key.jkt());
    let downgrade = s.call("/orders/1", &format!("Bearer {token}"), None).await;
    assert_refused(&downgrade, "invalid_dpop_proof");
    assert_eq!(
        challenges(&downgrade),
        [format!(r#"DPoP error="invalid_dpop_proof", algs="{ALGS}""#)]
    );
    let missing = s.gw.get("/orders/1").await;
    assert_refused(&missing, "unauthenticated");
    assert_eq!(
        challenges(&missing),
        [
            r#"Bearer realm="rampart""#.to_owned(),
            format!(r#"DPoP algs="{ALGS}""#)
        ],
        "a route taking Bearer and DPoP offers both"
    );
    let strict = s.gw.get("/strict/1").await;
    assert_eq!(
        challenges(&strict),
        [format!(r#"DPoP algs="{ALGS}""#)],
        "a route requiring DPoP offers no Bearer"
    );
    assert_eq!(s.upstream.count(), 0);
}

#[tokio::test]
async fn route_requiring_dpop_refuses_plain_bearer_tokens() {
    let s = setup().await;
    let plain = s.issuer.token("ec-1", AUD);
    assert_eq!(
        s.call("/orders/1", &format!("Bearer {plain}"), None)
            .await
            .status,
        StatusCode::OK
    );
    let response = s.call("/strict/1", &format!("Bearer {plain}"), None).await;
    assert_refused(&response, "invalid_dpop_proof");
    assert_eq!(s.upstream.count(), 1);

    let token = s.bound_token(&s.key.jkt());
    let htu = s.htu("/strict/1");
    let proof = s.key.proof(&Proof::new("GET", &htu, &token));
    let response = s
        .call("/strict/1", &format!("DPoP {token}"), Some(&proof))
        .await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn server_nonce_is_demanded_then_accepted() {
    let s = setup_with("require_nonce = true", "").await;
    let token = s.bound_token(&s.key.jkt());
    let auth = format!("DPoP {token}");
    let htu = s.htu("/orders/1");
    let first = s
        .call(
            "/orders/1",
            &auth,
            Some(&s.key.proof(&Proof::new("GET", &htu, &token))),
        )
        .await;
    assert_refused(&first, "use_dpop_nonce");
    assert_eq!(
        first.header("www-authenticate"),
        Some(r#"DPoP error="use_dpop_nonce", algs="ES256 ES384 EdDSA PS256 RS256""#)
    );
    let nonce = first.header("dpop-nonce").expect("DPoP-Nonce").to_owned();

    let forged = Proof {
        nonce: Some("forged"),
        ..Proof::new("GET", &htu, &token)
    };
    let response = s
        .call("/orders/1", &auth, Some(&s.key.proof(&forged)))
        .await;
    assert_refused(&response, "use_dpop_nonce");
    let with_nonce = Proof {
        nonce: Some(&nonce),
        ..Proof::new("GET", &htu, &token)
    };
    let response = s
        .call("/orders/1", &auth, Some(&s.key.proof(&with_nonce)))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(s.upstream.count(), 1);
}

#[tokio::test]
async fn proof_replayed_on_another_instance_sharing_redis_is_refused() {
    let mut redis = RedisServer::start();
    let section = format!("[redis]\nurl = \"{}\"\n", redis.url);
    let a = setup_with("", &section).await;
    let b = TestGateway::builder()
        .config(&config(&a.issuer, &a.upstream, "", &section))
        .start()
        .await;
    let token = a.bound_token(&a.key.jkt());
    let htu = a.htu("/orders/1");
    let proof = a.key.proof(&Proof::new("GET", &htu, &token));
    assert_eq!(
        a.call("/orders/1", &format!("DPoP {token}"), Some(&proof))
            .await
            .status,
        StatusCode::OK
    );

    // The same proof at instance B, addressed as instance A (same htu).
    let client = b.client();
    let host = htu
        .trim_start_matches("https://")
        .trim_end_matches("/orders/1")
        .to_owned();
    let replay = client
        .send(
            client
                .request(Method::GET, "/orders/1")
                .header("host", host)
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", &proof)
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_refused(&replay, "invalid_dpop_proof");
    assert_eq!(a.upstream.count(), 1);

    // Redis down: proofs cannot be checked for replay, so they are refused (fail closed).
    redis.stop();
    let fresh = a.key.proof(&Proof::new("GET", &htu, &token));
    let response = a
        .call("/orders/1", &format!("DPoP {token}"), Some(&fresh))
        .await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.json()["code"], "auth_unavailable");
    assert_eq!(a.upstream.count(), 1);
}

#[tokio::test]
async fn behind_a_trusted_tls_terminating_proxy_htu_is_the_forwarded_https_uri() {
    let issuer = TestIssuer::start().await;
    let upstream = RecordingUpstream::start().await;
    let key = DpopKey::generate(Algorithm::ES256);
    let start = |trusted: &'static str| {
        TestGateway::builder()
            .plaintext()
            .config(&format!("[proxy]\ntrusted_proxies = [{trusted}]\n"))
            .config(&config(&issuer, &upstream, "", ""))
            .start()
    };
    let mut claims = issuer.claims(AUD);
    claims["cnf"] = json!({ "jkt": key.jkt() });
    let token = issuer.key("ec-1").sign(&claims, "JWT");
    let htu = "https://api.example.com/orders/1";
    let call = |gw: &TestGateway| {
        let client = gw.client();
        let proof = key.proof(&Proof::new("GET", htu, &token));
        let request = client
            .request(Method::GET, "/orders/1")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "api.example.com")
            .body(Full::default())
            .unwrap();
        async move { client.send(request).await }
    };
    let behind_proxy = start("\"127.0.0.1/32\"").await;
    let response = call(&behind_proxy).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    // The same headers from a peer that is not a trusted proxy describe nothing.
    let direct = start("").await;
    assert_refused(&call(&direct).await, "invalid_dpop_proof");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn a_host_header_with_a_path_cannot_move_the_proof_to_another_path() {
    let s = setup().await;
    let token = s.bound_token(&s.key.jkt());
    let authority = s.gw.base_url().trim_start_matches("https://").to_owned();
    // A proof made for /orders/a, sent to /orders/b with `Host: authority/orders/a?`.
    let proof = s.key.proof(&Proof::new("GET", &s.htu("/orders/a"), &token));
    let client = s.gw.client();
    let request = client
        .request(Method::GET, "/orders/b")
        .header("host", format!("{authority}/orders/a?"))
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .body(Full::default())
        .unwrap();
    let response = client.send(request).await;
    assert_refused(&response, "invalid_dpop_proof");
    assert_eq!(s.upstream.count(), 0);
}
