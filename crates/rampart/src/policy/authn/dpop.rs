//! DPoP: proof of possession for access tokens (RFC 9449).
//!
//! Threats: a leaked access token replayed by someone without the client's private key; a captured
//! proof replayed; a proof made for another request; a bound token downgraded to a plain Bearer
//! token. Invariants, all checked before the request goes on:
//! - a token carrying `cnf.jkt` is accepted only with the `DPoP` scheme and a valid proof; as
//!   `Bearer` it is refused (downgrade); a `DPoP`-scheme token without `cnf.jkt` is refused too;
//! - the proof is one compact JWS with strict JSON, `typ` `dpop+jwt`, an asymmetric algorithm from
//!   the allow-list, and a public `jwk` (private members refused) that verifies its signature;
//! - `htm` is the request method, `htu` the request URI (RFC 3986 normalization, no query),
//!   `iat` at most `max_age_s` old and `leeway_s` ahead (with `leeway_s` of skew either way), `ath` the token's SHA-256, the key's RFC 7638
//!   thumbprint equals `cnf.jkt`, and `jti` was never seen within the window (local bounded cache,
//!   or Redis `SET NX` shared by every instance);
//! - with `require_nonce`, the proof carries a fresh server nonce (`DPoP-Nonce`, RFC 9449 section 8).
//!
//! jsonwebtoken checks the signature; the checks above are done here because the crate has no DPoP
//! support (and its `Jwk` type silently drops private members, so the raw header is inspected).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::HeaderValue;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{DecodingKey, Validation};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config::JwtAlgorithm;
use super::{AuthFailure, strict_json};
use crate::config::Issue;
use crate::config::secret::SecretSource;

pub const DEFAULT_MAX_AGE_S: u64 = 60;
pub const DEFAULT_LEEWAY_S: u64 = 5;
pub const DEFAULT_NONCE_LIFETIME_S: u64 = 300;
pub const DEFAULT_REPLAY_ENTRIES: u64 = 100_000;
pub const DEFAULT_MAX_PROOF_BYTES: usize = 8192;
/// The longest `jti` kept (RFC 9449 asks for enough entropy, not a length; this bounds memory).
const MAX_JTI_BYTES: usize = 256;
/// Members that only a private JWK has.
const PRIVATE_JWK_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// `[auth.dpop]`: how DPoP proofs are checked.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DpopConfig {
    /// Accepted proof algorithms (asymmetric only).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<JwtAlgorithm>,
    /// How old a proof's `iat` may be.
    #[serde(default = "default_max_age")]
    #[schemars(range(max = crate::config::bounds::MAX_SECONDS))]
    pub max_age_s: u64,
    /// How far in the future a proof's `iat` may be (clock skew).
    #[serde(default = "default_leeway")]
    #[schemars(range(max = crate::config::bounds::MAX_SECONDS))]
    pub leeway_s: u64,
    /// Require a server-issued nonce in every proof (`use_dpop_nonce` otherwise).
    #[serde(default)]
    pub require_nonce: bool,
    /// Secret keying the nonces, shared by instances behind one load balancer (at least 32 bytes).
    /// Without it each instance makes its own, and a client may need one extra round trip.
    #[serde(default)]
    pub nonce_secret: Option<SecretSource>,
    /// A nonce is good for between one and two of these periods.
    #[serde(default = "default_nonce_lifetime")]
    #[schemars(range(max = crate::config::bounds::MAX_SECONDS))]
    pub nonce_lifetime_s: u64,
    /// The most proof ids remembered in memory (without Redis).
    #[serde(default = "default_replay_entries")]
    #[schemars(range(max = crate::config::bounds::MAX_ENTRIES))]
    pub replay_cache_entries: u64,
    #[serde(default = "default_max_proof_bytes")]
    #[schemars(range(max = crate::config::bounds::MAX_ITEM_BYTES))]
    pub max_proof_bytes: usize,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            algorithms: default_algorithms(),
            max_age_s: DEFAULT_MAX_AGE_S,
            leeway_s: DEFAULT_LEEWAY_S,
            require_nonce: false,
            nonce_secret: None,
            nonce_lifetime_s: DEFAULT_NONCE_LIFETIME_S,
            replay_cache_entries: DEFAULT_REPLAY_ENTRIES,
            max_proof_bytes: DEFAULT_MAX_PROOF_BYTES,
        }
    }
}

fn default_algorithms() -> Vec<JwtAlgorithm> {
    use JwtAlgorithm as A;
    vec![A::ES256, A::ES384, A::EdDSA, A::PS256, A::RS256]
}
fn default_max_age() -> u64 {
    DEFAULT_MAX_AGE_S
}
fn default_leeway() -> u64 {
    DEFAULT_LEEWAY_S
}
fn default_nonce_lifetime() -> u64 {
    DEFAULT_NONCE_LIFETIME_S
}
fn default_replay_entries() -> u64 {
    DEFAULT_REPLAY_ENTRIES
}
fn default_max_proof_bytes() -> usize {
    DEFAULT_MAX_PROOF_BYTES
}

/// Checks `[auth.dpop]`.
pub fn validate(config: &DpopConfig, issues: &mut Vec<Issue>) {
    if config.algorithms.is_empty() || config.algorithms.iter().any(|a| a.is_hmac()) {
        issues.push(Issue::new(
            "/auth/dpop/algorithms",
            "list asymmetric algorithms only (a DPoP key is public)",
        ));
    }
    if config.max_age_s == 0 || config.max_age_s > 600 {
        issues.push(Issue::new("/auth/dpop/max_age_s", "between 1 and 600"));
    }
    if config.leeway_s > 60 {
        issues.push(Issue::new("/auth/dpop/leeway_s", "at most 60"));
    }
    if config.nonce_lifetime_s < 10 {
        issues.push(Issue::new("/auth/dpop/nonce_lifetime_s", "at least 10"));
    }
    if !(256..=65_536).contains(&config.max_proof_bytes) {
        issues.push(Issue::new(
            "/auth/dpop/max_proof_bytes",
            "between 256 and 65536",
        ));
    }
}

/// Where proof ids are remembered: per process, or in Redis for every instance.
pub enum ReplayCache {
    /// Proof id → how long it must be remembered (the window when it was first seen, so that a
    /// reload that widens the window applies to new proofs at once).
    Local {
        ids: moka::future::Cache<[u8; 32], Duration>,
        capacity: u64,
        /// Ids held now (moka's own count lags behind inserts).
        held: Arc<std::sync::atomic::AtomicU64>,
    },
    Redis(crate::store::redis::SharedRedis),
}

/// Each id lives for the window it was stored with.
struct ForItsWindow;

impl moka::Expiry<[u8; 32], Duration> for ForItsWindow {
    fn expire_after_create(
        &self,
        _id: &[u8; 32],
        window: &Duration,
        _at: std::time::Instant,
    ) -> Option<Duration> {
        Some(*window)
    }
}

impl ReplayCache {
    /// A bounded in-memory cache. When it is full, new proofs are refused (503) rather than old ids
    /// forgotten: a forgotten id would make its proof replayable. (moka's default admission policy
    /// would silently drop new single-use ids at capacity, so eviction is LRU and fullness is
    /// checked here.)
    pub fn local(entries: u64, _window: Duration) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        let held = Arc::new(AtomicU64::new(0));
        let released = held.clone();
        Self::Local {
            ids: moka::future::Cache::builder()
                .max_capacity(entries)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .expire_after(ForItsWindow)
                .eviction_listener(move |_, _, _| {
                    let _ = released.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        Some(n.saturating_sub(1))
                    });
                })
                .build(),
            capacity: entries,
            held,
        }
    }

    /// True the first time an id is seen within `window`.
    async fn first_use(&self, id: [u8; 32], window: Duration) -> Result<bool, AuthFailure> {
        match self {
            Self::Local {
                ids,
                capacity,
                held,
            } => {
                use std::sync::atomic::Ordering;
                if ids.contains_key(&id) {
                    return Ok(false);
                }
                if held.load(Ordering::Acquire) >= *capacity {
                    // Expired ids are released by moka's housekeeping; run it before refusing.
                    ids.run_pending_tasks().await;
                    if held.load(Ordering::Acquire) >= *capacity {
                        metrics::counter!("rampart_dpop_replay_cache_full_total").increment(1);
                        return Err(AuthFailure::unavailable(
                            "DPoP replay cache full (raise replay_cache_entries or use Redis)",
                        ));
                    }
                }
                let fresh = ids.entry(id).or_insert(window).await.is_fresh();
                if fresh {
                    held.fetch_add(1, Ordering::AcqRel);
                }
                Ok(fresh)
            }
            Self::Redis(connection) => {
                let key = format!("rampart:dpop:{}", URL_SAFE_NO_PAD.encode(id));
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(window.as_secs().max(1))
                    .query_async(&mut connection.clone())
                    .await
                    .map_err(|e| {
                        metrics::counter!("rampart_redis_errors_total", "use" => "dpop")
                            .increment(1);
                        AuthFailure::unavailable(format!("DPoP replay cache: {e}"))
                    })?;
                Ok(set.is_some())
            }
        }
    }
}

/// Stateless server nonces: `base64url(period || HMAC(secret, period)[..16])`, good for the current
/// and the previous period.
struct Nonces {
    key: Hmac<Sha256>,
    lifetime_s: u64,
}

impl Nonces {
    fn new(secret: &[u8], lifetime_s: u64) -> Result<Self, String> {
        let key = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| e.to_string())?;
        Ok(Self { key, lifetime_s })
    }

    fn for_period(&self, period: u64) -> String {
        let mut mac = self.key.clone();
        mac.update(&period.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        let mut raw = [0u8; 24];
        raw[..8].copy_from_slice(&period.to_be_bytes());
        raw[8..].copy_from_slice(&tag[..16]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn current(&self, now: u64) -> String {
        self.for_period(now / self.lifetime_s)
    }

    fn is_fresh(&self, nonce: &str, now: u64) -> bool {
        let period = now / self.lifetime_s;
        [period, period.saturating_sub(1)]
            .iter()
            .any(|p| bool::from(self.for_period(*p).as_bytes().ct_eq(nonce.as_bytes())))
    }
}

/// What a proof must match: the request as the client addressed it.
pub struct ProofTarget<'a> {
    pub method: &'a str,
    /// `scheme://authority/path` of the request (no query).
    pub uri: String,
}

/// Validates DPoP proofs for one config.
pub struct DpopVerifier {
    algorithms: Vec<JwtAlgorithm>,
    max_age_s: u64,
    leeway_s: u64,
    require_nonce: bool,
    nonces: Nonces,
    max_proof_bytes: usize,
    replay: Arc<ReplayCache>,
}

impl DpopVerifier {
    pub fn build(config: &DpopConfig, replay: Arc<ReplayCache>) -> Result<Self, String> {
        let secret = match &config.nonce_secret {
            Some(source) => {
                let secret = source.load()?;
                if secret.expose().len() < 32 {
                    return Err("auth.dpop.nonce_secret: at least 32 bytes".to_owned());
                }
                secret.expose().to_vec()
            }
            None => process_nonce_secret().to_vec(),
        };
        Ok(Self {
            algorithms: config.algorithms.clone(),
            max_age_s: config.max_age_s,
            leeway_s: config.leeway_s,
            require_nonce: config.require_nonce,
            nonces: Nonces::new(&secret, config.nonce_lifetime_s.max(1))?,
            max_proof_bytes: config.max_proof_bytes,
            replay,
        })
    }

    /// The accepted proof algorithms, for the `algs` parameter of a `DPoP` challenge.
    pub fn algorithm_names(&self) -> Vec<&'static str> {
        self.algorithms.iter().map(|a| a.name()).collect()
    }

    /// How long a proof id must be remembered: the whole window in which its `iat` is accepted.
    pub fn replay_window(config: &DpopConfig) -> Duration {
        Duration::from_secs(config.max_age_s + 2 * config.leeway_s + 1)
    }

    /// Checks the request's proof for `token`, which is bound to the key thumbprint `jkt`.
    pub async fn verify(
        &self,
        headers: &http::HeaderMap,
        target: &ProofTarget<'_>,
        token: &str,
        jkt: &str,
    ) -> Result<(), AuthFailure> {
        let proof = self.proof_header(headers)?;
        let (claims, thumbprint) = self.verified_proof(proof)?;
        let now = unix_now();
        self.check_claims(&claims, target, Some(token), now)?;
        if !bool::from(thumbprint.as_bytes().ct_eq(jkt.as_bytes())) {
            return Err(bad_proof("proof key does not match the token's cnf.jkt"));
        }
        self.check_nonce(&claims, now)?;
        let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
        let id: [u8; 32] = Sha256::new()
            .chain_update(thumbprint.as_bytes())
            .chain_update(b".")
            .chain_update(jti.as_bytes())
            .finalize()
            .into();
        let window = Duration::from_secs(self.max_age_s + 2 * self.leeway_s + 1);
        if !self.replay.first_use(id, window).await? {
            return Err(bad_proof("proof replayed (jti seen before)"));
        }
        Ok(())
    }

    /// Parses the proof, checks its header and signature; returns its claims and the RFC 7638
    /// thumbprint of its key.
    fn verified_proof(&self, proof: &str) -> Result<(Map<String, Value>, String), AuthFailure> {
        let (header, claims) = split(proof)?;
        let alg = self.check_header(&header)?;
        let jwk = public_jwk(&header, alg)?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| bad_proof("unusable jwk"))?;
        let mut validation = Validation::new(alg.to_jwt());
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(proof, &key, &validation)
            .map_err(|e| bad_proof(format!("proof signature: {e}")))?;
        let thumbprint = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| bad_proof("jwk thumbprint"))?;
        Ok((claims, thumbprint))
    }

    fn proof_header<'h>(&self, headers: &'h http::HeaderMap) -> Result<&'h str, AuthFailure> {
        let mut values = headers.get_all("dpop").iter();
        let value = values
            .next()
            .ok_or_else(|| bad_proof("DPoP-bound token without a DPoP proof"))?;
        if values.next().is_some() {
            return Err(bad_proof("more than one DPoP header"));
        }
        if value.len() > self.max_proof_bytes {
            return Err(bad_proof("proof larger than max_proof_bytes"));
        }
        value.to_str().map_err(|_| bad_proof("proof is not ASCII"))
    }

    fn check_header(&self, header: &Map<String, Value>) -> Result<JwtAlgorithm, AuthFailure> {
        let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
        if !typ.eq_ignore_ascii_case("dpop+jwt") {
            return Err(bad_proof("typ is not dpop+jwt"));
        }
        let name = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let alg = self
            .algorithms
            .iter()
            .copied()
            .find(|a| a.name() == name)
            .ok_or_else(|| bad_proof(format!("proof alg {name:?} not allowed")))?;
        if header.contains_key("crit") {
            return Err(bad_proof("crit in a proof"));
        }
        Ok(alg)
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        target: &ProofTarget<'_>,
        token: Option<&str>,
        now: u64,
    ) -> Result<(), AuthFailure> {
        let text = |name: &'static str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| bad_proof(format!("proof without {name}")))
        };
        let jti = text("jti")?;
        if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
            return Err(bad_proof("jti empty or too long"));
        }
        if text("htm")? != target.method {
            return Err(bad_proof("htm does not match the request method"));
        }
        if !same_target(text("htu")?, &target.uri) {
            return Err(bad_proof("htu does not match the request URI"));
        }
        let iat = claims
            .get("iat")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad_proof("proof without a numeric iat"))?;
        if iat > now + self.leeway_s || iat + self.max_age_s + self.leeway_s < now {
            return Err(bad_proof("proof iat outside the accepted window"));
        }
        if let Some(token) = token {
            let expected_ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
            if !bool::from(text("ath")?.as_bytes().ct_eq(expected_ath.as_bytes())) {
                return Err(bad_proof("ath does not match the access token"));
            }
        }
        Ok(())
    }

    fn check_nonce(&self, claims: &Map<String, Value>, now: u64) -> Result<(), AuthFailure> {
        if !self.require_nonce {
            return Ok(());
        }
        let fresh = claims
            .get("nonce")
            .and_then(Value::as_str)
            .is_some_and(|n| self.nonces.is_fresh(n, now));
        if fresh {
            return Ok(());
        }
        let mut failure = AuthFailure::use_dpop_nonce("proof without a fresh server nonce");
        failure.dpop_nonce = HeaderValue::from_str(&self.nonces.current(now)).ok();
        Err(failure)
    }
}

fn bad_proof(reason: impl Into<std::borrow::Cow<'static, str>>) -> AuthFailure {
    AuthFailure::invalid_dpop_proof(reason)
}

type JsonObject = Map<String, Value>;

/// The proof's header and claims, parsed strictly (duplicate members refused).
fn split(proof: &str) -> Result<(JsonObject, JsonObject), AuthFailure> {
    let mut parts = proof.split('.');
    let (Some(header), Some(claims), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_proof("proof is not a compact JWS"));
    };
    let object = |segment: &str| -> Result<Map<String, Value>, AuthFailure> {
        let bytes = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| bad_proof("proof is not base64url"))?;
        match strict_json::parse(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(bad_proof("proof part is not a JSON object")),
            Err(e) => Err(bad_proof(format!("proof JSON: {e}"))),
        }
    };
    Ok((object(header)?, object(claims)?))
}

/// The `jwk` header as a public key of the algorithm's family.
fn public_jwk(header: &Map<String, Value>, alg: JwtAlgorithm) -> Result<Jwk, AuthFailure> {
    let raw = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or_else(|| bad_proof("proof without a jwk header"))?;
    if PRIVATE_JWK_MEMBERS.iter().any(|m| raw.contains_key(*m)) {
        return Err(bad_proof("proof jwk contains private key material"));
    }
    let kty = raw.get("kty").and_then(Value::as_str).unwrap_or("");
    let family_ok = match alg {
        JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => kty == "EC",
        JwtAlgorithm::EdDSA => kty == "OKP",
        JwtAlgorithm::RS256
        | JwtAlgorithm::RS384
        | JwtAlgorithm::RS512
        | JwtAlgorithm::PS256
        | JwtAlgorithm::PS384
        | JwtAlgorithm::PS512 => kty == "RSA",
        JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512 => false,
    };
    if !family_ok {
        return Err(bad_proof("jwk type does not fit the proof alg"));
    }
    serde_json::from_value(Value::Object(raw.clone())).map_err(|_| bad_proof("malformed jwk"))
}

/// RFC 9449 section 4.3 step 9: compare scheme, host, port and path after RFC 3986 syntax- and
/// scheme-based normalization (the `url` crate's WHATWG parser does both), ignoring query and
/// fragment.
fn same_target(htu: &str, request: &str) -> bool {
    let (Ok(a), Ok(b)) = (url::Url::parse(htu), url::Url::parse(request)) else {
        return false;
    };
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path() == b.path()
}

/// The token's `cnf.jkt`, if it is DPoP-bound.
pub fn bound_key(claims: &Map<String, Value>) -> Option<&str> {
    claims.get("cnf")?.get("jkt")?.as_str()
}

/// A random nonce key per process, for when no shared secret is configured.
fn process_nonce_secret() -> &'static [u8; 32] {
    static SECRET: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    SECRET.get_or_init(rand::random)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[cfg(test)]
mod tests;
