//! Pass 4: semantic checks that the schema cannot express. Every problem is collected.

use std::collections::HashSet;

use super::{Config, Issue, ListenerConfig, RouteConfig, UpstreamConfig};
use crate::config::listener::MAX_HEADERS_CEILING;
use crate::policy::{authn, cors, headers};

pub fn validate(config: &Config) -> Vec<Issue> {
    let mut issues = Vec::new();
    if config.listeners.is_empty() {
        issues.push(Issue::new(
            "/listeners",
            "at least one listener is required",
        ));
    }
    unique_names(
        config.listeners.iter().map(|l| l.name.as_str()),
        "/listeners",
        &mut issues,
    );
    unique_names(
        config.upstreams.iter().map(|u| u.name.as_str()),
        "/upstreams",
        &mut issues,
    );
    unique_names(
        config.routes.iter().map(|r| r.name.as_str()),
        "/routes",
        &mut issues,
    );
    for (i, listener) in config.listeners.iter().enumerate() {
        listener_issues(listener, &format!("/listeners/{i}"), &mut issues);
    }
    limits_issues(config, &mut issues);
    validate_methods(
        &config.proxy.refuse_methods,
        "/proxy/refuse_methods",
        &mut issues,
    );
    headers::validate(&config.security_headers, "/security_headers", &mut issues);
    authn::validate(&config.auth, &mut issues);
    if let Some(redis) = &config.redis
        && redis.url.is_some() != redis.cluster_nodes.is_empty()
    {
        issues.push(Issue::new(
            "/redis",
            "set exactly one of `url` and `cluster_nodes`",
        ));
    }
    config.upstream_identity.validate(&mut issues);
    let bf = &config.brute_force;
    if bf.max_failures == 0 || bf.window_s == 0 || bf.block_s == 0 {
        issues.push(Issue::new(
            "/brute_force",
            "max_failures, window_s and block_s must be greater than 0",
        ));
    }
    if let Some(keys) = &config.api_keys {
        if http::HeaderName::from_bytes(keys.header.as_bytes()).is_err()
            || keys.header.eq_ignore_ascii_case("authorization")
        {
            issues.push(Issue::new(
                "/api_keys/header",
                "must be a header name other than Authorization",
            ));
        }
        if keys.hmac_secret.file.is_some() == keys.hmac_secret.env.is_some() {
            issues.push(Issue::new(
                "/api_keys/hmac_secret",
                "set exactly one of `file` or `env`",
            ));
        }
    }
    if !(config.store.url.starts_with("sqlite:")
        || config.store.url.starts_with("postgres://")
        || config.store.url.starts_with("postgresql://"))
    {
        issues.push(Issue::new(
            "/store/url",
            "must start with sqlite: or postgres://",
        ));
    }
    if let Some(hash) = &config.admin.token_sha256
        && (hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        issues.push(Issue::new(
            "/admin/token_sha256",
            "must be 64 hex characters (the SHA-256 of the token)",
        ));
    }
    for (i, upstream) in config.upstreams.iter().enumerate() {
        upstream_issues(upstream, &format!("/upstreams/{i}"), &mut issues);
    }
    for (i, route) in config.routes.iter().enumerate() {
        route_issues(config, route, &format!("/routes/{i}"), &mut issues);
    }
    issues
}

fn unique_names<'a>(names: impl Iterator<Item = &'a str>, ptr: &str, issues: &mut Vec<Issue>) {
    let mut seen = HashSet::new();
    for (i, name) in names.enumerate() {
        if name.is_empty() {
            issues.push(Issue::new(
                format!("{ptr}/{i}/name"),
                "name must not be empty",
            ));
        } else if !seen.insert(name) {
            issues.push(Issue::new(
                format!("{ptr}/{i}/name"),
                format!("duplicate name `{name}`"),
            ));
        }
    }
}

fn listener_issues(listener: &ListenerConfig, ptr: &str, issues: &mut Vec<Issue>) {
    match (&listener.tls, listener.plaintext, listener.redirect_https_port) {
        (Some(_), true, _) => issues.push(Issue::new(
            format!("{ptr}/plaintext"),
            "a listener with `tls` cannot also be `plaintext`",
        )),
        (Some(_), _, Some(_)) => issues.push(Issue::new(
            format!("{ptr}/redirect_https_port"),
            "a redirect listener is plain HTTP; remove `tls`",
        )),
        (None, false, None) => issues.push(Issue::new(
            ptr,
            "a listener needs `tls`, or `plaintext = true` said explicitly, or `redirect_https_port`",
        )),
        _ => {}
    }
}

/// `http::Uri` refuses longer targets; a higher limit would promise what cannot be parsed.
const MAX_URI_BYTES_CEILING: u64 = 65_000;

fn limits_issues(config: &Config, issues: &mut Vec<Issue>) {
    let l = &config.limits;
    let mut range = |name: &str, value: u64, min: u64, max: u64| {
        if value < min || value > max {
            issues.push(Issue::new(
                format!("/limits/{name}"),
                format!("must be between {min} and {max}, got {value}"),
            ));
        }
    };
    range(
        "max_header_bytes",
        l.max_header_bytes as u64,
        1024,
        1024 * 1024,
    );
    range(
        "max_headers",
        l.max_headers as u64,
        1,
        MAX_HEADERS_CEILING as u64,
    );
    range(
        "max_uri_bytes",
        l.max_uri_bytes as u64,
        64,
        MAX_URI_BYTES_CEILING,
    );
    range("max_body_bytes", l.max_body_bytes, 1, u64::MAX);
    range(
        "header_read_timeout_ms",
        l.header_read_timeout_ms,
        100,
        300_000,
    );
    range("idle_timeout_ms", l.idle_timeout_ms, 100, 3_600_000);
    range(
        "buffer_body_bytes",
        l.buffer_body_bytes,
        0,
        16 * 1024 * 1024,
    );
    range(
        "min_body_rate_bytes_per_s",
        l.min_body_rate_bytes_per_s,
        1,
        1_000_000_000,
    );
    range("body_rate_grace_ms", l.body_rate_grace_ms, 100, 600_000);
    range(
        "max_concurrent_streams",
        u64::from(l.max_concurrent_streams),
        1,
        10_000,
    );
}

fn upstream_issues(upstream: &UpstreamConfig, ptr: &str, issues: &mut Vec<Issue>) {
    if upstream.targets.is_empty() {
        issues.push(Issue::new(
            format!("{ptr}/targets"),
            "at least one target is required",
        ));
    }
    for (i, target) in upstream.targets.iter().enumerate() {
        if let Err(why) = crate::proxy::upstream::parse_target(target) {
            issues.push(Issue::new(format!("{ptr}/targets/{i}"), why));
        }
    }
    for (name, value) in [
        ("connect_timeout_ms", upstream.connect_timeout_ms),
        ("request_timeout_ms", upstream.request_timeout_ms),
        ("idle_timeout_ms", upstream.idle_timeout_ms),
    ] {
        if value == 0 {
            issues.push(Issue::new(
                format!("{ptr}/{name}"),
                "must be greater than 0",
            ));
        }
    }
    if upstream.health.passive.eject_after_failures == 0 {
        issues.push(Issue::new(
            format!("{ptr}/health/passive/eject_after_failures"),
            "must be at least 1",
        ));
    }
    if let Some(active) = &upstream.health.active {
        if !active.path.starts_with('/') {
            issues.push(Issue::new(
                format!("{ptr}/health/active/path"),
                "must start with `/`",
            ));
        }
        if active.interval_ms < 100 || active.timeout_ms == 0 {
            issues.push(Issue::new(
                format!("{ptr}/health/active"),
                "interval_ms must be at least 100 and timeout_ms greater than 0",
            ));
        }
    }
}

fn route_issues(config: &Config, route: &RouteConfig, ptr: &str, issues: &mut Vec<Issue>) {
    match (&route.path, &route.path_prefix) {
        (Some(_), Some(_)) => issues.push(Issue::new(
            format!("{ptr}/path_prefix"),
            "set either `path` or `path_prefix`, not both",
        )),
        (None, None) => issues.push(Issue::new(ptr, "a route needs `path` or `path_prefix`")),
        (Some(p), None) | (None, Some(p)) if !p.starts_with('/') => issues.push(Issue::new(
            format!(
                "{ptr}/{}",
                if route.path.is_some() {
                    "path"
                } else {
                    "path_prefix"
                }
            ),
            "must start with `/`",
        )),
        _ => {}
    }
    for (i, host) in route.hosts.iter().enumerate() {
        if !is_valid_host_pattern(host) {
            issues.push(Issue::new(
                format!("{ptr}/hosts/{i}"),
                "must be a lower-case host name, optionally starting with `*.`",
            ));
        }
    }
    if route.methods.is_empty() {
        issues.push(Issue::new(
            format!("{ptr}/methods"),
            "at least one method is required",
        ));
    }
    validate_methods(&route.methods, &format!("{ptr}/methods"), issues);
    if !config.upstreams.iter().any(|u| u.name == route.upstream) {
        issues.push(Issue::new(
            format!("{ptr}/upstream"),
            format!("no upstream named `{}`", route.upstream),
        ));
    }
    match (&route.auth, route.public) {
        (None, false) => issues.push(Issue::new(
            ptr,
            "declare who may call this route: `auth = { ... }`, or `public = true`",
        )),
        (Some(_), true) => issues.push(Issue::new(
            format!("{ptr}/public"),
            "a route is either `public` or has `auth`, not both",
        )),
        (Some(auth), false) => {
            if auth.mtls
                && !config
                    .listeners
                    .iter()
                    .any(|l| l.tls.as_ref().is_some_and(|t| t.client_auth.is_some()))
            {
                issues.push(Issue::new(
                    format!("{ptr}/auth/mtls"),
                    "no listener asks for client certificates: set `tls.client_auth`",
                ));
            }
            if auth.basic && config.auth.basic.users.is_empty() {
                issues.push(Issue::new(
                    format!("{ptr}/auth/basic"),
                    "no `[[auth.basic.users]]` are configured",
                ));
            }
            let methods = [
                !auth.jwt.is_empty(),
                !auth.introspection.is_empty(),
                auth.api_key,
                auth.mtls,
                auth.basic,
            ];
            if !methods.contains(&true) {
                issues.push(Issue::new(
                    format!("{ptr}/auth"),
                    "name at least one authentication method",
                ));
            }
            for (i, name) in auth.introspection.iter().enumerate() {
                if !config.auth.introspection.iter().any(|s| &s.name == name) {
                    issues.push(Issue::new(
                        format!("{ptr}/auth/introspection/{i}"),
                        format!("no introspection server named `{name}`"),
                    ));
                }
            }
            if auth.api_key && config.api_keys.is_none() {
                issues.push(Issue::new(
                    format!("{ptr}/auth/api_key"),
                    "API keys need an `[api_keys]` table",
                ));
            }
            for (i, name) in auth.jwt.iter().enumerate() {
                if !config.auth.jwt.iter().any(|j| &j.name == name) {
                    issues.push(Issue::new(
                        format!("{ptr}/auth/jwt/{i}"),
                        format!("no JWT issuer named `{name}`"),
                    ));
                }
            }
        }
        (None, true) => {}
    }
    crate::policy::rate_limit::config::validate(
        &route.rate_limits,
        route.auth.is_some(),
        ptr,
        issues,
    );
    crate::policy::rate_limit::config::validate_quotas(
        &route.quotas,
        route.auth.is_some(),
        ptr,
        issues,
    );
    if route.max_in_flight == Some(0) {
        issues.push(Issue::new(format!("{ptr}/max_in_flight"), "at least 1"));
    }
    if route.authorize.is_some() && route.auth.is_none() {
        issues.push(Issue::new(
            format!("{ptr}/authorize"),
            "authorization needs authentication: add `auth`",
        ));
    }
    for (i, permission) in route
        .authorize
        .iter()
        .flat_map(|a| a.permissions.iter().enumerate())
    {
        if !config
            .rbac
            .roles
            .values()
            .flatten()
            .any(|p| p == permission)
        {
            issues.push(Issue::new(
                format!("{ptr}/authorize/permissions/{i}"),
                format!("no role in `[rbac.roles]` grants `{permission}`"),
            ));
        }
    }
    if route.max_body_bytes == Some(0) {
        issues.push(Issue::new(
            format!("{ptr}/max_body_bytes"),
            "must be greater than 0",
        ));
    }
    headers::validate(
        &route.security_headers,
        &format!("{ptr}/security_headers"),
        issues,
    );
    if let Some(c) = &route.cors {
        cors::validate(c, &format!("{ptr}/cors"), issues);
    }
}

pub(crate) fn validate_methods(methods: &[String], ptr: &str, issues: &mut Vec<Issue>) {
    for (i, method) in methods.iter().enumerate() {
        let valid = !method.is_empty()
            && method.bytes().all(|b| b.is_ascii_uppercase())
            && http::Method::from_bytes(method.as_bytes()).is_ok();
        if !valid {
            issues.push(Issue::new(
                format!("{ptr}/{i}"),
                format!("`{method}` is not an upper-case HTTP method"),
            ));
        }
    }
}

fn is_valid_host_pattern(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}
