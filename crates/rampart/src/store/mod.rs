//! The store: API keys (hashes only), token revocations, quota usage and ACME accounts and
//! certificates. SQLite is the embedded default; PostgreSQL (by URL) lets several gateways share
//! state. Both go through sqlx's `Any` driver, so one SQL text with `$N` placeholders serves both,
//! and the same tests run on both; no trait is needed for a single implementation.
//!
//! Migrations are embedded SQL files applied in order, each once, recorded in
//! `rampart_migrations`; on PostgreSQL an advisory lock serializes instances migrating at once.

mod acme;
mod keys;
mod quotas;
pub mod redis;
mod revocations;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyConnection, AnyPool, Connection, Row};

pub use acme::{AcmeChallenge, StoredCertificate};
pub use keys::{ApiKeyRecord, KeyStatus};
pub use revocations::Revocation;

/// Embedded migrations, in order.
const MIGRATIONS: [(i64, &str); 4] = [
    (1, include_str!("migrations/0001_api_keys.sql")),
    (2, include_str!("migrations/0002_token_revocations.sql")),
    (3, include_str!("migrations/0003_quota_usage.sql")),
    (4, include_str!("migrations/0004_acme.sql")),
];

/// Default of `store.timeout_ms`: how long to wait for a connection before the store counts as
/// unreachable (at start, and for each request that needs it).
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;

/// A store failure; the text may name the database but never a secret.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(String);

impl StoreError {
    fn timed_out(after: Duration) -> Self {
        Self(format!("no answer within {} ms", after.as_millis()))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self(e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool to the configured database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    timeout: Duration,
}

impl Store {
    /// Connects with the default timeout (`DEFAULT_TIMEOUT_MS`); see `connect_with`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, Duration::from_millis(DEFAULT_TIMEOUT_MS)).await
    }

    /// Connects (creating a SQLite file if needed) and applies pending migrations. A store that
    /// cannot be reached within `timeout` is an error naming it (password redacted) and the cause;
    /// later, a request waits at most `timeout` for a connection.
    pub async fn connect_with(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError(
                "the URL must start with sqlite: or postgres://".into(),
            ));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        probe(&url, timeout).await?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(timeout)
            .connect(&url)
            .await
            .map_err(|e| unreachable(&url, &e.to_string()))?;
        let store = Self {
            pool,
            backend,
            timeout,
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7316)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("CREATE TABLE IF NOT EXISTS rampart_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM rampart_migrations")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        for (version, sql) in MIGRATIONS {
            if applied.contains(&version) {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO rampart_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(now())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The longest a request waits for the store.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// One connection with a deadline, so that an unreachable store is reported at once with the
/// driver's reason (refused, unknown host, authentication) rather than as "pool timed out".
async fn probe(url: &str, timeout: Duration) -> Result<(), StoreError> {
    match tokio::time::timeout(timeout, AnyConnection::connect(url)).await {
        Ok(Ok(connection)) => {
            // Closing politely is best effort; the connection is usable, which is all we asked.
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(unreachable(url, &e.to_string())),
        Err(_) => Err(unreachable(
            url,
            &format!("no answer within {} ms", timeout.as_millis()),
        )),
    }
}

fn unreachable(url: &str, why: &str) -> StoreError {
    StoreError(format!("cannot reach {}: {why}", redact(url)))
}

/// The URL with its password replaced and its query dropped (`?password=`, `sslpassword=` carry
/// secrets too), fit for logs and error messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have a password, which this one has.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.set_query(None);
            parsed.to_string()
        }
        // Not a URL (a bare sqlite path): show the part before any `@`-style credential.
        Err(_) => url.rsplit('@').next().unwrap_or(url).to_owned(),
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_urls_are_redacted_in_messages() {
        let shown = super::redact(
            "postgres://app:hunter2@db:5432/rampart?sslpassword=s3cret&password=p4ss",
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("p4ss"), "{shown}");
        assert!(shown.contains("db:5432/rampart"), "{shown}");
    }
}
