//! Listener, admin, transport-limit and server settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

/// Default bound on the request head (request line and headers), in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default bound on the number of request headers.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Hard ceiling for `max_headers`: the framing guard parses into a fixed array of this size.
pub const MAX_HEADERS_CEILING: usize = 256;
/// Default bound on the request target (path and query), in bytes.
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
/// Default bound on a request body, in bytes (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// A client must send a complete request head within this time (slowloris defence).
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Idle keep-alive connections are closed after this time.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// HTTP/2 streams per connection.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Request bodies up to this size (by Content-Length) are read completely before the upstream is
/// contacted (nginx's request buffering); larger ones are streamed.
pub const DEFAULT_BUFFER_BODY_BYTES: u64 = 64 * 1024;
/// After the grace period a request body must arrive at least this fast on average (408 below).
pub const DEFAULT_MIN_BODY_RATE_BYTES_PER_S: u64 = 1024;
pub const DEFAULT_BODY_RATE_GRACE_MS: u64 = 10_000;
/// In-flight requests get this long to finish on SIGTERM.
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 30_000;
/// The admin listener's default address: loopback only.
pub const DEFAULT_ADMIN_BIND: &str = "127.0.0.1:9901";

/// One data-plane listener. TLS unless `plaintext = true` is said explicitly.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Name used in the audit log and metrics.
    pub name: String,
    /// Address and port, e.g. `0.0.0.0:8443`.
    #[schemars(with = "super::formats::SocketAddress")]
    pub bind: SocketAddr,
    /// Certificate and key; required unless `plaintext` or `redirect_https_port` is set.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Serve plain HTTP. Only for loopback or behind a TLS-terminating load balancer; `check` warns
    /// otherwise.
    #[serde(default)]
    pub plaintext: bool,
    /// Make this a plain-HTTP listener that only redirects (308) to HTTPS on this port.
    #[serde(default)]
    pub redirect_https_port: Option<u16>,
}

/// Server certificate and key: PEM files reloaded when they change, or certificates obtained and
/// renewed by ACME (`acme_domains`, with `[acme]`).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The names of a certificate obtained by ACME (instead of `cert_file` and `key_file`).
    #[serde(default)]
    pub acme_domains: Vec<String>,
    /// Staple the CA's OCSP answer to the handshake when the certificate names a responder.
    #[serde(default = "default_true")]
    pub ocsp_stapling: bool,
    /// Lowest TLS version accepted: "1.2" (default) or "1.3".
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Ask clients for a certificate (mTLS), verified against a CA bundle.
    #[serde(default)]
    pub client_auth: Option<ClientAuthConfig>,
}

/// Client-certificate verification on a listener.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthConfig {
    /// PEM bundle of the CAs whose client certificates are accepted.
    pub ca_file: PathBuf,
    /// Refuse the handshake without a valid client certificate (default). With `false`, clients may
    /// connect without one, and routes decide (`auth = { mtls = true }`).
    #[serde(default = "default_true")]
    pub required: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
    #[serde(rename = "1.3")]
    V1_3,
}

/// The admin listener: `/metrics`, `/live`, `/ready`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_admin_bind")]
    #[schemars(with = "super::formats::SocketAddress")]
    pub bind: SocketAddr,
    /// SHA-256 (hex) of the admin API token; the admin API (`/v1/...`) is served only when set.
    /// `rampart admin-token` makes a token and prints its hash.
    #[serde(default)]
    pub token_sha256: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: default_admin_bind(),
            token_sha256: None,
        }
    }
}

/// Transport limits applied before routing, on every listener.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default = "default_max_header_bytes")]
    #[schemars(range(max = crate::config::bounds::MAX_ITEM_BYTES))]
    pub max_header_bytes: usize,
    #[serde(default = "default_max_headers")]
    #[schemars(range(max = crate::config::bounds::MAX_COUNT))]
    pub max_headers: usize,
    /// At most 65000: `http::Uri` refuses longer targets.
    #[serde(default = "default_max_uri_bytes")]
    #[schemars(range(min = 64, max = crate::config::bounds::MAX_URI_BYTES))]
    pub max_uri_bytes: usize,
    /// Default body limit; routes may set their own.
    #[serde(default = "default_max_body_bytes")]
    #[schemars(range(max = crate::config::bounds::MAX_BODY_BYTES))]
    pub max_body_bytes: u64,
    #[serde(default = "default_header_read_timeout_ms")]
    #[schemars(range(max = crate::config::bounds::MAX_MILLIS))]
    pub header_read_timeout_ms: u64,
    #[serde(default = "default_idle_timeout_ms")]
    #[schemars(range(max = crate::config::bounds::MAX_MILLIS))]
    pub idle_timeout_ms: u64,
    #[serde(default = "default_max_concurrent_streams")]
    #[schemars(range(max = crate::config::bounds::MAX_COUNT))]
    pub max_concurrent_streams: u32,
    /// Bodies up to this many bytes are read completely before an upstream connection is used.
    #[serde(default = "default_buffer_body_bytes")]
    #[schemars(range(max = crate::config::bounds::MAX_BUFFER_BODY_BYTES))]
    pub buffer_body_bytes: u64,
    /// The minimum average rate of a request body once the grace period has passed.
    #[serde(default = "default_min_body_rate_bytes_per_s")]
    #[schemars(range(min = 1, max = crate::config::bounds::MAX_RATE))]
    pub min_body_rate_bytes_per_s: u64,
    #[serde(default = "default_body_rate_grace_ms")]
    #[schemars(range(min = 100, max = crate::config::bounds::MAX_MILLIS))]
    pub body_rate_grace_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            buffer_body_bytes: DEFAULT_BUFFER_BODY_BYTES,
            min_body_rate_bytes_per_s: DEFAULT_MIN_BODY_RATE_BYTES_PER_S,
            body_rate_grace_ms: DEFAULT_BODY_RATE_GRACE_MS,
        }
    }
}

/// Process-wide behaviour.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[serde(default = "default_drain_timeout_ms")]
    #[schemars(range(max = crate::config::bounds::MAX_MILLIS))]
    pub drain_timeout_ms: u64,
    /// Reload the configuration when the file changes (SIGHUP always reloads).
    #[serde(default = "default_true")]
    pub watch_config: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            drain_timeout_ms: DEFAULT_DRAIN_TIMEOUT_MS,
            watch_config: true,
        }
    }
}

pub(crate) fn default_true() -> bool {
    true
}
fn default_admin_bind() -> SocketAddr {
    // A constant literal; parsing cannot fail.
    DEFAULT_ADMIN_BIND
        .parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9901)))
}
fn default_max_header_bytes() -> usize {
    DEFAULT_MAX_HEADER_BYTES
}
fn default_max_headers() -> usize {
    DEFAULT_MAX_HEADERS
}
fn default_max_uri_bytes() -> usize {
    DEFAULT_MAX_URI_BYTES
}
fn default_max_body_bytes() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
fn default_header_read_timeout_ms() -> u64 {
    DEFAULT_HEADER_READ_TIMEOUT_MS
}
fn default_idle_timeout_ms() -> u64 {
    DEFAULT_IDLE_TIMEOUT_MS
}
fn default_max_concurrent_streams() -> u32 {
    DEFAULT_MAX_CONCURRENT_STREAMS
}
fn default_buffer_body_bytes() -> u64 {
    DEFAULT_BUFFER_BODY_BYTES
}
fn default_min_body_rate_bytes_per_s() -> u64 {
    DEFAULT_MIN_BODY_RATE_BYTES_PER_S
}
fn default_body_rate_grace_ms() -> u64 {
    DEFAULT_BODY_RATE_GRACE_MS
}
fn default_drain_timeout_ms() -> u64 {
    DEFAULT_DRAIN_TIMEOUT_MS
}
