//! Configuration: one TOML file, then typed config, then validated runtime objects.
//!
//! Loading runs in four passes so that a user sees every mistake at once, each with its path and
//! line: TOML syntax (all errors, with recovery), the JSON Schema generated from these types (unknown
//! keys, wrong types, missing fields: all of them), serde into the types, then semantic validation
//! (`validate`). `lint` is separate: it flags weak but valid settings for `rampart check`.

pub mod bounds;
mod diagnostics;
pub mod formats;
pub mod issue;
pub mod lint;
pub mod listener;
pub mod route;
mod route_path;
pub mod secret;

pub mod upstream;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::Deserialize;

pub use diagnostics::{ConfigErrors, Located};
pub use issue::Issue;
pub use listener::{
    AdminConfig, ClientAuthConfig, LimitsConfig, ListenerConfig, ServerConfig, TlsConfig,
    TlsVersion,
};
pub use route::{ProxyConfig, RouteConfig};
pub use upstream::{UpstreamConfig, UpstreamProtocol};
#[doc(hidden)]
pub use validate::validate;
pub(crate) use validate::validate_methods;

use crate::audit::AuditConfig;
use crate::policy::headers::SecurityHeadersConfig;

/// The whole gateway configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    /// Data-plane listeners; at least one.
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// Security headers on every response; routes may override them.
    #[serde(default)]
    pub security_headers: SecurityHeadersConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Authentication methods (JWT issuers) that routes refer to.
    #[serde(default)]
    pub auth: crate::policy::authn::AuthConfig,
    /// API keys issued by Rampart.
    #[serde(default)]
    pub api_keys: Option<crate::policy::authn::config::ApiKeysConfig>,
    /// Where keys and other state live.
    #[serde(default)]
    pub store: StoreConfig,
    /// Shared state for several instances (DPoP replay cache, rate limits).
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// How rate limits are kept (routes declare the limits).
    #[serde(default)]
    pub rate_limit: crate::policy::rate_limit::RateLimitSettings,

    /// Roles and the permissions they grant (`authorize.permissions` on routes).
    #[serde(default)]
    pub rbac: crate::policy::authz::RbacConfig,
    /// Blocking client addresses that keep failing authentication.
    #[serde(default)]
    pub brute_force: crate::policy::authn::brute_force::BruteForceConfig,
    /// Headers carrying the verified identity to upstreams (client copies are always removed).
    #[serde(default)]
    pub upstream_identity: crate::policy::upstream_request::IdentityHeadersConfig,
    /// Threat limits on every request body (JSON depth, sizes, duplicate names...).
    #[serde(default)]
    pub validation: crate::policy::validate::config::ValidationSettings,
    /// Detectors of suspicious activity over the audit stream, and their blocks.
    #[serde(default)]
    pub detect: crate::policy::detect::DetectConfig,
    /// Where detections are sent (they are always logged and counted).
    #[serde(default)]
    pub alerts: crate::policy::detect::AlertsConfig,
    /// Shipping the audit trail to an OpenTelemetry collector as OTLP logs.
    #[serde(default)]
    pub otlp_logs: Option<crate::otlp_logs::OtlpLogsConfig>,
    /// Shipping the audit trail to a syslog receiver over TLS.
    #[serde(default)]
    pub syslog: Option<crate::syslog::SyslogConfig>,
    /// Certificates obtained and renewed by ACME (RFC 8555).
    #[serde(default)]
    pub acme: Option<crate::acme::config::AcmeConfig>,
    /// W3C trace context and OTLP spans.
    #[serde(default)]
    pub tracing: crate::trace::TracingConfig,
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// `[redis]`: one Redis server shared by every instance.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port/db` or `rediss://` for TLS; credentials in the URL are never logged.
    #[serde(default)]
    pub url: Option<String>,
    /// The seed nodes of a Redis Cluster (instead of `url`).
    #[serde(default)]
    pub cluster_nodes: Vec<String>,
}

/// The text of a configuration and where it came from (for messages and relative paths).
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub origin: String,
    pub text: String,
    /// Relative file names in the config are resolved against this directory.
    pub base_dir: PathBuf,
}

impl ConfigSource {
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Self {
            origin: path.display().to_string(),
            text,
            base_dir,
        })
    }

    pub fn from_text(origin: &str, text: &str, base_dir: &Path) -> Self {
        Self {
            origin: origin.to_owned(),
            text: text.to_owned(),
            base_dir: base_dir.to_path_buf(),
        }
    }

    /// Attaches line numbers to issues found in this source.
    pub fn locate(&self, issues: Vec<Issue>) -> ConfigErrors {
        diagnostics::locate(self, issues)
    }
}

/// Parses and validates a configuration, collecting every error.
pub fn parse(source: &ConfigSource) -> Result<Config, ConfigErrors> {
    let document = diagnostics::parse_document(source)?;
    let issues = diagnostics::schema_issues(&document);
    if !issues.is_empty() {
        return Err(source.locate(issues));
    }
    let mut config: Config =
        toml::from_str(&source.text).map_err(|e| diagnostics::serde_error(source, &e))?;
    config.resolve_paths(&source.base_dir);
    let issues = validate::validate(&config);
    if issues.is_empty() {
        Ok(config)
    } else {
        Err(source.locate(issues))
    }
}

/// The JSON Schema of the configuration file (draft 2020-12), generated from these types.
pub fn json_schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut schema = schemars::schema_for!(Config).to_value();
        strip_null(&mut schema);
        schema
    })
}

/// TOML has no null: an optional field is simply absent. Removing `null` from the generated types
/// keeps error messages about the real type and editors from suggesting `null`.
fn strip_null(schema: &mut serde_json::Value) {
    use serde_json::Value;
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(branches)) = map.get_mut("anyOf") {
                branches.retain(|b| b.get("type").is_none_or(|t| t != "null"));
                if branches.len() == 1 {
                    let only = branches.remove(0);
                    map.remove("anyOf");
                    if let Value::Object(inner) = only {
                        map.extend(inner);
                    }
                }
            }
            map.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// The database.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite:FILE` (relative to the config file; created if missing) or `postgres://...`.
    #[serde(default = "default_store_url")]
    pub url: String,
    /// How long to wait for a connection (at start and per request) before the store counts as
    /// unreachable: API keys then answer 503 `auth_unavailable` instead of hanging.
    #[serde(default = "default_store_timeout")]
    #[schemars(range(min = 100, max = bounds::MAX_STORE_TIMEOUT_MS))]
    pub timeout_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: default_store_url(),
            timeout_ms: default_store_timeout(),
        }
    }
}

fn default_store_timeout() -> u64 {
    crate::store::DEFAULT_TIMEOUT_MS
}

fn default_store_url() -> String {
    "sqlite:rampart.db".to_owned()
}

impl Config {
    /// Whether the store is needed: API keys, or the admin API (token revocations).
    pub fn needs_store(&self) -> bool {
        let quotas_in_store =
            self.redis.is_none() && self.routes.iter().any(|r| !r.quotas.is_empty());
        self.api_keys.is_some()
            || self.admin.token_sha256.is_some()
            || quotas_in_store
            || self.uses_acme()
    }

    /// Whether a listener's certificate comes by ACME (kept in the store).
    pub fn uses_acme(&self) -> bool {
        self.listeners
            .iter()
            .any(|l| l.tls.as_ref().is_some_and(|t| !t.acme_domains.is_empty()))
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for listener in &mut self.listeners {
            if let Some(tls) = &mut listener.tls {
                for file in [&mut tls.cert_file, &mut tls.key_file]
                    .into_iter()
                    .flatten()
                {
                    resolve(file);
                }
                if let Some(client_auth) = &mut tls.client_auth {
                    resolve(&mut client_auth.ca_file);
                }
            }
        }
        for issuer in &mut self.auth.jwt {
            if let Some(file) = &mut issuer.keys_file {
                resolve(file);
            }
            if let Some(file) = issuer.hmac_secret.as_mut().and_then(|s| s.file.as_mut()) {
                resolve(file);
            }
        }
        for server in &mut self.auth.introspection {
            if let Some(file) = &mut server.client_secret.file {
                resolve(file);
            }
        }
        for upstream in &mut self.upstreams {
            if let Some(ca) = &mut upstream.tls.ca_file {
                resolve(ca);
            }
            if let Some(openapi) = &mut upstream.openapi {
                resolve(&mut openapi.spec_file);
            }
        }
        for route in &mut self.routes {
            if let Some(openapi) = &mut route.openapi {
                resolve(&mut openapi.spec_file);
            }
        }
        if let Some(file) = &mut self.audit.file {
            resolve(file);
        }
        if let Some(file) = self.syslog.as_mut().and_then(|s| s.ca_file.as_mut()) {
            resolve(file);
        }
        if let Some(file) = self.acme.as_mut().and_then(|a| a.ca_file.as_mut()) {
            resolve(file);
        }
        for hook in &mut self.alerts.webhooks {
            if let Some(file) = &mut hook.secret.file {
                resolve(file);
            }
        }
        if let Some(file) = &mut self.audit.signing_key_file {
            resolve(file);
        }
        if let Some(file) = self
            .api_keys
            .as_mut()
            .and_then(|k| k.hmac_secret.file.as_mut())
        {
            resolve(file);
        }
        if let Some(path) = self.store.url.strip_prefix("sqlite:")
            && !path.starts_with('/')
            && !path.starts_with(":memory:")
        {
            self.store.url = format!("sqlite:{}", base.join(path).display());
        }
    }
}
