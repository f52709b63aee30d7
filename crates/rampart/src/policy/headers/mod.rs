//! Security response headers on every response, the gateway's own errors included.
//!
//! Threat: browsers sniffing JSON as HTML, framing (clickjacking), leaking URLs in `Referer`,
//! downgrade to plain HTTP. Invariant: after this stage every response carries the configured
//! headers, whatever the upstream sent: the gateway's value replaces the upstream's, so a weak
//! upstream header cannot win. HSTS is only sent over TLS (RFC 6797 section 7.2).

pub mod config;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub use config::SecurityHeadersConfig;
use config::{
    DEFAULT_CSP, DEFAULT_HSTS, DEFAULT_REFERRER_POLICY, DEFAULT_X_CONTENT_TYPE_OPTIONS,
    DEFAULT_X_FRAME_OPTIONS,
};

use crate::config::Issue;

/// The resolved headers of one route (or of the gateway, for responses without a route).
#[derive(Debug, Clone, Default)]
pub struct SecurityHeaders {
    hsts: Option<HeaderValue>,
    always: Vec<(HeaderName, HeaderValue)>,
}

type Field = fn(&SecurityHeadersConfig) -> &Option<String>;

const FIELDS: [(&str, HeaderName, &str, Field); 4] = [
    (
        "content_security_policy",
        header::CONTENT_SECURITY_POLICY,
        DEFAULT_CSP,
        |c| &c.content_security_policy,
    ),
    (
        "x_frame_options",
        header::X_FRAME_OPTIONS,
        DEFAULT_X_FRAME_OPTIONS,
        |c| &c.x_frame_options,
    ),
    (
        "x_content_type_options",
        header::X_CONTENT_TYPE_OPTIONS,
        DEFAULT_X_CONTENT_TYPE_OPTIONS,
        |c| &c.x_content_type_options,
    ),
    (
        "referrer_policy",
        header::REFERRER_POLICY,
        DEFAULT_REFERRER_POLICY,
        |c| &c.referrer_policy,
    ),
];

/// Checks that every configured value is a valid header value.
pub fn validate(config: &SecurityHeadersConfig, ptr: &str, issues: &mut Vec<Issue>) {
    let hsts = (
        "strict_transport_security",
        &config.strict_transport_security,
    );
    let others = FIELDS.iter().map(|(name, _, _, get)| (*name, get(config)));
    for (name, value) in std::iter::once(hsts).chain(others) {
        if let Some(v) = value
            && HeaderValue::from_str(v).is_err()
        {
            issues.push(Issue::new(
                format!("{ptr}/{name}"),
                "not a valid header value",
            ));
        }
    }
}

impl SecurityHeaders {
    /// Route values win over global ones, which win over the defaults; "" leaves the header to
    /// the upstream.
    pub fn new(global: &SecurityHeadersConfig, route: Option<&SecurityHeadersConfig>) -> Self {
        let pick = |get: Field, default: &'static str| -> Option<HeaderValue> {
            let chosen = route
                .and_then(|r| get(r).as_deref())
                .or_else(|| get(global).as_deref())
                .unwrap_or(default);
            if chosen.is_empty() {
                None
            } else if chosen == default {
                // Static: cloned onto every response without touching a reference count.
                Some(HeaderValue::from_static(default))
            } else {
                HeaderValue::from_str(chosen).ok()
            }
        };
        Self {
            hsts: pick(|c| &c.strict_transport_security, DEFAULT_HSTS),
            always: FIELDS
                .iter()
                .filter_map(|(_, name, default, get)| Some((name.clone(), pick(*get, default)?)))
                .collect(),
        }
    }

    /// Sets the headers, replacing upstream values.
    pub fn apply(&self, headers: &mut HeaderMap, tls: bool) {
        for (name, value) in &self.always {
            headers.insert(name.clone(), value.clone());
        }
        if tls && let Some(hsts) = &self.hsts {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }

    /// The headers as a map, for responses written before hyper (the framing guard).
    pub fn to_map(&self, tls: bool) -> HeaderMap {
        let mut map = HeaderMap::new();
        self.apply(&mut map, tls);
        map
    }
}

#[cfg(test)]
mod tests;
