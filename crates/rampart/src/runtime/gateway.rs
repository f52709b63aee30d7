//! The gateway: runtime objects built from a validated config, published through an `ArcSwap` so
//! that a reload swaps everything at once and in-flight requests finish on the snapshot they
//! started with.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use http::Method;

use crate::audit::AuditSink;
use crate::config::{Config, ConfigErrors, ConfigSource, Issue};
pub use crate::pipeline::build::Route;
use crate::pipeline::build::{self, RouteEnv, Verifiers};
use crate::policy::headers::SecurityHeaders;
use crate::policy::rate_limit::RateLimitShared;
use crate::policy::upstream_request::IdentityHeaders;
use crate::proxy::router::Router;
use crate::proxy::upstream::Upstream;

pub use crate::runtime::services::{Provided, Services};

/// Everything the request path needs, built from one config.
pub struct Runtime {
    pub config: Arc<Config>,
    /// Host, path and method to the built routes themselves.
    pub router: Router<Route>,
    pub upstreams: HashMap<String, Arc<Upstream>>,
    pub refused_methods: Vec<Method>,
    /// Security headers for responses that have no route (404, framing errors).
    pub default_headers: SecurityHeaders,
    /// The detectors' thresholds and the alert webhooks (secrets read), applied by `Gateway`.
    pub detect: crate::policy::detect::DetectSettings,
    pub alerts: Arc<crate::policy::detect::alert::AlertSettings>,
}

impl Runtime {
    /// Builds the runtime objects, or every problem found; must run inside a tokio runtime
    /// (health probes are tasks). Nothing shared with a running runtime is changed (see
    /// `crate::keep`), so a failed build leaves the running gateway exactly as it was.
    pub fn build(config: Config, services: &Services) -> Result<Self, Vec<Issue>> {
        // Routes and upstreams keep metric handles: the recorder must exist before they are
        // made, or they stay no-ops (an embedder calling `load` or `check` first).
        crate::telemetry::metrics_handle();
        let mut issues = Vec::new();
        let upstreams = build_upstreams(&config, &mut issues);
        let verifiers = Verifiers::build(&config, services, &mut issues);
        let env = RouteEnv {
            config: &config,
            upstreams: &upstreams,
            verifiers: &verifiers,
            services,
            rate_limits: Arc::new(RateLimitShared::new(
                config.rate_limit.clone(),
                services.rate_limits.clone(),
            )),
            trusted_proxies: Arc::from(config.proxy.trusted_proxies.as_slice()),
            identity: Arc::new(IdentityHeaders::new(&config.upstream_identity)),
        };
        let routes = build::build_routes(&env).unwrap_or_else(|mut more| {
            issues.append(&mut more);
            Vec::new()
        });
        let router = build_router(&config, routes, &mut issues);
        let alerts =
            crate::policy::detect::alert::AlertSettings::build(&config.alerts, &mut issues);
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
            detect: crate::policy::detect::DetectSettings::new(
                &config.detect,
                &config.proxy.trusted_proxies,
            ),
            alerts: Arc::new(alerts),
            config: Arc::new(config),
            router,
            upstreams,
        })
    }
}

fn build_upstreams(config: &Config, issues: &mut Vec<Issue>) -> HashMap<String, Arc<Upstream>> {
    let mut upstreams = HashMap::new();
    for (i, upstream) in config.upstreams.iter().enumerate() {
        match Upstream::build(upstream, &format!("/upstreams/{i}")) {
            Ok(built) => {
                upstreams.insert(upstream.name.clone(), built);
            }
            Err(mut more) => issues.append(&mut more),
        }
    }
    upstreams
}

/// The router over the built routes. When some route failed to build, the table is still
/// checked (over placeholders) so that conflicts are reported in the same pass.
fn build_router(
    config: &Config,
    routes: Vec<Arc<Route>>,
    issues: &mut Vec<Issue>,
) -> Router<Route> {
    if routes.len() != config.routes.len() {
        if let Err(mut more) = Router::build(config.routes.iter().map(|r| (r, Arc::new(())))) {
            issues.append(&mut more);
        }
        return Router::default();
    }
    Router::build(config.routes.iter().zip(routes)).unwrap_or_else(|mut more| {
        issues.append(&mut more);
        Router::default()
    })
}

/// The process-wide settings that live in the services (brute-force thresholds, detectors,
/// alert webhooks) follow the runtime's config.
fn configure_services(services: &Services, runtime: &Runtime) {
    services.brute_force.configure(&runtime.config.brute_force);
    services
        .watch
        .configure(&runtime.config, &runtime.detect, &runtime.alerts);
    services
        .trace_export
        .store(Arc::new(crate::trace::export::ExportSettings::new(
            &runtime.config.tracing,
        )));
}

/// Parses, validates and builds a config, with every error located in the source.
pub fn load(source: &ConfigSource, services: &Services) -> Result<Runtime, ConfigErrors> {
    let config = crate::config::parse(source)?;
    Runtime::build(config, services).map_err(|issues| source.locate(issues))
}

/// What `rampart check` runs: the same parse and build as start and reload, against services
/// that are not connected, plus the TLS material that start loads when it binds. Whatever start
/// or a reload would refuse in the config, this refuses.
pub fn check(source: &ConfigSource) -> Result<Runtime, ConfigErrors> {
    let config = crate::config::parse(source)?;
    let (services, mut issues) = Services::unconnected(&config);
    issues.extend(tls_issues(&config));
    issues.extend(audit_issue(&config));
    match Runtime::build(config, &services) {
        Ok(runtime) if issues.is_empty() => Ok(runtime),
        Ok(_) => Err(source.locate(issues)),
        Err(more) => {
            issues.extend(more);
            Err(source.locate(issues))
        }
    }
}

/// Certificates, keys and client CAs of every TLS listener, loaded as `server::bind` loads them.
fn tls_issues(config: &Config) -> Vec<Issue> {
    config
        .listeners
        .iter()
        .enumerate()
        .filter_map(|(i, listener)| {
            let settings = listener.tls.as_ref()?;
            // A listener without exactly one certificate source is reported by validation.
            let one_source = matches!(
                (
                    &settings.cert_file,
                    &settings.key_file,
                    settings.acme_domains.is_empty()
                ),
                (Some(_), Some(_), true) | (None, None, false)
            );
            if !one_source {
                return None;
            }
            let challenges = std::sync::Arc::default();
            let why = crate::tls::server_config(&listener.name, settings, &challenges).err()?;
            Some(Issue::new(format!("/listeners/{i}/tls"), why))
        })
        .collect()
}

/// The audit file's directory must exist (start opens the file there; `check` creates nothing).
fn audit_issue(config: &Config) -> Option<Issue> {
    let dir = config.audit.file.as_ref()?.parent()?;
    (!dir.as_os_str().is_empty() && !dir.is_dir()).then(|| {
        Issue::new(
            "/audit/file",
            format!("the directory {} does not exist", dir.display()),
        )
    })
}

/// The running gateway shared by all connections.
pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    audit: AuditSink,
    draining: AtomicBool,
    /// Held by a reload from reading the file until the swap.
    reloading: std::sync::Mutex<()>,
    /// Runtimes swapped in since start.
    reloads: std::sync::atomic::AtomicU64,
    pub services: Services,
}

impl Gateway {
    pub fn new(runtime: Runtime, audit: AuditSink, services: Services) -> Arc<Self> {
        configure_services(&services, &runtime);
        Arc::new(Self {
            runtime: ArcSwap::from_pointee(runtime),
            audit,
            draining: AtomicBool::new(false),
            reloading: std::sync::Mutex::new(()),
            reloads: std::sync::atomic::AtomicU64::new(0),
            services,
        })
    }

    /// The current snapshot (a cheap atomic load).
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Publishes a new runtime; requests already running keep the old one. Process-wide
    /// settings that live in the services (brute-force thresholds) follow the new config.
    pub fn swap(&self, runtime: Runtime) {
        configure_services(&self.services, &runtime);
        self.runtime.store(Arc::new(runtime));
        self.reloads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("rampart_config_reloads_total", "result" => "ok").increment(1);
    }

    /// How many reloads have been swapped in since start (this gateway's own count; the metric
    /// is process-wide).
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Serializes reloads (see `runtime::reload`).
    pub(crate) fn reload_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
