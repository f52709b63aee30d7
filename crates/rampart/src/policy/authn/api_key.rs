//! API keys: issued by Rampart, shown once, stored only as keyed hashes.
//!
//! Threats: a stolen database revealing usable keys; leaked keys going unnoticed; guessing;
//! timing attacks; a revoked key that keeps working on another instance. Invariants:
//! - a key is `rmp_` + 30 base62 characters from the OS-seeded CSPRNG (178 bits) + a 6-character
//!   CRC32 checksum, so scanners can recognise leaked keys and malformed ones are refused without
//!   touching the store;
//! - the store holds HMAC-SHA-256(server secret, key) only; a database dump without the secret
//!   gives nothing usable (a plain hash would do for 178-bit keys; the keyed hash also keeps a
//!   leaked dump from confirming guesses);
//! - the stored hash is compared in constant time; unknown, revoked, expired and out-of-grace keys
//!   get the same public 401;
//! - keys are accepted from one header only, never the query string (see `bearer`);
//! - lookups are cached for at most one second, so a revocation reaches every instance sharing
//!   the store within a second;
//! - a store outage is never a credential failure: it is 503 `auth_unavailable` (not counted by
//!   the brute-force guard), after at most `store.timeout_ms`. Keys fetched from the store within
//!   `api_keys.outage_grace_s` keep working while it lasts, with the record they had then (a
//!   bounded cache of keyed hashes, filled only from the store, so an outage never extends it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use moka::future::Cache;
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::AuthFailure;
use crate::config::secret::Secret;
use crate::context::{AuthMethod, Principal};
use crate::store::{self, ApiKeyRecord, KeyStatus, Store, StoreError};

pub const KEY_PREFIX: &str = "rmp_";
const RANDOM_CHARS: usize = 30;
const CHECKSUM_CHARS: usize = 6;
/// How long a lookup (found or not) may be served from memory: the revocation delay bound.
pub const LOOKUP_CACHE_TTL: Duration = Duration::from_secs(1);
const LOOKUP_CACHE_ENTRIES: u64 = 100_000;
/// Keys remembered for a store outage: the busiest keys of the last `outage_grace_s`.
const OUTAGE_CACHE_ENTRIES: u64 = 100_000;
const TOUCH_FLUSH: Duration = Duration::from_secs(5);
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new key's attributes.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub owner: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Lifetime in seconds; none means no expiry.
    #[serde(default)]
    pub expires_in_s: Option<i64>,
}

/// The API key service: issuing, verifying, rotating and revoking.
pub struct ApiKeys {
    store: Store,
    secret: Secret,
    default_grace: Duration,
    lookups: Cache<String, Option<Arc<ApiKeyRecord>>>,
    /// Records of keys found in the store within the outage grace, by keyed hash.
    verified: Option<Cache<String, Arc<ApiKeyRecord>>>,
    touched: Mutex<HashMap<String, i64>>,
    /// Until when the store counts as down after a failed lookup (ms since `epoch`): lookups
    /// answer from the outage cache at once instead of each waiting for the store's timeout.
    store_down_until_ms: AtomicU64,
    epoch: std::time::Instant,
}

/// How long a failed lookup marks the store down before the next lookup probes it again.
const STORE_RETRY: Duration = Duration::from_secs(1);

impl ApiKeys {
    /// The service with the default outage grace (`DEFAULT_OUTAGE_GRACE_S`).
    pub fn new(store: Store, secret: Secret, default_grace: Duration) -> Arc<Self> {
        let outage_grace = Duration::from_secs(super::config::DEFAULT_OUTAGE_GRACE_S);
        Self::with_outage_grace(store, secret, default_grace, outage_grace)
    }

    /// The service; keys found in the store within `outage_grace` keep working during an outage
    /// (zero turns that off).
    pub fn with_outage_grace(
        store: Store,
        secret: Secret,
        default_grace: Duration,
        outage_grace: Duration,
    ) -> Arc<Self> {
        let lookups = Cache::builder()
            .max_capacity(LOOKUP_CACHE_ENTRIES)
            .time_to_live(LOOKUP_CACHE_TTL)
            .build();
        let verified = (!outage_grace.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(OUTAGE_CACHE_ENTRIES)
                .time_to_live(outage_grace)
                .build()
        });
        Arc::new(Self {
            store,
            secret,
            default_grace,
            lookups,
            verified,
            touched: Mutex::new(HashMap::new()),
            store_down_until_ms: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        })
    }

    /// Writes `last_used_at` in batches; runs until the service is dropped.
    pub fn spawn_usage_writer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TOUCH_FLUSH).await;
                let Some(keys) = weak.upgrade() else { return };
                keys.flush_usage().await;
            }
        })
    }

    pub async fn flush_usage(&self) {
        let batch: Vec<(String, i64)> = match self.touched.lock() {
            Ok(mut map) => map.drain().collect(),
            Err(_) => return,
        };
        if let Err(e) = self.store.touch_keys(&batch).await {
            tracing::warn!(error = %e, "cannot record API key use");
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn hash(&self, key: &str) -> String {
        // HMAC accepts keys of any length; the error case cannot happen.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.secret.expose()) else {
            return String::new();
        };
        mac.update(key.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Verifies a presented key and returns its principal.
    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AuthFailure> {
        if !is_well_formed(presented) {
            return Err(AuthFailure::invalid_token("malformed API key"));
        }
        let hash = self.hash(presented);
        let record = self.lookup(&hash).await?;
        let Some(record) = record else {
            return Err(AuthFailure::invalid_token("unknown API key"));
        };
        // The row was found by this hash; compare again in constant time so that no collation or
        // index quirk can make a near-match count.
        if !bool::from(record.key_hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(AuthFailure::invalid_token("unknown API key"));
        }
        let now = store::now();
        match record.status {
            KeyStatus::Revoked => return Err(AuthFailure::invalid_token("revoked API key")),
            KeyStatus::Rotated if record.grace_until.is_none_or(|g| g <= now) => {
                return Err(AuthFailure::invalid_token(
                    "rotated API key past its grace window",
                ));
            }
            _ => {}
        }
        if record.expires_at.is_some_and(|e| e <= now) {
            return Err(AuthFailure::invalid_token("expired API key"));
        }
        if let Ok(mut touched) = self.touched.lock() {
            touched.insert(record.id.clone(), now);
        }
        Ok(Principal {
            subject: record.owner.clone(),
            method: AuthMethod::ApiKey(Arc::from(record.id.as_str())),
            scopes: record.scopes.clone(),
            roles: record.roles.clone(),
            client_id: None,
            expires_at: record.expires_at.and_then(|e| u64::try_from(e).ok()),
            claims: serde_json::Map::new(),
        })
    }

    async fn lookup(&self, hash: &str) -> Result<Option<Arc<ApiKeyRecord>>, AuthFailure> {
        if let Some(cached) = self.lookups.get(hash).await {
            return Ok(cached);
        }
        if self.elapsed_ms() < self.store_down_until_ms.load(Ordering::Relaxed) {
            return self
                .during_outage(hash, "the store is down (retried within a second)")
                .await;
        }
        let found = match self.store.key_by_hash(hash).await {
            Ok(found) => found.map(Arc::new),
            Err(e) => {
                tracing::error!(error = %e, "API key lookup failed");
                metrics::counter!("rampart_store_errors_total", "use" => "api_keys").increment(1);
                let retry_ms = u64::try_from(STORE_RETRY.as_millis()).unwrap_or(u64::MAX);
                self.store_down_until_ms.store(
                    self.elapsed_ms().saturating_add(retry_ms),
                    Ordering::Relaxed,
                );
                return self.during_outage(hash, &e).await;
            }
        };
        self.lookups.insert(hash.to_owned(), found.clone()).await;
        if let (Some(verified), Some(record)) = (&self.verified, &found) {
            verified.insert(hash.to_owned(), Arc::clone(record)).await;
        }
        Ok(found)
    }

    /// The store cannot answer: a key it gave us recently still counts (its record is checked
    /// again by the caller); any other key cannot be checked, which is not its holder's fault.
    async fn during_outage(
        &self,
        hash: &str,
        error: impl std::fmt::Display,
    ) -> Result<Option<Arc<ApiKeyRecord>>, AuthFailure> {
        if let Some(verified) = &self.verified
            && let Some(record) = verified.get(hash).await
        {
            return Ok(Some(record));
        }
        Err(AuthFailure::unavailable(format!(
            "key store unavailable: {error}"
        )))
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Issues a key; the plaintext is returned once and never stored.
    pub async fn create(&self, new: &NewKey) -> Result<(ApiKeyRecord, String), StoreError> {
        let (plaintext, record) = self.make_record(new);
        self.store.insert_key(&record).await?;
        Ok((record, plaintext))
    }

    /// Issues a replacement with the same attributes; the old key stays valid for `grace`.
    pub async fn rotate(
        &self,
        id: &str,
        grace: Option<Duration>,
    ) -> Result<Option<(ApiKeyRecord, String)>, StoreError> {
        let Some(old) = self.store.key(id).await? else {
            return Ok(None);
        };
        let attributes = NewKey {
            name: old.name.clone(),
            owner: old.owner.clone(),
            scopes: old.scopes.clone(),
            roles: old.roles.clone(),
            expires_in_s: old.expires_at.map(|e| e - old.created_at),
        };
        let (plaintext, record) = self.make_record(&attributes);
        let grace =
            i64::try_from(grace.unwrap_or(self.default_grace).as_secs()).unwrap_or(i64::MAX);
        if !self
            .store
            .rotate_key(id, store::now().saturating_add(grace), &record)
            .await?
        {
            return Ok(None);
        }
        self.forget_cached(id).await;
        Ok(Some((record, plaintext)))
    }

    /// Revokes a key at once on this instance (others within `LOOKUP_CACHE_TTL`).
    pub async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        let done = self.store.revoke_key(id).await?;
        self.forget_cached(id).await;
        Ok(done)
    }

    /// Drops the cached lookups, and the outage copy of key `id`, after a change made here (the
    /// other keys' outage copies stay: they are unchanged).
    async fn forget_cached(&self, id: &str) {
        self.lookups.invalidate_all();
        if let Some(verified) = &self.verified {
            for (hash, record) in verified.iter() {
                if record.id == id {
                    verified.invalidate(hash.as_str()).await;
                }
            }
        }
    }

    fn make_record(&self, new: &NewKey) -> (String, ApiKeyRecord) {
        let plaintext = generate();
        let now = store::now();
        let record = ApiKeyRecord {
            id: format!("key_{}", random_base62(16)),
            key_hash: self.hash(&plaintext),
            prefix: plaintext.chars().take(KEY_PREFIX.len() + 4).collect(),
            name: new.name.clone(),
            owner: new.owner.clone(),
            scopes: new.scopes.clone(),
            roles: new.roles.clone(),
            created_at: now,
            expires_at: new.expires_in_s.map(|s| now.saturating_add(s)),
            last_used_at: None,
            status: KeyStatus::Active,
            grace_until: None,
            replaced_by: None,
        };
        (plaintext, record)
    }
}

/// A fresh key: prefix, random part, checksum.
pub fn generate() -> String {
    let random = random_base62(RANDOM_CHARS);
    let checksum = checksum(&random);
    format!("{KEY_PREFIX}{random}{checksum}")
}

fn random_base62(len: usize) -> String {
    // ThreadRng is a CSPRNG seeded from the OS.
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(BASE62[rng.random_range(0..62)]))
        .collect()
}

fn checksum(random: &str) -> String {
    let mut n = crc32fast::hash(random.as_bytes());
    let mut out = [b'0'; CHECKSUM_CHARS];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Prefix, length, alphabet and checksum, checked before any hashing or lookup.
pub fn is_well_formed(key: &str) -> bool {
    let Some(body) = key.strip_prefix(KEY_PREFIX) else {
        return false;
    };
    if body.len() != RANDOM_CHARS + CHECKSUM_CHARS
        || !body.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return false;
    }
    let (random, sum) = body.split_at(RANDOM_CHARS);
    bool::from(checksum(random).as_bytes().ct_eq(sum.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with("rmp_") && a.len() == 4 + 36);
        assert!(is_well_formed(&a) && is_well_formed(&b));
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let key = generate();
        let mut bytes = key.into_bytes();
        bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
        assert!(!is_well_formed(
            &String::from_utf8(bytes).unwrap_or_default()
        ));
    }

    #[test]
    fn malformed_keys_are_refused_before_lookup() {
        for key in [
            "",
            "rmp_",
            "xyz_abc",
            "rmp_short",
            &format!("rmp_{}", "é".repeat(36)),
        ] {
            assert!(!is_well_formed(key), "{key}");
        }
    }
}
