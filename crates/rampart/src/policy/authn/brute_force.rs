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

use arc_swap::ArcSwap;
use moka::future::Cache;
use schemars::JsonSchema;
use serde::Deserialize;

const TRACKED_ADDRESSES: u64 = 100_000;

/// `[brute_force]`: thresholds per client address.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BruteForceConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Failed authentications within `window_s` that trigger a block.
    #[serde(default = "default_max_failures")]
    #[schemars(range(max = crate::config::bounds::MAX_COUNT))]
    pub max_failures: u32,
    #[serde(default = "default_window")]
    #[schemars(range(max = crate::config::bounds::MAX_SECONDS))]
    pub window_s: u64,
    /// How long a blocked address stays blocked.
    #[serde(default = "default_block")]
    #[schemars(range(max = crate::config::bounds::MAX_SECONDS))]
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

/// The longest counting window and block the guard honours: the config's bound on durations, so
/// that no valid setting is cut short.
pub const MAX_WINDOW_S: u64 = crate::config::bounds::MAX_SECONDS;
pub const MAX_BLOCK_S: u64 = crate::config::bounds::MAX_SECONDS;

/// The thresholds in force; replaced as a whole when a reload changes `[brute_force]`.
struct Thresholds {
    max_failures: u32,
    window: Duration,
    block_for: Duration,
}

impl From<&BruteForceConfig> for Thresholds {
    fn from(config: &BruteForceConfig) -> Self {
        Self {
            max_failures: config.max_failures.max(1),
            window: Duration::from_secs(config.window_s.clamp(1, MAX_WINDOW_S)),
            block_for: Duration::from_secs(config.block_s.clamp(1, MAX_BLOCK_S)),
        }
    }
}

/// Failures counted in one window, from its first failure.
struct Window {
    started: Instant,
    /// When this window's count is forgotten (its length under the thresholds it started with).
    ends: Instant,
    failures: AtomicU32,
}

/// Each entry lives exactly as long as it matters: a failure window until it ends, a block until
/// it is lifted. So idle entries leave at once and the bounded maps hold live state only (an
/// address spray cannot push out a real block that is hidden among expired ones).
struct UntilItEnds;

impl moka::Expiry<IpAddr, Arc<Window>> for UntilItEnds {
    fn expire_after_create(
        &self,
        _ip: &IpAddr,
        window: &Arc<Window>,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(window.ends.saturating_duration_since(created_at))
    }
}

impl moka::Expiry<IpAddr, Instant> for UntilItEnds {
    fn expire_after_create(
        &self,
        _ip: &IpAddr,
        until: &Instant,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(until.saturating_duration_since(created_at))
    }
}

/// Failure counters and blocks. Process-wide and kept across reloads; `configure` applies the
/// thresholds of a new config to the counters and blocks already there.
pub struct BruteForceGuard {
    thresholds: ArcSwap<Thresholds>,
    failures: Cache<IpAddr, Arc<Window>>,
    blocked: Cache<IpAddr, Instant>,
}

impl Default for BruteForceGuard {
    fn default() -> Self {
        Self::new(&BruteForceConfig::default())
    }
}

impl BruteForceGuard {
    pub fn new(config: &BruteForceConfig) -> Self {
        Self {
            thresholds: ArcSwap::from_pointee(Thresholds::from(config)),
            failures: Cache::builder()
                .max_capacity(TRACKED_ADDRESSES)
                .expire_after(UntilItEnds)
                .build(),
            blocked: Cache::builder()
                .max_capacity(TRACKED_ADDRESSES)
                .expire_after(UntilItEnds)
                .build(),
        }
    }

    /// Applies the thresholds of a reloaded config; counters and blocks are kept.
    pub fn configure(&self, config: &BruteForceConfig) {
        self.thresholds.store(Arc::new(Thresholds::from(config)));
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
        let thresholds = self.thresholds.load();
        let now = Instant::now();
        let fresh = || {
            Arc::new(Window {
                started: now,
                ends: now.checked_add(thresholds.window).unwrap_or(now),
                failures: AtomicU32::new(0),
            })
        };
        let mut window = self.failures.get_with(ip, async { fresh() }).await;
        if now.saturating_duration_since(window.started) >= thresholds.window {
            window = fresh();
            self.failures.insert(ip, window.clone()).await;
        }
        let failures = window.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < thresholds.max_failures {
            return false;
        }
        self.failures.invalidate(&ip).await;
        let until = now.checked_add(thresholds.block_for).unwrap_or(now);
        self.blocked.insert(ip, until).await;
        metrics::counter!("rampart_clients_blocked_total").increment(1);
        tracing::warn!(client_ip = %ip, failures, "client blocked after repeated authentication failures");
        true
    }
}
