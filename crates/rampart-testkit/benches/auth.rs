//! Authentication costs on one core: JWT verification per algorithm (first sight, which checks the
//! signature, and repeated, which is a cache lookup), DPoP proof verification, and API-key lookup
//! (cached, and the store query behind it). Run: `cargo bench -p rampart-testkit --bench auth`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark fails loudly

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use rampart::policy::authn::api_key::NewKey;
use rampart::policy::authn::{ApiKeys, JwtIssuer, JwtIssuerConfig};
use rampart::store::Store;
use rampart_testkit::{TestKey, now};
use serde_json::json;

const ISSUER: &str = "https://issuer.bench";
const AUD: &str = "bench";

fn issuer_for(key: &TestKey, dir: &std::path::Path) -> JwtIssuer {
    let alg = rampart_testkit::alg_name(key.alg);
    let source = if key.alg == Algorithm::HS256 {
        std::fs::write(dir.join("hmac.secret"), "0123456789abcdef0123456789abcdef").unwrap();
        format!(
            "hmac_secret = {{ file = \"{}\" }}",
            dir.join("hmac.secret").display()
        )
    } else {
        let path = dir.join(format!("{}.pem", key.kid));
        std::fs::write(&path, &key.public_pem).unwrap();
        format!("keys_file = \"{}\"", path.display())
    };
    let text = format!(
        "name = \"bench\"\nissuer = \"{ISSUER}\"\naudiences = [\"{AUD}\"]\nalgorithms = [\"{alg}\"]\n{source}\n"
    );
    let config: JwtIssuerConfig = toml::from_str(&text).unwrap();
    JwtIssuer::build(&config).unwrap()
}

fn token(key: &TestKey, n: u64) -> String {
    let now = now();
    key.sign(
        &json!({"iss": ISSUER, "aud": AUD, "sub": "user-1", "iat": now, "exp": now + 3600,
                "jti": format!("j{n}"), "scope": "orders:read"}),
        "JWT",
    )
}

fn jwt(c: &mut Criterion) {
    rampart_testkit::init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        TestKey::generate("rs", Algorithm::RS256),
        TestKey::generate("ps", Algorithm::PS256),
        TestKey::generate("es256", Algorithm::ES256),
        TestKey::generate("es384", Algorithm::ES384),
        TestKey::generate("ed", Algorithm::EdDSA),
        TestKey::hmac("hs", Algorithm::HS256, b"0123456789abcdef0123456789abcdef"),
    ];
    let mut group = c.benchmark_group("jwt_verify");
    group.measurement_time(Duration::from_secs(3));
    for key in &keys {
        let alg = rampart_testkit::alg_name(key.alg);
        let issuer = issuer_for(key, dir.path());
        // First sight: a token never seen before, so the signature is checked.
        let mut n = 0;
        group.bench_function(format!("{alg}/uncached"), |b| {
            b.to_async(&rt).iter_batched(
                || {
                    n += 1;
                    token(key, n)
                },
                |t| {
                    let issuer = &issuer;
                    async move { issuer.verify(&t).await.unwrap() }
                },
                BatchSize::SmallInput,
            );
        });
        let repeated = token(key, 0);
        rt.block_on(issuer.verify(&repeated)).unwrap();
        group.bench_function(format!("{alg}/cached"), |b| {
            b.to_async(&rt).iter(|| issuer.verify(&repeated));
        });
    }
    group.finish();
}

fn api_keys(c: &mut Criterion) {
    rampart_testkit::init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("secret"),
        "bench-secret-0123456789-0123456789-01",
    )
    .unwrap();
    let source: rampart::config::secret::SecretSource = toml::from_str(&format!(
        "file = \"{}\"",
        dir.path().join("secret").display()
    ))
    .unwrap();
    let url = format!("sqlite:{}", dir.path().join("keys.db").display());
    let (keys, key, hash) = rt.block_on(async {
        let store = Store::connect(&url).await.unwrap();
        let keys = ApiKeys::new(store, source.load().unwrap(), Duration::from_secs(60));
        let new = NewKey {
            name: "bench".into(),
            owner: "bench".into(),
            ..NewKey::default()
        };
        for _ in 0..1000 {
            keys.create(&new).await.unwrap();
        }
        let (record, key) = keys.create(&new).await.unwrap();
        (keys, key, record.key_hash.clone())
    });
    let keys: Arc<ApiKeys> = keys;
    rt.block_on(keys.authenticate(&key)).unwrap();
    let mut group = c.benchmark_group("api_key");
    group.bench_function("cached", |b| {
        b.to_async(&rt).iter(|| keys.authenticate(&key));
    });
    group.bench_function("sqlite_lookup", |b| {
        b.to_async(&rt).iter(|| keys.store().key_by_hash(&hash));
    });
    group.finish();
}

criterion_group!(benches, jwt, api_keys);
criterion_main!(benches);
