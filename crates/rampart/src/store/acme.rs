//! ACME state shared by every instance on this store: the account per directory, the certificate
//! per set of names, the challenges being answered, and a lease naming the one instance that
//! renews a certificate (the others serve what it stores).
//!
//! The account's and certificates' private keys are stored as they are (a TLS server must be able
//! to use them); protect the store as you protect the key files of a file-based listener.

use sqlx::Row;

use super::{Store, StoreError, now};

/// A certificate chain and its key, as issued.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCertificate {
    pub cert_pem: String,
    pub key_pem: String,
    /// Unix seconds.
    pub not_after: i64,
    /// Unix milliseconds; instances compare it to learn that another one renewed.
    pub issued_at: i64,
    pub revoked_at: Option<i64>,
}

/// Never the private key.
impl std::fmt::Debug for StoredCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCertificate")
            .field("not_after", &self.not_after)
            .field("issued_at", &self.issued_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// A challenge being answered (HTTP-01 or TLS-ALPN-01), readable by every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeChallenge {
    pub token: String,
    /// `http-01` or `tls-alpn-01`.
    pub kind: String,
    pub domain: String,
    pub key_authorization: String,
    pub expires_at: i64,
}

impl Store {
    /// The account's credentials (JSON) for a directory, if one was created.
    pub async fn acme_account(&self, directory: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT credentials FROM acme_accounts WHERE directory = $1")
            .bind(directory)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Keeps the first account stored for a directory: two instances creating one at once both
    /// read back the winner's, so that every instance signs as the same account.
    pub async fn save_acme_account(
        &self,
        directory: &str,
        credentials: &str,
    ) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO acme_accounts (directory, credentials, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (directory) DO NOTHING",
        )
        .bind(directory)
        .bind(credentials)
        .bind(now())
        .execute(self.pool())
        .await?;
        self.acme_account(directory)
            .await?
            .ok_or_else(|| StoreError("the ACME account was not stored".into()))
    }

    pub async fn acme_certificate(
        &self,
        name: &str,
    ) -> Result<Option<StoredCertificate>, StoreError> {
        let row = sqlx::query(
            "SELECT cert_pem, key_pem, not_after, issued_at, revoked_at \
             FROM acme_certificates WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(StoredCertificate {
            cert_pem: row.try_get(0)?,
            key_pem: row.try_get(1)?,
            not_after: row.try_get(2)?,
            issued_at: row.try_get(3)?,
            revoked_at: row.try_get(4)?,
        }))
    }

    /// `issued_at` and `revoked_at` of the stored certificate: a cheap poll (no PEM is read)
    /// that tells whether it changed.
    pub async fn acme_certificate_version(
        &self,
        name: &str,
    ) -> Result<Option<(i64, Option<i64>)>, StoreError> {
        let row =
            sqlx::query("SELECT issued_at, revoked_at FROM acme_certificates WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some((row.try_get(0)?, row.try_get(1)?)))
    }

    pub async fn save_acme_certificate(
        &self,
        name: &str,
        cert: &StoredCertificate,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO acme_certificates (name, cert_pem, key_pem, not_after, issued_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, NULL) \
             ON CONFLICT (name) DO UPDATE SET cert_pem = excluded.cert_pem, key_pem = excluded.key_pem, \
             not_after = excluded.not_after, issued_at = excluded.issued_at, revoked_at = NULL",
        )
        .bind(name)
        .bind(&cert.cert_pem)
        .bind(&cert.key_pem)
        .bind(cert.not_after)
        .bind(cert.issued_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks the certificate issued at `issued_at` revoked (not one stored since): an instance
    /// that takes the lease replaces it at once.
    pub async fn mark_acme_certificate_revoked(
        &self,
        name: &str,
        issued_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE acme_certificates SET revoked_at = $2 WHERE name = $1 AND issued_at = $3",
        )
        .bind(name)
        .bind(now())
        .bind(issued_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Publishes a challenge's answer for every instance (expired ones are swept here).
    pub async fn put_acme_challenge(&self, challenge: &AcmeChallenge) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM acme_challenges WHERE expires_at < $1")
            .bind(now())
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO acme_challenges (token, kind, domain, key_authorization, expires_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token) DO UPDATE SET \
             kind = excluded.kind, domain = excluded.domain, \
             key_authorization = excluded.key_authorization, expires_at = excluded.expires_at",
        )
        .bind(&challenge.token)
        .bind(&challenge.kind)
        .bind(&challenge.domain)
        .bind(&challenge.key_authorization)
        .bind(challenge.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn remove_acme_challenge(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM acme_challenges WHERE token = $1")
            .bind(token)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The unexpired challenges, for the instances that answer them.
    pub async fn acme_challenges(&self) -> Result<Vec<AcmeChallenge>, StoreError> {
        let rows = sqlx::query(
            "SELECT token, kind, domain, key_authorization, expires_at FROM acme_challenges \
             WHERE expires_at >= $1",
        )
        .bind(now())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AcmeChallenge {
                    token: row.try_get(0)?,
                    kind: row.try_get(1)?,
                    domain: row.try_get(2)?,
                    key_authorization: row.try_get(3)?,
                    expires_at: row.try_get(4)?,
                })
            })
            .collect()
    }

    /// Takes (or extends) the lease on renewing `name` for `seconds`, unless another holder's
    /// lease is still running. One statement, so two instances cannot both win.
    pub async fn take_acme_lease(
        &self,
        name: &str,
        holder: &str,
        seconds: i64,
    ) -> Result<bool, StoreError> {
        let now = now();
        let taken = sqlx::query(
            "INSERT INTO acme_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE acme_leases.expires_at < $4 OR acme_leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(seconds))
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    pub async fn release_acme_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM acme_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    async fn store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "rampart-acme-store-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite:{}", dir.join("store.db").display());
        (Store::connect(&url).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn only_one_holder_takes_a_running_lease() {
        let (store, dir) = store().await;
        assert!(store.take_acme_lease("c", "a", 60).await.unwrap());
        assert!(!store.take_acme_lease("c", "b", 60).await.unwrap());
        assert!(
            store.take_acme_lease("c", "a", 60).await.unwrap(),
            "renewed by its holder"
        );
        store.release_acme_lease("c", "b").await.unwrap();
        assert!(
            !store.take_acme_lease("c", "b", 60).await.unwrap(),
            "not released by another"
        );
        store.release_acme_lease("c", "a").await.unwrap();
        assert!(store.take_acme_lease("c", "b", 60).await.unwrap());
        // An expired lease is taken over.
        assert!(store.take_acme_lease("d", "a", -1).await.unwrap());
        assert!(store.take_acme_lease("d", "b", 60).await.unwrap());
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn the_first_account_stored_wins() {
        let (store, dir) = store().await;
        assert_eq!(store.save_acme_account("d", "one").await.unwrap(), "one");
        assert_eq!(store.save_acme_account("d", "two").await.unwrap(), "one");
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_saved_certificate_clears_its_revocation() {
        let (store, dir) = store().await;
        let cert = StoredCertificate {
            cert_pem: "c".into(),
            key_pem: "k".into(),
            not_after: 10,
            issued_at: 5,
            revoked_at: None,
        };
        store.save_acme_certificate("n", &cert).await.unwrap();
        store.mark_acme_certificate_revoked("n", 4).await.unwrap();
        assert_eq!(
            store.acme_certificate_version("n").await.unwrap(),
            Some((5, None)),
            "a revocation names the certificate it is for"
        );
        store.mark_acme_certificate_revoked("n", 5).await.unwrap();
        assert!(
            store
                .acme_certificate("n")
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );
        let renewed = StoredCertificate {
            issued_at: 6,
            ..cert
        };
        store.save_acme_certificate("n", &renewed).await.unwrap();
        assert_eq!(store.acme_certificate("n").await.unwrap().unwrap(), renewed);
        assert_eq!(
            store.acme_certificate_version("n").await.unwrap(),
            Some((6, None))
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
