//! JWT bearer authentication against a real issuer with a live JWKS, named after the attacks.
//! Every refusal also checks that the upstream saw nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode};
use http_body_util::Full;
use jsonwebtoken::Algorithm;
use rampart_testkit::{RecordingUpstream, TestGateway, TestIssuer, TestKey, TestResponse, now};
use serde_json::json;

const AUD: &str = "orders-api";

fn config(issuer: &TestIssuer, upstream: &RecordingUpstream, extra_issuer: &str) -> String {
    format!(
        r#"
[[auth.jwt]]
name = "corp"
issuer = "{iss}"
audiences = ["{AUD}"]
algorithms = ["RS256", "ES256", "EdDSA"]
jwks_url = "{iss}/jwks.json"
allow_insecure_http = true
{extra_issuer}

[[upstreams]]
name = "api"
targets = ["{up}"]

[[routes]]
name = "orders"
path_prefix = "/orders"
methods = ["GET", "POST"]
upstream = "api"
auth = {{ jwt = ["corp"] }}

[[routes]]
name = "health"
path = "/health"
upstream = "api"
public = true
"#,
        iss = issuer.issuer,
        up = upstream.url()
    )
}

struct Setup {
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    gw: TestGateway,
}

async fn setup(extra_issuer: &str) -> Setup {
    let issuer = TestIssuer::start().await;
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&config(&issuer, &upstream, extra_issuer))
        .start()
        .await;
    Setup {
        issuer,
        upstream,
        gw,
    }
}

async fn call(gw: &TestGateway, token: &str) -> TestResponse {
    let client = gw.client();
    let req = client
        .request(Method::GET, "/orders/1")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    client.send(req).await
}

/// Asserts a 401 `invalid_token` with the RFC 6750 challenge, and nothing proxied.
async fn assert_refused(s: &Setup, token: &str, why: &str) {
    let rsp = call(&s.gw, token).await;
    assert_eq!(
        rsp.status,
        StatusCode::UNAUTHORIZED,
        "{why}: {}",
        rsp.text()
    );
    assert_eq!(rsp.json()["code"], "invalid_token", "{why}");
    assert_eq!(
        rsp.header("www-authenticate"),
        Some(r#"Bearer realm="rampart", error="invalid_token""#)
    );
    assert_eq!(
        s.upstream.count(),
        0,
        "{why}: the upstream must see nothing"
    );
}

#[tokio::test]
async fn tokens_signed_by_rsa_ec_and_ed25519_keys_are_accepted_and_not_forwarded() {
    let s = setup("").await;
    for kid in ["rsa-1", "ec-1", "ed-1"] {
        let rsp = call(&s.gw, &s.issuer.token(kid, AUD)).await;
        assert_eq!(rsp.status, StatusCode::OK, "{kid}: {}", rsp.text());
    }
    assert_eq!(s.upstream.count(), 3);
    assert!(
        !s.upstream.last().headers.contains_key("authorization"),
        "verified credentials are stripped"
    );
    let audit = s.gw.audit().await;
    assert_eq!(audit[0]["principal"], "user-42");
    assert_eq!(audit[0]["auth_method"], "jwt");
}

#[tokio::test]
async fn missing_token_is_401_with_a_bearer_challenge_and_public_routes_need_none() {
    let s = setup("").await;
    let rsp = s.gw.get("/orders/1").await;
    assert_eq!(rsp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(rsp.json()["code"], "unauthenticated");
    assert_eq!(
        rsp.header("www-authenticate"),
        Some(r#"Bearer realm="rampart""#)
    );
    assert_eq!(s.upstream.count(), 0);
    assert_eq!(s.gw.get("/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn jwt_alg_none_in_every_casing_is_rejected() {
    let s = setup("").await;
    let claims = URL_SAFE_NO_PAD.encode(s.issuer.claims(AUD).to_string());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
        assert_refused(&s, &format!("{header}.{claims}."), alg).await;
    }
}

#[tokio::test]
async fn rs_to_hs_key_confusion_with_the_gateways_public_key_is_rejected() {
    let s = setup("").await;
    let rsa = s.issuer.key("rsa-1");
    for secret in [
        rsa.public_pem.as_bytes().to_vec(),
        serde_json::to_vec(&rsa.jwk).unwrap(),
    ] {
        let forged = TestKey::hmac("rsa-1", Algorithm::HS256, &secret);
        assert_refused(
            &s,
            &forged.sign(&s.issuer.claims(AUD), "JWT"),
            "HS256 signed with the RSA public key",
        )
        .await;
    }
}

#[tokio::test]
async fn embedded_jwk_is_never_trusted() {
    let s = setup("").await;
    let attacker = TestKey::generate("attacker", Algorithm::ES256);
    let claims = s.issuer.claims(AUD).to_string();
    for kid in ["attacker", "ec-1"] {
        let header = json!({"alg": "ES256", "kid": kid, "jwk": attacker.jwk}).to_string();
        assert_refused(&s, &attacker.sign_raw(&header, &claims), "embedded jwk").await;
    }
}

#[tokio::test]
async fn jku_and_x5u_headers_are_never_fetched() {
    let s = setup("").await;
    let attacker_server = RecordingUpstream::start().await;
    let attacker = TestKey::generate("ec-1", Algorithm::ES256);
    let claims = s.issuer.claims(AUD).to_string();
    for header in [
        json!({"alg": "ES256", "kid": "ec-1", "jku": format!("{}/jwks.json", attacker_server.url())}),
        json!({"alg": "ES256", "kid": "ec-1", "x5u": format!("{}/cert.pem", attacker_server.url())}),
        json!({"alg": "ES256", "kid": "ec-1", "x5c": ["MIIBszCCAVmgAwIBAgIUQ"]}),
    ] {
        assert_refused(
            &s,
            &attacker.sign_raw(&header.to_string(), &claims),
            "jku/x5u/x5c",
        )
        .await;
    }
    assert_eq!(
        attacker_server.count(),
        0,
        "no outbound connection to the attacker's URL"
    );
}

#[tokio::test]
async fn kid_traversal_and_injection_are_exact_lookups_that_fail() {
    let s = setup("").await;
    let rsa = s.issuer.key("rsa-1");
    let claims = s.issuer.claims(AUD).to_string();
    for kid in [
        "../../../../dev/null",
        "rsa-1' OR '1'='1",
        "rsa-1\u{0000}",
        "RSA-1",
        "rsa-1 ",
        "*",
    ] {
        let header = json!({"alg": "RS256", "kid": kid}).to_string();
        assert_refused(&s, &rsa.sign_raw(&header, &claims), kid).await;
    }
    let header = json!({"alg": "RS256", "kid": 1}).to_string();
    assert_refused(&s, &rsa.sign_raw(&header, &claims), "numeric kid").await;
}

#[tokio::test]
async fn ecdsa_psychic_signature_is_rejected() {
    let s = setup("").await;
    let valid = s.issuer.token("ec-1", AUD);
    let message = valid.rsplit_once('.').unwrap().0;
    let zero = URL_SAFE_NO_PAD.encode([0u8; 64]);
    assert_refused(&s, &format!("{message}.{zero}"), "r = s = 0").await;
}

#[tokio::test]
async fn expired_not_yet_valid_and_future_iat_tokens_are_rejected() {
    let s = setup("").await;
    let key = s.issuer.key("rsa-1");
    let base = s.issuer.claims(AUD);
    let with = |k: &str, v: u64| {
        let mut c = base.clone();
        c[k] = json!(v);
        key.sign(&c, "JWT")
    };
    let now = now();
    assert_refused(&s, &with("exp", now - 120), "expired").await;
    assert_refused(&s, &with("nbf", now + 120), "not yet valid").await;
    assert_refused(&s, &with("iat", now + 120), "issued in the future").await;
    let mut no_exp = base.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_refused(&s, &key.sign(&no_exp, "JWT"), "no exp").await;
    assert_eq!(
        call(&s.gw, &with("exp", now - 10)).await.status,
        StatusCode::OK,
        "within the 30 s leeway"
    );
}

#[tokio::test]
async fn wrong_or_missing_audience_and_issuer_are_rejected() {
    let s = setup("").await;
    let key = s.issuer.key("rsa-1");
    let base = s.issuer.claims(AUD);
    let mut c = base.clone();
    c["aud"] = json!("billing-api");
    assert_refused(&s, &key.sign(&c, "JWT"), "wrong aud").await;
    let mut c = base.clone();
    c.as_object_mut().unwrap().remove("aud");
    assert_refused(&s, &key.sign(&c, "JWT"), "no aud").await;
    let mut c = base.clone();
    c["iss"] = json!(format!("{}/evil", s.issuer.issuer));
    assert_refused(&s, &key.sign(&c, "JWT"), "wrong iss").await;
    let mut c = base.clone();
    c.as_object_mut().unwrap().remove("iss");
    assert_refused(&s, &key.sign(&c, "JWT"), "no iss").await;
}

#[tokio::test]
async fn crit_duplicate_members_oversized_tokens_and_jwe_are_rejected() {
    let s = setup("").await;
    let key = s.issuer.key("rsa-1");
    let claims = s.issuer.claims(AUD).to_string();
    let crit = json!({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"], "exp": 1}).to_string();
    assert_refused(&s, &key.sign_raw(&crit, &claims), "crit").await;
    let duplicated = claims.replacen("{", r#"{"sub":"admin","#, 1);
    assert_refused(
        &s,
        &key.sign_raw(r#"{"alg":"RS256","kid":"rsa-1"}"#, &duplicated),
        "duplicate sub",
    )
    .await;
    assert_refused(
        &s,
        &key.sign_raw(r#"{"alg":"RS256","kid":"rsa-1","alg":"none"}"#, &claims),
        "duplicate alg",
    )
    .await;
    let mut big = s.issuer.claims(AUD);
    big["padding"] = json!("x".repeat(10_000));
    assert_refused(&s, &key.sign(&big, "JWT"), "oversized").await;
    assert_refused(
        &s,
        "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d",
        "JWE",
    )
    .await;
}

#[tokio::test]
async fn token_in_the_query_string_is_refused() {
    let s = setup("").await;
    let token = s.issuer.token("rsa-1", AUD);
    let rsp = s.gw.get(&format!("/orders/1?access_token={token}")).await;
    assert_eq!(rsp.status, StatusCode::BAD_REQUEST);
    assert_eq!(rsp.json()["code"], "invalid_request");
    assert_eq!(s.upstream.count(), 0);
}

#[tokio::test]
async fn random_kid_spray_causes_at_most_one_jwks_fetch_per_cooldown() {
    // Brute-force blocking off, so that every forged token reaches the key lookup.
    let issuer = TestIssuer::start().await;
    let upstream = RecordingUpstream::start().await;
    let text = format!(
        "[brute_force]\nenabled = false\n{}",
        config(&issuer, &upstream, "")
    );
    let gw = TestGateway::builder().config(&text).start().await;
    let s = Setup {
        issuer,
        upstream,
        gw,
    };
    assert_eq!(
        call(&s.gw, &s.issuer.token("rsa-1", AUD)).await.status,
        StatusCode::OK
    );
    assert_eq!(s.issuer.jwks_fetches(), 1);
    let attacker = TestKey::generate("x", Algorithm::ES256);
    let claims = s.issuer.claims(AUD).to_string();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let token = attacker.sign_raw(
            &json!({"alg": "ES256", "kid": format!("spray-{i}")}).to_string(),
            &claims,
        );
        let client = s.gw.client_h2();
        tasks.push(tokio::spawn(async move {
            let req = client
                .request(Method::GET, "/orders/1")
                .header("authorization", format!("Bearer {token}"))
                .body(Full::default())
                .unwrap();
            client.send(req).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert!(
        s.issuer.jwks_fetches() <= 2,
        "{} fetches",
        s.issuer.jwks_fetches()
    );
    assert_eq!(s.upstream.count(), 1);
}

#[tokio::test]
async fn rotated_issuer_key_is_picked_up_by_an_unknown_kid_refetch() {
    let s = setup("jwks_cache = { refetch_cooldown_s = 1 }").await;
    assert_eq!(
        call(&s.gw, &s.issuer.token("rsa-1", AUD)).await.status,
        StatusCode::OK
    );
    s.issuer
        .rotate_to(TestKey::generate("rsa-2", Algorithm::RS256));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        call(&s.gw, &s.issuer.token("rsa-2", AUD)).await.status,
        StatusCode::OK
    );
    assert_eq!(s.issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn last_good_keys_are_kept_when_the_jwks_endpoint_fails() {
    let s = setup("jwks_cache = { min_ttl_s = 1, max_ttl_s = 1, refetch_cooldown_s = 1 }").await;
    assert_eq!(
        call(&s.gw, &s.issuer.token("rsa-1", AUD)).await.status,
        StatusCode::OK
    );
    let fresh_token = s.issuer.token("ec-1", AUD);
    let issuer_url = s.issuer.issuer.clone();
    drop(s.issuer);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        tokio::net::TcpStream::connect(issuer_url.trim_start_matches("http://"))
            .await
            .is_err(),
        "the issuer is down"
    );
    assert_eq!(
        call(&s.gw, &fresh_token).await.status,
        StatusCode::OK,
        "stale keys still verify"
    );
    let metrics = s.gw.metrics().await;
    assert!(
        metrics.contains(r#"rampart_jwks_fetches_total{issuer="corp",result="error"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn rfc9068_issuer_enforces_the_at_jwt_type() {
    let issuer = TestIssuer::start().await;
    let upstream = RecordingUpstream::start().await;
    let config = config(&issuer, &upstream, "rfc9068 = true");
    let gw = TestGateway::builder().config(&config).start().await;
    let key = issuer.key("rsa-1");
    let claims = issuer.claims(AUD);
    let s = Setup {
        issuer,
        upstream,
        gw,
    };
    assert_refused(&s, &key.sign(&claims, "JWT"), "typ JWT").await;
    assert_refused(&s, &key.sign(&claims, "dpop+jwt"), "typ dpop+jwt").await;
    assert_eq!(
        call(&s.gw, &key.sign(&claims, "at+jwt")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn issuer_requiring_typ_refuses_wrong_or_missing_typ_without_rfc9068() {
    let issuer = TestIssuer::start().await;
    let upstream = RecordingUpstream::start().await;
    let config = config(&issuer, &upstream, r#"typ = ["at+jwt"]"#);
    let gw = TestGateway::builder().config(&config).start().await;
    let key = issuer.key("rsa-1");
    // No `client_id` or `jti`: RFC 9068 is not on, only the type is required.
    let claims = issuer.claims(AUD);
    let s = Setup {
        issuer,
        upstream,
        gw,
    };
    assert_refused(&s, &key.sign(&claims, "JWT"), "typ JWT (an ID token, say)").await;
    assert_refused(
        &s,
        &key.sign(&claims, "application/jwt"),
        "typ application/jwt",
    )
    .await;
    let untyped = key.sign_raw(
        &serde_json::json!({"alg": "RS256", "kid": "rsa-1"}).to_string(),
        &claims.to_string(),
    );
    assert_refused(&s, &untyped, "no typ").await;
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+JWT",
    ] {
        let rsp = call(&s.gw, &key.sign(&claims, typ)).await;
        assert_eq!(rsp.status, StatusCode::OK, "{typ}: {}", rsp.text());
    }
    assert_eq!(s.upstream.count(), 4, "only the well-typed tokens");
}

#[tokio::test]
async fn typ_entries_are_checked_at_load() {
    let issuer = TestIssuer::start().await;
    let upstream = RecordingUpstream::start().await;
    for bad in [r#"typ = ["at jwt"]"#, "rfc9068 = true\ntyp = [\"jwt\"]"] {
        let listener = "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\nplaintext = true\n";
        let text = format!("{listener}{}", config(&issuer, &upstream, bad));
        let source =
            rampart::config::ConfigSource::from_text("t.toml", &text, std::path::Path::new("/tmp"));
        let errors = rampart::config::parse(&source).unwrap_err().errors;
        assert!(
            errors.iter().any(|e| e.path == "auth.jwt[0].typ[0]"),
            "{bad}: {errors:?}"
        );
    }
}

#[tokio::test]
async fn discovery_static_pem_and_hmac_issuers_work() {
    let issuer = TestIssuer::start().await;
    let upstream = RecordingUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ec.pem");
    std::fs::write(&pem, issuer.key("ec-1").public_pem).unwrap();
    let secret = dir.path().join("hmac.key");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").unwrap();
    let text = format!(
        r#"
[[auth.jwt]]
name = "discovered"
issuer = "{iss}"
audiences = ["{AUD}"]
algorithms = ["RS256"]
discovery = true
allow_insecure_http = true

[[auth.jwt]]
name = "pem"
issuer = "{iss}"
audiences = ["{AUD}"]
algorithms = ["ES256"]
keys_file = "{pem}"

[[auth.jwt]]
name = "shared"
issuer = "{iss}"
audiences = ["{AUD}"]
algorithms = ["HS256"]
hmac_secret = {{ file = "{secret}" }}

[[upstreams]]
name = "api"
targets = ["{up}"]

[[routes]]
name = "a"
path = "/a"
upstream = "api"
auth = {{ jwt = ["discovered"] }}

[[routes]]
name = "b"
path = "/b"
upstream = "api"
auth = {{ jwt = ["pem"] }}

[[routes]]
name = "c"
path = "/c"
upstream = "api"
auth = {{ jwt = ["shared"] }}
"#,
        iss = issuer.issuer,
        pem = pem.display(),
        secret = secret.display(),
        up = upstream.url()
    );
    let gw = TestGateway::builder().config(&text).start().await;
    let hmac = TestKey::hmac("h", Algorithm::HS256, b"0123456789abcdef0123456789abcdef");
    for (path, token) in [
        ("/a", issuer.token("rsa-1", AUD)),
        ("/b", issuer.token("ec-1", AUD)),
        ("/c", hmac.sign(&issuer.claims(AUD), "JWT")),
    ] {
        let client = gw.client();
        let req = client
            .request(Method::GET, path)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap();
        let status = client.send(req).await.status;
        assert_eq!(
            status,
            StatusCode::OK,
            "{path}: {:?}",
            gw.audit().await.last()
        );
    }
    let wrong = TestKey::hmac("h", Algorithm::HS256, b"another-secret-another-secret-123");
    let client = gw.client();
    let req = client
        .request(Method::GET, "/c")
        .header(
            "authorization",
            format!("Bearer {}", wrong.sign(&issuer.claims(AUD), "JWT")),
        )
        .body(Full::default())
        .unwrap();
    assert_eq!(client.send(req).await.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn weak_jwt_configurations_are_refused_at_load() {
    let text = r#"
[[listeners]]
name = "l"
bind = "127.0.0.1:0"
plaintext = true

[[auth.jwt]]
name = "mixed"
issuer = "https://idp"
audiences = ["a"]
algorithms = ["RS256", "HS256"]
jwks_url = "http://idp/jwks"
leeway_s = 300

[[auth.jwt]]
name = "noaud"
issuer = "https://idp"
audiences = []
algorithms = ["ES256"]
jwks_url = "https://idp/jwks"

[[upstreams]]
name = "api"
targets = ["http://127.0.0.1:1"]

[[routes]]
name = "open"
path = "/x"
upstream = "api"

[[routes]]
name = "typo"
path = "/y"
upstream = "api"
auth = { jwt = ["corp"] }
"#;
    let source =
        rampart::config::ConfigSource::from_text("t.toml", text, std::path::Path::new("/tmp"));
    let errors = rampart::config::parse(&source).unwrap_err().errors;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "auth.jwt[0].algorithms",
        "auth.jwt[0].jwks_url",
        "auth.jwt[0].leeway_s",
        "auth.jwt[1].audiences",
        "routes[0]",
        "routes[1].auth.jwt[0]",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
}
