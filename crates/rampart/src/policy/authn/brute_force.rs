//! Brute-force defence: failed authentications are counted per client address, and an address
//! that fails too often is blocked for a while (429 with `Retry-After`).
//!
//! Invariants: both maps are bounded (an attacker spraying addresses evicts entries, it does not
//! grow memory); only invalid credentials count, not their absence (a browser's first unauthenticated
//! request is not an attack); a block is visible in metrics and the audit log; an operator can list
//! blocks and clear one through the authenticated, audited admin API (`/v1/blocks`), without a
//! restart.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use moka::future::Cache;
use schemars::JsonSchema;
use serde::Deserialize;

const TRACKED_ADDRESSES: u64 = 100_000;

/// `[brute_force]`: thresholds per client address.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BruteForceConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Failed authentications within `window_s` that trigger a block.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    #[serde(default = "default_window")]
    pub window_s: u64,
    /// How long a blocked address stays blocked.
    #[serde(default = "default_block")]
    pub block_s: u64,
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_failures: default_max_failures(),
            window_s: default_window(),
            block_s: default_block(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_max_failures() -> u32 {
    20
}
fn default_window() -> u64 {
    60
}
fn default_block() -> u64 {
    300
}

/// Failure counters and blocks.
pub struct BruteForceGuard {
    max_failures: u32,
    block_for: Duration,
    failures: Cache<IpAddr, Arc<AtomicU32>>,
    blocked: Cache<IpAddr, Instant>,
}

impl BruteForceGuard {
    pub fn new(config: &BruteForceConfig) -> Option<Arc<Self>> {
        if !config.enabled {
            return None;
        }
        Some(Arc::new(Self {
            max_failures: config.max_failures.max(1),
            block_for: Duration::from_secs(config.block_s),
            failures: Cache::builder()
                .max_capacity(TRACKED_ADDRESSES)
                .time_to_live(Duration::from_secs(config.window_s.max(1)))
                .build(),
            blocked: Cache::builder()
                .max_capacity(TRACKED_ADDRESSES)
                .time_to_live(Duration::from_secs(config.block_s.max(1)))
                .build(),
        }))
    }

    /// Seconds until the address may try again, if it is blocked.
    pub async fn blocked_for(&self, ip: IpAddr) -> Option<u64> {
        let until = self.blocked.get(&ip).await?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then(|| left.as_secs().max(1))
    }

    /// The blocked addresses with the seconds left on each, sorted by address, at most `limit`
    /// of them; and how many there are in all.
    pub fn blocks(&self, limit: usize) -> (Vec<(IpAddr, u64)>, usize) {
        let now = Instant::now();
        let mut blocks: Vec<(IpAddr, u64)> = self
            .blocked
            .iter()
            .filter_map(|(ip, until)| {
                let left = until.saturating_duration_since(now);
                (!left.is_zero()).then(|| (*ip, left.as_secs().max(1)))
            })
            .collect();
        let total = blocks.len();
        blocks.sort_unstable();
        blocks.truncate(limit);
        (blocks, total)
    }

    /// Lifts the block on an address and forgets its failures; false when it was not blocked.
    pub async fn unblock(&self, ip: IpAddr) -> bool {
        self.failures.invalidate(&ip).await;
        let was = self.blocked.remove(&ip).await;
        was.is_some_and(|until| until > Instant::now())
    }

    /// Counts a failure; returns true when this failure starts a block.
    pub async fn record_failure(&self, ip: IpAddr) -> bool {
        let counter = self
            .failures
            .get_with(ip, async { Arc::new(AtomicU32::new(0)) })
            .await;
        let failures = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < self.max_failures {
            return false;
        }
        self.failures.invalidate(&ip).await;
        self.blocked
            .insert(ip, Instant::now() + self.block_for)
            .await;
        metrics::counter!("rampart_clients_blocked_total").increment(1);
        tracing::warn!(client_ip = %ip, failures, "client blocked after repeated authentication failures");
        true
    }
}
