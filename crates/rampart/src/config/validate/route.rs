//! Checks of one route: its path, hosts, methods and upstream, who may call it, its limits, its
//! authorization, and its headers and CORS.

use super::{is_valid_host_pattern, validate_methods};
use crate::config::{Config, Issue, RouteConfig};
use crate::policy::{cors, headers, sanitize};

pub(super) fn route_issues(
    config: &Config,
    route: &RouteConfig,
    ptr: &str,
    issues: &mut Vec<Issue>,
) {
    for check in [path, target, auth, limits, authorize, body_headers_cors] {
        check(config, route, ptr, issues);
    }
}

fn path(_config: &Config, route: &RouteConfig, ptr: &str, issues: &mut Vec<Issue>) {
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
        (Some(p), None) | (None, Some(p)) => {
            let (field, template) = match route.path.is_some() {
                true => ("path", true),
                false => ("path_prefix", false),
            };
            for problem in crate::config::route_path::problems(p, template) {
                issues.push(Issue::new(format!("{ptr}/{field}"), problem));
            }
        }
    }
}

/// Hosts, methods and upstream.
fn target(config: &Config, route: &RouteConfig, ptr: &str, issues: &mut Vec<Issue>) {
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
}

fn auth(config: &Config, route: &RouteConfig, ptr: &str, issues: &mut Vec<Issue>) {
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
}

fn limits(_config: &Config, route: &RouteConfig, ptr: &str, issues: &mut Vec<Issue>) {
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
}

fn authorize(config: &Config, route: &RouteConfig, ptr: &str, issues: &mut Vec<Issue>) {
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
}

fn body_headers_cors(_config: &Config, route: &RouteConfig, ptr: &str, issues: &mut Vec<Issue>) {
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
    for (i, field) in route.sanitize.iter().enumerate() {
        sanitize::config::validate_field(field, &format!("{ptr}/sanitize/{i}"), issues);
    }
}
