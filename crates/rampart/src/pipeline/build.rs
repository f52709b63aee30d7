//! From a validated config to routes ready to serve. One build serves `rampart check`, start and
//! every reload, and it either yields every route with its own policies or fails whole: a route
//! that cannot be built is an error that stops the build (the running config keeps serving),
//! never a route silently left out. The router holds the built routes themselves, so no index
//! can point a request at another route's policies.

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;

use super::validation::{Validation, contract_of};
use super::{Pipeline, Policy};
use crate::config::{Config, Issue, RouteConfig};
use crate::policy::authn::{self, Authenticate, JwtIssuer, KeyAuth};
use crate::policy::authz::Authorize;
use crate::policy::cors::Cors;
use crate::policy::headers::SecurityHeaders;
use crate::policy::rate_limit::concurrency::ConcurrencyLimit;
use crate::policy::rate_limit::{RateLimit, RateLimitShared};
use crate::policy::upstream_request::{IdentityHeaders, UpstreamRequest};
use crate::proxy::upstream::Upstream;
use crate::runtime::services::Services;

/// A route ready to serve.
pub struct Route {
    pub name: Arc<str>,
    pub upstream: Arc<Upstream>,
    pub pipeline: Pipeline,
    pub headers: SecurityHeaders,
    pub mask_upstream_errors: bool,
    /// Scan responses for stack traces, SQL errors and private keys (`mask::guard`).
    pub leak_scan: bool,
    /// Ask the upstream for uncompressed responses (`Accept-Encoding: identity`): the leak scan
    /// and the response contract read the bytes, and would pass a compressed body unread.
    pub identity_responses: bool,
    pub max_body_bytes: u64,
    /// A response a policy reads is read whole up to this size (beyond, a masked 502).
    pub max_response_bytes: u64,
    pub cors: bool,
    /// The route's request counters and latency histogram, made once per build.
    pub metrics: Arc<crate::telemetry::RouteMetrics>,
}

/// Token verifiers by name, built once per config and shared by the routes naming them.
pub struct Verifiers {
    jwt: HashMap<String, Arc<JwtIssuer>>,
    introspection: HashMap<String, Arc<authn::Introspector>>,
    dpop: Option<Arc<authn::DpopVerifier>>,
    basic: Option<Arc<authn::basic::BasicAuth>>,
}

impl Verifiers {
    /// Builds every verifier, collecting all problems.
    pub fn build(config: &Config, services: &Services, issues: &mut Vec<Issue>) -> Self {
        Self {
            jwt: authn::build_issuers(&config.auth).unwrap_or_else(|mut more| {
                issues.append(&mut more);
                HashMap::new()
            }),
            introspection: authn::build_introspectors(&config.auth).unwrap_or_else(|mut more| {
                issues.append(&mut more);
                HashMap::new()
            }),
            dpop: build_dpop(config, services).unwrap_or_else(|why| {
                issues.push(Issue::new("/auth/dpop", why));
                None
            }),
            basic: build_basic(config).unwrap_or_else(|why| {
                issues.push(Issue::new("/auth/basic", why));
                None
            }),
        }
    }
}

fn build_basic(config: &Config) -> Result<Option<Arc<authn::basic::BasicAuth>>, String> {
    if config.auth.basic.users.is_empty() {
        return Ok(None);
    }
    authn::basic::BasicAuth::build(&config.auth.basic).map(|b| Some(Arc::new(b)))
}

/// The DPoP verifier, sharing the process's replay cache (a local one for embedders and `check`).
fn build_dpop(
    config: &Config,
    services: &Services,
) -> Result<Option<Arc<authn::DpopVerifier>>, String> {
    let dpop = &config.auth.dpop;
    let replay = services.dpop_replay.clone().unwrap_or_else(|| {
        let window = authn::DpopVerifier::replay_window(dpop);
        Arc::new(authn::ReplayCache::local(dpop.replay_cache_entries, window))
    });
    authn::DpopVerifier::build(dpop, replay).map(|v| Some(Arc::new(v)))
}

/// What every route of one build shares.
pub struct RouteEnv<'a> {
    pub config: &'a Config,
    pub upstreams: &'a HashMap<String, Arc<Upstream>>,
    pub verifiers: &'a Verifiers,
    pub services: &'a Services,
    pub rate_limits: Arc<RateLimitShared>,
    /// `proxy.trusted_proxies` and the identity headers, shared by every route's upstream
    /// request policy.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    pub identity: Arc<IdentityHeaders>,
}

/// Builds every route, in config order; any problem in any route fails the whole list.
pub fn build_routes(env: &RouteEnv<'_>) -> Result<Vec<Arc<Route>>, Vec<Issue>> {
    let mut routes = Vec::new();
    let mut issues = Vec::new();
    let validation = Validation::build(env.config, &mut issues);
    for (index, route) in env.config.routes.iter().enumerate() {
        match build_route(env, &validation, route, &format!("/routes/{index}")) {
            Ok(built) => routes.push(Arc::new(built)),
            Err(mut more) => issues.append(&mut more),
        }
    }
    if issues.is_empty() {
        Ok(routes)
    } else {
        Err(issues)
    }
}

fn build_route(
    env: &RouteEnv<'_>,
    validation: &Validation,
    route: &RouteConfig,
    at: &str,
) -> Result<Route, Vec<Issue>> {
    let mut issues = Vec::new();
    let methods: Vec<Method> = route
        .methods
        .iter()
        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
        .collect();
    let mut policies: Vec<Arc<dyn Policy>> = Vec::new();
    if let Some(cors) = &route.cors {
        policies.push(Arc::new(Cors::new(cors, &methods)));
    }
    if let Some(auth) = &route.auth {
        match authenticate(env, auth, at) {
            Ok(policy) => policies.push(Arc::new(policy)),
            Err(issue) => issues.push(issue),
        }
    }
    if let Some(max) = route.max_in_flight {
        let slots = env.services.rate_limits.slots(&route.name, max);
        policies.push(Arc::new(ConcurrencyLimit::new(slots)));
    }
    match rate_limits(env, route, at) {
        Ok(stages) => policies.extend(stages),
        Err(issue) => issues.push(issue),
    }
    if let Some(authorize) = &route.authorize {
        let rbac = Arc::new(env.config.rbac.roles.clone());
        policies.push(Arc::new(Authorize::new(authorize, rbac)));
    }
    policies.extend(validation.policies(env.config, route, at, &mut issues));
    let upstream = env.upstreams.get(&route.upstream).cloned();
    if let Some(upstream) = &upstream {
        policies.push(Arc::new(UpstreamRequest::new(
            env.trusted_proxies.clone(),
            upstream.preserve_host,
            credential_headers(env.config, route),
            env.identity.clone(),
        )));
    }
    if upstream.is_none() {
        issues.push(Issue::new(
            format!("{at}/upstream"),
            format!("upstream `{}` is not available", route.upstream),
        ));
    }
    let pipeline = Pipeline::new(policies);
    match (upstream, issues.is_empty()) {
        (Some(upstream), true) => Ok(Route {
            metrics: Arc::new(crate::telemetry::RouteMetrics::new(&Arc::from(
                route.name.as_str(),
            ))),
            name: Arc::from(route.name.as_str()),
            upstream,
            pipeline,
            headers: SecurityHeaders::new(
                &env.config.security_headers,
                Some(&route.security_headers),
            ),
            mask_upstream_errors: route.mask_upstream_errors,
            leak_scan: route.leak_scan,
            identity_responses: route.leak_scan
                || contract_of(env.config, route).is_some_and(|openapi| {
                    openapi.responses != crate::policy::validate::config::ResponseMode::Off
                }),
            max_body_bytes: route
                .max_body_bytes
                .unwrap_or(env.config.limits.max_body_bytes),
            max_response_bytes: contract_of(env.config, route)
                .map_or(crate::config::listener::DEFAULT_MAX_BODY_BYTES, |openapi| {
                    openapi.max_response_bytes
                }),
            cors: route.cors.is_some(),
        }),
        _ => Err(issues),
    }
}

/// The authentication policy of a route, from the verifiers it names.
fn authenticate(
    env: &RouteEnv<'_>,
    auth: &authn::RouteAuthConfig,
    at: &str,
) -> Result<Authenticate, Issue> {
    let verifiers = env.verifiers;
    let accepted = named(&verifiers.jwt, &auth.jwt, &format!("{at}/auth/jwt"))?;
    let introspectors = named(
        &verifiers.introspection,
        &auth.introspection,
        &format!("{at}/auth/introspection"),
    )?;
    let key_auth = if auth.api_key {
        key_auth(env, at)?
    } else {
        None
    };
    let guard = env
        .config
        .brute_force
        .enabled
        .then(|| env.services.brute_force.clone());
    let mut authenticate = Authenticate::new(accepted, key_auth, guard)
        .with_introspection(introspectors)
        .with_mtls(auth.mtls)
        .with_blocks(env.services.watch.blocks.clone());
    if let Some(dpop) = &verifiers.dpop {
        authenticate = authenticate.with_dpop(dpop.clone(), auth.require_dpop);
    }
    if let Some(users) = verifiers.basic.as_ref().filter(|_| auth.basic) {
        authenticate = authenticate.with_basic(users.clone());
    }
    if let Some(revocations) = &env.services.revocations {
        authenticate = authenticate.with_revocations(revocations.clone());
    }
    Ok(authenticate)
}

/// The verifiers a route names, every one of them (a name that did not build is an error, never
/// a verifier quietly left out).
fn named<T>(
    built: &HashMap<String, Arc<T>>,
    names: &[String],
    at: &str,
) -> Result<Vec<Arc<T>>, Issue> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            built.get(name).cloned().ok_or_else(|| {
                Issue::new(format!("{at}/{i}"), format!("`{name}` is not available"))
            })
        })
        .collect()
}

/// API-key authentication for a route; an error when the process runs no key service (it is
/// started with `[api_keys]`, which a reload cannot add). `None` only for `check`, which
/// builds against services that were not started.
fn key_auth(env: &RouteEnv<'_>, at: &str) -> Result<Option<KeyAuth>, Issue> {
    let refuse = |why: &str| Issue::new(format!("{at}/auth/api_key"), why);
    let settings = match (&env.config.api_keys, env.services.provided.api_keys) {
        (Some(settings), true) => settings,
        (None, _) => return Err(refuse("API keys need an `[api_keys]` section")),
        (Some(_), false) => {
            return Err(refuse(
                "`[api_keys]` is read at start: restart the gateway to add API keys",
            ));
        }
    };
    let header = http::HeaderName::from_bytes(settings.header.as_bytes())
        .map_err(|_| Issue::new("/api_keys/header", "not a valid header name"))?;
    Ok(env.services.api_keys.as_ref().map(|keys| KeyAuth {
        keys: keys.clone(),
        header,
    }))
}

/// The rate-limit stages of a route (before and after authentication).
fn rate_limits(
    env: &RouteEnv<'_>,
    route: &RouteConfig,
    at: &str,
) -> Result<Vec<Arc<dyn Policy>>, Issue> {
    if route.rate_limits.is_empty() && route.quotas.is_empty() {
        return Ok(Vec::new());
    }
    if !route.quotas.is_empty() && !env.services.provided.quota_storage {
        return Err(Issue::new(
            format!("{at}/quotas"),
            "quotas need `[redis]` or the store, which are opened at start: restart the gateway \
             to add the first quota",
        ));
    }
    let stages = RateLimit::build(
        &route.name,
        &route.rate_limits,
        &route.quotas,
        &env.rate_limits,
    )
    .map_err(|why| Issue::new(format!("{at}/rate_limits"), why))?;
    Ok(stages
        .into_iter()
        .map(|stage| Arc::new(stage) as Arc<dyn Policy>)
        .collect())
}

/// The credential headers removed before forwarding: the gateway has consumed them.
fn credential_headers(config: &Config, route: &RouteConfig) -> Vec<http::HeaderName> {
    let Some(auth) = &route.auth else {
        return Vec::new();
    };
    if route.forward_credentials {
        return Vec::new();
    }
    let mut headers = vec![
        http::header::AUTHORIZATION,
        http::HeaderName::from_static("dpop"),
    ];
    if auth.api_key
        && let Some(name) = config
            .api_keys
            .as_ref()
            .and_then(|k| http::HeaderName::from_bytes(k.header.as_bytes()).ok())
    {
        headers.push(name);
    }
    headers
}
