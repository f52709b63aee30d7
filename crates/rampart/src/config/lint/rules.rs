//! One function per lint rule (or per part of the config, for rules that share a walk).

use super::{
    Findings, HUGE_BODY_BYTES, MIN_HSTS_SECONDS, hsts_max_age, is_loopback, is_loopback_host,
};
use crate::config::Config;
use crate::policy::headers::SecurityHeadersConfig;

pub(super) fn plaintext_listener_exposed(config: &Config, out: &mut Findings) {
    for (i, l) in config.listeners.iter().enumerate() {
        if l.plaintext && !is_loopback(l.bind) {
            out.flag(
                "plaintext-listener-exposed",
                format!("/listeners/{i}/plaintext"),
                format!("`{}` serves plain HTTP on {}", l.name, l.bind),
            );
        }
    }
}

pub(super) fn admin_exposed(config: &Config, out: &mut Findings) {
    if config.admin.enabled && !is_loopback(config.admin.bind) {
        out.flag(
            "admin-exposed",
            "/admin/bind",
            format!("admin endpoints on {}", config.admin.bind),
        );
    }
}

pub(super) fn body_limit_huge(config: &Config, out: &mut Findings) {
    if config.limits.max_body_bytes > HUGE_BODY_BYTES {
        out.flag(
            "body-limit-huge",
            "/limits/max_body_bytes",
            format!("{} bytes", config.limits.max_body_bytes),
        );
    }
    for (i, r) in config.routes.iter().enumerate() {
        if let Some(limit) = r.max_body_bytes.filter(|l| *l > HUGE_BODY_BYTES) {
            out.flag(
                "body-limit-huge",
                format!("/routes/{i}/max_body_bytes"),
                format!("{limit} bytes"),
            );
        }
    }
}

pub(super) fn trace_allowed(config: &Config, out: &mut Findings) {
    if !config.proxy.refuse_methods.iter().any(|m| m == "TRACE") {
        out.flag(
            "trace-allowed",
            "/proxy/refuse_methods",
            "TRACE can echo credentials (cross-site tracing)",
        );
    }
}

pub(super) fn trusted_proxies_broad(config: &Config, out: &mut Findings) {
    for (i, net) in config.proxy.trusted_proxies.iter().enumerate() {
        let broad = match net {
            ipnet::IpNet::V4(n) => n.prefix_len() <= 8,
            ipnet::IpNet::V6(n) => n.prefix_len() <= 32,
        };
        if broad {
            out.flag(
                "trusted-proxies-broad",
                format!("/proxy/trusted_proxies/{i}"),
                format!("{net} lets most of the internet spoof client addresses"),
            );
        }
    }
}

/// `security-header-disabled` and `hsts-short`, globally and per route.
pub(super) fn security_headers(config: &Config, out: &mut Findings) {
    headers_findings(&config.security_headers, "/security_headers", out);
    for (i, r) in config.routes.iter().enumerate() {
        let at = format!("/routes/{i}/security_headers");
        headers_findings(&r.security_headers, &at, out);
    }
}

fn headers_findings(h: &SecurityHeadersConfig, ptr: &str, out: &mut Findings) {
    let fields = [
        ("strict_transport_security", &h.strict_transport_security),
        ("content_security_policy", &h.content_security_policy),
        ("x_frame_options", &h.x_frame_options),
        ("x_content_type_options", &h.x_content_type_options),
        ("referrer_policy", &h.referrer_policy),
    ];
    for (name, value) in fields {
        if value.as_deref() == Some("") {
            out.flag(
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
        out.flag(
            "hsts-short",
            format!("{ptr}/strict_transport_security"),
            format!("max-age={max_age}"),
        );
    }
}

pub(super) fn jwt_insecure_http(config: &Config, out: &mut Findings) {
    for (i, issuer) in config.auth.jwt.iter().enumerate() {
        if issuer.allow_insecure_http {
            out.flag(
                "jwt-insecure-http",
                format!("/auth/jwt/{i}/allow_insecure_http"),
                format!(
                    "issuer `{}` keys can be replaced on the network",
                    issuer.name
                ),
            );
        }
    }
}

/// `upstream-tls-unverified` and `upstream-plaintext-remote`.
pub(super) fn upstream_tls(config: &Config, out: &mut Findings) {
    for (i, u) in config.upstreams.iter().enumerate() {
        if !u.tls.verify {
            out.flag(
                "upstream-tls-unverified",
                format!("/upstreams/{i}/tls/verify"),
                format!("`{}` accepts any certificate", u.name),
            );
        }
        for (j, target) in u.targets.iter().enumerate() {
            if let Some(rest) = target.strip_prefix("http://")
                && !is_loopback_host(rest)
            {
                out.flag(
                    "upstream-plaintext-remote",
                    format!("/upstreams/{i}/targets/{j}"),
                    format!("{target} is not encrypted"),
                );
            }
        }
    }
}

/// `basic-auth-enabled` and `upstream-errors-unmasked`.
pub(super) fn route_rules(config: &Config, out: &mut Findings) {
    for (i, r) in config.routes.iter().enumerate() {
        if r.auth.as_ref().is_some_and(|a| a.basic) {
            out.flag(
                "basic-auth-enabled",
                format!("/routes/{i}/auth/basic"),
                format!(
                    "route `{}` accepts long-lived passwords; prefer tokens or API keys",
                    r.name
                ),
            );
        }
        if !r.mask_upstream_errors {
            out.flag(
                "upstream-errors-unmasked",
                format!("/routes/{i}/mask_upstream_errors"),
                format!("route `{}`", r.name),
            );
        }
    }
}

/// `cors-wildcard-origin` and `cors-plaintext-origin`.
pub(super) fn cors_origins(config: &Config, out: &mut Findings) {
    for (i, r) in config.routes.iter().enumerate() {
        let origins = r
            .cors
            .iter()
            .flat_map(|c| c.allow_origins.iter().enumerate());
        for (j, origin) in origins {
            let at = format!("/routes/{i}/cors/allow_origins/{j}");
            if origin == "*" {
                out.flag(
                    "cors-wildcard-origin",
                    at,
                    format!("route `{}` is readable from any web page", r.name),
                );
            } else if let Some(rest) = origin.strip_prefix("http://")
                && !is_loopback_host(rest)
            {
                out.flag(
                    "cors-plaintext-origin",
                    at,
                    format!("{origin} can be impersonated on the network"),
                );
            }
        }
    }
}

/// The weak spots of every contract a route or upstream names (`policy::validate::lint`), each
/// reported once, at the first place that names the contract.
pub(super) fn contracts(config: &Config, out: &mut Findings) {
    let upstreams = config.upstreams.iter().enumerate().filter_map(|(i, u)| {
        Some((
            u.openapi.as_ref()?,
            format!("/upstreams/{i}/openapi/spec_file"),
        ))
    });
    let routes = config.routes.iter().enumerate().filter_map(|(i, r)| {
        Some((
            r.openapi.as_ref()?,
            format!("/routes/{i}/openapi/spec_file"),
        ))
    });
    let mut seen = std::collections::HashSet::new();
    for (openapi, pointer) in upstreams.chain(routes) {
        if !seen.insert(openapi.spec_file.clone()) {
            continue;
        }
        // A contract that cannot be read fails the build, with its own message.
        let Ok(lints) = crate::policy::validate::spec::lint_file(&openapi.spec_file) else {
            continue;
        };
        let file = openapi.spec_file.display();
        for located in lints {
            let line = located.line.map(|l| format!(":{l}")).unwrap_or_default();
            let lint = located.lint;
            out.flag(
                lint.rule,
                pointer.clone(),
                format!("{file}{line}: {}: {}", lint.pointer, lint.message),
            );
        }
    }
}
