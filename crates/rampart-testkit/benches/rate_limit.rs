//! Rate-limit decisions per second on one core: the local GCRA (one hot key, and 100,000 distinct
//! keys in a bounded table) and the Redis script against a real `redis-server` on loopback (one
//! round trip per decision). Run: `cargo bench -p rampart-testkit --bench rate_limit`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark fails loudly

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart::policy::rate_limit::gcra::{LocalLimiter, Params};
use rampart::policy::rate_limit::redis::RedisLimiter;
use rampart_testkit::RedisServer;

fn params() -> Params {
    // High enough that every decision is an allow: the cost measured is the decision itself.
    Params::new(
        1_000_000_000,
        Duration::from_secs(1),
        1_000_000_000,
        Duration::ZERO,
    )
}

fn local(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut group = c.benchmark_group("rate_limit_local");
    group.throughput(Throughput::Elements(1));
    let limiter = LocalLimiter::new(100_000, params());
    group.bench_function("one_key", |b| b.iter(|| limiter.check(42, params())));
    let mut key = 0u64;
    group.bench_function("100k_keys", |b| {
        b.iter(|| {
            key = (key + 1) % 100_000;
            limiter.check(key, params())
        });
    });
    group.finish();
}

fn redis(c: &mut Criterion) {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let limiter = rt.block_on(async {
        let connection = rampart::store::redis::connect_single(&server.url)
            .await
            .unwrap();
        RedisLimiter::new(rampart::store::redis::SharedRedis::Single(connection))
    });
    let mut group = c.benchmark_group("rate_limit_redis");
    group.throughput(Throughput::Elements(1));
    group.bench_function("script_round_trip", |b| {
        b.to_async(&rt)
            .iter(|| async { limiter.check("rampart:rl:bench", params()).await.unwrap() });
    });
    group.finish();
}

criterion_group!(benches, local, redis);
criterion_main!(benches);
