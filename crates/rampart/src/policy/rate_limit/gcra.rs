//! GCRA (the generic cell rate algorithm: a token bucket kept as one timestamp) and the local,
//! bounded store of its state.
//!
//! Each key keeps a theoretical arrival time (TAT). A request at `now` moves it to
//! `max(TAT, now) + interval`; it is allowed when that is at most `burst * interval` ahead of `now`,
//! may wait (throttling) when it is at most `max_delay` further, and is refused otherwise without
//! changing the state. Written by hand because governor's keyed limiter has no per-request delay
//! budget, no remaining-quota reporting for the RateLimit headers and no bound on its keys; the
//! arithmetic is the same one governor and the Redis script use.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One limit's parameters, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub interval_us: u64,
    pub burst: u64,
    pub max_delay_us: u64,
}

impl Params {
    pub fn new(rate: u64, per: Duration, burst: u64, max_delay: Duration) -> Self {
        let per_us = u64::try_from(per.as_micros()).unwrap_or(u64::MAX);
        Self {
            interval_us: (per_us / rate.max(1)).max(1),
            burst: burst.max(1),
            max_delay_us: u64::try_from(max_delay.as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// The same limit shared by `n` instances: each gets `1/n` of the rate (fail-open fallback).
    pub fn divided(self, n: u32) -> Self {
        Self {
            interval_us: self.interval_us.saturating_mul(u64::from(n.max(1))),
            burst: (self.burst / u64::from(n.max(1))).max(1),
            ..self
        }
    }

    fn tolerance_us(self) -> u64 {
        self.interval_us.saturating_mul(self.burst)
    }
}

/// What a limit decided about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// How long an allowed request waits first (throttling).
    pub delay: Duration,
    /// For a refused request: when a retry can succeed.
    pub retry_after: Duration,
    /// Requests still allowed back to back after this one.
    pub remaining: u64,
    /// When the bucket is full again.
    pub reset: Duration,
}

/// The pure GCRA step: the verdict and the new TAT to store (`None`: leave it unchanged).
pub fn decide(tat: u64, now: u64, p: Params) -> (Verdict, Option<u64>) {
    let new_tat = tat.max(now).saturating_add(p.interval_us);
    let ahead = new_tat - now;
    let tolerance = p.tolerance_us();
    if ahead <= tolerance {
        let verdict = Verdict {
            allowed: true,
            delay: Duration::ZERO,
            retry_after: Duration::ZERO,
            remaining: (tolerance - ahead) / p.interval_us,
            reset: Duration::from_micros(ahead),
        };
        return (verdict, Some(new_tat));
    }
    let over = ahead - tolerance;
    if over <= p.max_delay_us {
        let verdict = Verdict {
            allowed: true,
            delay: Duration::from_micros(over),
            retry_after: Duration::ZERO,
            remaining: 0,
            reset: Duration::from_micros(ahead),
        };
        return (verdict, Some(new_tat));
    }
    let verdict = Verdict {
        allowed: false,
        delay: Duration::ZERO,
        retry_after: Duration::from_micros(over - p.max_delay_us),
        remaining: 0,
        reset: Duration::from_micros(ahead - p.interval_us),
    };
    (verdict, None)
}

/// The longest a bucket is kept while idle (see `LocalLimiter::new`).
const MAX_IDLE: Duration = Duration::from_secs(crate::config::bounds::MAX_SECONDS);

/// A TAT under `old` moved to `new` so that it stands for the same number of requests used.
fn rescale(tat: u64, now: u64, old: Params, new: Params) -> u64 {
    let Some(ahead) = tat.checked_sub(now).filter(|a| *a > 0) else {
        return tat;
    };
    let scaled = u128::from(ahead) * u128::from(new.interval_us) / u128::from(old.interval_us);
    // Never more debt than the new limit can hold: a full burst plus its delay budget.
    let most = new.tolerance_us().saturating_add(new.max_delay_us);
    now.saturating_add(u64::try_from(scaled).unwrap_or(u64::MAX).min(most))
}

/// GCRA state per key in memory, bounded: at most `max_keys` keys, idle ones evicted first. A key
/// idle for the whole tolerance is indistinguishable from a new one, so evicting it loses nothing.
pub struct LocalLimiter {
    cells: moka::sync::Cache<u64, Arc<AtomicU64>>,
    epoch: tokio::time::Instant,
    /// The parameters the limiter was made for (to carry its state over to new ones).
    params: Params,
}

impl LocalLimiter {
    pub fn new(max_keys: u64, p: Params) -> Self {
        // Validation bounds a limit's window to a year; the fail-open fallback (the rate divided
        // among instances) can exceed it, and moka refuses idle times of 1000 years or more.
        let idle = Duration::from_micros(p.tolerance_us().saturating_add(p.max_delay_us))
            .clamp(Duration::from_secs(1), MAX_IDLE);
        Self {
            cells: moka::sync::Cache::builder()
                .max_capacity(max_keys)
                .time_to_idle(idle)
                .build(),
            epoch: tokio::time::Instant::now(),
            params: p,
        }
    }

    /// A limiter for `p` that starts from `old`'s buckets: a reload that changes a limit keeps
    /// what each key has already used, so changing a limit never hands every client a fresh
    /// burst. A key's use is the time its TAT lies ahead of now, in the old interval; it is
    /// carried over as the same number of requests in the new interval.
    pub fn carried_over(old: Option<&Self>, max_keys: u64, p: Params) -> Self {
        let Some(old) = old else {
            return Self::new(max_keys, p);
        };
        let new = Self {
            epoch: old.epoch,
            ..Self::new(max_keys, p)
        };
        let now = old.now_us();
        for (key, cell) in old.cells.iter() {
            let tat = rescale(cell.load(Ordering::Acquire), now, old.params, p);
            new.cells.insert(*key, Arc::new(AtomicU64::new(tat)));
        }
        new
    }

    /// Microseconds on the tokio clock (paused in tests), from an arbitrary epoch.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// One atomic GCRA step for `key`.
    pub fn check(&self, key: u64, p: Params) -> Verdict {
        let now = self.now_us();
        let cell = self.cells.get_with(key, || Arc::new(AtomicU64::new(0)));
        let mut tat = cell.load(Ordering::Acquire);
        loop {
            let (verdict, next) = decide(tat, now, p);
            let Some(next) = next else { return verdict };
            match cell.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return verdict,
                Err(current) => tat = current,
            }
        }
    }

    /// Keys tracked now (after pending evictions).
    pub fn tracked_keys(&self) -> u64 {
        self.cells.run_pending_tasks();
        self.cells.entry_count()
    }
}
