//! A test token issuer: RSA, EC and Ed25519 signing keys, a real JWKS and OIDC discovery endpoint
//! on loopback that counts its fetches, key rotation, and raw signing for hand-made attack tokens.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::upstream::RecordingUpstream;

/// A signing key with its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
    /// PEM of the public key (SubjectPublicKeyInfo), for `keys_file` configs.
    pub public_pem: String,
}

impl TestKey {
    /// A fresh key for `alg` (RS*, PS*, ES256, ES384, EdDSA).
    pub fn generate(kid: &str, alg: Algorithm) -> Self {
        crate::init();
        let rcgen_alg = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => &rcgen::PKCS_RSA_SHA256,
            Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Algorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Algorithm::EdDSA => &rcgen::PKCS_ED25519,
            other => panic!("use TestKey::hmac for {other:?}"),
        };
        let pair = rcgen::KeyPair::generate_for(rcgen_alg).expect("key generation");
        let private_pem = pair.serialize_pem();
        let encoding = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private_pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(private_pem.as_bytes()),
        }
        .expect("encoding key");
        if alg == Algorithm::EdDSA {
            // jsonwebtoken cannot derive the public JWK from this PKCS#8 form; build it from the
            // raw public key (RFC 8037).
            let jwk = serde_json::from_value(json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(pair.public_key_raw()),
            }))
            .expect("ed25519 jwk");
            return Self {
                kid: kid.to_owned(),
                alg,
                encoding,
                jwk,
                public_pem: pair.public_key_pem(),
            };
        }
        Self::with_encoding(kid, alg, encoding, pair.public_key_pem())
    }

    /// An HMAC key from a shared secret.
    pub fn hmac(kid: &str, alg: Algorithm, secret: &[u8]) -> Self {
        Self::with_encoding(kid, alg, EncodingKey::from_secret(secret), String::new())
    }

    fn with_encoding(kid: &str, alg: Algorithm, encoding: EncodingKey, public_pem: String) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("jwk");
        jwk.common.key_id = Some(kid.to_owned());
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
            public_pem,
        }
    }

    /// Signs `header` and `claims` given as raw JSON text (so that tests can write duplicate members
    /// or odd headers), with this key and `alg`.
    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg).expect("sign");
        format!("{message}.{signature}")
    }

    /// Signs the claims with a standard header (`alg`, `kid`, `typ`).
    pub fn sign(&self, claims: &Value, typ: &str) -> String {
        let header = json!({"alg": alg_name(self.alg), "kid": self.kid, "typ": typ});
        self.sign_raw(&header.to_string(), &claims.to_string())
    }
}

/// The `alg` header value.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An issuer with a live JWKS endpoint.
pub struct TestIssuer {
    /// The `iss` value, which is also the base URL (`http://127.0.0.1:port`).
    pub issuer: String,
    keys: Arc<Mutex<Vec<TestKey>>>,
    server: RecordingUpstream,
}

impl TestIssuer {
    /// An issuer with RSA (`rsa-1`, RS256), EC (`ec-1`, ES256) and Ed25519 (`ed-1`, EdDSA) keys.
    pub async fn start() -> Self {
        let keys = vec![
            TestKey::generate("rsa-1", Algorithm::RS256),
            TestKey::generate("ec-1", Algorithm::ES256),
            TestKey::generate("ed-1", Algorithm::EdDSA),
        ];
        Self::with_keys(keys).await
    }

    pub async fn with_keys(keys: Vec<TestKey>) -> Self {
        let keys = Arc::new(Mutex::new(keys));
        let issuer_cell: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
        let (k, i) = (keys.clone(), issuer_cell.clone());
        let server = RecordingUpstream::with_reply(Arc::new(move |req| {
            let body = match req.uri.path() {
                "/jwks.json" => {
                    let set = JwkSet {
                        keys: k.lock().unwrap().iter().map(|k| k.jwk.clone()).collect(),
                    };
                    serde_json::to_vec(&set).unwrap()
                }
                "/.well-known/openid-configuration" => {
                    let issuer = i.lock().unwrap().clone();
                    serde_json::to_vec(
                        &json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json")}),
                    )
                    .unwrap()
                }
                _ => {
                    return Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Full::default())
                        .unwrap();
                }
            };
            Response::builder()
                .header("content-type", "application/json")
                .header("cache-control", "public, max-age=300")
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        }))
        .await;
        let issuer = server.url();
        *issuer_cell.lock().unwrap() = issuer.clone();
        Self {
            issuer,
            keys,
            server,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.issuer)
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.uri.path() == "/jwks.json")
            .count()
    }

    /// Every request the issuer's server received (to prove that nothing else was fetched).
    pub fn requests(&self) -> usize {
        self.server.count()
    }

    pub fn key(&self, kid: &str) -> TestKey {
        self.keys
            .lock()
            .unwrap()
            .iter()
            .find(|k| k.kid == kid)
            .cloned()
            .expect("no such key")
    }

    /// Publishes a new key and withdraws the old ones (a key rotation at the issuer).
    pub fn rotate_to(&self, key: TestKey) {
        *self.keys.lock().unwrap() = vec![key];
    }

    /// Valid claims for `audience`: `iss`, `aud`, `sub`, `iat`, `nbf`, `exp` in 5 minutes, scopes.
    pub fn claims(&self, audience: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer, "aud": audience, "sub": "user-42", "client_id": "app-1",
            "iat": now, "nbf": now, "exp": now + 300, "jti": format!("jti-{now}-{}", rand_suffix()),
            "scope": "orders:read orders:write", "roles": ["reader"],
        })
    }

    /// An `[[auth.jwt]]` table trusting this issuer (ES256 keys from its JWKS over plain HTTP) as
    /// `name` for `audience`.
    pub fn jwt_config(&self, name: &str, audience: &str) -> String {
        format!(
            "[[auth.jwt]]\nname = \"{name}\"\nissuer = \"{iss}\"\naudiences = [\"{audience}\"]\nalgorithms = [\"ES256\"]\njwks_url = \"{iss}/jwks.json\"\nallow_insecure_http = true\n",
            iss = self.issuer
        )
    }

    /// A valid token signed by `kid` for `audience`.
    pub fn token(&self, kid: &str, audience: &str) -> String {
        self.key(kid).sign(&self.claims(audience), "JWT")
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
