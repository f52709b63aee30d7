//! Pass 4: semantic checks that the schema cannot express. Every problem is collected.

use std::collections::HashSet;

mod route;

use super::{Config, Issue, ListenerConfig, UpstreamConfig};
use crate::config::listener::MAX_HEADERS_CEILING;
use crate::policy::{authn, headers};

/// Every section check, in file order; each adds the problems it finds.
const CHECKS: [fn(&Config, &mut Vec<Issue>); 15] = [
    names,
    listeners,
    limits_issues,
    proxy,
    security_headers,
    auth,
    redis,
    brute_force,
    api_keys,
    store_and_admin,
    upstreams,
    routes,
    validation,
    detect,
    tracing,
];

pub fn validate(config: &Config) -> Vec<Issue> {
    let mut issues = Vec::new();
    for check in CHECKS {
        check(config, &mut issues);
    }
    issues
}

fn validation(config: &Config, issues: &mut Vec<Issue>) {
    crate::policy::sanitize::config::validate(&config.validation.html, "/validation/html", issues);
}

fn tracing(config: &Config, issues: &mut Vec<Issue>) {
    config.tracing.validate(issues);
    if let Some(syslog) = &config.syslog {
        syslog.validate(&config.audit, issues);
    }
    if let Some(logs) = &config.otlp_logs {
        logs.validate(&config.audit, issues);
    }
}

fn detect(config: &Config, issues: &mut Vec<Issue>) {
    config.detect.validate(issues);
}

fn names(config: &Config, issues: &mut Vec<Issue>) {
    let listeners = config.listeners.iter().map(|l| l.name.as_str());
    unique_names(listeners, "/listeners", issues);
    let upstreams = config.upstreams.iter().map(|u| u.name.as_str());
    unique_names(upstreams, "/upstreams", issues);
    let routes = config.routes.iter().map(|r| r.name.as_str());
    unique_names(routes, "/routes", issues);
}

fn listeners(config: &Config, issues: &mut Vec<Issue>) {
    if config.listeners.is_empty() {
        issues.push(Issue::new(
            "/listeners",
            "at least one listener is required",
        ));
    }
    for (i, listener) in config.listeners.iter().enumerate() {
        let ptr = format!("/listeners/{i}");
        listener_issues(listener, &ptr, issues);
        if let Some(tls) = &listener.tls {
            certificate_source_issues(config, tls, &format!("{ptr}/tls"), issues);
        }
    }
    if let Some(acme) = &config.acme {
        acme.issues(issues);
        acme_listener_issues(config, acme, issues);
    }
}

/// What makes an ACME challenge unanswerable: a name in two different certificates (their
/// TLS-ALPN-01 answers would replace each other), a client certificate required from the CA, or
/// HTTP-01 with no listener on which to answer it.
fn acme_listener_issues(
    config: &Config,
    acme: &crate::acme::config::AcmeConfig,
    issues: &mut Vec<Issue>,
) {
    use crate::acme::config::ChallengeKind;
    let mut certificates: std::collections::HashMap<&str, Vec<&str>> =
        std::collections::HashMap::new();
    for (i, listener) in config.listeners.iter().enumerate() {
        let Some(tls) = &listener.tls else { continue };
        if tls.acme_domains.is_empty() {
            continue;
        }
        let mut names: Vec<&str> = tls.acme_domains.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        for name in &names {
            match certificates.get(name) {
                Some(other) if *other != names => issues.push(Issue::new(
                    format!("/listeners/{i}/tls/acme_domains"),
                    format!("`{name}` is in another listener's acme_domains too; give both listeners the same names (one certificate) or none in common"),
                )),
                _ => {
                    certificates.insert(name, names.clone());
                }
            }
        }
        let client_cert_required = tls.client_auth.as_ref().is_some_and(|c| c.required);
        if acme.challenge == ChallengeKind::TlsAlpn01 && client_cert_required {
            issues.push(Issue::new(
                format!("/listeners/{i}/tls/client_auth/required"),
                "the CA's TLS-ALPN-01 check presents no client certificate: use `required = false` (routes decide) or `challenge = \"http-01\"`",
            ));
        }
    }
    let redirect = config
        .listeners
        .iter()
        .any(|l| l.redirect_https_port.is_some());
    if acme.challenge == ChallengeKind::Http01 && !redirect && config.uses_acme() {
        issues.push(Issue::new(
            "/acme/challenge",
            "HTTP-01 is answered on a `redirect_https_port` listener (port 80), and there is none",
        ));
    }
}

/// A TLS listener's certificate comes from files or from ACME, never both or neither.
fn certificate_source_issues(
    config: &Config,
    tls: &crate::config::TlsConfig,
    ptr: &str,
    issues: &mut Vec<Issue>,
) {
    let files = (tls.cert_file.is_some(), tls.key_file.is_some());
    let acme = !tls.acme_domains.is_empty();
    match (files, acme) {
        ((true, true), false) => {}
        ((false, false), true) => {
            if config.acme.is_none() {
                issues.push(Issue::new(
                    format!("{ptr}/acme_domains"),
                    "certificates by ACME need an [acme] section (the CA and the account)",
                ));
            }
            for (i, domain) in tls.acme_domains.iter().enumerate() {
                if let Some(why) = crate::acme::config::domain_issue(domain) {
                    issues.push(Issue::new(format!("{ptr}/acme_domains/{i}"), why));
                }
            }
        }
        (_, true) => issues.push(Issue::new(
            format!("{ptr}/acme_domains"),
            "give either `acme_domains` or `cert_file` and `key_file`, not both",
        )),
        ((true, false), false) => issues.push(Issue::new(
            format!("{ptr}/key_file"),
            "`cert_file` needs its `key_file`",
        )),
        ((false, true), false) => issues.push(Issue::new(
            format!("{ptr}/cert_file"),
            "`key_file` needs its `cert_file`",
        )),
        ((false, false), false) => issues.push(Issue::new(
            ptr,
            "give `cert_file` and `key_file`, or `acme_domains` (with an [acme] section)",
        )),
    }
}

fn proxy(config: &Config, issues: &mut Vec<Issue>) {
    validate_methods(
        &config.proxy.refuse_methods,
        "/proxy/refuse_methods",
        issues,
    );
}

fn security_headers(config: &Config, issues: &mut Vec<Issue>) {
    headers::validate(&config.security_headers, "/security_headers", issues);
}

fn auth(config: &Config, issues: &mut Vec<Issue>) {
    authn::validate(&config.auth, issues);
    config.upstream_identity.validate(issues);
}

fn redis(config: &Config, issues: &mut Vec<Issue>) {
    if let Some(redis) = &config.redis
        && redis.url.is_some() != redis.cluster_nodes.is_empty()
    {
        issues.push(Issue::new(
            "/redis",
            "set exactly one of `url` and `cluster_nodes`",
        ));
    }
}

fn brute_force(config: &Config, issues: &mut Vec<Issue>) {
    let bf = &config.brute_force;
    if bf.max_failures == 0 || bf.window_s == 0 || bf.block_s == 0 {
        issues.push(Issue::new(
            "/brute_force",
            "max_failures, window_s and block_s must be greater than 0",
        ));
    }
}

fn api_keys(config: &Config, issues: &mut Vec<Issue>) {
    let Some(keys) = &config.api_keys else {
        return;
    };
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

fn store_and_admin(config: &Config, issues: &mut Vec<Issue>) {
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
}

fn upstreams(config: &Config, issues: &mut Vec<Issue>) {
    for (i, upstream) in config.upstreams.iter().enumerate() {
        upstream_issues(upstream, &format!("/upstreams/{i}"), issues);
    }
}

fn routes(config: &Config, issues: &mut Vec<Issue>) {
    for (i, route) in config.routes.iter().enumerate() {
        route::route_issues(config, route, &format!("/routes/{i}"), issues);
    }
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
        crate::config::bounds::MAX_URI_BYTES,
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

pub(super) fn is_valid_host_pattern(host: &str) -> bool {
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
