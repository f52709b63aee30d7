//! TLS client certificates as credentials (RFC 8705).
//!
//! Threats: a stolen access token replayed from another client; a certificate from an untrusted CA.
//! Invariants: the chain was verified by rustls against the listener's client CA before any request
//! is read; a certificate identifies a caller only on routes that accept `mtls`; a token carrying
//! `cnf.x5t#S256` is accepted only on a connection whose client certificate has that thumbprint
//! (compared in constant time), whatever the route accepts.

use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::AuthFailure;
use crate::context::{AuthMethod, Principal};
use crate::tls::ClientCert;

/// The principal named by a verified client certificate: the common name, else the first subject
/// alternative name, else the full subject.
pub fn certificate_principal(cert: &ClientCert) -> Principal {
    let subject = cert
        .common_name
        .clone()
        .or_else(|| cert.sans.first().cloned())
        .unwrap_or_else(|| cert.subject.clone());
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::String(subject.clone()));
    claims.insert("cert_subject".into(), Value::String(cert.subject.clone()));
    claims.insert(
        "cert_sans".into(),
        Value::Array(cert.sans.iter().cloned().map(Value::String).collect()),
    );
    claims.insert("x5t#S256".into(), Value::String(cert.sha256.clone()));
    Principal {
        subject,
        method: AuthMethod::ClientCert,
        scopes: Vec::new(),
        roles: Vec::new(),
        client_id: None,
        expires_at: None,
        claims,
    }
}

/// RFC 8705 section 3: a certificate-bound token is only good on a connection with that
/// certificate. Tokens without `cnf.x5t#S256` pass unchanged.
pub fn check_certificate_binding(
    principal: &Principal,
    cert: Option<&ClientCert>,
) -> Result<(), AuthFailure> {
    let Some(cnf) = principal.claims.get("cnf") else {
        return Ok(());
    };
    let Some(bound) = cnf.get("x5t#S256") else {
        return Ok(());
    };
    let bound = bound
        .as_str()
        .ok_or_else(|| AuthFailure::invalid_token("cnf.x5t#S256 is not a string"))?;
    let cert = cert.ok_or_else(|| {
        AuthFailure::invalid_token("certificate-bound token without a client certificate")
    })?;
    if bound.as_bytes().ct_eq(cert.sha256.as_bytes()).into() {
        Ok(())
    } else {
        Err(AuthFailure::invalid_token(
            "token is bound to another client certificate",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sha256: &str) -> ClientCert {
        ClientCert {
            sha256: sha256.into(),
            subject: "CN=svc-a,O=Example".into(),
            common_name: Some("svc-a".into()),
            sans: vec!["spiffe://example/svc-a".into()],
        }
    }

    fn bound_to(thumbprint: &str) -> Principal {
        let mut p = certificate_principal(&cert("x"));
        p.claims
            .insert("cnf".into(), serde_json::json!({ "x5t#S256": thumbprint }));
        p
    }

    #[test]
    fn certificate_bound_token_needs_the_same_certificate() {
        let token = bound_to("abc");
        assert!(check_certificate_binding(&token, Some(&cert("abc"))).is_ok());
        assert!(check_certificate_binding(&token, Some(&cert("abd"))).is_err());
        assert!(check_certificate_binding(&token, None).is_err());
    }

    #[test]
    fn unbound_token_needs_no_certificate() {
        let token = certificate_principal(&cert("abc"));
        assert!(check_certificate_binding(&token, None).is_ok());
    }

    #[test]
    fn principal_is_the_common_name() {
        let p = certificate_principal(&cert("abc"));
        assert_eq!(p.subject, "svc-a");
        assert_eq!(p.method, AuthMethod::ClientCert);
    }
}
