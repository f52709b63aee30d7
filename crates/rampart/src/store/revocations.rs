//! Revoked access tokens, by `jti` or by the SHA-256 of the token (never the token itself).

use sqlx::Row;

use super::{Store, StoreError};

/// One revocation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Revocation {
    /// `jti:<value>` or `sha256:<hex>`.
    pub token_id: String,
    pub reason: String,
    pub revoked_at: i64,
    /// After this the token would have expired anyway; the entry is then forgotten.
    pub expires_at: i64,
}

impl Store {
    /// Records a revocation (again: the later one wins).
    pub async fn insert_revocation(&self, r: &Revocation) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM token_revocations WHERE token_id = $1")
            .bind(&r.token_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO token_revocations (token_id, reason, revoked_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&r.token_id)
        .bind(&r.reason)
        .bind(r.revoked_at)
        .bind(r.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Unexpired revocations made at or after `since` (seconds), oldest first.
    pub async fn revocations_since(&self, since: i64) -> Result<Vec<Revocation>, StoreError> {
        let rows = sqlx::query(
            "SELECT token_id, reason, revoked_at, expires_at FROM token_revocations WHERE revoked_at >= $1 AND expires_at > $2 ORDER BY revoked_at, token_id",
        )
        .bind(since)
        .bind(super::now())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Revocation {
                    token_id: row.try_get(0)?,
                    reason: row.try_get(1)?,
                    revoked_at: row.try_get(2)?,
                    expires_at: row.try_get(3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Forgets revocations of tokens that have expired.
    pub async fn prune_revocations(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM token_revocations WHERE expires_at <= $1")
            .bind(super::now())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
