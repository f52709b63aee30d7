//! Rate-limit settings: `[rate_limit]` (process-wide) and `rate_limits`/`max_in_flight` on routes.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::Issue;

pub const DEFAULT_MAX_TRACKED_KEYS: u64 = 100_000;
pub const DEFAULT_MAX_QUEUED: usize = 10_000;

/// `[rate_limit]`: how limits are kept.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Keys tracked in memory per limit; idle keys are evicted first, so a spray of distinct keys
    /// stays within the bound without resetting busy ones.
    #[serde(default = "default_max_tracked_keys")]
    #[schemars(range(max = crate::config::bounds::MAX_ENTRIES))]
    pub max_tracked_keys: u64,
    /// What happens when Redis cannot be reached: `open` falls back to local limits divided by
    /// `expected_instances`; `closed` answers 503.
    #[serde(default)]
    pub on_redis_failure: FailureMode,
    /// How many instances share the limits (for the fail-open fallback).
    #[serde(default = "default_instances")]
    #[schemars(range(max = crate::config::bounds::MAX_COUNT))]
    pub expected_instances: u32,
    /// Send `RateLimit` and `RateLimit-Policy` on successful responses too (always on 429).
    #[serde(default)]
    pub headers_on_success: bool,
    /// Requests waiting (throttled by `max_delay_ms`) at once in this process; more are shed.
    #[serde(default = "default_max_queued")]
    #[schemars(range(max = crate::config::bounds::MAX_ENTRIES))]
    pub max_queued: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            max_tracked_keys: DEFAULT_MAX_TRACKED_KEYS,
            on_redis_failure: FailureMode::Open,
            expected_instances: 1,
            headers_on_success: false,
            max_queued: DEFAULT_MAX_QUEUED,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    #[default]
    Open,
    Closed,
}

/// One limit on a route: `rate` requests per `per`, bursts of up to `burst`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Shown in `RateLimit-Policy`, the audit log and metrics.
    pub name: String,
    /// What is counted: `ip` (IPv6 by /64), `api_key`, `principal`, `client_id`, `route`,
    /// `header:NAME`, `claim:NAME`, or a list of them combined.
    pub key: KeySpec,
    #[schemars(range(max = crate::config::bounds::MAX_RATE))]
    pub rate: u64,
    pub per: Period,
    /// Requests allowed back to back (default: `rate`).
    #[serde(default)]
    #[schemars(range(max = crate::config::bounds::MAX_RATE))]
    pub burst: Option<u64>,
    /// Make requests over the rate wait up to this long for their turn instead of a 429.
    #[serde(default)]
    #[schemars(range(max = crate::config::bounds::MAX_MILLIS))]
    pub max_delay_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum KeySpec {
    One(String),
    Many(Vec<String>),
}

impl KeySpec {
    pub fn parts(&self) -> Vec<&str> {
        match self {
            Self::One(part) => vec![part.as_str()],
            Self::Many(parts) => parts.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Second,
    Minute,
    Hour,
    Day,
}

impl Period {
    pub fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }
}

/// A part of a limit's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    Ip,
    ApiKey,
    Principal,
    ClientId,
    Route,
    Header(http::HeaderName),
    Claim(String),
}

impl KeyPart {
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "ip" => Self::Ip,
            "api_key" => Self::ApiKey,
            "principal" => Self::Principal,
            "client_id" => Self::ClientId,
            "route" => Self::Route,
            _ => {
                if let Some(name) = text.strip_prefix("header:") {
                    Self::Header(
                        http::HeaderName::from_bytes(name.as_bytes())
                            .map_err(|_| format!("`{name}` is not a header name"))?,
                    )
                } else if let Some(claim) = text.strip_prefix("claim:").filter(|c| !c.is_empty()) {
                    Self::Claim(claim.to_owned())
                } else {
                    return Err(format!(
                        "unknown key `{text}` (ip, api_key, principal, client_id, route, header:NAME, claim:NAME)"
                    ));
                }
            }
        })
    }

    /// Whether the part is known only after authentication.
    pub fn needs_principal(&self) -> bool {
        matches!(
            self,
            Self::ApiKey | Self::Principal | Self::ClientId | Self::Claim(_)
        )
    }
}

/// Checks a route's limits.
pub fn validate(limits: &[LimitConfig], authenticated: bool, ptr: &str, issues: &mut Vec<Issue>) {
    let mut names = std::collections::HashSet::new();
    for (i, limit) in limits.iter().enumerate() {
        let at = format!("{ptr}/rate_limits/{i}");
        if !names.insert(limit.name.as_str()) {
            issues.push(Issue::new(format!("{at}/name"), "duplicate limit name"));
        }
        if limit.name.is_empty()
            || !limit
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            issues.push(Issue::new(
                format!("{at}/name"),
                "letters, digits, `-` and `_` only",
            ));
        }
        if limit.rate == 0 || limit.rate > 1_000_000 {
            issues.push(Issue::new(format!("{at}/rate"), "between 1 and 1000000"));
        }
        if limit.burst.is_some_and(|b| b == 0 || b > 1_000_000) {
            issues.push(Issue::new(format!("{at}/burst"), "between 1 and 1000000"));
        }
        if limit.max_delay_ms > 60_000 {
            issues.push(Issue::new(format!("{at}/max_delay_ms"), "at most 60000"));
        }
        // A bucket remembers a key for its whole window: bound it like every other duration.
        let window_s = limit.per.seconds() as f64 / limit.rate.max(1) as f64
            * limit.burst.unwrap_or(limit.rate) as f64;
        if window_s > crate::config::bounds::MAX_SECONDS as f64 {
            issues.push(Issue::new(
                format!("{at}/burst"),
                "the burst refills over more than a year: lower `burst` or raise `rate`",
            ));
        }
        let parts = limit.key.parts();
        if parts.is_empty() {
            issues.push(Issue::new(
                format!("{at}/key"),
                "name at least one key part",
            ));
        }
        for part in parts {
            match KeyPart::parse(part) {
                Ok(p) if p.needs_principal() && !authenticated => issues.push(Issue::new(
                    format!("{at}/key"),
                    format!("`{part}` needs `auth` on the route"),
                )),
                Ok(_) => {}
                Err(why) => issues.push(Issue::new(format!("{at}/key"), why)),
            }
        }
    }
}

/// Checks a route's quotas.
pub fn validate_quotas(
    quotas: &[super::quota::QuotaConfig],
    authenticated: bool,
    ptr: &str,
    issues: &mut Vec<Issue>,
) {
    for (i, quota) in quotas.iter().enumerate() {
        let at = format!("{ptr}/quotas/{i}");
        if quota.name.is_empty() {
            issues.push(Issue::new(format!("{at}/name"), "must not be empty"));
        }
        if quota.limit == 0 {
            issues.push(Issue::new(format!("{at}/limit"), "at least 1"));
        }
        for part in quota.key.parts() {
            match KeyPart::parse(part) {
                Ok(p) if p.needs_principal() && !authenticated => issues.push(Issue::new(
                    format!("{at}/key"),
                    format!("`{part}` needs `auth` on the route"),
                )),
                Ok(_) => {}
                Err(why) => issues.push(Issue::new(format!("{at}/key"), why)),
            }
        }
    }
}

fn default_max_tracked_keys() -> u64 {
    DEFAULT_MAX_TRACKED_KEYS
}
fn default_instances() -> u32 {
    1
}
fn default_max_queued() -> usize {
    DEFAULT_MAX_QUEUED
}
