//! Quota usage per key and period (a day or a month), for quotas kept without Redis.

use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    /// Requests counted so far for `key` in `period`.
    pub async fn quota_used(&self, key: &str, period: &str) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT used FROM quota_usage WHERE quota_key = $1 AND period = $2")
            .bind(key)
            .bind(period)
            .fetch_optional(self.pool())
            .await?;
        let used: i64 = match row {
            Some(row) => row.try_get(0)?,
            None => 0,
        };
        Ok(u64::try_from(used).unwrap_or(0))
    }

    /// Adds `delta` requests to `key` in `period` (one statement on SQLite and PostgreSQL).
    pub async fn add_quota_usage(
        &self,
        key: &str,
        period: &str,
        delta: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO quota_usage (quota_key, period, used) VALUES ($1, $2, $3) \
             ON CONFLICT (quota_key, period) DO UPDATE SET used = quota_usage.used + excluded.used",
        )
        .bind(key)
        .bind(period)
        .bind(i64::try_from(delta).unwrap_or(i64::MAX))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
