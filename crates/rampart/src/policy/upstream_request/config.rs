//! `[upstream_identity]`: the header names that carry the verified identity to upstreams.

use http::HeaderName;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::Issue;

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
