//! `[detect]` and `[alerts]`: each detector's thresholds and response, and where alerts go.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::Issue;
use crate::config::bounds::{MAX_COUNT, MAX_ENTRIES, MAX_MILLIS, MAX_SECONDS};
use crate::config::secret::SecretSource;

/// The largest `threshold` of a detector that counts distinct values (users, networks, paths):
/// each tracked key keeps up to that many 8-byte fingerprints.
pub const MAX_DISTINCT_THRESHOLD: u32 = 10_000;

/// `[detect]`: detectors over the stream of audit records, off the request path.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Keys (addresses, users, principals) each detector tracks at most; attackers choose the
    /// keys, so past this the least recently seen is forgotten.
    #[serde(default = "default_max_tracked")]
    #[schemars(range(min = 1, max = MAX_ENTRIES))]
    pub max_tracked: u64,
    /// Blocks in force at most (detectors' and operators'); past this a new block is refused and
    /// counted (`rampart_blocks_refused_total`), never an old one dropped.
    #[serde(default = "default_max_blocks")]
    #[schemars(range(min = 1, max = MAX_ENTRIES))]
    pub max_blocks: u64,
    /// Networks never counted, so never blocked by a detector (an office NAT, monitoring, a
    /// partner's gateway). The trusted proxies are always exempt.
    #[serde(default)]
    #[schemars(with = "Vec<crate::config::formats::IpNetwork>")]
    pub exempt: Vec<ipnet::IpNet>,
    /// How often each instance reads the blocks shared through Redis (with `[redis]`).
    #[serde(default = "default_block_sync_ms")]
    #[schemars(range(min = 50, max = MAX_MILLIS))]
    pub block_sync_ms: u64,
    /// Invalid credentials from one client address (the in-path `[brute_force]` guard blocks
    /// them; this detector alerts).
    #[serde(default)]
    pub auth_failures_by_address: RuleConfig,
    /// Invalid credentials from one network (/24 for IPv4, /64 for IPv6).
    #[serde(default)]
    pub auth_failures_by_network: RuleConfig,
    /// Distinct users failing to authenticate from one address (credential stuffing).
    #[serde(default)]
    pub users_by_address: RuleConfig,
    /// Distinct addresses failing to authenticate as one user (a distributed guess at one
    /// account). Alert only: blocking the user would lock the victim out.
    #[serde(default)]
    pub addresses_by_user: RuleConfig,
    /// 403 and 404 answers to one caller on one route (BOLA probing, OWASP API1).
    #[serde(default)]
    pub object_enumeration: RuleConfig,
    /// Distinct paths one caller requests on one route (an id walk).
    #[serde(default)]
    pub id_walk: RuleConfig,
    /// Distinct networks one API key or token subject is used from (a shared or leaked key).
    #[serde(default)]
    pub key_sharing: RuleConfig,
    /// Distinct unknown paths (no route, no such method, an operation the contract does not
    /// declare) asked by one address.
    #[serde(default)]
    pub scanning: RuleConfig,
    /// Requests refused by validation (contract, threat limits) from one address.
    #[serde(default)]
    pub validation_failures: RuleConfig,
    /// Distinct addresses one API key or user is used from (spreading to evade per-address
    /// rate limits).
    #[serde(default)]
    pub limit_evasion: RuleConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        // The one place the defaults live: serde's, for an empty table.
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

impl DetectConfig {
    /// What the schema cannot say: bounds on distinct counts, and no block on a claimed user.
    pub fn validate(&self, issues: &mut Vec<Issue>) {
        for rule in super::rules::RULES {
            let at = format!("/detect/{}", rule.name());
            let settings = rule.config(self);
            if rule.counts_distinct()
                && settings
                    .threshold
                    .is_some_and(|t| t > MAX_DISTINCT_THRESHOLD)
            {
                issues.push(Issue::new(
                    format!("{at}/threshold"),
                    format!(
                        "a detector of distinct values counts at most {MAX_DISTINCT_THRESHOLD}"
                    ),
                ));
            }
            if rule == super::rules::Rule::AddressesByUser
                && settings.block_s.is_some_and(|b| b > 0)
            {
                issues.push(Issue::new(
                    format!("{at}/block_s"),
                    "a claimed user name is never blocked (anyone can claim one, and its owner would be locked out); this detector only alerts",
                ));
            }
        }
    }
}

/// One detector's settings; an unset field takes that detector's default (`docs/detect.md`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Events (or distinct values) within the window that make a detection.
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_COUNT))]
    pub threshold: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_SECONDS))]
    pub window_s: Option<u64>,
    /// Block the subject this long on a detection; 0: alert only.
    #[serde(default)]
    #[schemars(range(max = MAX_SECONDS))]
    pub block_s: Option<u64>,
}

/// `[alerts]`: where detections are sent. They are always logged and counted in metrics.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// One alert per detector and subject within this many seconds; later detections are only
    /// counted.
    #[serde(default = "default_dedup_s")]
    #[schemars(range(max = MAX_SECONDS))]
    pub dedup_s: u64,
    /// Alerts waiting for delivery at most; past this they are dropped and counted.
    #[serde(default = "default_queue")]
    #[schemars(range(min = 1, max = MAX_COUNT))]
    pub queue_capacity: usize,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Alert (`certificate_expiry`) when a listener's certificate has less than this many
    /// seconds left: a renewal that keeps failing, or a file nobody replaced. Default 14 days.
    #[serde(default = "default_certificate_expiry_s")]
    #[schemars(range(min = 1, max = MAX_SECONDS))]
    pub certificate_expiry_s: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

/// A webhook receiving alerts as JSON, signed with HMAC-SHA-256.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    /// `https://`, or `http://` to a loopback address.
    pub url: String,
    /// The signing secret (at least 32 bytes), from a file or an environment variable.
    pub secret: SecretSource,
    #[serde(default)]
    pub format: AlertFormat,
    #[serde(default = "default_timeout_ms")]
    #[schemars(range(min = 1, max = MAX_MILLIS))]
    pub timeout_ms: u64,
    /// Attempts per alert, with exponential backoff from one second between them.
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1, max = 20))]
    pub max_attempts: u32,
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    /// The alert as a JSON object (`docs/detect.md`).
    #[default]
    Json,
    /// A Slack incoming-webhook message (`{"text": ...}`), also taken by Mattermost and others.
    Slack,
}

fn yes() -> bool {
    true
}
fn default_max_tracked() -> u64 {
    20_000
}
fn default_max_blocks() -> u64 {
    100_000
}
fn default_block_sync_ms() -> u64 {
    1000
}
fn default_certificate_expiry_s() -> u64 {
    14 * 24 * 3600
}
fn default_dedup_s() -> u64 {
    600
}
fn default_queue() -> usize {
    1000
}
fn default_timeout_ms() -> u64 {
    5000
}
fn default_attempts() -> u32 {
    5
}
