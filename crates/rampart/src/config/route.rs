//! Routes: which requests go to which upstream, under which policies.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::policy::authn::RouteAuthConfig;
use crate::policy::cors::CorsConfig;
use crate::policy::headers::SecurityHeadersConfig;

/// One route. A request matches when its host (if `hosts` is set), path and method match.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    /// Host names this route serves (exact, or `*.example.com` for subdomains); empty means any.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// An exact path (`/status`) or a template (`/orders/{id}`). One of `path` or `path_prefix`.
    #[serde(default)]
    pub path: Option<String>,
    /// A prefix on segment boundaries: `/api` matches `/api` and `/api/x`, not `/apix`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Allowed methods; the default is `GET` and `HEAD`.
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// The upstream that serves this route.
    pub upstream: String,
    /// The OpenAPI contract of this route (replaces its upstream's `openapi`).
    #[serde(default)]
    pub openapi: Option<crate::policy::validate::config::OpenApiConfig>,
    /// JSON body fields cleaned against the HTML allow-list (`[validation.html]`), by pointer
    /// (`*` for every array element): `sanitize = [{ pointer = "/comment" }]`, or with
    /// `on_unsafe = "reject"` to refuse markup instead of removing it.
    #[serde(default)]
    pub sanitize: Vec<crate::policy::sanitize::config::SanitizeFieldConfig>,
    /// Who may call this route. Every route has `auth` or says `public = true`: nothing is open by
    /// omission.
    #[serde(default)]
    pub auth: Option<RouteAuthConfig>,
    /// What an authenticated caller must have (scopes, roles, permissions, claims).
    #[serde(default)]
    pub authorize: Option<crate::policy::authz::AuthorizeConfig>,
    /// Serve this route without authentication (`check` lists public routes).
    #[serde(default)]
    pub public: bool,
    /// Forward the client's `Authorization` header to the upstream (it is removed by default once
    /// the gateway has verified it).
    #[serde(default)]
    pub forward_credentials: bool,

    /// Replace upstream 5xx bodies with a problem document (the original is logged).
    #[serde(default = "super::listener::default_true")]
    pub mask_upstream_errors: bool,
    /// Scan upstream responses for stack traces, SQL error text and private keys, and answer a
    /// masked 502 instead (on by default; turn off for an API whose job is to return such text,
    /// a key-management or log API).
    #[serde(default = "super::listener::default_true")]
    pub leak_scan: bool,
    /// Overrides `limits.max_body_bytes` for this route.
    #[serde(default)]
    #[schemars(range(max = crate::config::bounds::MAX_BODY_BYTES))]
    pub max_body_bytes: Option<u64>,
    /// Overrides of the security headers for this route.
    #[serde(default)]
    pub security_headers: SecurityHeadersConfig,
    /// Cross-origin access; without it no CORS headers are sent.
    #[serde(default)]
    pub cors: Option<CorsConfig>,
    /// Rate limits, each counted per its key (several may apply).
    #[serde(default)]
    pub rate_limits: Vec<crate::policy::rate_limit::LimitConfig>,
    /// Requests per key per day or month (UTC), persisted in Redis or the store.
    #[serde(default)]
    pub quotas: Vec<crate::policy::rate_limit::quota::QuotaConfig>,
    /// At most this many requests of the route at the upstream at once (503 beyond).
    #[serde(default)]
    #[schemars(range(max = crate::config::bounds::MAX_COUNT))]
    pub max_in_flight: Option<u32>,
}

fn default_methods() -> Vec<String> {
    vec!["GET".to_owned(), "HEAD".to_owned()]
}

/// Client-address and forwarding behaviour.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Peers whose `X-Forwarded-*` headers are believed (CIDRs). Others' copies are replaced.
    #[serde(default)]
    #[schemars(with = "Vec<super::formats::IpNetwork>")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Methods answered with 405 on every route, whatever the route allows.
    #[serde(default = "default_refused_methods")]
    pub refuse_methods: Vec<String>,
    /// Which header of a trusted proxy names the client: the one your proxies write (a proxy that
    /// writes one and passes the other through from the client would let clients choose).
    #[serde(default)]
    pub client_ip_header: ClientIpHeader,
}

/// `x-forwarded-for` (default) or RFC 7239 `forwarded`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            refuse_methods: default_refused_methods(),
            client_ip_header: ClientIpHeader::default(),
        }
    }
}

fn default_refused_methods() -> Vec<String> {
    vec!["TRACE".to_owned(), "CONNECT".to_owned()]
}
