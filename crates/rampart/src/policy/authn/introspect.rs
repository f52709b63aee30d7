//! OAuth 2.0 token introspection (RFC 7662) for opaque access tokens.
//!
//! Invariants: the gateway authenticates to the authorization server (`client_secret_basic`);
//! only `"active": true` admits a token, and then only if its `exp` is in the future and its
//! `iss`/`aud` match when configured; results are cached by SHA-256 of the token for at most
//! `max_cache_ttl_s` and never past the token's `exp` (inactive answers for a few seconds, so a
//! flood of junk tokens costs one call each per few seconds); when the server cannot be reached the
//! request is refused (fail closed, 503), never let through.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use moka::future::Cache;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AuthFailure;
use crate::config::Issue;
use crate::config::secret::{Secret, SecretSource};
use crate::context::{AuthMethod, Principal};

const INACTIVE_CACHE_TTL: Duration = Duration::from_secs(5);
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// `[[auth.introspection]]`: an authorization server that introspects opaque tokens.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    pub name: String,
    /// The RFC 7662 endpoint (HTTPS).
    pub endpoint: String,
    pub client_id: String,
    pub client_secret: SecretSource,
    /// Required `iss` in the answer, if set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values in the answer; empty accepts any.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The longest time an answer is reused.
    #[serde(default = "default_max_ttl")]
    #[schemars(range(max = crate::config::bounds::MAX_SECONDS))]
    pub max_cache_ttl_s: u64,
    #[serde(default = "default_timeout")]
    #[schemars(range(max = crate::config::bounds::MAX_MILLIS))]
    pub timeout_ms: u64,
    /// Allow an `http://` endpoint (tests only).
    #[serde(default)]
    pub allow_insecure_http: bool,
}

fn default_max_ttl() -> u64 {
    60
}
fn default_timeout() -> u64 {
    2000
}

pub(super) fn validate(c: &IntrospectionConfig, ptr: &str, issues: &mut Vec<Issue>) {
    let insecure_allowed = c.allow_insecure_http && c.endpoint.starts_with("http://");
    if !(c.endpoint.starts_with("https://") || insecure_allowed) {
        issues.push(Issue::new(
            format!("{ptr}/endpoint"),
            "must be https:// (or set allow_insecure_http for tests)",
        ));
    }
    if c.client_id.is_empty() {
        issues.push(Issue::new(format!("{ptr}/client_id"), "must not be empty"));
    }
    if c.max_cache_ttl_s > 3600 {
        issues.push(Issue::new(format!("{ptr}/max_cache_ttl_s"), "at most 3600"));
    }
}

/// An introspection client with its cache.
pub struct Introspector {
    pub name: Arc<str>,
    endpoint: String,
    client_id: String,
    secret: Secret,
    issuer: Option<String>,
    audiences: Vec<String>,
    max_ttl: Duration,
    http: reqwest::Client,
    cache: Cache<[u8; 32], Cached>,
}

#[derive(Clone)]
struct Cached {
    principal: Option<Arc<Principal>>,
    ttl: Duration,
}

struct ByEntry;

impl moka::Expiry<[u8; 32], Cached> for ByEntry {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        value: &Cached,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl Introspector {
    pub fn build(config: &IntrospectionConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!config.allow_insecure_http)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            name: Arc::from(config.name.as_str()),
            endpoint: config.endpoint.clone(),
            client_id: config.client_id.clone(),
            secret: config.client_secret.load()?,
            issuer: config.issuer.clone(),
            audiences: config.audiences.clone(),
            max_ttl: Duration::from_secs(config.max_cache_ttl_s),
            http,
            cache: Cache::builder()
                .max_capacity(100_000)
                .expire_after(ByEntry)
                .build(),
        })
    }

    /// Introspects (or recalls) a token.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthFailure> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(cached) = self.cache.get(&digest).await {
            return cached
                .principal
                .ok_or_else(|| AuthFailure::invalid_token("inactive token (cached)"));
        }
        let answer = self.call(token).await?;
        let verdict = self.judge(&answer);
        let now = now();
        let ttl = match &verdict {
            Ok(p) => {
                let left = p.expires_at.map_or(Duration::ZERO, |e| {
                    Duration::from_secs(e.saturating_sub(now))
                });
                left.min(self.max_ttl)
            }
            Err(_) => INACTIVE_CACHE_TTL,
        };
        let principal = verdict.as_ref().ok().cloned();
        self.cache.insert(digest, Cached { principal, ttl }).await;
        verdict
    }

    async fn call(&self, token: &str) -> Result<Value, AuthFailure> {
        // RFC 6749 section 2.3.1: form-encode the client id and secret before Basic.
        let id = form_encode(&self.client_id);
        let secret = form_encode(&String::from_utf8_lossy(self.secret.expose()));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        let response = self
            .http
            .post(&self.endpoint)
            .header(http::header::AUTHORIZATION, format!("Basic {basic}"))
            .header(http::header::ACCEPT, "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| unavailable(&self.name, &e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(
                &self.name,
                &format!("status {}", response.status()),
            ));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| unavailable(&self.name, &e.to_string()))?;
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(unavailable(&self.name, "answer too large"));
        }
        serde_json::from_slice(&body).map_err(|_| unavailable(&self.name, "answer is not JSON"))
    }

    fn judge(&self, answer: &Value) -> Result<Arc<Principal>, AuthFailure> {
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Err(AuthFailure::invalid_token("inactive token"));
        }
        let exp = answer.get("exp").and_then(Value::as_u64);
        if exp.is_none_or(|e| e <= now()) {
            return Err(AuthFailure::invalid_token(
                "introspected token without a future exp",
            ));
        }
        if let Some(issuer) = &self.issuer
            && answer.get("iss").and_then(Value::as_str) != Some(issuer)
        {
            return Err(AuthFailure::invalid_token(
                "introspected token from another issuer",
            ));
        }
        if !self.audiences.is_empty() {
            let auds: Vec<&str> = match answer.get("aud") {
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !auds
                .iter()
                .any(|a| self.audiences.iter().any(|want| want == a))
            {
                return Err(AuthFailure::invalid_token(
                    "introspected token for another audience",
                ));
            }
        }
        let text = |k: &str| answer.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(Arc::new(Principal {
            subject: text("sub").or_else(|| text("username")).unwrap_or_default(),
            method: AuthMethod::Introspection(self.name.clone()),
            scopes: text("scope")
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            roles: Vec::new(),
            client_id: text("client_id"),
            expires_at: exp,
            claims: answer.as_object().cloned().unwrap_or_default(),
        }))
    }
}

fn unavailable(name: &str, why: &str) -> AuthFailure {
    metrics::counter!("rampart_introspection_errors_total", "server" => name.to_owned())
        .increment(1);
    AuthFailure::unavailable(format!("introspection `{name}` failed: {why}"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
