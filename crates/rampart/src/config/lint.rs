//! Lints for `rampart check`: valid but weak settings, each with a stable rule id so that a
//! deployment pipeline can gate on them (`--strict`) and docs can explain them
//! (`docs/config.md#lint-rules`).

use std::net::SocketAddr;

use super::{Config, Issue};
use crate::policy::headers::SecurityHeadersConfig;

/// Bodies above this size are flagged as `body-limit-huge`.
pub const HUGE_BODY_BYTES: u64 = 100 * 1024 * 1024;
/// HSTS shorter than 180 days is flagged as `hsts-short`.
pub const MIN_HSTS_SECONDS: u64 = 180 * 24 * 3600;

/// One weak setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub issue: Issue,
}

/// Every rule id with a one-line description.
pub const RULES: [(&str, &str); 14] = [
    (
        "plaintext-listener-exposed",
        "a plaintext listener is bound to a non-loopback address",
    ),
    (
        "admin-exposed",
        "the admin listener is bound to a non-loopback address",
    ),
    ("cors-wildcard-origin", "a route allows any origin (`*`)"),
    (
        "cors-plaintext-origin",
        "a route allows an `http://` origin other than localhost",
    ),
    ("body-limit-huge", "a body limit above 100 MiB"),
    (
        "upstream-tls-unverified",
        "an upstream does not verify TLS certificates",
    ),
    (
        "upstream-plaintext-remote",
        "an upstream target is plain HTTP and not on loopback",
    ),
    (
        "upstream-errors-unmasked",
        "a route passes upstream 5xx bodies to clients",
    ),
    (
        "security-header-disabled",
        "a security header is switched off",
    ),
    ("hsts-short", "HSTS max-age below 180 days"),
    (
        "trusted-proxies-broad",
        "a trusted-proxy range of /8 (IPv4) or /32 (IPv6) or wider",
    ),
    ("trace-allowed", "TRACE is not in `proxy.refuse_methods`"),
    (
        "jwt-insecure-http",
        "a JWT issuer may fetch keys over plain HTTP",
    ),
    ("basic-auth-enabled", "a route accepts HTTP Basic passwords"),
];

/// Runs every rule.
pub fn lint(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut flag = |rule: &'static str, pointer: String, message: String| {
        out.push(Finding {
            rule,
            issue: Issue::new(pointer, message),
        });
    };
    for (i, l) in config.listeners.iter().enumerate() {
        if l.plaintext && !is_loopback(l.bind) {
            flag(
                "plaintext-listener-exposed",
                format!("/listeners/{i}/plaintext"),
                format!("`{}` serves plain HTTP on {}", l.name, l.bind),
            );
        }
    }
    if config.admin.enabled && !is_loopback(config.admin.bind) {
        flag(
            "admin-exposed",
            "/admin/bind".into(),
            format!("admin endpoints on {}", config.admin.bind),
        );
    }
    if config.limits.max_body_bytes > HUGE_BODY_BYTES {
        flag(
            "body-limit-huge",
            "/limits/max_body_bytes".into(),
            format!("{} bytes", config.limits.max_body_bytes),
        );
    }
    if !config.proxy.refuse_methods.iter().any(|m| m == "TRACE") {
        flag(
            "trace-allowed",
            "/proxy/refuse_methods".into(),
            "TRACE can echo credentials (cross-site tracing)".into(),
        );
    }
    for (i, net) in config.proxy.trusted_proxies.iter().enumerate() {
        let broad = match net {
            ipnet::IpNet::V4(n) => n.prefix_len() <= 8,
            ipnet::IpNet::V6(n) => n.prefix_len() <= 32,
        };
        if broad {
            flag(
                "trusted-proxies-broad",
                format!("/proxy/trusted_proxies/{i}"),
                format!("{net} lets most of the internet spoof client addresses"),
            );
        }
    }
    headers_findings(&config.security_headers, "/security_headers", &mut flag);
    for (i, issuer) in config.auth.jwt.iter().enumerate() {
        if issuer.allow_insecure_http {
            flag(
                "jwt-insecure-http",
                format!("/auth/jwt/{i}/allow_insecure_http"),
                format!(
                    "issuer `{}` keys can be replaced on the network",
                    issuer.name
                ),
            );
        }
    }
    for (i, u) in config.upstreams.iter().enumerate() {
        if !u.tls.verify {
            flag(
                "upstream-tls-unverified",
                format!("/upstreams/{i}/tls/verify"),
                format!("`{}` accepts any certificate", u.name),
            );
        }
        for (j, target) in u.targets.iter().enumerate() {
            if let Some(rest) = target.strip_prefix("http://")
                && !is_loopback_host(rest)
            {
                flag(
                    "upstream-plaintext-remote",
                    format!("/upstreams/{i}/targets/{j}"),
                    format!("{target} is not encrypted"),
                );
            }
        }
    }
    for (i, r) in config.routes.iter().enumerate() {
        let ptr = format!("/routes/{i}");
        if r.auth.as_ref().is_some_and(|a| a.basic) {
            flag(
                "basic-auth-enabled",
                format!("{ptr}/auth/basic"),
                format!(
                    "route `{}` accepts long-lived passwords; prefer tokens or API keys",
                    r.name
                ),
            );
        }
        if !r.mask_upstream_errors {
            flag(
                "upstream-errors-unmasked",
                format!("{ptr}/mask_upstream_errors"),
                format!("route `{}`", r.name),
            );
        }
        if let Some(limit) = r.max_body_bytes.filter(|l| *l > HUGE_BODY_BYTES) {
            flag(
                "body-limit-huge",
                format!("{ptr}/max_body_bytes"),
                format!("{limit} bytes"),
            );
        }
        headers_findings(
            &r.security_headers,
            &format!("{ptr}/security_headers"),
            &mut flag,
        );
        let origins = r
            .cors
            .iter()
            .flat_map(|c| c.allow_origins.iter().enumerate());
        for (j, origin) in origins {
            let at = format!("{ptr}/cors/allow_origins/{j}");
            if origin == "*" {
                flag(
                    "cors-wildcard-origin",
                    at,
                    format!("route `{}` is readable from any web page", r.name),
                );
            } else if let Some(rest) = origin.strip_prefix("http://")
                && !is_loopback_host(rest)
            {
                flag(
                    "cors-plaintext-origin",
                    at,
                    format!("{origin} can be impersonated on the network"),
                );
            }
        }
    }
    out
}

fn headers_findings(
    h: &SecurityHeadersConfig,
    ptr: &str,
    flag: &mut impl FnMut(&'static str, String, String),
) {
    let fields = [
        ("strict_transport_security", &h.strict_transport_security),
        ("content_security_policy", &h.content_security_policy),
        ("x_frame_options", &h.x_frame_options),
        ("x_content_type_options", &h.x_content_type_options),
        ("referrer_policy", &h.referrer_policy),
    ];
    for (name, value) in fields {
        if value.as_deref() == Some("") {
            flag(
                "security-header-disabled",
                format!("{ptr}/{name}"),
                format!("`{name}` is removed"),
            );
        }
    }
    if let Some(max_age) = h
        .strict_transport_security
        .as_deref()
        .and_then(hsts_max_age)
        && max_age < MIN_HSTS_SECONDS
    {
        flag(
            "hsts-short",
            format!("{ptr}/strict_transport_security"),
            format!("max-age={max_age}"),
        );
    }
}

fn hsts_max_age(value: &str) -> Option<u64> {
    value
        .split(';')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim_matches('"').parse().ok())
}

fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().is_loopback()
}

fn is_loopback_host(authority: &str) -> bool {
    let host = authority.split(['/', '?']).next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback_host("127.0.0.1:8080"));
        assert!(is_loopback_host("[::1]:80"));
        assert!(is_loopback_host("localhost:3000"));
        assert!(!is_loopback_host("10.0.0.1:80"));
        assert!(!is_loopback_host("api.internal"));
    }

    #[test]
    fn every_rule_is_documented() {
        let docs = include_str!("../../../../docs/config.md");
        for (rule, _) in RULES {
            assert!(
                docs.contains(&format!("| `{rule}` |")),
                "{rule} is missing from docs/config.md"
            );
        }
    }

    #[test]
    fn hsts_max_age_is_parsed() {
        assert_eq!(hsts_max_age("max-age=300; includeSubDomains"), Some(300));
        assert_eq!(hsts_max_age("includeSubDomains; max-age=\"10\""), Some(10));
    }
}
