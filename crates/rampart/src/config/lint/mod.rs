//! Lints for `rampart check`: valid but weak settings, each with a stable rule id so that a
//! deployment pipeline can gate on them (`--strict`) and docs can explain them
//! (`docs/config.md#lint-rules`).

mod rules;

use std::net::SocketAddr;

use super::{Config, Issue};

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
pub const RULES: [(&str, &str); 20] = [
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
    (
        "string-without-max-length",
        "a contract's string has no `maxLength` (nor enum, const or a bounded format)",
    ),
    (
        "array-without-max-items",
        "a contract's array has no `maxItems`",
    ),
    (
        "additional-properties-true",
        "a contract's object accepts any other property",
    ),
    (
        "integer-without-bounds",
        "a contract's integer lacks `minimum` or `maximum`",
    ),
    (
        "operation-without-security",
        "a contract's operation declares no security (or an empty one)",
    ),
    (
        "pattern-backtracking",
        "a contract's pattern needs a backtracking regex engine (lookaround, back-references)",
    ),
];

/// The findings of one run.
#[derive(Default)]
pub(super) struct Findings(Vec<Finding>);

impl Findings {
    fn flag(&mut self, rule: &'static str, pointer: impl Into<String>, message: impl Into<String>) {
        self.0.push(Finding {
            rule,
            issue: Issue::new(pointer, message),
        });
    }
}

/// The rules, grouped by the part of the config they read; each is one small function in
/// `rules.rs`.
const CHECKS: [fn(&Config, &mut Findings); 11] = [
    rules::plaintext_listener_exposed,
    rules::admin_exposed,
    rules::body_limit_huge,
    rules::trace_allowed,
    rules::trusted_proxies_broad,
    rules::security_headers,
    rules::jwt_insecure_http,
    rules::upstream_tls,
    rules::route_rules,
    rules::cors_origins,
    rules::contracts,
];

/// Runs every rule.
pub fn lint(config: &Config) -> Vec<Finding> {
    let mut findings = Findings::default();
    for check in CHECKS {
        check(config, &mut findings);
    }
    findings.0
}

pub(super) fn hsts_max_age(value: &str) -> Option<u64> {
    value
        .split(';')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim_matches('"').parse().ok())
}

pub(super) fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().is_loopback()
}

pub(super) fn is_loopback_host(authority: &str) -> bool {
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
        let docs = include_str!("../../../../../docs/config.md");
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
