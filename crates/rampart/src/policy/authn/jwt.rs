//! JWT bearer tokens (RFC 7519, RFC 8725, RFC 9068).
//!
//! Threats: forged tokens by `alg: none`, RS-to-HS key confusion, keys smuggled in the token
//! (`jwk`, `jku`, `x5u`, `x5c`), `kid` tricks, replay of expired tokens, tokens for another
//! audience, parser differentials through duplicate JSON members, JWE where JWS is expected,
//! oversized tokens. Invariants, checked before any signature work:
//! - the token is a compact JWS (three parts) no larger than `max_token_bytes`;
//! - header and claims are JSON objects without duplicate members;
//! - `alg` is one of the issuer's configured algorithms, compared exactly; `none` cannot be
//!   configured; the key is looked up by exact `kid` and must belong to the algorithm's family (and
//!   to the algorithm itself when the key names one);
//! - `crit` is refused (no extension is understood); embedded keys are ignored;
//! - `exp`, `iss`, `aud` are required; `nbf` and `iat` are enforced with a leeway of at most 60 s;
//!   `typ` is `at+jwt` for RFC 9068 issuers, and one of the issuer's `typ` list when it has one
//!   (a token of another type, an ID token say, is not accepted as an access token).
//!
//! jsonwebtoken then checks the signature, `exp`, `nbf`, `iss` and `aud`. Verified tokens are
//! cached by SHA-256 of the token until they expire, so a repeated token costs a lookup; a token
//! enters the cache on its second use (`doorkeeper.rs`), so that tokens used once (a fresh token
//! per call) cost no insertion and hold no memory.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use moka::future::Cache;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::config::{
    DEFAULT_TOKEN_CACHE_ENTRIES, JwtAlgorithm, JwtIssuerConfig, MIN_HMAC_SECRET_BYTES,
};
use super::doorkeeper::Doorkeeper;
use super::jwks::{CachePolicy, JwksLocation, KeySet, KeySource, RemoteJwks};
use super::{AuthFailure, strict_json};
use crate::config::Issue;
use crate::context::{AuthMethod, Principal};

/// A media type as `typ` carries it, compared form: lower case, `application/` dropped when no
/// other `/` follows (RFC 7515 section 4.1.9: `at+jwt` and `application/at+jwt` are one type).
fn typ_name(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(rest) if !rest.contains('/') => rest.to_owned(),
        _ => lower,
    }
}

/// The issuer's accepted `typ` values: its `typ` list, or `at+jwt` for RFC 9068.
fn accepted_typ(config: &JwtIssuerConfig) -> Vec<String> {
    match (config.rfc9068, config.typ.is_empty()) {
        (true, true) => vec!["at+jwt".to_owned()],
        _ => config.typ.iter().map(|t| typ_name(t)).collect(),
    }
}

/// `typ` entries are media types; with `rfc9068` they can only be `at+jwt`.
pub(super) fn validate_typ(c: &JwtIssuerConfig, ptr: &str, issues: &mut Vec<Issue>) {
    for (i, typ) in c.typ.iter().enumerate() {
        let name = typ_name(typ);
        let media_type = !name.is_empty()
            && !name.starts_with('/')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-./_".contains(&b));
        if !media_type {
            issues.push(Issue::new(
                format!("{ptr}/typ/{i}"),
                "must be a media type such as `at+jwt`",
            ));
        } else if c.rfc9068 && name != "at+jwt" {
            issues.push(Issue::new(
                format!("{ptr}/typ/{i}"),
                "`rfc9068 = true` requires `at+jwt`",
            ));
        }
    }
}

/// One trusted issuer, ready to verify tokens.
pub struct JwtIssuer {
    pub name: Arc<str>,
    issuer: String,
    keys: KeySource,
    /// The accepted algorithms, each with jsonwebtoken's checks allowing only itself, built once
    /// (a `Validation` holds sets that a clone per token would allocate again).
    algorithms: Vec<(JwtAlgorithm, Validation)>,
    leeway: u64,
    max_lifetime: Option<u64>,
    rfc9068: bool,
    /// Accepted `typ` values, normalized (`typ_name`); empty: not checked.
    typ: Vec<String>,
    max_token_bytes: usize,
    scope_claim: String,
    roles_claim: String,
    verified: Cache<[u8; 32], Arc<Principal>>,
    /// Tokens seen once, not yet worth a place in `verified`.
    seen: Doorkeeper,
}

impl JwtIssuer {
    /// Builds an issuer from a validated config; errors are for the config (unreadable keys).
    pub fn build(config: &JwtIssuerConfig) -> Result<Self, String> {
        let keys = key_source(config)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&config.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = config.leeway_s;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        let algorithms = config
            .algorithms
            .iter()
            .map(|alg| {
                let mut only = validation.clone();
                only.algorithms = vec![alg.to_jwt()];
                (*alg, only)
            })
            .collect();
        let verified = Cache::builder()
            .max_capacity(DEFAULT_TOKEN_CACHE_ENTRIES)
            .expire_after(UntilExpiry)
            .build();
        Ok(Self {
            name: Arc::from(config.name.as_str()),
            issuer: config.issuer.clone(),
            algorithms,
            keys,
            leeway: config.leeway_s,
            max_lifetime: config.max_lifetime_s,
            rfc9068: config.rfc9068,
            typ: accepted_typ(config),
            max_token_bytes: config.max_token_bytes,
            scope_claim: config.scope_claim.clone(),
            roles_claim: config.roles_claim.clone(),
            verified,
            seen: Doorkeeper::default(),
        })
    }

    /// The exact `iss` this issuer signs as.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies a compact JWS and returns its principal.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthFailure> {
        if token.len() > self.max_token_bytes {
            return Err(AuthFailure::invalid_token(
                "token larger than max_token_bytes",
            ));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(principal) = self.verified.get(&digest).await {
            return Ok(principal);
        }
        let parts = Parts::split(token)?;
        let (alg, validation) = self.check_header(&parts.header)?;
        let kid = parts.header.get("kid").and_then(Value::as_str);
        let key = self
            .keys
            .find(kid, alg.to_jwt())
            .await
            .ok_or_else(|| AuthFailure::invalid_token("no key for the token's kid and alg"))?;
        // The claims were parsed strictly above; jsonwebtoken need not build them again.
        jsonwebtoken::decode::<serde::de::IgnoredAny>(token, &key, validation)
            .map_err(|e| AuthFailure::invalid_token(format!("JWT rejected: {e}")))?;
        self.check_times(&parts.claims)?;
        if self.rfc9068 {
            for claim in ["sub", "client_id", "iat", "jti"] {
                if !parts.claims.contains_key(claim) {
                    return Err(AuthFailure::invalid_token(format!(
                        "RFC 9068 token without `{claim}`"
                    )));
                }
            }
        }
        let principal = Arc::new(self.principal(parts.claims));
        if self.seen.seen_before(&digest) {
            self.verified.insert(digest, principal.clone()).await;
        }
        Ok(principal)
    }

    fn check_header(
        &self,
        header: &Map<String, Value>,
    ) -> Result<(JwtAlgorithm, &Validation), AuthFailure> {
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthFailure::invalid_token("no alg"))?;
        let (alg, validation) = self
            .algorithms
            .iter()
            .find(|(a, _)| a.name() == alg_name)
            .ok_or_else(|| {
                AuthFailure::invalid_token(format!("alg {alg_name:?} not allowed for this issuer"))
            })?;
        if header.contains_key("crit") {
            return Err(AuthFailure::invalid_token(
                "crit header with an extension we do not understand",
            ));
        }
        if let Some(kid) = header.get("kid")
            && !kid.is_string()
        {
            return Err(AuthFailure::invalid_token("kid is not a string"));
        }
        self.check_typ(header)?;
        Ok((*alg, validation))
    }

    /// The `typ` header is one of the accepted types, when the issuer names any.
    fn check_typ(&self, header: &Map<String, Value>) -> Result<(), AuthFailure> {
        if self.typ.is_empty() {
            return Ok(());
        }
        let typ = header.get("typ").and_then(Value::as_str).map(typ_name);
        match typ {
            Some(typ) if self.typ.contains(&typ) => Ok(()),
            Some(_) => Err(AuthFailure::invalid_token(
                "typ not accepted for this issuer",
            )),
            None => Err(AuthFailure::invalid_token(
                "no typ (the issuer requires one)",
            )),
        }
    }

    /// `iat` not in the future, and the lifetime bound (jsonwebtoken does not look at `iat`).
    fn check_times(&self, claims: &Map<String, Value>) -> Result<(), AuthFailure> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let iat = match claims.get("iat") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| AuthFailure::invalid_token("iat is not a number"))?,
            ),
        };
        if let Some(iat) = iat
            && iat > now + self.leeway
        {
            return Err(AuthFailure::invalid_token("iat in the future"));
        }
        if let Some(max) = self.max_lifetime {
            let exp = claims
                .get("exp")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX);
            let iat = iat
                .ok_or_else(|| AuthFailure::invalid_token("iat required to bound the lifetime"))?;
            if exp.saturating_sub(iat) > max {
                return Err(AuthFailure::invalid_token(
                    "token lifetime longer than allowed",
                ));
            }
        }
        Ok(())
    }

    fn principal(&self, claims: Map<String, Value>) -> Principal {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Principal {
            subject: text("sub").unwrap_or_default(),
            method: AuthMethod::Jwt(self.name.clone()),
            scopes: string_list(claims.get(&self.scope_claim)),
            roles: string_list(claims.get(&self.roles_claim)),
            client_id: text("client_id").or_else(|| text("azp")),
            expires_at: claims.get("exp").and_then(Value::as_u64),
            claims,
        }
    }
}

/// A claim that is either a space-separated string or an array of strings.
fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// A token split and its JSON parsed strictly (signature not yet checked).
struct Parts {
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl Parts {
    fn split(token: &str) -> Result<Self, AuthFailure> {
        let segments: Vec<&str> = token.split('.').collect();
        match segments.len() {
            3 => {}
            5 => return Err(AuthFailure::invalid_token("JWE where a JWS is expected")),
            _ => return Err(AuthFailure::invalid_token("not a compact JWS")),
        }
        let object =
            |segment: &str, what: &'static str| -> Result<Map<String, Value>, AuthFailure> {
                let bytes = URL_SAFE_NO_PAD
                    .decode(segment)
                    .map_err(|_| AuthFailure::invalid_token(format!("{what} is not base64url")))?;
                match strict_json::parse(&bytes) {
                    Ok(Value::Object(map)) => Ok(map),
                    Ok(_) => Err(AuthFailure::invalid_token(format!(
                        "{what} is not a JSON object"
                    ))),
                    Err(e) => Err(AuthFailure::invalid_token(format!("{what}: {e}"))),
                }
            };
        Ok(Self {
            header: object(segments[0], "header")?,
            claims: object(segments[1], "claims")?,
        })
    }
}

fn key_source(config: &JwtIssuerConfig) -> Result<KeySource, String> {
    let policy = CachePolicy {
        min_ttl: Duration::from_secs(config.jwks_cache.min_ttl_s),
        max_ttl: Duration::from_secs(config.jwks_cache.max_ttl_s),
        cooldown: Duration::from_secs(config.jwks_cache.refetch_cooldown_s),
        allow_http: config.allow_insecure_http,
    };
    if let Some(url) = &config.jwks_url {
        return Ok(KeySource::Remote(RemoteJwks::new(
            &config.name,
            JwksLocation::Url(url.clone()),
            policy,
        )?));
    }
    if config.discovery {
        let location = JwksLocation::Discovery(config.issuer.clone());
        return Ok(KeySource::Remote(RemoteJwks::new(
            &config.name,
            location,
            policy,
        )?));
    }
    if let Some(path) = &config.keys_file {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return Ok(KeySource::Static(KeySet::from_file_bytes(&bytes)?));
    }
    if let Some(source) = &config.hmac_secret {
        let secret = source.load()?;
        if secret.expose().len() < MIN_HMAC_SECRET_BYTES {
            return Err(format!(
                "an HMAC secret needs at least {MIN_HMAC_SECRET_BYTES} bytes"
            ));
        }
        return Ok(KeySource::Static(KeySet::single(
            jsonwebtoken::DecodingKey::from_secret(secret.expose()),
        )));
    }
    Err("no key source".to_owned())
}

/// Cached principals expire with their token.
struct UntilExpiry;

impl moka::Expiry<[u8; 32], Arc<Principal>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        principal: &Arc<Principal>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let exp = principal.expires_at.unwrap_or(now);
        Some(Duration::from_secs(exp.saturating_sub(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn issuer(dir: &std::path::Path) -> JwtIssuer {
        let secret = dir.join("hmac.secret");
        std::fs::write(&secret, SECRET).unwrap();
        let config: JwtIssuerConfig = toml::from_str(&format!(
            "name = \"t\"\nissuer = \"https://issuer.test\"\naudiences = [\"api\"]\n\
             algorithms = [\"HS256\"]\nhmac_secret = {{ file = \"{}\" }}\n",
            secret.display()
        ))
        .unwrap();
        JwtIssuer::build(&config).unwrap()
    }

    fn token(jti: &str) -> String {
        signed_with(SECRET, jti)
    }

    fn signed_with(secret: &[u8], jti: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({"iss": "https://issuer.test", "aud": "api", "sub": "alice",
                            "iat": now, "exp": now + 600, "jti": jti});
        let key = EncodingKey::from_secret(secret);
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    async fn cached(issuer: &JwtIssuer) -> u64 {
        issuer.verified.run_pending_tasks().await;
        issuer.verified.entry_count()
    }

    #[tokio::test]
    async fn a_token_used_once_is_not_cached_and_a_reused_one_is_from_its_second_use() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = issuer(dir.path());
        let reused = token("reused");
        assert_eq!(issuer.verify(&reused).await.unwrap().subject, "alice");
        assert_eq!(cached(&issuer).await, 0, "cached on its first use");
        issuer.verify(&reused).await.unwrap();
        assert_eq!(cached(&issuer).await, 1, "not cached on its second use");
        for n in 0..100 {
            issuer.verify(&token(&format!("once-{n}"))).await.unwrap();
        }
        assert_eq!(
            cached(&issuer).await,
            1,
            "tokens used once took cache entries"
        );
        assert_eq!(issuer.verify(&reused).await.unwrap().subject, "alice");
    }

    #[tokio::test]
    async fn a_forged_token_seen_twice_is_refused_both_times_and_never_cached() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = issuer(dir.path());
        let forged = signed_with(b"another secret, not the issuer's, 32+ bytes", "t");
        for _ in 0..2 {
            assert!(issuer.verify(&forged).await.is_err());
        }
        assert_eq!(cached(&issuer).await, 0);
    }
}
