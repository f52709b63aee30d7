//! Rate limiting and throttling: GCRA per key, in memory or shared through Redis.
//!
//! Threats: one client (address, key, principal) exhausting an upstream or the gateway; a spray of
//! distinct keys exhausting memory; instances each admitting the full limit; a Redis outage taking
//! the gateway down. Invariants:
//! - every limit is a GCRA bucket per key; a request over the rate waits its turn when the limit
//!   has `max_delay_ms` (its delay is bounded and depends only on its own key, so the queue is fair
//!   per key), otherwise, or when the wait would be longer, it gets 429 with `Retry-After` and the
//!   `RateLimit-Policy`/`RateLimit` headers, and never reaches the upstream;
//! - limits keyed only by address, route or header run before authentication (no cryptography for
//!   a flood), the others right after it;
//! - memory is bounded per limit (`max_tracked_keys`, idle keys evicted first);
//! - with `[redis]`, one script call per decision shares the bucket between instances; when Redis
//!   fails, `on_redis_failure` applies (`open`: local buckets with the rate divided by
//!   `expected_instances`; `closed`: 503), with a warning and a metric, and Redis is tried again a
//!   second later.

pub mod concurrency;
pub mod config;
pub mod gcra;
mod keys;
pub mod quota;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::HeaderValue;
use tokio::sync::Semaphore;

pub use config::{FailureMode, KeyPart, LimitConfig, RateLimitSettings};
use gcra::{LocalLimiter, Params, Verdict};

use crate::keep::Kept;

use crate::context::RequestCtx;
use crate::error::GatewayError;
use crate::pipeline::{Flow, Policy, Stage};

/// Which bucket of a limit: its own, or the local fallback used while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bucket {
    Primary,
    FailOpen,
}

/// Route, limit and which of its buckets.
type BucketKey = (Arc<str>, Arc<str>, Bucket);

/// The rate-limit state of the process, kept across reloads (see `crate::keep`): the Redis
/// limiter, quota counts, the local buckets of every limit and the concurrency slots of every
/// route. A reload that keeps a limit's definition keeps its buckets; one that changes it starts
/// from the old buckets.
#[derive(Default)]
pub struct RateLimitState {
    pub redis: Option<redis::RedisLimiter>,
    /// Where quota counts live (Redis, else the store); `None` without either.
    pub quotas: Option<Arc<quota::QuotaBackend>>,
    buckets: Kept<BucketKey, LocalLimiter, (u64, Params)>,
    slots: Kept<Arc<str>, Semaphore, u32>,
    queue: Kept<(), Semaphore, usize>,
}

impl RateLimitState {
    pub fn new(
        redis: Option<crate::store::redis::SharedRedis>,
        store: Option<crate::store::Store>,
        max_tracked_keys: u64,
    ) -> Self {
        let quotas = match (&redis, store) {
            (Some(connection), _) => Some(quota::QuotaBackend::Redis(connection.clone())),
            (None, Some(store)) => Some(quota::QuotaBackend::Store(quota::StoreCounts::start(
                store,
                max_tracked_keys,
            ))),
            (None, None) => None,
        };
        Self {
            quotas: quotas.map(Arc::new),
            redis: redis.map(redis::RedisLimiter::new),
            ..Self::default()
        }
    }

    /// State for `rampart check`: nothing connected, quotas counted nowhere.
    pub fn unconnected(quotas: Option<Arc<quota::QuotaBackend>>) -> Self {
        Self {
            quotas,
            ..Self::default()
        }
    }

    /// The concurrency slots of a route: kept while `max_in_flight` is unchanged (a new bound
    /// starts with a new semaphore; requests holding the old one finish on it).
    pub fn slots(&self, route: &str, max_in_flight: u32) -> Arc<Semaphore> {
        self.slots
            .get_or_make(Arc::from(route), max_in_flight, |_| {
                Semaphore::new(max_in_flight as usize)
            })
    }

    fn bucket(&self, key: BucketKey, max_keys: u64, params: Params) -> Arc<LocalLimiter> {
        self.buckets.get_or_make(key, (max_keys, params), |old| {
            LocalLimiter::carried_over(old, max_keys, params)
        })
    }
}

/// The rate-limit settings of one runtime over the process's state.
pub struct RateLimitShared {
    pub settings: RateLimitSettings,
    pub state: Arc<RateLimitState>,
    /// Requests waiting for their turn, across all limits.
    queue: Arc<Semaphore>,
}

impl RateLimitShared {
    pub fn new(settings: RateLimitSettings, state: Arc<RateLimitState>) -> Self {
        let size = settings.max_queued;
        Self {
            queue: state.queue.get_or_make((), size, |_| Semaphore::new(size)),
            settings,
            state,
        }
    }
}

/// One configured limit, ready to decide.
pub struct Limit {
    pub name: Arc<str>,
    route: Arc<str>,
    parts: Vec<KeyPart>,
    params: Params,
    window_s: u64,
    local: Arc<LocalLimiter>,
    /// The fail-open fallback when the limit is shared through Redis.
    fallback: Option<(Arc<LocalLimiter>, Params)>,
    /// `rampart_rate_limit_total` for allowed, delayed and rejected, registered once (no label
    /// strings built per request).
    outcomes: [metrics::Counter; 3],
}

impl Limit {
    pub fn build(
        route: &str,
        config: &LimitConfig,
        shared: &RateLimitShared,
    ) -> Result<Self, String> {
        let parts = config
            .key
            .parts()
            .into_iter()
            .map(KeyPart::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let per = Duration::from_secs(config.per.seconds());
        let burst = config.burst.unwrap_or(config.rate);
        let params = Params::new(
            config.rate,
            per,
            burst,
            Duration::from_millis(config.max_delay_ms),
        );
        let max_keys = shared.settings.max_tracked_keys;
        let key = |bucket| (Arc::from(route), Arc::from(config.name.as_str()), bucket);
        let fallback = shared.state.redis.as_ref().map(|_| {
            let divided = params.divided(shared.settings.expected_instances);
            let local = shared
                .state
                .bucket(key(Bucket::FailOpen), max_keys, divided);
            (local, divided)
        });
        let outcome = |outcome: &'static str| metrics::counter!("rampart_rate_limit_total", "limit" => config.name.clone(), "route" => route.to_owned(), "outcome" => outcome);
        Ok(Self {
            outcomes: [outcome("allowed"), outcome("delayed"), outcome("rejected")],
            name: Arc::from(config.name.as_str()),
            route: Arc::from(route),
            window_s: (params.interval_us.saturating_mul(params.burst) / 1_000_000).max(1),
            local: shared.state.bucket(key(Bucket::Primary), max_keys, params),
            fallback,
            parts,
            params,
        })
    }

    fn runs_after_authentication(&self) -> bool {
        self.parts.iter().any(KeyPart::needs_principal)
    }

    async fn check(
        &self,
        req: &http::request::Parts,
        cx: &RequestCtx,
        shared: &RateLimitShared,
    ) -> Result<Verdict, GatewayError> {
        let key = keys::KeyValue::of(&self.name, &self.route, &self.parts, req, cx);
        let Some(redis) = &shared.state.redis else {
            return Ok(self.local.check(key.local(), self.params));
        };
        if let Some(verdict) = redis.check(&key.redis(), self.params).await {
            return Ok(verdict);
        }
        match (shared.settings.on_redis_failure, &self.fallback) {
            (FailureMode::Open, Some((local, params))) => Ok(local.check(key.local(), *params)),
            _ => Err(GatewayError::RateLimitUnavailable {
                limit: Arc::clone(&self.name),
                cause: "Redis unavailable",
            }),
        }
    }

    fn policy_header(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.name, self.params.burst, self.window_s
        )
    }
}

/// The limits of one route that run at one stage.
pub struct RateLimit {
    stage: Stage,
    limits: Vec<Limit>,
    quotas: Vec<quota::Quota>,
    shared: Arc<RateLimitShared>,
    /// `RateLimit-Policy` for every limit of the stage, computed once.
    policy_header: HeaderValue,
}

impl RateLimit {
    /// Splits a route's limits into the one before and the one after authentication.
    pub fn build(
        route: &str,
        configs: &[LimitConfig],
        quotas: &[quota::QuotaConfig],
        shared: &Arc<RateLimitShared>,
    ) -> Result<Vec<Self>, String> {
        let mut before = (Vec::new(), Vec::new());
        let mut after = (Vec::new(), Vec::new());
        for config in configs {
            let limit = Limit::build(route, config, shared)?;
            if limit.runs_after_authentication() {
                after.0.push(limit);
            } else {
                before.0.push(limit);
            }
        }
        for config in quotas {
            let backend = shared
                .state
                .quotas
                .clone()
                .ok_or("quotas need `[redis]` or the store")?;
            let fail_open = shared.settings.on_redis_failure == FailureMode::Open;
            let quota = quota::Quota::build(route, config, backend, fail_open)?;
            if quota.runs_after_authentication() {
                after.1.push(quota);
            } else {
                before.1.push(quota);
            }
        }
        Ok([
            (Stage::RateLimitByAddress, before),
            (Stage::RateLimitByPrincipal, after),
        ]
        .into_iter()
        .filter(|(_, (limits, quotas))| !limits.is_empty() || !quotas.is_empty())
        .map(|(stage, (limits, quotas))| {
            let text: Vec<String> = limits.iter().map(Limit::policy_header).collect();
            Self {
                stage,
                policy_header: HeaderValue::from_str(&text.join(", "))
                    .unwrap_or(HeaderValue::from_static("")),
                limits,
                quotas,
                shared: shared.clone(),
            }
        })
        .collect())
    }

    async fn run(
        &self,
        req: &http::request::Parts,
        cx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let mut delay = Duration::ZERO;
        let mut tightest: Option<(&Limit, Verdict)> = None;
        for limit in &self.limits {
            let verdict = limit.check(req, cx, &self.shared).await?;
            let outcome = if !verdict.allowed {
                2
            } else if verdict.delay > Duration::ZERO {
                1
            } else {
                0
            };
            limit.outcomes[outcome].increment(1);
            if !verdict.allowed {
                let headers = Box::new(self.headers(limit, &verdict));
                return Err(GatewayError::RateLimited {
                    limit: limit.name.clone(),
                    retry_after_s: verdict.retry_after.as_secs_f64().ceil().max(1.0) as u64,
                    headers,
                });
            }
            delay = delay.max(verdict.delay);
            if tightest.is_none_or(|(_, t)| verdict.remaining < t.remaining) {
                tightest = Some((limit, verdict));
            }
        }
        // Quotas last: a request refused by a rate limit does not use up quota.
        for quota in &self.quotas {
            quota.check(req, cx).await?;
        }
        if let Some((limit, verdict)) = tightest {
            if self.shared.settings.headers_on_success {
                cx.rate_limit_headers = Some(self.headers(limit, &verdict));
            }
            if delay > Duration::ZERO {
                self.wait(limit, delay, cx).await?;
            }
        }
        Ok(())
    }

    /// Throttling: waits in the bounded queue; a full queue sheds the request.
    async fn wait(
        &self,
        limit: &Limit,
        delay: Duration,
        cx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let Ok(_slot) = self.shared.queue.try_acquire() else {
            return Err(GatewayError::Overloaded {
                reason: "throttling queue full",
            });
        };
        cx.reason = Some(format!(
            "delayed {} ms by rate limit `{}`",
            delay.as_millis(),
            limit.name
        ));
        tokio::time::sleep(delay).await;
        Ok(())
    }

    fn headers(&self, limit: &Limit, verdict: &Verdict) -> RateLimitHeaders {
        let state = format!(
            "\"{}\";r={};t={}",
            limit.name,
            verdict.remaining,
            verdict.reset.as_secs_f64().ceil() as u64
        );
        RateLimitHeaders {
            policy: self.policy_header.clone(),
            state: HeaderValue::from_str(&state).unwrap_or(HeaderValue::from_static("")),
        }
    }
}

pub use crate::error::denial::RateLimitHeaders;

impl Policy for RateLimit {
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    fn stage(&self) -> Stage {
        self.stage
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut http::request::Parts,
        cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<Flow, GatewayError>> {
        Box::pin(async move {
            self.run(req, cx).await?;
            Ok(Flow::Continue)
        })
    }

    fn on_response(&self, rsp: &mut http::response::Parts, cx: &RequestCtx) {
        if let Some(headers) = &cx.rate_limit_headers {
            headers.apply(&mut rsp.headers);
        }
    }
}

#[cfg(test)]
mod tests;
