//! Process-level services that outlive reloads: the store, the key service, Redis, the DPoP
//! replay cache, brute-force counters and rate-limit state.
//!
//! They are opened once, at start, from the sections that cannot change on reload (`[store]`,
//! `[redis]`, `[api_keys]`; `reload` refuses changes to them). `Provided` records what they offer
//! routes, so that one build serves `run`, a reload and `rampart check` alike: a route that needs
//! something the process does not provide fails the build, whichever of the three runs it.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::{Config, Issue};
use crate::policy::authn::brute_force::BruteForceGuard;
use crate::policy::authn::{self, ApiKeys};
use crate::policy::rate_limit::RateLimitState;
use crate::policy::rate_limit::quota::QuotaBackend;
use crate::store::Store;

/// What the services offer routes; decided at start, never widened by a reload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Provided {
    /// `[api_keys]` was configured at start (the key service runs).
    pub api_keys: bool,
    /// Quota counts have somewhere to live: Redis, or the store.
    pub quota_storage: bool,
}

impl Provided {
    /// What `Services::start` opens for this config.
    pub fn by(config: &Config) -> Self {
        Self {
            api_keys: config.api_keys.is_some(),
            quota_storage: config.redis.is_some() || config.needs_store(),
        }
    }
}

/// The services shared by every runtime of the process.
#[derive(Clone, Default)]
pub struct Services {
    pub provided: Provided,
    pub api_keys: Option<Arc<ApiKeys>>,
    /// Failed-authentication counters and blocks per client address (kept across reloads; the
    /// settings follow the running config).
    pub brute_force: Arc<BruteForceGuard>,
    /// Detectors' settings, blocks and alert settings (kept across reloads).
    pub watch: Arc<crate::policy::detect::Watch>,
    /// Where sampled requests' spans go (the running config's `[tracing]`).
    pub trace_export: Arc<arc_swap::ArcSwap<crate::trace::export::ExportSettings>>,
    /// The threads shipping the trail (`[syslog]`, `[otlp_logs]`), stopped when the last copy
    /// of the services goes.
    pub shippers: Vec<Arc<crate::audit::tail::ShipperHandle>>,
    /// The config file, for reloads requested through the admin API.
    pub config_path: Option<std::path::PathBuf>,
    /// The shared Redis connection (reconnects by itself), when `[redis]` is configured.
    pub redis: Option<crate::store::redis::SharedRedis>,
    /// DPoP proof ids already used: in Redis when configured, else in memory.
    pub dpop_replay: Option<Arc<authn::ReplayCache>>,
    /// Revoked access tokens (with the store).
    pub revocations: Option<Arc<authn::revocation::Revocations>>,
    /// Rate-limit buckets, concurrency slots, quota counts and the Redis limiter.
    pub rate_limits: Arc<RateLimitState>,
    /// SHA-256 of the API-key secret read at start (a reload may not change it).
    pub api_key_secret_digest: Option<[u8; 32]>,
    /// The store, when the config needs it (ACME keeps its account and certificates there).
    pub store: Option<Store>,
    /// ACME challenges this instance answers (TLS-ALPN-01 handshakes, HTTP-01 requests on the
    /// redirect listener).
    pub acme_challenges: Arc<crate::acme::challenge::Challenges>,
    /// The ACME certificates' renewal, when a listener uses ACME (set once listeners are bound).
    pub acme: Option<Arc<crate::acme::Acme>>,
}

impl Services {
    /// Connects Redis, opens the store and starts the key service when the config needs them.
    pub async fn start(config: &Config) -> Result<Self, String> {
        let secret = api_key_secret(config).map_err(|i| format!("{}: {}", i.pointer, i.message))?;
        let api_key_secret_digest = secret
            .as_ref()
            .map(|s| <[u8; 32]>::from(Sha256::digest(s.expose())));
        let redis = match &config.redis {
            Some(settings) => Some(crate::store::redis::connect(settings).await?),
            None => None,
        };
        let store = if config.needs_store() {
            Some(
                Store::connect_with(
                    &config.store.url,
                    std::time::Duration::from_millis(config.store.timeout_ms),
                )
                .await
                .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        let (api_keys, revocations) = match &store {
            Some(store) => {
                let keys = match (&config.api_keys, secret) {
                    (Some(keys), Some(secret)) => Some(start_api_keys(store.clone(), keys, secret)),
                    _ => None,
                };
                let revocations = authn::revocation::Revocations::start(store.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                (keys, Some(revocations))
            }
            None => (None, None),
        };
        let max_keys = config.rate_limit.max_tracked_keys;
        Ok(Self {
            api_key_secret_digest,
            provided: Provided::by(config),
            api_keys,
            brute_force: Arc::new(BruteForceGuard::new(&config.brute_force)),
            watch: Arc::new(crate::policy::detect::Watch::new(
                &config.detect,
                &config.alerts,
                redis.clone(),
            )),
            trace_export: Arc::new(arc_swap::ArcSwap::from_pointee(
                crate::trace::export::ExportSettings::new(&config.tracing),
            )),
            shippers: Vec::new(),
            config_path: None,
            dpop_replay: Some(Arc::new(dpop_replay(config, redis.as_ref()))),
            rate_limits: Arc::new(RateLimitState::new(redis.clone(), store.clone(), max_keys)),
            redis,
            revocations,
            store,
            acme_challenges: Arc::default(),
            acme: None,
        })
    }

    /// What `start` would provide, without connecting to anything or starting a task: the
    /// services `rampart check` builds routes against, with the problems `start` would find
    /// before connecting (secrets).
    pub fn unconnected(config: &Config) -> (Self, Vec<Issue>) {
        let issues = api_key_secret(config).err().into_iter().collect();
        let provided = Provided::by(config);
        let quotas = provided
            .quota_storage
            .then(|| Arc::new(QuotaBackend::Unconnected));
        let state = RateLimitState::unconnected(quotas);
        let services = Self {
            provided,
            rate_limits: Arc::new(state),
            ..Self::default()
        };
        (services, issues)
    }
}

/// The DPoP replay cache: in Redis when configured (shared by instances), else in memory.
fn dpop_replay(
    config: &Config,
    redis: Option<&crate::store::redis::SharedRedis>,
) -> authn::ReplayCache {
    match redis {
        Some(connection) => authn::ReplayCache::Redis(connection.clone()),
        None => {
            let window = authn::DpopVerifier::replay_window(&config.auth.dpop);
            authn::ReplayCache::local(config.auth.dpop.replay_cache_entries, window)
        }
    }
}

/// Loads and checks the API-key HMAC secret (`None` without `[api_keys]`).
fn api_key_secret(config: &Config) -> Result<Option<crate::config::secret::Secret>, Issue> {
    let Some(keys) = &config.api_keys else {
        return Ok(None);
    };
    let secret = keys
        .hmac_secret
        .load()
        .map_err(|e| Issue::new("/api_keys/hmac_secret", e.to_string()))?;
    if secret.expose().len() < authn::config::MIN_HMAC_SECRET_BYTES {
        return Err(Issue::new(
            "/api_keys/hmac_secret",
            format!(
                "at least {} bytes are required",
                authn::config::MIN_HMAC_SECRET_BYTES
            ),
        ));
    }
    Ok(Some(secret))
}

fn start_api_keys(
    store: Store,
    keys: &authn::config::ApiKeysConfig,
    secret: crate::config::secret::Secret,
) -> Arc<ApiKeys> {
    let grace = std::time::Duration::from_secs(keys.rotation_grace_s);
    let outage_grace = std::time::Duration::from_secs(keys.outage_grace_s);
    let service = ApiKeys::with_outage_grace(store, secret, grace, outage_grace);
    service.spawn_usage_writer();
    service
}
