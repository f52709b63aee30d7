//! Verification keys: static (a file or an HMAC secret) or fetched from a JWKS URL.
//!
//! Invariants: a key is found only by exact `kid` (or, without `kid`, when exactly one key fits the
//! algorithm); a key with its own `alg` is only used for that algorithm; keys embedded in a token
//! (`jwk`, `jku`, `x5u`, `x5c`) are never looked at. Remote keys are cached for the response's
//! `max-age` clamped to the configured bounds; an unknown `kid` triggers at most one fetch per
//! cooldown, whatever the number of requests (single flight, so a spray of random `kid`s cannot
//! turn the gateway into a flood against the issuer); a failed fetch keeps the last good keys.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

/// The most of a JWKS or discovery document that is read.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

struct KeyEntry {
    kid: Option<String>,
    alg: Option<Algorithm>,
    key: Arc<DecodingKey>,
}

/// A set of verification keys.
#[derive(Default)]
pub(crate) struct KeySet {
    entries: Vec<KeyEntry>,
}

impl KeySet {
    /// Signing keys of a JWKS; keys for encryption, private members and unusable keys are skipped.
    pub(crate) fn from_jwks(set: &JwkSet) -> Self {
        let entries = set
            .keys
            .iter()
            .filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
            .filter_map(|jwk| {
                let key = DecodingKey::from_jwk(jwk).ok()?;
                let alg = jwk
                    .common
                    .key_algorithm
                    .and_then(|a| serde_json::to_value(a).ok())
                    .and_then(|v| serde_json::from_value::<Algorithm>(v).ok());
                Some(KeyEntry {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key: Arc::new(key),
                })
            })
            .collect();
        Self { entries }
    }

    /// A JWKS or single JWK in JSON, or a PEM public key.
    pub(crate) fn from_file_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.trim_ascii_start().starts_with(b"{") {
            if let Ok(set) = serde_json::from_slice::<JwkSet>(bytes) {
                return non_empty(Self::from_jwks(&set));
            }
            let jwk =
                serde_json::from_slice(bytes).map_err(|e| format!("not a JWK or JWKS: {e}"))?;
            return non_empty(Self::from_jwks(&JwkSet { keys: vec![jwk] }));
        }
        let key = match pem_key_type(bytes)? {
            PemKeyType::Rsa => DecodingKey::from_rsa_pem(bytes),
            PemKeyType::Ec => DecodingKey::from_ec_pem(bytes),
            PemKeyType::Ed25519 => DecodingKey::from_ed_pem(bytes),
        }
        .map_err(|e| format!("unusable PEM public key: {e}"))?;
        Ok(Self::single(key))
    }

    pub(crate) fn single(key: DecodingKey) -> Self {
        Self {
            entries: vec![KeyEntry {
                kid: None,
                alg: None,
                key: Arc::new(key),
            }],
        }
    }

    /// The key for a token's `kid` and `alg`.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<DecodingKey>> {
        let fits = |e: &&KeyEntry| e.alg.is_none_or(|a| a == alg) && e.key.family() == alg.family();
        match kid {
            // A single key from a PEM file has no kid to match: the token's kid names nothing.
            Some(_) if matches!(self.entries.as_slice(), [only] if only.kid.is_none()) => {
                self.entries.first().filter(fits).map(|e| e.key.clone())
            }
            Some(kid) => self
                .entries
                .iter()
                .find(|e| e.kid.as_deref() == Some(kid))
                .filter(fits)
                .map(|e| e.key.clone()),

            None => {
                let mut candidates = self.entries.iter().filter(fits);
                let only = candidates.next()?;
                candidates.next().is_none().then(|| only.key.clone())
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

enum PemKeyType {
    Rsa,
    Ec,
    Ed25519,
}

/// The key type of a PEM public key, from its SubjectPublicKeyInfo algorithm OID: jsonwebtoken's
/// PEM constructors accept any `PUBLIC KEY` and would label an EC key as RSA.
fn pem_key_type(pem: &[u8]) -> Result<PemKeyType, String> {
    use rustls_pki_types::SubjectPublicKeyInfoDer;
    use rustls_pki_types::pem::PemObject;
    if pem.windows(14).any(|w| w == b"RSA PUBLIC KEY") {
        return Ok(PemKeyType::Rsa);
    }
    let der = SubjectPublicKeyInfoDer::from_pem_slice(pem)
        .map_err(|_| "not a PEM public key".to_owned())?;
    const RSA: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    const EC: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    if has(RSA) {
        Ok(PemKeyType::Rsa)
    } else if has(EC) {
        Ok(PemKeyType::Ec)
    } else if has(ED25519) {
        Ok(PemKeyType::Ed25519)
    } else {
        Err("PEM public key of an unsupported type".to_owned())
    }
}

fn non_empty(set: KeySet) -> Result<KeySet, String> {
    if set.entries.is_empty() {
        Err("no usable signing key".to_owned())
    } else {
        Ok(set)
    }
}

/// Where an issuer's keys come from.
pub(crate) enum KeySource {
    Static(KeySet),
    Remote(RemoteJwks),
}

impl KeySource {
    pub(crate) async fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<DecodingKey>> {
        match self {
            Self::Static(set) => set.find(kid, alg),
            Self::Remote(remote) => remote.find(kid, alg).await,
        }
    }
}

/// Where to fetch from.
pub(crate) enum JwksLocation {
    Url(String),
    /// The issuer, whose discovery document names `jwks_uri`.
    Discovery(String),
}

struct Snapshot {
    keys: Arc<KeySet>,
    fresh_until: Instant,
    fetched_at: Option<Instant>,
}

/// Fetch bounds.
#[derive(Clone, Copy)]
pub(crate) struct CachePolicy {
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    pub cooldown: Duration,
    pub allow_http: bool,
}

/// A cached remote JWKS.
pub(crate) struct RemoteJwks {
    issuer_name: Arc<str>,
    location: JwksLocation,
    client: reqwest::Client,
    policy: CachePolicy,
    snapshot: ArcSwap<Snapshot>,
    /// Held while fetching (single flight); remembers the last attempt for the cooldown.
    fetching: Mutex<Option<Instant>>,
}

impl RemoteJwks {
    pub(crate) fn new(
        issuer_name: &str,
        location: JwksLocation,
        policy: CachePolicy,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!policy.allow_http)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let now = Instant::now();
        Ok(Self {
            issuer_name: Arc::from(issuer_name),
            location,
            client,
            policy,
            snapshot: ArcSwap::from_pointee(Snapshot {
                keys: Arc::new(KeySet::default()),
                fresh_until: now,
                fetched_at: None,
            }),
            fetching: Mutex::new(None),
        })
    }

    async fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<DecodingKey>> {
        let asked_at = Instant::now();
        let snapshot = self.snapshot.load_full();
        let stale = asked_at >= snapshot.fresh_until;
        if !stale && let Some(key) = snapshot.keys.find(kid, alg) {
            return Some(key);
        }
        self.refresh(asked_at, stale).await;
        self.snapshot.load().keys.find(kid, alg)
    }

    /// Fetches unless another task just did, or (for an unknown `kid` with fresh keys) the last
    /// attempt is within the cooldown.
    async fn refresh(&self, asked_at: Instant, stale: bool) {
        let mut last_attempt = self.fetching.lock().await;
        let current = self.snapshot.load_full();
        if current.fetched_at.is_some_and(|t| t >= asked_at) {
            return;
        }
        let fresh = Instant::now() < current.fresh_until;
        if (fresh || !stale) && last_attempt.is_some_and(|t| t.elapsed() < self.policy.cooldown) {
            return;
        }
        *last_attempt = Some(Instant::now());
        let result = self.fetch().await;
        let now = Instant::now();
        let next = match result {
            Ok((keys, ttl)) => {
                metrics::counter!("rampart_jwks_fetches_total", "issuer" => self.issuer_name.to_string(), "result" => "ok").increment(1);
                Snapshot {
                    keys: Arc::new(keys),
                    fresh_until: now + ttl,
                    fetched_at: Some(now),
                }
            }
            Err(why) => {
                metrics::counter!("rampart_jwks_fetches_total", "issuer" => self.issuer_name.to_string(), "result" => "error").increment(1);
                tracing::warn!(issuer = %self.issuer_name, error = %why, keys_kept = current.keys.len(), "JWKS fetch failed; keeping the last good keys");
                Snapshot {
                    keys: current.keys.clone(),
                    fresh_until: now + self.policy.cooldown,
                    fetched_at: current.fetched_at,
                }
            }
        };
        self.snapshot.store(Arc::new(next));
    }

    async fn fetch(&self) -> Result<(KeySet, Duration), String> {
        let url = match &self.location {
            JwksLocation::Url(url) => url.clone(),
            JwksLocation::Discovery(issuer) => self.discover(issuer).await?,
        };
        let (body, max_age) = self.get(&url).await?;
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))?;
        let keys = non_empty(KeySet::from_jwks(&set))?;
        let ttl = max_age
            .unwrap_or(self.policy.min_ttl)
            .clamp(self.policy.min_ttl, self.policy.max_ttl);
        Ok((keys, ttl))
    }

    async fn discover(&self, issuer: &str) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let (body, _) = self.get(&url).await?;
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("discovery: {e}"))?;
        if doc["issuer"].as_str() != Some(issuer) {
            return Err("discovery document names another issuer".to_owned());
        }
        doc["jwks_uri"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "discovery document has no jwks_uri".to_owned())
    }

    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), String> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: status {}", response.status()));
        }
        let max_age = response
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(format!("GET {url}: document too large"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("GET {url}: document too large"));
        }
        Ok((body.to_vec(), max_age))
    }
}

/// `max-age` from a Cache-Control value; `no-store`/`no-cache` mean zero (then the minimum applies).
fn max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return Some(Duration::ZERO);
        }
        if let Some(v) = directive.strip_prefix("max-age=") {
            age = v.trim_matches('"').parse().ok().map(Duration::from_secs);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age_is_read() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
    }

    #[test]
    fn a_key_pinned_to_one_algorithm_is_not_used_for_another() {
        let set = KeySet::from_file_bytes(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ1Njc4","alg":"HS256","kid":"a"}]}"#);
        let set = set.unwrap_or_default();
        assert!(set.find(Some("a"), Algorithm::HS256).is_some());
        assert!(set.find(Some("a"), Algorithm::HS384).is_none());
        assert!(
            set.find(Some("b"), Algorithm::HS256).is_none(),
            "kid is an exact lookup"
        );
    }
}
