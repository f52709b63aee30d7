//! HTTP Basic authentication (RFC 7617), only on routes that enable it.
//!
//! Threats: passwords read on the wire; password guessing; user enumeration by timing; CPU
//! exhaustion by a flood of password checks; password hashes stolen from the config.
//! Invariants: Basic credentials are refused on connections without TLS; passwords are kept only as
//! argon2id hashes (PHC strings) and checked off the async threads, at most `MAX_CONCURRENT_CHECKS`
//! at a time (a request waits at most `MAX_WAIT` for a slot, then gets 503); an unknown user costs the same argon2 work as a wrong password; failures feed the
//! brute-force guard like any other; a successful check is remembered for a short time under a keyed
//! hash of the credentials, so a client sending the same credentials does not pay argon2 each time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::Sha256;
use tokio::sync::Semaphore;

use super::AuthFailure;
use crate::config::Issue;
use crate::context::{AuthMethod, Principal};

/// argon2 checks running at once; more wait (each takes tens of milliseconds of one core).
const MAX_CONCURRENT_CHECKS: usize = 4;
/// The longest a request waits for a password check slot before 503.
const MAX_WAIT: Duration = Duration::from_secs(2);
/// How long a verified username and password pair is remembered.
const VERIFIED_TTL: Duration = Duration::from_secs(300);
const VERIFIED_ENTRIES: u64 = 10_000;
const MAX_USERNAME_BYTES: usize = 256;
const MAX_PASSWORD_BYTES: usize = 1024;

/// `[auth.basic]`: users allowed to call routes with `auth = { basic = true }`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    #[serde(default)]
    pub users: Vec<BasicUserConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicUserConfig {
    pub username: String,
    /// An argon2id PHC string (`rampart hash-password` makes one).
    pub password_hash: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Checks `[auth.basic]`: argon2id hashes only, unique names without `:`.
pub fn validate(config: &BasicAuthConfig, issues: &mut Vec<Issue>) {
    let mut names = std::collections::HashSet::new();
    for (i, user) in config.users.iter().enumerate() {
        let ptr = format!("/auth/basic/users/{i}");
        if user.username.is_empty()
            || user.username.contains(':')
            || user.username.len() > MAX_USERNAME_BYTES
        {
            issues.push(Issue::new(
                format!("{ptr}/username"),
                "1 to 256 bytes, without `:`",
            ));
        }
        if !names.insert(user.username.as_str()) {
            issues.push(Issue::new(
                format!("{ptr}/username"),
                format!("duplicate user `{}`", user.username),
            ));
        }
        let is_argon2id = PasswordHash::new(&user.password_hash)
            .is_ok_and(|h| h.algorithm.as_str() == Algorithm::Argon2id.ident().as_str());
        if !is_argon2id {
            issues.push(Issue::new(
                format!("{ptr}/password_hash"),
                "must be an argon2id PHC string (`rampart hash-password`)",
            ));
        }
    }
}

/// Hashes a password with argon2id and a random salt (default parameters: m=19 MiB, t=2, p=1,
/// the OWASP minimum).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

struct User {
    hash: String,
    scopes: Vec<String>,
    roles: Vec<String>,
}

/// The users and their verification state.
pub struct BasicAuth {
    users: HashMap<String, User>,
    /// Verified for unknown users, so that they cost as much as known ones.
    decoy_hash: String,
    cache_key: Hmac<Sha256>,
    verified: moka::future::Cache<[u8; 32], Arc<Principal>>,
    permits: Semaphore,
}

impl BasicAuth {
    pub fn build(config: &BasicAuthConfig) -> Result<Self, String> {
        let users = config
            .users
            .iter()
            .map(|u| {
                let user = User {
                    hash: u.password_hash.clone(),
                    scopes: u.scopes.clone(),
                    roles: u.roles.clone(),
                };
                (u.username.clone(), user)
            })
            .collect();
        let decoy_hash = decoy_hash(config)?;
        let cache_key = Hmac::<Sha256>::new_from_slice(&rand::random::<[u8; 32]>())
            .map_err(|e| e.to_string())?;
        Ok(Self {
            users,
            decoy_hash,
            cache_key,
            verified: moka::future::Cache::builder()
                .max_capacity(VERIFIED_ENTRIES)
                .time_to_live(VERIFIED_TTL)
                .build(),
            permits: Semaphore::new(MAX_CONCURRENT_CHECKS),
        })
    }

    /// Verifies the base64 `user:password` of an `Authorization: Basic` header.
    pub async fn authenticate(
        &self,
        encoded: &str,
        tls: bool,
    ) -> Result<Arc<Principal>, AuthFailure> {
        if !tls {
            return Err(AuthFailure::invalid_request(
                "Basic credentials on a connection without TLS",
            ));
        }
        let (username, password) = decode(encoded)?;
        let mut mac = self.cache_key.clone();
        mac.update(username.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        let cache_id: [u8; 32] = mac.finalize().into_bytes().into();
        if let Some(principal) = self.verified.get(&cache_id).await {
            return Ok(principal);
        }
        let user = self.users.get(&username);
        let hash = user.map_or(self.decoy_hash.clone(), |u| u.hash.clone());
        let matches = self.check(hash, password).await?;
        let failed = |reason: &'static str| {
            let mut failure = AuthFailure::invalid_token(reason);
            // Counted by the detectors (many users from one address, one user from many).
            failure.claimed_user = Some(claimed(&username));
            Err(failure)
        };
        let user = match (user, matches) {
            (Some(user), true) => user,
            (None, _) => return failed("unknown Basic user"),
            (Some(_), false) => return failed("wrong Basic password"),
        };
        let principal = Arc::new(Principal {
            subject: username,
            method: AuthMethod::Basic,
            scopes: user.scopes.clone(),
            roles: user.roles.clone(),
            client_id: None,
            expires_at: None,
            claims: serde_json::Map::new(),
        });
        self.verified.insert(cache_id, principal.clone()).await;
        Ok(principal)
    }

    /// One argon2 verification on the blocking pool, within the concurrency bound.
    async fn check(&self, hash: String, password: String) -> Result<bool, AuthFailure> {
        // Waiting is bounded too: a flood of guesses gets 503 instead of queueing without limit.
        let _permit = tokio::time::timeout(MAX_WAIT, self.permits.acquire())
            .await
            .map_err(|_| AuthFailure::unavailable("too many password checks waiting"))?
            .map_err(|_| AuthFailure::unavailable("password checks shut down"))?;
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .map_err(|_| AuthFailure::unavailable("password check failed to run"))
    }
}

/// A hash of a random password with the parameters of the configured users (the first one), so
/// that checking an unknown user costs what checking a known one does.
fn decoy_hash(config: &BasicAuthConfig) -> Result<String, String> {
    let params = config
        .users
        .first()
        .and_then(|u| PasswordHash::new(&u.password_hash).ok())
        .and_then(|h| argon2::Params::try_from(&h).ok())
        .unwrap_or_default();
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    let password = format!("{:x}", rand::random::<u128>());
    Argon2::new(Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// `user:password` from the base64 credentials (RFC 7617 section 2, UTF-8).
fn decode(encoded: &str) -> Result<(String, String), AuthFailure> {
    if encoded.len() > 2 * (MAX_USERNAME_BYTES + MAX_PASSWORD_BYTES) {
        return Err(AuthFailure::invalid_request("Basic credentials too long"));
    }
    let bytes = STANDARD
        .decode(encoded.trim())
        .map_err(|_| AuthFailure::invalid_request("Basic credentials are not base64"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| AuthFailure::invalid_request("Basic credentials are not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| AuthFailure::invalid_request("Basic credentials without `:`"))?;
    if user.is_empty() || user.len() > MAX_USERNAME_BYTES || password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthFailure::invalid_request(
            "Basic credentials out of bounds",
        ));
    }
    Ok((user.to_owned(), password.to_owned()))
}

/// A claimed user name as the detectors and the audit record keep it: at most `CLAIMED_MAX`
/// bytes, cut on a character boundary (the client chose it).
fn claimed(username: &str) -> Arc<String> {
    const CLAIMED_MAX: usize = 128;
    let mut end = username.len().min(CLAIMED_MAX);
    while !username.is_char_boundary(end) {
        end -= 1;
    }
    Arc::new(username[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_argon2id_hashes_are_accepted_in_the_config() {
        let good = hash_password("correct horse").unwrap_or_default();
        assert!(good.starts_with("$argon2id$"));
        let user = |hash: &str| BasicUserConfig {
            username: "ops".into(),
            password_hash: hash.into(),
            scopes: vec![],
            roles: vec![],
        };
        let mut issues = Vec::new();
        validate(
            &BasicAuthConfig {
                users: vec![user(&good)],
            },
            &mut issues,
        );
        assert!(issues.is_empty());
        let argon2i = good.replacen("$argon2id$", "$argon2i$", 1);
        for bad in [
            "plain-password",
            "$2b$12$abcdefghijklmnopqrstuv",
            argon2i.as_str(),
        ] {
            let mut issues = Vec::new();
            validate(
                &BasicAuthConfig {
                    users: vec![user(bad)],
                },
                &mut issues,
            );
            assert_eq!(issues.len(), 1, "{bad}");
        }
    }

    #[test]
    fn credentials_are_split_at_the_first_colon() {
        let encoded = STANDARD.encode("ops:pa:ss");
        let (user, password) = decode(&encoded).unwrap_or_default();
        assert_eq!((user.as_str(), password.as_str()), ("ops", "pa:ss"));
        assert!(decode(&STANDARD.encode("no-colon")).is_err());
        assert!(decode("***").is_err());
    }
}
