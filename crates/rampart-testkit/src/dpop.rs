//! A DPoP client (RFC 9449): a key pair, proofs for requests, and the `cnf.jkt` of its key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::ThumbprintHash;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::issuer::{TestKey, alg_name, now};

/// A client's proof-of-possession key.
pub struct DpopKey {
    pub key: TestKey,
}

/// What goes into one proof; tests change one field to make it wrong.
pub struct Proof<'a> {
    pub htm: &'a str,
    pub htu: &'a str,
    pub token: Option<&'a str>,
    pub iat: u64,
    pub jti: String,
    pub nonce: Option<&'a str>,
}

impl<'a> Proof<'a> {
    /// A proof for `htm htu` with `token`, issued now with a fresh `jti`.
    pub fn new(htm: &'a str, htu: &'a str, token: &'a str) -> Self {
        Self {
            htm,
            htu,
            token: Some(token),
            iat: now(),
            jti: format!("{:032x}", rand_u128()),
            nonce: None,
        }
    }
}

fn rand_u128() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    t ^ (u128::from(n) << 64)
}

impl DpopKey {
    pub fn generate(alg: Algorithm) -> Self {
        Self {
            key: TestKey::generate("dpop", alg),
        }
    }

    /// RFC 7638 thumbprint of the public key: the token's `cnf.jkt`.
    pub fn jkt(&self) -> String {
        self.key
            .jwk
            .thumbprint(ThumbprintHash::SHA256)
            .expect("thumbprint")
    }

    /// The public JWK as the proof header carries it.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = serde_json::to_value(&self.key.jwk).expect("jwk");
        if let Some(map) = jwk.as_object_mut() {
            map.remove("kid");
        }
        jwk
    }

    /// Signs a proof with a standard header.
    pub fn proof(&self, p: &Proof<'_>) -> String {
        let header =
            json!({"typ": "dpop+jwt", "alg": alg_name(self.key.alg), "jwk": self.public_jwk()});
        self.proof_with_header(&header, p)
    }

    /// Signs a proof under a hand-made header.
    pub fn proof_with_header(&self, header: &Value, p: &Proof<'_>) -> String {
        let mut claims = json!({"jti": p.jti, "htm": p.htm, "htu": p.htu, "iat": p.iat});
        if let Some(token) = p.token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
        }
        if let Some(nonce) = p.nonce {
            claims["nonce"] = json!(nonce);
        }
        self.key.sign_raw(&header.to_string(), &claims.to_string())
    }
}
