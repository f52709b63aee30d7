//! Answers to ACME challenges in flight, held by every instance: the key authorization of an
//! HTTP-01 token (served on the redirect listener) and the certificate of a TLS-ALPN-01
//! challenge (RFC 8737, served to handshakes that offer only `acme-tls/1`).
//!
//! The renewing instance publishes each answer in the store and in its own maps; the others copy
//! the store's answers at every sync. Requests never read the store: a client cannot turn
//! `/.well-known/acme-challenge/...` into database queries.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::store::AcmeChallenge;

/// The ALPN protocol of TLS-ALPN-01 handshakes (RFC 8737 section 6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// Where the CA fetches an HTTP-01 answer (RFC 8555 section 8.3).
pub const HTTP01_PATH: &str = "/.well-known/acme-challenge/";

pub const HTTP01: &str = "http-01";
pub const TLS_ALPN01: &str = "tls-alpn-01";

/// The challenges this instance answers.
#[derive(Default)]
pub struct Challenges {
    /// HTTP-01: token to key authorization.
    http: ArcSwap<HashMap<String, String>>,
    /// TLS-ALPN-01: domain to the challenge certificate.
    tls_alpn: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges")
            .field("http", &self.http.load().len())
            .field("tls_alpn", &self.tls_alpn.load().len())
            .finish()
    }
}

impl Challenges {
    /// The key authorization for an HTTP-01 token.
    pub fn http_answer(&self, token: &str) -> Option<String> {
        self.http.load().get(token).cloned()
    }

    /// The TLS-ALPN-01 certificate for a domain.
    pub fn tls_alpn_certificate(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        self.tls_alpn.load().get(domain).cloned()
    }

    /// Answers this challenge from now on.
    pub fn add(&self, challenge: &AcmeChallenge) -> Result<(), String> {
        match challenge.kind.as_str() {
            HTTP01 => {
                let (token, answer) = (&challenge.token, &challenge.key_authorization);
                self.http.rcu(|map| {
                    let mut map = HashMap::clone(map);
                    map.insert(token.clone(), answer.clone());
                    map
                });
            }
            TLS_ALPN01 => {
                let cert = Arc::new(tls_alpn_certificate(
                    &challenge.domain,
                    &challenge.key_authorization,
                )?);
                self.tls_alpn.rcu(|map| {
                    let mut map = HashMap::clone(map);
                    map.insert(challenge.domain.clone(), cert.clone());
                    map
                });
            }
            other => return Err(format!("unknown challenge kind `{other}`")),
        }
        Ok(())
    }

    /// Stops answering it.
    pub fn remove(&self, challenge: &AcmeChallenge) {
        self.http.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.remove(&challenge.token);
            map
        });
        if challenge.kind == TLS_ALPN01 {
            self.tls_alpn.rcu(|map| {
                let mut map = HashMap::clone(map);
                map.remove(&challenge.domain);
                map
            });
        }
    }

    /// Answers exactly the challenges the store holds (another instance may be renewing).
    pub fn replace_all(&self, challenges: &[AcmeChallenge]) {
        let mut http = HashMap::new();
        let mut tls_alpn = HashMap::new();
        let known = self.tls_alpn.load();
        for challenge in challenges {
            match challenge.kind.as_str() {
                HTTP01 => {
                    http.insert(challenge.token.clone(), challenge.key_authorization.clone());
                }
                TLS_ALPN01 => {
                    // Built once per challenge, not at every sync.
                    let cert = match known.get(&challenge.domain) {
                        Some(cert) if answers(cert, &challenge.key_authorization) => cert.clone(),
                        _ => match tls_alpn_certificate(
                            &challenge.domain,
                            &challenge.key_authorization,
                        ) {
                            Ok(cert) => Arc::new(cert),
                            Err(e) => {
                                tracing::warn!(domain = %challenge.domain, error = %e, "cannot answer a TLS-ALPN-01 challenge");
                                continue;
                            }
                        },
                    };
                    tls_alpn.insert(challenge.domain.clone(), cert);
                }
                _ => {}
            }
        }
        self.http.store(Arc::new(http));
        self.tls_alpn.store(Arc::new(tls_alpn));
    }
}

/// The DER of the acmeIdentifier extension's value for this key authorization.
fn acme_identifier(key_authorization: &str) -> [u8; 32] {
    Sha256::digest(key_authorization.as_bytes()).into()
}

/// Whether a challenge certificate carries this key authorization's digest.
fn answers(cert: &CertifiedKey, key_authorization: &str) -> bool {
    let digest = acme_identifier(key_authorization);
    cert.cert
        .first()
        .is_some_and(|der| der.windows(digest.len()).any(|w| w == digest))
}

/// RFC 8737 section 3: a self-signed certificate for the domain alone, with the critical
/// acmeIdentifier extension holding SHA-256 of the key authorization.
fn tls_alpn_certificate(domain: &str, key_authorization: &str) -> Result<CertifiedKey, String> {
    let fail = |e: rcgen::Error| format!("TLS-ALPN-01 certificate for {domain}: {e}");
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(fail)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(
        &acme_identifier(key_authorization),
    )];
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    // Not `CertifiedKey::from_der`: its consistency check parses the certificate with webpki,
    // which (rightly, for a served certificate) refuses the critical acmeIdentifier extension.
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| format!("TLS-ALPN-01 key for {domain}: {e}"))?;
    Ok(CertifiedKey::new(
        vec![CertificateDer::from(cert.der().to_vec())],
        signing_key,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn challenge(kind: &str, token: &str, domain: &str) -> AcmeChallenge {
        AcmeChallenge {
            token: token.into(),
            kind: kind.into(),
            domain: domain.into(),
            key_authorization: format!("{token}.thumbprint"),
            expires_at: i64::MAX,
        }
    }

    #[test]
    fn tls_alpn_certificate_carries_the_critical_acme_identifier() {
        let cert = tls_alpn_certificate("api.example.com", "tok.thumb").unwrap();
        let der = cert.cert[0].as_ref();
        let (_, parsed) = x509_parser::parse_x509_certificate(der).unwrap();
        let oid = x509_parser::oid_registry::Oid::from(&[1, 3, 6, 1, 5, 5, 7, 1, 31]).unwrap();
        let ext = parsed
            .extensions()
            .iter()
            .find(|e| e.oid == oid)
            .expect("acmeIdentifier");
        assert!(ext.critical);
        // An OCTET STRING (tag 4, length 32) of the digest.
        assert_eq!(&ext.value[..2], &[4, 32]);
        assert_eq!(&ext.value[2..], &acme_identifier("tok.thumb"));
        assert!(answers(&cert, "tok.thumb"));
        assert!(!answers(&cert, "other.thumb"));
    }

    #[test]
    fn answers_follow_the_store_and_removals() {
        let challenges = Challenges::default();
        challenges
            .add(&challenge(HTTP01, "t1", "a.example"))
            .unwrap();
        assert_eq!(
            challenges.http_answer("t1").as_deref(),
            Some("t1.thumbprint")
        );
        challenges.replace_all(&[challenge(TLS_ALPN01, "t2", "b.example")]);
        assert_eq!(challenges.http_answer("t1"), None);
        let first = challenges.tls_alpn_certificate("b.example").unwrap();
        challenges.replace_all(&[challenge(TLS_ALPN01, "t2", "b.example")]);
        let again = challenges.tls_alpn_certificate("b.example").unwrap();
        assert!(Arc::ptr_eq(&first, &again), "not rebuilt at every sync");
        challenges.remove(&challenge(TLS_ALPN01, "t2", "b.example"));
        assert!(challenges.tls_alpn_certificate("b.example").is_none());
    }
}
