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
use crate::store::{self, Revocation, Store, StoreError};

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
        let since = this.merge_since(0).await?;
        tokio::spawn(refresh_loop(Arc::downgrade(&this), since));
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

    /// Adds revocations made since `since`; returns the next watermark. Revocations in the same
    /// second as the watermark are read again (harmless), so none made concurrently is missed.
    async fn merge_since(&self, since: i64) -> Result<i64, StoreError> {
        let fresh = self.store.revocations_since(since).await?;
        let Some(last) = fresh.last().map(|r| r.revoked_at) else {
            return Ok(since);
        };
        self.revoked.rcu(|current| {
            let mut next = HashMap::clone(current);
            for r in &fresh {
                next.insert(r.token_id.clone(), r.expires_at);
            }
            next
        });
        Ok(last)
    }

    fn prune(&self) {
        let now = store::now();
        self.revoked.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.retain(|_, expires_at| *expires_at > now);
            next
        });
    }
}

async fn refresh_loop(revocations: Weak<Revocations>, mut since: i64) {
    let mut last_prune = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(REFRESH).await;
        let Some(this) = revocations.upgrade() else {
            return;
        };
        match this.merge_since(since).await {
            Ok(next) => since = next,
            Err(e) => tracing::warn!(error = %e, "cannot refresh token revocations"),
        }
        if last_prune.elapsed() >= PRUNE {
            last_prune = tokio::time::Instant::now();
            this.prune();
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

/// The id of a revocation by token: SHA-256 hex, so the token itself is never stored.
pub fn token_hash_id(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
