//! The gateway: runtime objects built from a validated config, published through an `ArcSwap` so
//! that a reload swaps everything at once and in-flight requests finish on the snapshot they
//! started with.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use http::Method;

use crate::audit::AuditSink;
use crate::config::{Config, ConfigErrors, ConfigSource, Issue, RouteConfig};
use crate::pipeline::{Pipeline, Policy};
use crate::policy::authn::brute_force::BruteForceGuard;
use crate::policy::authn::{self, ApiKeys, Authenticate, JwtIssuer, KeyAuth};
use crate::policy::authz::Authorize;
use crate::policy::cors::Cors;
use crate::policy::identity::IdentityHeaders;
use crate::policy::rate_limit::concurrency::ConcurrencyLimit;
use crate::policy::rate_limit::{RateLimit, RateLimitShared};

use crate::store::Store;

use crate::policy::headers::SecurityHeaders;
use crate::proxy::router::Router;
use crate::proxy::upstream::Upstream;

/// A route ready to serve.
pub struct Route {
    pub name: Arc<str>,
    pub upstream: Arc<Upstream>,
    pub pipeline: Pipeline,
    pub headers: SecurityHeaders,
    pub mask_upstream_errors: bool,
    pub max_body_bytes: u64,
    pub cors: bool,
    /// Credential headers removed before forwarding (the gateway has consumed them).
    pub strip_credentials: Vec<http::HeaderName>,
}

/// Process-level services that outlive config reloads: the store, the key service, Redis and the
/// DPoP replay cache.
#[derive(Clone, Default)]
pub struct Services {
    pub api_keys: Option<Arc<ApiKeys>>,
    /// Failed-authentication counters per client address (kept across reloads).
    pub brute_force: Option<Arc<BruteForceGuard>>,
    /// The config file, for reloads requested through the admin API.
    pub config_path: Option<std::path::PathBuf>,
    /// The shared Redis connection (reconnects by itself), when `[redis]` is configured.
    pub redis: Option<crate::store::redis::SharedRedis>,
    /// DPoP proof ids already used: in Redis when configured, else in memory.
    pub dpop_replay: Option<Arc<authn::ReplayCache>>,
    /// Revoked access tokens (with the store).
    pub revocations: Option<Arc<authn::revocation::Revocations>>,
    /// Rate-limit settings, the Redis limiter and the throttling queue.
    pub rate_limits: Option<Arc<RateLimitShared>>,
}

impl Services {
    /// Connects Redis, opens the store and starts the key service when the config needs them.
    pub async fn start(config: &Config) -> Result<Self, String> {
        let redis = match &config.redis {
            Some(settings) => Some(crate::store::redis::connect(settings).await?),
            None => None,
        };
        let window = authn::DpopVerifier::replay_window(&config.auth.dpop);
        let dpop_replay = match &redis {
            Some(connection) => authn::ReplayCache::Redis(connection.clone()),
            None => authn::ReplayCache::local(config.auth.dpop.replay_cache_entries, window),
        };
        let store = if config.needs_store() {
            Some(
                Store::connect(&config.store.url)
                    .await
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        let (api_keys, revocations) = match &store {
            Some(store) => {
                let keys = match &config.api_keys {
                    Some(keys) => Some(start_api_keys(store.clone(), keys)?),
                    None => None,
                };
                let revocations = authn::revocation::Revocations::start(store.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                (keys, Some(revocations))
            }
            None => (None, None),
        };
        let rate_limits = Some(Arc::new(RateLimitShared::new(
            config.rate_limit.clone(),
            redis.clone(),
            store.clone(),
        )));
        Ok(Self {
            api_keys,
            brute_force: BruteForceGuard::new(&config.brute_force),
            config_path: None,
            redis,
            dpop_replay: Some(Arc::new(dpop_replay)),
            revocations,
            rate_limits,
        })
    }
}

fn start_api_keys(
    store: Store,
    keys: &authn::config::ApiKeysConfig,
) -> Result<Arc<ApiKeys>, String> {
    let secret = keys
        .hmac_secret
        .load()
        .map_err(|e| format!("api_keys.hmac_secret: {e}"))?;
    if secret.expose().len() < authn::config::MIN_HMAC_SECRET_BYTES {
        return Err("api_keys.hmac_secret: at least 32 bytes are required".to_owned());
    }
    let grace = std::time::Duration::from_secs(keys.rotation_grace_s);
    let service = ApiKeys::new(store, secret, grace);
    service.spawn_usage_writer();
    Ok(service)
}

/// Everything the request path needs, built from one config.
pub struct Runtime {
    pub config: Arc<Config>,
    pub router: Router,
    pub routes: Vec<Route>,
    pub upstreams: HashMap<String, Arc<Upstream>>,
    pub refused_methods: Vec<Method>,
    /// Security headers for responses that have no route (404, framing errors).
    pub default_headers: SecurityHeaders,
    /// Verified-identity headers for upstreams.
    pub identity: IdentityHeaders,
}

impl Runtime {
    /// Builds the runtime objects; must run inside a tokio runtime (health probes are tasks).
    pub fn build(config: Config, services: &Services) -> Result<Self, Vec<Issue>> {
        let mut issues = Vec::new();
        let mut upstreams = HashMap::new();
        for (i, upstream) in config.upstreams.iter().enumerate() {
            match Upstream::build(upstream, &format!("/upstreams/{i}")) {
                Ok(built) => {
                    upstreams.insert(upstream.name.clone(), built);
                }
                Err(mut more) => issues.append(&mut more),
            }
        }
        let router = Router::build(&config.routes).unwrap_or_else(|mut more| {
            issues.append(&mut more);
            Router::default()
        });
        let verifiers = Verifiers {
            jwt: authn::build_issuers(&config.auth).unwrap_or_else(|mut more| {
                issues.append(&mut more);
                HashMap::new()
            }),
            introspection: authn::build_introspectors(&config.auth).unwrap_or_else(|mut more| {
                issues.append(&mut more);
                HashMap::new()
            }),
            dpop: build_dpop(&config, services).unwrap_or_else(|why| {
                issues.push(Issue::new("/auth/dpop", why));
                None
            }),
            basic: build_basic(&config).unwrap_or_else(|why| {
                issues.push(Issue::new("/auth/basic", why));
                None
            }),
        };
        let routes = config
            .routes
            .iter()
            .filter_map(|route| build_route(&config, route, &upstreams, &verifiers, services))
            .collect();
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Self {
            refused_methods: config
                .proxy
                .refuse_methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect(),
            default_headers: SecurityHeaders::new(&config.security_headers, None),
            identity: IdentityHeaders::new(&config.upstream_identity),
            config: Arc::new(config),
            router,
            routes,
            upstreams,
        })
    }
}

/// Token verifiers by name, built once per config and shared by the routes naming them.
struct Verifiers {
    jwt: HashMap<String, Arc<JwtIssuer>>,
    introspection: HashMap<String, Arc<authn::Introspector>>,
    dpop: Option<Arc<authn::DpopVerifier>>,
    basic: Option<Arc<authn::basic::BasicAuth>>,
}

fn build_basic(config: &Config) -> Result<Option<Arc<authn::basic::BasicAuth>>, String> {
    if config.auth.basic.users.is_empty() {
        return Ok(None);
    }
    authn::basic::BasicAuth::build(&config.auth.basic).map(|b| Some(Arc::new(b)))
}

/// The DPoP verifier, sharing the process's replay cache (a local one for embedders without
/// `Services::start`).
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

fn build_route(
    config: &Config,
    route: &RouteConfig,
    upstreams: &HashMap<String, Arc<Upstream>>,
    verifiers: &Verifiers,
    services: &Services,
) -> Option<Route> {
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
        let accepted = auth
            .jwt
            .iter()
            .filter_map(|name| verifiers.jwt.get(name).cloned())
            .collect();
        let key_auth = match (&services.api_keys, &config.api_keys) {
            (Some(keys), Some(settings)) if auth.api_key => Some(KeyAuth {
                keys: keys.clone(),
                header: http::HeaderName::from_bytes(settings.header.as_bytes()).ok()?,
            }),
            _ => None,
        };
        let introspectors = auth
            .introspection
            .iter()
            .filter_map(|name| verifiers.introspection.get(name).cloned())
            .collect();
        let mut authenticate = Authenticate::new(accepted, key_auth, services.brute_force.clone())
            .with_introspection(introspectors)
            .with_mtls(auth.mtls);
        if let Some(dpop) = &verifiers.dpop {
            authenticate = authenticate.with_dpop(dpop.clone(), auth.require_dpop);
        }
        if let Some(users) = verifiers.basic.as_ref().filter(|_| auth.basic) {
            authenticate = authenticate.with_basic(users.clone());
        }
        if let Some(revocations) = &services.revocations {
            authenticate = authenticate.with_revocations(revocations.clone());
        }

        policies.push(Arc::new(authenticate));
    }
    if let Some(max) = route.max_in_flight {
        policies.push(Arc::new(ConcurrencyLimit::new(max)));
    }
    if !route.rate_limits.is_empty() || !route.quotas.is_empty() {
        let shared = services.rate_limits.clone().unwrap_or_else(|| {
            Arc::new(RateLimitShared::new(config.rate_limit.clone(), None, None))
        });
        let stages = RateLimit::build(&route.name, &route.rate_limits, &route.quotas, &shared)
            .map_err(|e| tracing::error!(route = %route.name, error = %e, "rate limits not built"))
            .ok()?;
        for stage in stages {
            policies.push(Arc::new(stage));
        }
    }
    if let Some(authorize) = &route.authorize {
        let rbac = Arc::new(config.rbac.roles.clone());
        policies.push(Arc::new(Authorize::new(authorize, rbac)));
    }
    Some(Route {
        name: Arc::from(route.name.as_str()),
        upstream: upstreams.get(&route.upstream)?.clone(),
        pipeline: Pipeline::new(policies),
        headers: SecurityHeaders::new(&config.security_headers, Some(&route.security_headers)),
        mask_upstream_errors: route.mask_upstream_errors,
        max_body_bytes: route.max_body_bytes.unwrap_or(config.limits.max_body_bytes),
        cors: route.cors.is_some(),
        strip_credentials: credential_headers(config, route),
    })
}

/// Parses, validates and builds a config, with every error located in the source.
pub fn load(source: &ConfigSource, services: &Services) -> Result<Runtime, ConfigErrors> {
    let config = crate::config::parse(source)?;
    Runtime::build(config, services).map_err(|issues| source.locate(issues))
}

/// The running gateway shared by all connections.
pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    audit: AuditSink,
    draining: AtomicBool,
    pub services: Services,
}

impl Gateway {
    pub fn new(runtime: Runtime, audit: AuditSink, services: Services) -> Arc<Self> {
        Arc::new(Self {
            runtime: ArcSwap::from_pointee(runtime),
            audit,
            draining: AtomicBool::new(false),
            services,
        })
    }

    /// The current snapshot (a cheap atomic load).
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Publishes a new runtime; requests already running keep the old one.
    pub fn swap(&self, runtime: Runtime) {
        self.runtime.store(Arc::new(runtime));
        metrics::counter!("rampart_config_reloads_total", "result" => "ok").increment(1);
    }

    pub fn audit(&self) -> &AuditSink {
        &self.audit
    }

    /// Ready to take traffic: not draining.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed)
    }

    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
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
