//! Quotas: at most `limit` requests per key per calendar day or month (UTC), persisted.
//!
//! With `[redis]` every request is one `INCR` (with the key expiring at the period's end), exact
//! across instances. Without Redis the count lives in the store: each instance counts in memory,
//! starting from the stored value the first time it sees a key in a period, and adds its increments
//! to the store every second (so a restart loses at most a second of counting, and instances
//! sharing a store see each other's use only from the stored value they started from).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderValue;
use schemars::JsonSchema;
use serde::Deserialize;
use time::{Date, OffsetDateTime, Time};

use super::keys::KeyValue;
use super::{KeyPart, RateLimitHeaders};
use crate::context::RequestCtx;
use crate::error::GatewayError;
use crate::store::Store;

/// `quotas = [{ name, key, limit, per }]` on a route.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    pub name: String,
    /// As for rate limits; usually `api_key` or `principal`.
    pub key: super::config::KeySpec,
    #[schemars(range(max = crate::config::bounds::MAX_RATE))]
    pub limit: u64,
    pub per: QuotaPeriod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    Day,
    Month,
}

impl QuotaPeriod {
    /// The period containing `now`: its id (`2026-12-02` or `2026-12`) and its end.
    pub fn current(self, now: OffsetDateTime) -> (String, OffsetDateTime) {
        let date = now.date();
        match self {
            Self::Day => {
                let end = date
                    .next_day()
                    .unwrap_or(Date::MAX)
                    .with_time(Time::MIDNIGHT)
                    .assume_utc();
                (format!("{date}"), end)
            }
            Self::Month => {
                let (year, month) = (date.year(), date.month());
                let (next_year, next_month) = match month {
                    time::Month::December => (year + 1, time::Month::January),
                    m => (year, m.next()),
                };
                let end = Date::from_calendar_date(next_year, next_month, 1)
                    .unwrap_or(Date::MAX)
                    .with_time(Time::MIDNIGHT)
                    .assume_utc();
                (format!("{year}-{:02}", u8::from(month)), end)
            }
        }
    }

    fn window_s(self) -> u64 {
        match self {
            Self::Day => 86_400,
            Self::Month => 30 * 86_400,
        }
    }
}

/// Where the counts live.
pub enum QuotaBackend {
    Redis(crate::store::redis::SharedRedis),
    Store(Arc<StoreCounts>),
    /// `rampart check` builds routes without connecting to anything; never serves requests (it
    /// counts nothing, as an unreachable backend would).
    Unconnected,
}

/// One quota of a route.
pub struct Quota {
    pub name: Arc<str>,
    route: Arc<str>,
    parts: Vec<KeyPart>,
    limit: u64,
    per: QuotaPeriod,
    backend: Arc<QuotaBackend>,
    fail_open: bool,
    /// Built once: `Script::new` hashes the source.
    script: ::redis::Script,
}

const QUOTA_SCRIPT: &str = r"
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIREAT', KEYS[1], ARGV[1]) end
return used
";

impl Quota {
    pub fn build(
        route: &str,
        config: &QuotaConfig,
        backend: Arc<QuotaBackend>,
        fail_open: bool,
    ) -> Result<Self, String> {
        Ok(Self {
            name: Arc::from(config.name.as_str()),
            route: Arc::from(route),
            parts: config
                .key
                .parts()
                .into_iter()
                .map(KeyPart::parse)
                .collect::<Result<_, _>>()?,
            limit: config.limit,
            per: config.per,
            backend,
            fail_open,
            script: ::redis::Script::new(QUOTA_SCRIPT),
        })
    }

    pub(super) fn runs_after_authentication(&self) -> bool {
        self.parts.iter().any(KeyPart::needs_principal)
    }

    /// Counts this request; refuses it when the period's quota is spent.
    pub async fn check(
        &self,
        req: &http::request::Parts,
        cx: &RequestCtx,
    ) -> Result<(), GatewayError> {
        let now = OffsetDateTime::now_utc();
        let (period, end) = self.per.current(now);
        let reset_s = u64::try_from((end - now).whole_seconds())
            .unwrap_or(0)
            .max(1);
        let key = KeyValue::of(&self.name, &self.route, &self.parts, req, cx);
        let used = match self.count(&key, &period, end).await {
            Some(used) => used,
            None if self.fail_open => return Ok(()),
            None => {
                return Err(GatewayError::RateLimitUnavailable {
                    limit: Arc::clone(&self.name),
                    cause: "quota counter unavailable",
                });
            }
        };
        if used <= self.limit {
            return Ok(());
        }
        metrics::counter!("rampart_rate_limit_total", "limit" => self.name.to_string(), "route" => self.route.to_string(), "outcome" => "quota_exceeded").increment(1);
        let policy = format!(
            "\"{}\";q={};w={}",
            self.name,
            self.limit,
            self.per.window_s()
        );
        let state = format!("\"{}\";r=0;t={reset_s}", self.name);
        Err(GatewayError::RateLimited {
            limit: self.name.clone(),
            retry_after_s: reset_s,
            headers: Box::new(RateLimitHeaders {
                policy: HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("")),
                state: HeaderValue::from_str(&state).unwrap_or(HeaderValue::from_static("")),
            }),
        })
    }

    async fn count(&self, key: &KeyValue, period: &str, end: OffsetDateTime) -> Option<u64> {
        match &*self.backend {
            QuotaBackend::Redis(connection) => {
                let result: Result<u64, _> = self
                    .script
                    .key(format!(
                        "{}:{period}",
                        key.redis().replacen("rampart:rl:", "rampart:quota:", 1)
                    ))
                    .arg(end.unix_timestamp())
                    .invoke_async(&mut connection.clone())
                    .await;
                result
                    .map_err(|e| {
                        metrics::counter!("rampart_redis_errors_total", "use" => "quota")
                            .increment(1);
                        tracing::warn!(error = ?e.kind(), "quota counter: Redis unavailable");
                    })
                    .ok()
            }
            QuotaBackend::Store(counts) => counts.increment(&key.redis(), period).await,
            QuotaBackend::Unconnected => None,
        }
    }
}

/// Quota counts kept in memory and added to the store every second.
pub struct StoreCounts {
    store: Store,
    cells: moka::future::Cache<(String, String), Arc<Cell>>,
    /// Increments of cells evicted before their flush, written by the next flush.
    orphans: Pending,
}

/// (key, period) and increments not yet written.
type Pending = Arc<std::sync::Mutex<Vec<((String, String), u64)>>>;

struct Cell {
    used: AtomicU64,
    unflushed: AtomicU64,
}

impl StoreCounts {
    pub fn start(store: Store, max_keys: u64) -> Arc<Self> {
        let orphans: Pending = Arc::default();
        let adopt = orphans.clone();
        let this = Arc::new(Self {
            store,
            cells: moka::future::Cache::builder()
                .max_capacity(max_keys)
                .time_to_idle(Duration::from_secs(600))
                .eviction_listener(move |id: Arc<(String, String)>, cell: Arc<Cell>, _| {
                    let delta = cell.unflushed.swap(0, Ordering::Relaxed);
                    if delta > 0
                        && let Ok(mut pending) = adopt.lock()
                    {
                        pending.push(((*id).clone(), delta));
                    }
                })
                .build(),
            orphans,
        });
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(counts) = weak.upgrade() else { return };
                counts.flush().await;
            }
        });
        this
    }

    async fn increment(&self, key: &str, period: &str) -> Option<u64> {
        let id = (key.to_owned(), period.to_owned());
        let cell = self
            .cells
            .try_get_with(id, async {
                let used = self.store.quota_used(key, period).await?;
                Ok::<_, crate::store::StoreError>(Arc::new(Cell {
                    used: AtomicU64::new(used),
                    unflushed: AtomicU64::new(0),
                }))
            })
            .await
            .map_err(|e| tracing::warn!(error = %e, "quota counter: store unavailable"))
            .ok()?;
        cell.unflushed.fetch_add(1, Ordering::Relaxed);
        Some(cell.used.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Adds the increments since the last flush to the store.
    pub async fn flush(&self) {
        let orphans = match self.orphans.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => Vec::new(),
        };
        for ((key, period), delta) in orphans {
            if let Err(e) = self.store.add_quota_usage(&key, &period, delta).await {
                tracing::warn!(error = %e, "cannot save quota usage of an evicted counter");
            }
        }
        for (id, cell) in &self.cells {
            let delta = cell.unflushed.swap(0, Ordering::Relaxed);
            if delta == 0 {
                continue;
            }
            if let Err(e) = self.store.add_quota_usage(&id.0, &id.1, delta).await {
                cell.unflushed.fetch_add(delta, Ordering::Relaxed);
                tracing::warn!(error = %e, "cannot save quota usage");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn increments_of_an_evicted_counter_still_reach_the_store() {
        let path = std::env::temp_dir().join(format!("rampart-quota-{}.db", uuid::Uuid::now_v7()));
        let store = Store::connect(&format!("sqlite:{}", path.display()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let counts = StoreCounts::start(store.clone(), 1);
        assert_eq!(counts.increment("a", "2026-12-02").await, Some(1));
        // Pushed out of memory before the flush (as a spray of keys would do).
        counts
            .cells
            .invalidate(&("a".to_owned(), "2026-12-02".to_owned()))
            .await;
        counts.cells.run_pending_tasks().await;
        counts.flush().await;
        let used = store.quota_used("a", "2026-12-02").await.unwrap_or(0);
        let _ = std::fs::remove_file(&path);
        assert_eq!(used, 1, "the evicted counter's increment was lost");
    }

    #[test]
    fn periods_end_at_midnight_and_on_the_first_of_the_month_utc() {
        let now = time::macros::datetime!(2026-12-31 23:59:30 UTC);
        let (day, end) = QuotaPeriod::Day.current(now);
        assert_eq!(day, "2026-12-31");
        assert_eq!(end, time::macros::datetime!(2027-01-01 00:00 UTC));
        let (month, end) = QuotaPeriod::Month.current(now);
        assert_eq!(month, "2026-12");
        assert_eq!(end, time::macros::datetime!(2027-01-01 00:00 UTC));
    }
}
