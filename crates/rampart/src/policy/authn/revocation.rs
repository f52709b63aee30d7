//! Revoked access tokens: a token stays valid until `exp` unless someone revokes it here.
//!
//! Threat: a leaked or abused token that keeps working until it expires. Invariants: a revoked
//! token (by `jti`, or by the SHA-256 of the token for tokens without one, opaque ones included) is
//! refused on the instance that revoked it at once, and on every instance sharing the store within
//! `REFRESH` (each polls for new revocations); the request path reads an in-memory snapshot only
//! (one atomic load, no lookup at all while the list is empty); tokens are never stored, only their
//! hashes.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use super::AuthFailure;
use crate::context::Principal;
use crate::store::{Revocation, Store, StoreError};

/// How often each instance looks for revocations made elsewhere.
pub const REFRESH: Duration = Duration::from_millis(500);
/// How often expired entries are dropped (from memory and from the store).
const PRUNE: Duration = Duration::from_secs(60);

/// The revocation list of this process.
pub struct Revocations {
    store: Store,
    /// token id → expiry (seconds since the epoch).
    revoked: ArcSwap<HashMap<String, i64>>,
}

impl Revocations {
    /// Loads the current list and keeps it fresh in a background task.
    pub async fn start(store: Store) -> Result<Arc<Self>, StoreError> {
        let this = Arc::new(Self {
            store,
            revoked: ArcSwap::from_pointee(HashMap::new()),
        });
        this.reload().await?;
        tokio::spawn(refresh_loop(Arc::downgrade(&this)));
        Ok(this)
    }

    /// Revokes a token id until `expires_at`, here at once and elsewhere within `REFRESH`.
    pub async fn revoke(&self, revocation: Revocation) -> Result<(), StoreError> {
        self.store.insert_revocation(&revocation).await?;
        self.revoked.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.insert(revocation.token_id.clone(), revocation.expires_at);
            next
        });
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Refuses a revoked token.
    pub fn check(&self, principal: &Principal, token: &str) -> Result<(), AuthFailure> {
        let revoked = self.revoked.load();
        if revoked.is_empty() {
            return Ok(());
        }
        let by_jti = principal
            .claims
            .get("jti")
            .and_then(|j| j.as_str())
            .is_some_and(|jti| revoked.contains_key(&jti_id(jti)));
        if by_jti || revoked.contains_key(&token_hash_id(token)) {
            return Err(AuthFailure::invalid_token("revoked token"));
        }
        Ok(())
    }

    /// Reads the whole unexpired list. The list is written by administrators (small), and a full
    /// read cannot miss a revocation stamped by another instance's clock or committed late, which a
    /// "since the last timestamp" watermark could.
    async fn reload(&self) -> Result<(), StoreError> {
        let all = self.store.revocations_since(i64::MIN).await?;
        let map: HashMap<String, i64> = all
            .into_iter()
            .map(|r| (r.token_id, r.expires_at))
            .collect();
        self.revoked.store(Arc::new(map));
        Ok(())
    }
}

async fn refresh_loop(revocations: Weak<Revocations>) {
    let mut last_prune = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(REFRESH).await;
        let Some(this) = revocations.upgrade() else {
            return;
        };
        if let Err(e) = this.reload().await {
            tracing::warn!(error = %e, "cannot refresh token revocations");
        }
        if last_prune.elapsed() >= PRUNE {
            last_prune = tokio::time::Instant::now();
            if let Err(e) = this.store.prune_revocations().await {
                tracing::warn!(error = %e, "cannot prune token revocations");
            }
        }
    }
}

/// The id of a revocation by `jti`.
pub fn jti_id(jti: &str) -> String {
    format!("jti:{jti}")
}

/// The id of a revocation by token: SHA-256 hex, so the token itself is never stored. For a compact
/// JWS only the signed part (`header.payload`) is hashed: an ECDSA signature can be re-encoded
/// (s → n − s) without the key, which would otherwise give a revoked token a new hash.
pub fn token_hash_id(token: &str) -> String {
    let signed = match token.rsplit_once('.') {
        Some((signed, _)) if signed.contains('.') => signed,
        _ => token,
    };
    let digest = Sha256::digest(signed.as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_re_encoded_signature_does_not_escape_a_revocation_by_token() {
        // Same signed part, different signature bytes (as an ECDSA s -> n - s rewrite gives).
        assert_eq!(
            token_hash_id("aGVhZA.Ym9keQ.c2lnMQ"),
            token_hash_id("aGVhZA.Ym9keQ.c2lnMg")
        );
        assert_ne!(
            token_hash_id("aGVhZA.Ym9keQ.c2lnMQ"),
            token_hash_id("aGVhZA.Ym9keR.c2lnMQ")
        );
        assert!(token_hash_id("opaque-token").starts_with("sha256:"));
    }
}
