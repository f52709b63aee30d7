//! API key records. Only the keyed hash of a key is stored, never the key.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};

/// Lifecycle of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    /// Replaced by a new key; valid until `grace_until`.
    Rotated,
    Revoked,
    /// Past `expires_at`. Never stored: an `active` key is shown so once its time has passed
    /// (revoked and rotated keys keep those states, which say more).
    Expired,
}

impl KeyStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Rotated => "rotated",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "active" => Self::Active,
            "rotated" => Self::Rotated,
            "expired" => Self::Expired,
            // Anything unexpected is treated as the safest state.
            _ => Self::Revoked,
        }
    }
}

/// One API key as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiKeyRecord {
    pub id: String,
    /// HMAC-SHA-256 of the key under the server secret, hex. Never shown by the admin API.
    #[serde(skip)]
    pub key_hash: String,
    /// The first characters of the key, to recognise it in listings (`rmp_Ab3x...`).
    pub prefix: String,
    pub name: String,
    pub owner: String,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub status: KeyStatus,
    pub grace_until: Option<i64>,
    pub replaced_by: Option<String>,
}

const COLUMNS: &str = "id, key_hash, prefix, name, owner, scopes, roles, created_at, expires_at, last_used_at, status, grace_until, replaced_by";

fn insert(key: &ApiKeyRecord) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "INSERT INTO api_keys (id, key_hash, prefix, name, owner, scopes, roles, created_at, expires_at, last_used_at, status, grace_until, replaced_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&key.id)
    .bind(&key.key_hash)
    .bind(&key.prefix)
    .bind(&key.name)
    .bind(&key.owner)
    .bind(key.scopes.join(" "))
    .bind(key.roles.join(" "))
    .bind(key.created_at)
    .bind(key.expires_at)
    .bind(key.last_used_at)
    .bind(key.status.as_str())
    .bind(key.grace_until)
    .bind(&key.replaced_by)
}

/// The status a reader should see: an active key past `expires_at` is `expired`.
fn shown_status(stored: KeyStatus, expires_at: Option<i64>, now: i64) -> KeyStatus {
    match stored {
        KeyStatus::Active if expires_at.is_some_and(|e| e <= now) => KeyStatus::Expired,
        other => other,
    }
}

fn from_row(row: &AnyRow) -> Result<ApiKeyRecord, sqlx::Error> {
    let list = |s: String| s.split_whitespace().map(str::to_owned).collect();
    let expires_at = row.try_get("expires_at")?;
    let stored = KeyStatus::parse(&row.try_get::<String, _>("status")?);
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        key_hash: row.try_get("key_hash")?,
        prefix: row.try_get("prefix")?,
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        scopes: list(row.try_get("scopes")?),
        roles: list(row.try_get("roles")?),
        created_at: row.try_get("created_at")?,
        expires_at,
        last_used_at: row.try_get("last_used_at")?,
        status: shown_status(stored, expires_at, super::now()),
        grace_until: row.try_get("grace_until")?,
        replaced_by: row.try_get("replaced_by")?,
    })
}

impl Store {
    pub async fn insert_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        insert(key).execute(self.pool()).await?;
        Ok(())
    }

    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1"
        ));
        // A server that accepts connections but does not answer must not hold requests either.
        let query = sqlx::query(sql).bind(hash).fetch_optional(self.pool());
        let row = tokio::time::timeout(self.timeout(), query)
            .await
            .map_err(|_| StoreError::timed_out(self.timeout()))??;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"));
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
        ));
        let rows = sqlx::query(sql).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Revokes a key (any state). Returns whether it existed.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET status = 'revoked', grace_until = NULL WHERE id = $1")
                .bind(id)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks `old` as rotated (valid until `grace_until`) and inserts `new`, atomically.
    pub async fn rotate_key(
        &self,
        old: &str,
        grace_until: i64,
        new: &ApiKeyRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET status = 'rotated', grace_until = $1, replaced_by = $2 WHERE id = $3 AND status = 'active'",
        )
        .bind(grace_until)
        .bind(&new.id)
        .bind(old)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert(new).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records when keys were last used (batched by the caller).
    pub async fn touch_keys(&self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        for (id, at) in uses {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(*at)
                .bind(id)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }
}
