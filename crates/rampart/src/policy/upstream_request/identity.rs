//! Verified identity for the upstream: who the gateway authenticated, in request headers.
//!
//! Threat: a client sending `X-Rampart-Subject: admin` itself. Invariant: on every route, public
//! ones included, the configured identity headers are removed from the client's request, then set
//! from the verified principal only. Values outside visible ASCII are percent-encoded so that a
//! strange `sub` can never split or drop a header.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::context::{AuthMethod, Principal};
use crate::tls::ClientCert;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::config::IdentityHeadersConfig;

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
        // A client rarely sends them: comparing names is cheaper than eight hashed removals.
        if headers
            .keys()
            .any(|sent| self.names().any(|own| own == sent))
        {
            for name in self.names() {
                headers.remove(name);
            }
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

/// Percent-encodes everything but visible ASCII and space (and `%` itself). A value with
/// nothing to encode, almost every one, is borrowed: no copy before the header value's own.
fn encode(value: &str) -> Cow<'_, str> {
    let kept = |b: u8| (b.is_ascii_graphic() || b == b' ') && b != b'%';
    if value.bytes().all(kept) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for b in value.bytes() {
        if kept(b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    Cow::Owned(out)
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

    #[test]
    fn a_value_with_nothing_to_encode_is_borrowed_and_unchanged() {
        for value in [
            "alice@example.com",
            "orders:read orders:write",
            "~!\"#$&'()*+,-./:;<=>?@[\\]^_`{|}",
        ] {
            assert!(
                matches!(encode(value), Cow::Borrowed(v) if v == value),
                "{value}"
            );
        }
        assert!(matches!(encode("a%b"), Cow::Owned(_)));
    }
}
