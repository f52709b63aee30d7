//! The detectors, as data: each one's name, defaults, what it counts and about whom.

use std::time::Duration;

use super::config::{DetectConfig, RuleConfig};

/// Every detector. Each reads request records and counts, per key, either events or distinct
/// values within a window (`window::Measure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    AuthFailuresByAddress,
    AuthFailuresByNetwork,
    UsersByAddress,
    AddressesByUser,
    ObjectEnumeration,
    IdWalk,
    KeySharing,
    Scanning,
    ValidationFailures,
    LimitEvasion,
}

pub const RULES: [Rule; 10] = [
    Rule::AuthFailuresByAddress,
    Rule::AuthFailuresByNetwork,
    Rule::UsersByAddress,
    Rule::AddressesByUser,
    Rule::ObjectEnumeration,
    Rule::IdWalk,
    Rule::KeySharing,
    Rule::Scanning,
    Rule::ValidationFailures,
    Rule::LimitEvasion,
];

/// A detector's settings with its defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub enabled: bool,
    pub threshold: u32,
    pub window: Duration,
    /// How long a detection blocks its subject; `None`: alert only.
    pub block_for: Option<Duration>,
}

impl Rule {
    /// The name in config, metrics, alerts and the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            Self::AuthFailuresByAddress => "auth_failures_by_address",
            Self::AuthFailuresByNetwork => "auth_failures_by_network",
            Self::UsersByAddress => "users_by_address",
            Self::AddressesByUser => "addresses_by_user",
            Self::ObjectEnumeration => "object_enumeration",
            Self::IdWalk => "id_walk",
            Self::KeySharing => "key_sharing",
            Self::Scanning => "scanning",
            Self::ValidationFailures => "validation_failures",
            Self::LimitEvasion => "limit_evasion",
        }
    }

    /// Whether it counts distinct values (users, addresses, networks, paths) rather than events.
    pub fn counts_distinct(self) -> bool {
        matches!(
            self,
            Self::UsersByAddress
                | Self::AddressesByUser
                | Self::IdWalk
                | Self::KeySharing
                | Self::Scanning
                | Self::LimitEvasion
        )
    }

    /// Threshold, window (s) and block (s; 0: alert only) when the config leaves them unset.
    /// Blocks are on by default only where a legitimate client cannot plausibly trip them: many
    /// users failing from one address, and scanning for routes that do not exist.
    fn defaults(self) -> (u32, u64, u64) {
        match self {
            Self::AuthFailuresByAddress => (20, 60, 0),
            Self::AuthFailuresByNetwork => (100, 300, 0),
            Self::UsersByAddress => (10, 300, 900),
            Self::AddressesByUser => (10, 300, 0),
            Self::ObjectEnumeration => (30, 60, 0),
            Self::IdWalk => (100, 60, 0),
            Self::KeySharing => (5, 3600, 0),
            Self::Scanning => (50, 60, 300),
            Self::ValidationFailures => (50, 60, 0),
            Self::LimitEvasion => (20, 300, 0),
        }
    }

    pub fn config(self, config: &DetectConfig) -> &RuleConfig {
        match self {
            Self::AuthFailuresByAddress => &config.auth_failures_by_address,
            Self::AuthFailuresByNetwork => &config.auth_failures_by_network,
            Self::UsersByAddress => &config.users_by_address,
            Self::AddressesByUser => &config.addresses_by_user,
            Self::ObjectEnumeration => &config.object_enumeration,
            Self::IdWalk => &config.id_walk,
            Self::KeySharing => &config.key_sharing,
            Self::Scanning => &config.scanning,
            Self::ValidationFailures => &config.validation_failures,
            Self::LimitEvasion => &config.limit_evasion,
        }
    }

    pub fn thresholds(self, config: &DetectConfig) -> Thresholds {
        let (threshold, window_s, block_s) = self.defaults();
        let rule = self.config(config);
        let block_s = rule.block_s.unwrap_or(block_s);
        Thresholds {
            enabled: config.enabled && rule.enabled.unwrap_or(true),
            threshold: rule.threshold.unwrap_or(threshold).max(1),
            window: Duration::from_secs(rule.window_s.unwrap_or(window_s).max(1)),
            block_for: (block_s > 0).then(|| Duration::from_secs(block_s)),
        }
    }
}
