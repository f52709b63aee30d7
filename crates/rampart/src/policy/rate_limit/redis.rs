//! The same GCRA in Redis: one atomic script call per decision, with Redis's own clock so that
//! instances with skewed clocks still share one timeline. Keys are `rampart:rl:` + a hash of the
//! limit and its key values, so neither API keys nor claims are written to Redis.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::redis::SharedRedis;

use super::gcra::{Params, Verdict};

/// KEYS[1] = the bucket; ARGV = interval, burst, max delay (µs).
/// Returns {allowed, delay, retry_after, remaining, reset} (times in µs).
const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local max_delay = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead <= tolerance then
  redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(ahead / 1000) + 1)
  return {1, 0, 0, math.floor((tolerance - ahead) / interval), ahead}
end
local over = ahead - tolerance
if over <= max_delay then
  redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(ahead / 1000) + 1)
  return {1, over, 0, 0, ahead}
end
return {0, 0, over - max_delay, 0, ahead - interval}
";

/// After a Redis error, skip Redis for this long (local fallback or 503) before trying again.
const BACKOFF: Duration = Duration::from_secs(1);

pub struct RedisLimiter {
    connection: SharedRedis,
    script: redis::Script,
    /// Microseconds on `epoch` until which Redis is not asked (circuit open).
    down_until: AtomicU64,
    epoch: tokio::time::Instant,
}

impl RedisLimiter {
    pub fn new(connection: SharedRedis) -> Self {
        Self {
            connection,
            script: redis::Script::new(GCRA_SCRIPT),
            down_until: AtomicU64::new(0),
            epoch: tokio::time::Instant::now(),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// `None` when Redis is failing (the caller applies the failure mode).
    pub async fn check(&self, key: &str, p: Params) -> Option<Verdict> {
        if self.now_us() < self.down_until.load(Ordering::Relaxed) {
            return None;
        }
        let result: Result<(u8, u64, u64, u64, u64), _> = self
            .script
            .key(key)
            .arg(p.interval_us)
            .arg(p.burst)
            .arg(p.max_delay_us)
            .invoke_async(&mut self.connection.clone())
            .await;
        match result {
            Ok((allowed, delay, retry_after, remaining, reset)) => Some(Verdict {
                allowed: allowed == 1,
                delay: Duration::from_micros(delay),
                retry_after: Duration::from_micros(retry_after),
                remaining,
                reset: Duration::from_micros(reset),
            }),
            Err(e) => {
                let backoff = u64::try_from(BACKOFF.as_micros()).unwrap_or(u64::MAX);
                let previous = self
                    .down_until
                    .swap(self.now_us() + backoff, Ordering::Relaxed);
                if previous == 0 || self.now_us() > previous + backoff * 10 {
                    let kind = format!("{:?}", e.kind());
                    tracing::warn!(error = %kind, "rate limits: Redis unavailable; applying the configured failure mode");
                }
                metrics::counter!("rampart_redis_errors_total", "use" => "rate_limit").increment(1);
                None
            }
        }
    }
}
