//! CORS: cross-origin access for allow-listed origins only.
//!
//! Threat: a malicious page reading responses with the user's cookies or tokens. Invariants:
//! - an origin gets CORS headers only if it is on the route's allow-list: exact origins, or
//!   `scheme://*.domain` which matches subdomains on a label boundary (`https://*.example.com`
//!   matches `https://a.example.com`, never `https://example.com.evil.net`);
//! - `null` is never allowed, the request's origin is never reflected unless it matched, and `*`
//!   with credentials is refused when the config loads;
//! - origins are compared in canonical form (RFC 6454: scheme and host lower-cased, default port
//!   removed) and the canonical origin is echoed, never the client's spelling (`origin`);
//! - preflights are answered here (204 or a 403 problem) and never reach the upstream;
//! - the upstream's own `Access-Control-*` headers are dropped (see `policy::mask`): the gateway is
//!   the only authority.
//!
//! Written here rather than with tower-http's `CorsLayer` because that layer panics on invalid
//! configuration, has no anchored wildcard-subdomain rule, and is a service wrapper rather than a
//! stage of our pipeline.

pub mod config;
mod origin;
#[cfg(test)]
mod tests;

use futures_util::future::BoxFuture;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode};

pub use config::CorsConfig;

use crate::body;
use crate::config::Issue;
use crate::context::RequestCtx;
use crate::error::GatewayError;
use crate::pipeline::{Flow, Policy, Stage};
use origin::Origin;

/// Upper bound for `max_age_s`: browsers cap it anyway (Chromium at 2 hours).
pub const MAX_CORS_MAX_AGE_S: u32 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginRule {
    Any,
    /// An origin in canonical form (see `origin`).
    Exact(String),
    /// `scheme://*.suffix[:port]`: stored as the scheme with `://` and `.suffix[:port]`, canonical.
    Subdomains {
        scheme: String,
        suffix: String,
    },
}

impl OriginRule {
    fn parse(text: &str) -> Result<Self, &'static str> {
        if text == "*" {
            return Ok(Self::Any);
        }
        if text.eq_ignore_ascii_case("null") {
            return Err("`null` origins are never allowed (sandboxed frames and files send it)");
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("an origin is `scheme://host[:port]`")?;
        if scheme != "https" && scheme != "http" {
            return Err("the scheme must be `https` or `http`");
        }
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err("an origin has no path, query, fragment or user info");
        }
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("write origins in lower case, as browsers send them");
        }
        // Stored canonical (default port removed) so that comparison is one string equality.
        let canonical = origin::canonicalize(text, true)
            .ok_or("an origin is `scheme://host[:port]` with a plain host and a decimal port")?;
        let (scheme, rest) = canonical
            .split_once("://")
            .ok_or("an origin is `scheme://host[:port]`")?;
        match rest.strip_prefix("*.") {
            Some(domain) if domain.contains('*') => Err("only one leading `*.` is allowed"),
            Some(domain) if domain.split(':').next().is_none_or(|h| !h.contains('.')) => {
                Err("a wildcard needs a registrable domain (`*.example.com`, not `*.com`)")
            }
            Some(domain) => Ok(Self::Subdomains {
                scheme: format!("{scheme}://"),
                suffix: format!(".{domain}"),
            }),
            None if rest.contains('*') => Err("`*` is only allowed as a leading `*.` label"),
            None => Ok(Self::Exact(canonical.into_owned())),
        }
    }

    /// Whether the rule allows this origin; both sides are canonical, so comparison is exact.
    fn matches(&self, origin: &Origin) -> bool {
        let origin = origin.as_str();
        match self {
            Self::Any => true,
            Self::Exact(exact) => exact == origin,
            Self::Subdomains { scheme, suffix } => {
                let Some(label) = origin
                    .strip_prefix(scheme.as_str())
                    .and_then(|rest| rest.strip_suffix(suffix.as_str()))
                else {
                    return false;
                };
                // At least one label, made of host characters only: no port, path or `@` tricks.
                !label.is_empty()
                    && !label.starts_with('.')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            }
        }
    }
}

/// The runtime CORS policy of one route.
#[derive(Debug)]
pub struct Cors {
    origins: Vec<OriginRule>,
    methods: Vec<Method>,
    allow_methods: HeaderValue,
    allow_headers: Vec<HeaderName>,
    allow_headers_value: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

/// Checks a CORS table, collecting every problem.
pub fn validate(config: &CorsConfig, ptr: &str, issues: &mut Vec<Issue>) {
    if config.allow_origins.is_empty() {
        issues.push(Issue::new(
            format!("{ptr}/allow_origins"),
            "list at least one origin",
        ));
    }
    for (i, origin) in config.allow_origins.iter().enumerate() {
        match OriginRule::parse(origin) {
            Ok(OriginRule::Any) if config.allow_credentials => issues.push(Issue::new(
                format!("{ptr}/allow_origins/{i}"),
                "`*` cannot be combined with `allow_credentials = true`",
            )),
            Ok(_) => {}
            Err(why) => issues.push(Issue::new(format!("{ptr}/allow_origins/{i}"), why)),
        }
    }
    if let Some(methods) = &config.allow_methods {
        crate::config::validate_methods(methods, &format!("{ptr}/allow_methods"), issues);
    }
    for (field, names) in [
        ("allow_headers", &config.allow_headers),
        ("expose_headers", &config.expose_headers),
    ] {
        for (i, name) in names.iter().enumerate() {
            if name == "*" || HeaderName::from_bytes(name.as_bytes()).is_err() {
                issues.push(Issue::new(
                    format!("{ptr}/{field}/{i}"),
                    "must be a header name (wildcards are not allowed)",
                ));
            }
        }
    }
    if config.max_age_s > MAX_CORS_MAX_AGE_S {
        issues.push(Issue::new(
            format!("{ptr}/max_age_s"),
            format!("must be at most {MAX_CORS_MAX_AGE_S}"),
        ));
    }
}

impl Cors {
    /// Builds the policy from a validated config; `route_methods` are the default allowed methods.
    pub fn new(config: &CorsConfig, route_methods: &[Method]) -> Self {
        let origins = config
            .allow_origins
            .iter()
            .filter_map(|o| OriginRule::parse(o).ok())
            .collect();
        let methods: Vec<Method> = match &config.allow_methods {
            Some(list) => list
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect(),
            None => route_methods.to_vec(),
        };
        let joined = |items: Vec<&str>| HeaderValue::from_str(&items.join(", ")).ok();
        let allow_headers: Vec<HeaderName> = config
            .allow_headers
            .iter()
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        Self {
            allow_methods: joined(methods.iter().map(Method::as_str).collect())
                .unwrap_or(HeaderValue::from_static("GET")),
            allow_headers_value: joined(allow_headers.iter().map(HeaderName::as_str).collect())
                .filter(|v| !v.is_empty()),
            expose_headers: joined(config.expose_headers.iter().map(String::as_str).collect())
                .filter(|v| !v.is_empty()),
            origins,
            methods,
            allow_headers,
            credentials: config.allow_credentials,
            max_age: HeaderValue::from(config.max_age_s),
        }
    }

    /// The `Access-Control-Allow-Origin` value for this request origin, if it is allowed: the
    /// canonical origin, never the client's spelling of it (`null` and non-origins match nothing).
    fn allowed_origin(&self, sent: &HeaderValue) -> Option<HeaderValue> {
        let origin = Origin::parse(sent.to_str().ok()?)?;
        let rule = self.origins.iter().find(|rule| rule.matches(&origin))?;
        match rule {
            OriginRule::Any => Some(HeaderValue::from_static("*")),
            // The canonical form is what was sent: the value is shared, not copied.
            _ if origin.is_as_sent() => Some(sent.clone()),
            _ => HeaderValue::from_str(origin.as_str()).ok(),
        }
    }

    fn preflight(
        &self,
        req: &http::request::Parts,
        origin: &HeaderValue,
    ) -> Result<Flow, GatewayError> {
        let allow_origin = self
            .allowed_origin(origin)
            .ok_or(GatewayError::CorsRejected("origin not allowed"))?;
        let method = req
            .headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .ok_or(GatewayError::CorsRejected(
                "invalid Access-Control-Request-Method",
            ))?;
        if !self.methods.contains(&method) {
            return Err(GatewayError::CorsRejected("method not allowed"));
        }
        for value in req.headers.get_all(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            let list = value.to_str().map_err(|_| {
                GatewayError::CorsRejected("invalid Access-Control-Request-Headers")
            })?;
            let all_allowed = list
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .all(|h| {
                    self.allow_headers
                        .iter()
                        .any(|a| a.as_str().eq_ignore_ascii_case(h))
                });
            if !all_allowed {
                return Err(GatewayError::CorsRejected("request header not allowed"));
            }
        }
        let mut rsp = http::Response::new(body::empty());
        *rsp.status_mut() = StatusCode::NO_CONTENT;
        let headers = rsp.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods.clone(),
        );
        if let Some(allow) = &self.allow_headers_value {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow.clone());
        }
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        headers.insert(
            header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        Ok(Flow::Respond(rsp))
    }
}

/// A CORS preflight: `OPTIONS` with both `Origin` and `Access-Control-Request-Method`.
pub fn is_preflight(req: &http::request::Parts) -> bool {
    req.method == Method::OPTIONS
        && req.headers.contains_key(header::ORIGIN)
        && req
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

impl Policy for Cors {
    fn name(&self) -> &'static str {
        "cors"
    }

    fn stage(&self) -> Stage {
        Stage::Cors
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut http::request::Parts,
        cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<Flow, GatewayError>> {
        let origin = req.headers.get(header::ORIGIN).cloned();
        let result = match &origin {
            Some(origin) if is_preflight(req) => self.preflight(req, origin),
            _ => Ok(Flow::Continue),
        };
        cx.origin = origin;
        Box::pin(std::future::ready(result))
    }

    fn on_response(&self, rsp: &mut http::response::Parts, cx: &RequestCtx) {
        let Some(origin) = &cx.origin else { return };
        let varies = rsp.headers.get_all(header::VARY).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|f| f.trim().eq_ignore_ascii_case("origin"))
            })
        });
        if !varies {
            rsp.headers
                .append(header::VARY, HeaderValue::from_static("Origin"));
        }
        let Some(allow_origin) = self.allowed_origin(origin) else {
            return;
        };
        rsp.headers
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if self.credentials {
            rsp.headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose_headers {
            rsp.headers
                .insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}
