use super::*;

/// RFC 9449 figure 2: a proof for `POST https://server.example.com/token`, and figure 9's
/// published thumbprint of its key.
const RFC_PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";
const RFC_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
const RFC_IAT: u64 = 1_562_262_616;

fn verifier() -> DpopVerifier {
    let replay = Arc::new(ReplayCache::local(100, Duration::from_secs(60)));
    DpopVerifier::build(&DpopConfig::default(), replay).unwrap_or_else(|e| panic!("{e}"))
}

fn token_endpoint() -> ProofTarget<'static> {
    ProofTarget {
        method: "POST",
        uri: "https://server.example.com/token".into(),
    }
}

#[test]
fn rfc9449_example_proof_verifies_with_the_published_thumbprint() {
    let v = verifier();
    let (claims, jkt) = v
        .verified_proof(RFC_PROOF)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(jkt, RFC_JKT);
    assert!(
        v.check_claims(&claims, &token_endpoint(), None, RFC_IAT)
            .is_ok()
    );
}

#[test]
fn rfc9449_example_proof_is_refused_for_another_method_uri_or_time() {
    let v = verifier();
    let (claims, _) = v
        .verified_proof(RFC_PROOF)
        .unwrap_or_else(|e| panic!("{e}"));
    let get = ProofTarget {
        method: "GET",
        uri: "https://server.example.com/token".into(),
    };
    assert!(v.check_claims(&claims, &get, None, RFC_IAT).is_err());
    let elsewhere = ProofTarget {
        method: "POST",
        uri: "https://server.example.com/other".into(),
    };
    assert!(v.check_claims(&claims, &elsewhere, None, RFC_IAT).is_err());
    let stale = RFC_IAT + DEFAULT_MAX_AGE_S + DEFAULT_LEEWAY_S + 1;
    assert!(
        v.check_claims(&claims, &token_endpoint(), None, stale)
            .is_err()
    );
    let early = RFC_IAT - DEFAULT_LEEWAY_S - 1;
    assert!(
        v.check_claims(&claims, &token_endpoint(), None, early)
            .is_err()
    );
    assert!(
        v.check_claims(&claims, &token_endpoint(), Some("a-token"), RFC_IAT)
            .is_err(),
        "no ath for a token"
    );
}

#[test]
fn tampered_rfc_proof_fails_its_signature() {
    let v = verifier();
    let mut parts: Vec<String> = RFC_PROOF.split('.').map(str::to_owned).collect();
    let claims = r#"{"jti":"-BwC3ESc6acc2lTc","htm":"GET","htu":"https://server.example.com/token","iat":1562262616}"#;
    parts[1] = URL_SAFE_NO_PAD.encode(claims);
    assert!(v.verified_proof(&parts.join(".")).is_err());
}

#[test]
fn htu_comparison_normalizes_case_default_port_and_dot_segments() {
    assert!(same_target(
        "HTTPS://Server.Example.com:443/a/./b/../token?x=1#f",
        "https://server.example.com/a/token"
    ));
    assert!(!same_target(
        "https://server.example.com:8443/token",
        "https://server.example.com/token"
    ));
    assert!(!same_target(
        "http://server.example.com/token",
        "https://server.example.com/token"
    ));
    assert!(!same_target("not a url", "https://server.example.com/"));
}

#[test]
fn nonces_expire_after_two_periods_and_cannot_be_forged() {
    let nonces =
        Nonces::new(b"0123456789abcdef0123456789abcdef", 300).unwrap_or_else(|e| panic!("{e}"));
    let issued = nonces.current(1_000_000);
    assert!(nonces.is_fresh(&issued, 1_000_000));
    assert!(nonces.is_fresh(&issued, 1_000_000 + 300));
    assert!(!nonces.is_fresh(&issued, 1_000_000 + 600));
    let other =
        Nonces::new(b"another secret, also 32 bytes!!!", 300).unwrap_or_else(|e| panic!("{e}"));
    assert!(!other.is_fresh(&issued, 1_000_000));
}

#[tokio::test]
async fn a_proof_id_is_accepted_once() {
    let cache = ReplayCache::local(100, Duration::from_secs(60));
    let window = Duration::from_secs(60);
    assert!(cache.first_use([7; 32], window).await.unwrap_or(false));
    assert!(!cache.first_use([7; 32], window).await.unwrap_or(true));
    assert!(cache.first_use([8; 32], window).await.unwrap_or(false));
}

#[test]
fn private_keys_and_symmetric_keys_are_refused_in_the_proof() {
    let mut header = Map::new();
    let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs", "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA", "d": "secret"});
    header.insert("jwk".into(), jwk);
    assert!(public_jwk(&header, JwtAlgorithm::ES256).is_err());
    header.insert(
        "jwk".into(),
        serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}),
    );
    assert!(public_jwk(&header, JwtAlgorithm::ES256).is_err());
    let public = serde_json::json!({"kty": "EC", "crv": "P-256", "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs", "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"});
    header.insert("jwk".into(), public);
    assert!(public_jwk(&header, JwtAlgorithm::ES256).is_ok());
    assert!(
        public_jwk(&header, JwtAlgorithm::RS256).is_err(),
        "an EC key for an RSA alg"
    );
}

#[tokio::test]
async fn a_full_replay_cache_refuses_instead_of_forgetting() {
    let cache = ReplayCache::local(2, Duration::from_secs(60));
    let window = Duration::from_secs(60);
    assert!(cache.first_use([1; 32], window).await.unwrap_or(false));
    assert!(cache.first_use([2; 32], window).await.unwrap_or(false));
    assert!(
        cache.first_use([3; 32], window).await.is_err(),
        "full: refused, not admitted"
    );
    assert!(
        !cache.first_use([1; 32], window).await.unwrap_or(true),
        "old ids still remembered"
    );
}
