//! Verified identity for the upstream: who the gateway authenticated, in request headers.
//!
//! Threat: a client sending `X-Rampart-Subject: admin` itself. Invariant: on every route, public
//! ones included, the configured identity headers are removed from the client's request, then set
//! from the verified principal only. Values outside visible ASCII are percent-encoded so that a
//! strange `sub` can never split or drop a header.

use http::{HeaderMap, HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::Issue;
use crate::context::{AuthMethod, Principal};
use crate::tls::ClientCert;

/// `[upstream_identity]`: header names (an empty string disables one).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeadersConfig {
    #[serde(default = "subject")]
    pub subject: String,
    #[serde(default = "scopes")]
    pub scopes: String,
    #[serde(default = "roles")]
    pub roles: String,
    #[serde(default = "method")]
    pub auth_method: String,
    #[serde(default = "key_id")]
    pub key_id: String,
    #[serde(default = "client_id")]
    pub client_id: String,
    /// base64url SHA-256 of the verified client certificate (mTLS listeners).
    #[serde(default = "client_cert_sha256")]
    pub client_cert_sha256: String,
    /// Subject DN of the verified client certificate.
    #[serde(default = "client_cert_subject")]
    pub client_cert_subject: String,
}

impl Default for IdentityHeadersConfig {
    fn default() -> Self {
        Self {
            subject: subject(),
            scopes: scopes(),
            roles: roles(),
            auth_method: method(),
            key_id: key_id(),
            client_id: client_id(),
            client_cert_sha256: client_cert_sha256(),
            client_cert_subject: client_cert_subject(),
        }
    }
}

fn subject() -> String {
    "x-rampart-subject".into()
}
fn scopes() -> String {
    "x-rampart-scopes".into()
}
fn roles() -> String {
    "x-rampart-roles".into()
}
fn method() -> String {
    "x-rampart-auth-method".into()
}
fn key_id() -> String {
    "x-rampart-key-id".into()
}
fn client_id() -> String {
    "x-rampart-client-id".into()
}
fn client_cert_sha256() -> String {
    "x-rampart-client-cert-sha256".into()
}
fn client_cert_subject() -> String {
    "x-rampart-client-cert-subject".into()
}

impl IdentityHeadersConfig {
    fn fields(&self) -> [(&'static str, &String); 8] {
        [
            ("subject", &self.subject),
            ("scopes", &self.scopes),
            ("roles", &self.roles),
            ("auth_method", &self.auth_method),
            ("key_id", &self.key_id),
            ("client_id", &self.client_id),
            ("client_cert_sha256", &self.client_cert_sha256),
            ("client_cert_subject", &self.client_cert_subject),
        ]
    }

    pub fn validate(&self, issues: &mut Vec<Issue>) {
        for (field, name) in self.fields() {
            if !name.is_empty() && HeaderName::from_bytes(name.as_bytes()).is_err() {
                issues.push(Issue::new(
                    format!("/upstream_identity/{field}"),
                    "not a header name",
                ));
            }
        }
    }
}

/// The resolved header names.
#[derive(Debug, Clone, Default)]
pub struct IdentityHeaders {
    subject: Option<HeaderName>,
    scopes: Option<HeaderName>,
    roles: Option<HeaderName>,
    auth_method: Option<HeaderName>,
    key_id: Option<HeaderName>,
    client_id: Option<HeaderName>,
    client_cert_sha256: Option<HeaderName>,
    client_cert_subject: Option<HeaderName>,
}

impl IdentityHeaders {
    pub fn new(config: &IdentityHeadersConfig) -> Self {
        let name = |s: &String| {
            (!s.is_empty())
                .then(|| HeaderName::from_bytes(s.as_bytes()).ok())
                .flatten()
        };
        Self {
            subject: name(&config.subject),
            scopes: name(&config.scopes),
            roles: name(&config.roles),
            auth_method: name(&config.auth_method),
            key_id: name(&config.key_id),
            client_id: name(&config.client_id),
            client_cert_sha256: name(&config.client_cert_sha256),
            client_cert_subject: name(&config.client_cert_subject),
        }
    }

    fn names(&self) -> impl Iterator<Item = &HeaderName> {
        [
            &self.subject,
            &self.scopes,
            &self.roles,
            &self.auth_method,
            &self.key_id,
            &self.client_id,
            &self.client_cert_sha256,
            &self.client_cert_subject,
        ]
        .into_iter()
        .flatten()
    }

    /// Removes client copies, then sets the verified identity: the principal, and the client
    /// certificate whenever the connection presented one (public routes included).
    pub fn apply(
        &self,
        headers: &mut HeaderMap,
        principal: Option<&Principal>,
        cert: Option<&ClientCert>,
    ) {
        for name in self.names() {
            headers.remove(name);
        }
        let mut set = |name: &Option<HeaderName>, value: &str| {
            if let Some(name) = name
                && !value.is_empty()
                && let Ok(value) = HeaderValue::from_str(&encode(value))
            {
                headers.insert(name.clone(), value);
            }
        };
        if let Some(cert) = cert {
            set(&self.client_cert_sha256, &cert.sha256);
            set(&self.client_cert_subject, &cert.subject);
        }
        let Some(p) = principal else { return };
        set(&self.subject, &p.subject);
        set(&self.scopes, &p.scopes.join(" "));
        set(&self.roles, &p.roles.join(" "));
        set(&self.auth_method, p.method.as_str());
        if let AuthMethod::ApiKey(id) = &p.method {
            set(&self.key_id, id);
        }
        set(&self.client_id, p.client_id.as_deref().unwrap_or(""));
    }
}

/// Percent-encodes everything but visible ASCII and space (and `%` itself).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (b.is_ascii_graphic() || b == b' ') && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_split_a_header() {
        assert_eq!(encode("admin\r\nX-Evil: 1"), "admin%0D%0AX-Evil: 1");
        assert_eq!(encode("josé"), "jos%C3%A9");
        assert_eq!(encode("100%"), "100%25");
    }
}
