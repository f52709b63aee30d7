//! Upstream (backend) settings: targets, pool, timeouts, TLS and health.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_UPSTREAM_REQUEST_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_POOL_IDLE_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_POOL_MAX_IDLE_PER_TARGET: usize = 256;
pub const DEFAULT_EJECT_AFTER_FAILURES: u32 = 5;
pub const DEFAULT_EJECT_MS: u64 = 30_000;

/// A named group of targets that routes send requests to.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    /// The OpenAPI contract of the API behind this upstream: every route to it follows it,
    /// unless the route has its own `openapi`.
    #[serde(default)]
    pub openapi: Option<crate::policy::validate::config::OpenApiConfig>,
    /// Base URLs, `http://host:port` or `https://host:port`, no path. Picked round robin.
    pub targets: Vec<String>,
    /// Protocol towards the targets.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    #[serde(default = "default_connect_timeout_ms")]
    #[schemars(range(max = crate::config::bounds::MAX_MILLIS))]
    pub connect_timeout_ms: u64,
    /// Time from sending the request to receiving the response head.
    #[serde(default = "default_request_timeout_ms")]
    #[schemars(range(max = crate::config::bounds::MAX_MILLIS))]
    pub request_timeout_ms: u64,
    /// Idle pooled connections are closed after this time.
    #[serde(default = "default_pool_idle_timeout_ms")]
    #[schemars(range(max = crate::config::bounds::MAX_MILLIS))]
    pub idle_timeout_ms: u64,
    #[serde(default = "default_pool_max_idle")]
    #[schemars(range(max = crate::config::bounds::MAX_COUNT))]
    pub max_idle_per_target: usize,
    /// Send the client's Host header instead of the target's authority.
    #[serde(default)]
    pub preserve_host: bool,
    #[serde(default)]
    pub tls: UpstreamTlsConfig,
    #[serde(default)]
    pub health: HealthConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 (prior knowledge on `http://`, ALPN on `https://`).
    Http2,
}

/// How targets reached over `https://` are verified.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// PEM bundle of CAs to trust instead of the built-in web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Verify the target's certificate. Turning this off is flagged by `check`.
    #[serde(default = "super::listener::default_true")]
    pub verify: bool,
}

impl Default for UpstreamTlsConfig {
    fn default() -> Self {
        Self {
            ca_file: None,
            verify: true,
        }
    }
}

/// Passive health (ejection on consecutive failures) is always on; active checks are optional.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    #[serde(default)]
    pub passive: PassiveHealthConfig,
    #[serde(default)]
    pub active: Option<ActiveHealthConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PassiveHealthConfig {
    /// Consecutive failures (connection errors, timeouts, 502/503/504) before a target is ejected.
    #[serde(default = "default_eject_after_failures")]
    #[schemars(range(max = crate::config::bounds::MAX_COUNT))]
    pub eject_after_failures: u32,
    /// How long an ejected target is skipped before it gets traffic again.
    #[serde(default = "default_eject_ms")]
    #[schemars(range(max = crate::config::bounds::MAX_MILLIS))]
    pub eject_ms: u64,
}

impl Default for PassiveHealthConfig {
    fn default() -> Self {
        Self {
            eject_after_failures: DEFAULT_EJECT_AFTER_FAILURES,
            eject_ms: DEFAULT_EJECT_MS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveHealthConfig {
    /// Path probed with GET; a 2xx answer is healthy.
    pub path: String,
    #[serde(default = "default_active_interval_ms")]
    #[schemars(range(max = crate::config::bounds::MAX_MILLIS))]
    pub interval_ms: u64,
    #[serde(default = "default_active_timeout_ms")]
    #[schemars(range(max = crate::config::bounds::MAX_MILLIS))]
    pub timeout_ms: u64,
    /// Consecutive failed probes before a target is marked down.
    #[serde(default = "default_threshold")]
    #[schemars(range(max = crate::config::bounds::MAX_COUNT))]
    pub unhealthy_threshold: u32,
    /// Consecutive good probes before a down target is marked up.
    #[serde(default = "default_threshold")]
    #[schemars(range(max = crate::config::bounds::MAX_COUNT))]
    pub healthy_threshold: u32,
}

fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn default_request_timeout_ms() -> u64 {
    DEFAULT_UPSTREAM_REQUEST_TIMEOUT_MS
}
fn default_pool_idle_timeout_ms() -> u64 {
    DEFAULT_POOL_IDLE_TIMEOUT_MS
}
fn default_pool_max_idle() -> usize {
    DEFAULT_POOL_MAX_IDLE_PER_TARGET
}
fn default_eject_after_failures() -> u32 {
    DEFAULT_EJECT_AFTER_FAILURES
}
fn default_eject_ms() -> u64 {
    DEFAULT_EJECT_MS
}
fn default_active_interval_ms() -> u64 {
    5_000
}
fn default_active_timeout_ms() -> u64 {
    1_000
}
fn default_threshold() -> u32 {
    2
}
