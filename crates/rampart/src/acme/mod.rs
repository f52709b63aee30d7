//! Certificates by ACME (RFC 8555): obtained, renewed, shared and revoked.
//!
//! Each set of names (`tls.acme_domains` of a listener) is one managed certificate, kept in the
//! store with the account. Every instance runs the same loop per certificate, every `sync_ms`:
//!
//! 1. install the stored certificate if it is newer than the one served (hot swap: new
//!    handshakes get it, open connections keep theirs);
//! 2. if it is due (none yet, revoked, two thirds of its lifetime gone, or inside the CA's
//!    renewal window, RFC 9773) and no failure is backing off, take the store's lease on it;
//!    the one instance that gets the lease orders, stores and installs the new certificate.
//!
//! So one instance renews and all serve; a renewing instance that dies leaves a lease that
//! expires, and another one takes over. Challenge answers are published in the store and copied
//! by every instance, since the CA may reach any of them.

pub mod challenge;
pub mod config;
mod expiry;
mod order;
mod schedule;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use instant_acme::{Account, RevocationReason, RevocationRequest};
use tokio::sync::{Notify, OnceCell};
use tokio_util::sync::CancellationToken;

pub use expiry::ExpiryWatch;

use self::challenge::Challenges;
use self::config::AcmeConfig;
use self::order::OrderContext;
use self::schedule::{Backoff, RenewalPlan};
use crate::audit::{AuditEvent, AuditSink};
use crate::store::{Store, StoredCertificate};
use crate::tls::CertResolver;

/// How long a renewing instance holds its lease (an order takes seconds to minutes).
const LEASE_S: i64 = 600;
/// An order is abandoned after this, well inside the lease (and the challenges' lifetime).
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);
/// Any other exchange with the CA (the account, renewal information).
const CA_TIMEOUT: Duration = Duration::from_secs(60);
/// An instance that could not open an account session tries again after this.
const ACCOUNT_RETRY: Duration = Duration::from_secs(3600);

/// The process's ACME certificates and the tasks that keep them.
pub struct Acme {
    inner: Arc<Inner>,
    stop: CancellationToken,
}

struct Inner {
    config: AcmeConfig,
    audit: AuditSink,
    store: Store,
    challenges: Arc<Challenges>,
    account: OnceCell<Account>,
    /// This instance in leases.
    holder: String,
    certificates: Vec<Arc<Managed>>,
}

/// One certificate: its names, the listeners serving it, and what this instance installed.
struct Managed {
    /// The store's key: the directory and the sorted names.
    name: String,
    domains: Vec<String>,
    resolvers: Vec<Arc<CertResolver>>,
    /// `issued_at` of the installed certificate (0: none).
    installed: AtomicI64,
    /// Renew whatever the plan says (revoked at the CA, but the store could not record it).
    renew_now: AtomicBool,
    /// Wakes the loop at once (after a revocation).
    wake: Notify,
}

/// A certificate as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertificateStatus {
    pub listeners: Vec<String>,
    pub domains: Vec<String>,
    /// Hex serial of the served certificate.
    pub serial: Option<String>,
    /// Unix seconds, as the other times.
    pub not_after: Option<i64>,
    pub issued_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Acme {
    /// Installs the stored certificates (so that a restart serves at once) and starts renewing.
    /// `listeners` are the ACME listeners' names, domains and resolvers.
    pub async fn start(
        config: AcmeConfig,
        store: Store,
        challenges: Arc<Challenges>,
        audit: AuditSink,
        listeners: Vec<(Vec<String>, Arc<CertResolver>)>,
    ) -> Arc<Self> {
        let mut certificates: Vec<Arc<Managed>> = Vec::new();
        for (domains, resolver) in listeners {
            let mut domains = domains;
            domains.sort();
            domains.dedup();
            let name = format!("{} {}", config.directory, domains.join(","));
            match certificates.iter().find(|m| m.name == name) {
                Some(existing) => {
                    // Two listeners with the same names serve one certificate.
                    let mut resolvers = existing.resolvers.clone();
                    resolvers.push(resolver);
                    let merged = Managed::new(name.clone(), domains, resolvers);
                    certificates.retain(|m| m.name != name);
                    certificates.push(Arc::new(merged));
                }
                None => certificates.push(Arc::new(Managed::new(name, domains, vec![resolver]))),
            }
        }
        let inner = Arc::new(Inner {
            holder: format!(
                "{}/{:08x}",
                crate::policy::detect::instance_name(),
                rand::random::<u32>()
            ),
            config,
            audit,
            store,
            challenges,
            account: OnceCell::new(),
            certificates,
        });
        for managed in &inner.certificates {
            if let Err(e) = inner.refresh(managed, &mut None).await {
                tracing::warn!(domains = ?managed.domains, error = %e, "cannot read the stored certificate");
            }
        }
        let stop = CancellationToken::new();
        tokio::spawn(inner.clone().sync_challenges(stop.clone()));
        for managed in &inner.certificates {
            tokio::spawn(inner.clone().keep(managed.clone(), stop.clone()));
        }
        Arc::new(Self { inner, stop })
    }

    /// Stops the loops (the gateway is shutting down).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Every ACME certificate and what is served.
    pub async fn status(&self) -> Vec<CertificateStatus> {
        let mut all = Vec::new();
        for managed in &self.inner.certificates {
            let stored = self
                .inner
                .store
                .acme_certificate(&managed.name)
                .await
                .ok()
                .flatten();
            let leaf = managed.resolvers.first().and_then(|r| r.current_leaf());
            all.push(CertificateStatus {
                listeners: managed
                    .resolvers
                    .iter()
                    .map(|r| r.listener().to_owned())
                    .collect(),
                domains: managed.domains.clone(),
                serial: leaf.as_deref().and_then(serial_hex),
                not_after: leaf.as_deref().and_then(crate::tls::not_after_unix),
                issued_at: stored.as_ref().map(|s| s.issued_at / 1000),
                revoked_at: stored.and_then(|s| s.revoked_at),
            });
        }
        all
    }

    /// Revokes the certificate a listener serves (RFC 8555 section 7.6) and has it replaced at
    /// once. Returns the revoked certificate's serial.
    pub async fn revoke(&self, listener: &str, reason: Option<u8>) -> Result<String, RevokeError> {
        let managed = self
            .inner
            .certificates
            .iter()
            .find(|m| m.resolvers.iter().any(|r| r.listener() == listener))
            .ok_or(RevokeError::UnknownListener)?;
        let stored = self
            .inner
            .store
            .acme_certificate(&managed.name)
            .await
            .map_err(|e| RevokeError::Failed(e.to_string()))?
            .ok_or(RevokeError::NoCertificate)?;
        let key = crate::tls::certified_key_from_pem(&stored.cert_pem, &stored.key_pem)
            .map_err(RevokeError::Failed)?;
        let leaf = key.cert.first().ok_or(RevokeError::NoCertificate)?;
        let serial = serial_hex(leaf).unwrap_or_default();
        let account = tokio::time::timeout(CA_TIMEOUT, self.inner.account())
            .await
            .map_err(|_| RevokeError::Failed("the CA did not answer".into()))?
            .map_err(RevokeError::Failed)?;
        let request = RevocationRequest {
            certificate: leaf,
            reason: reason.map(revocation_reason).transpose()?,
        };
        tokio::time::timeout(CA_TIMEOUT, account.revoke(&request))
            .await
            .map_err(|_| RevokeError::Failed("the CA did not answer".into()))?
            .map_err(|e| RevokeError::Failed(format!("the CA refused: {e}")))?;
        // Only the certificate revoked: a renewal stored meanwhile stays good. Should the store
        // not answer, this instance replaces it anyway (the others keep serving it until then).
        if let Err(e) = self
            .inner
            .store
            .mark_acme_certificate_revoked(&managed.name, stored.issued_at)
            .await
        {
            tracing::error!(error = %e, "revoked at the CA, but the store could not record it");
            managed.renew_now.store(true, Ordering::Relaxed);
        }
        metrics::counter!("rampart_acme_revocations_total").increment(1);
        self.inner.audit.event(AuditEvent::certificate(
            "revoked",
            format!(
                "{} serial {serial} revoked by {}",
                managed.domains.join(","),
                self.inner.holder
            ),
        ));
        tracing::warn!(listener, serial = %serial, "certificate revoked; ordering its replacement");
        managed.wake.notify_one();
        Ok(serial)
    }
}

impl Drop for Acme {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Why a revocation was not done.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("no ACME listener by that name")]
    UnknownListener,
    #[error("no certificate has been issued yet")]
    NoCertificate,
    #[error("unknown revocation reason code (RFC 5280: 0 to 5, 9 or 10)")]
    BadReason,
    #[error("{0}")]
    Failed(String),
}

fn revocation_reason(code: u8) -> Result<RevocationReason, RevokeError> {
    Ok(match code {
        0 => RevocationReason::Unspecified,
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        9 => RevocationReason::PrivilegeWithdrawn,
        10 => RevocationReason::AaCompromise,
        _ => return Err(RevokeError::BadReason),
    })
}

/// The serial number of a DER certificate, in lower-case hex without leading zeros (as Pebble's
/// and openssl's listings show it).
pub fn serial_hex(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(format!("{:x}", cert.serial))
}

impl Managed {
    fn new(name: String, domains: Vec<String>, resolvers: Vec<Arc<CertResolver>>) -> Self {
        Self {
            name,
            domains,
            resolvers,
            installed: AtomicI64::new(0),
            renew_now: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn install(&self, stored: &StoredCertificate) -> Result<(), String> {
        let key = crate::tls::certified_key_from_pem(&stored.cert_pem, &stored.key_pem)?;
        for resolver in &self.resolvers {
            resolver.install(key.clone());
        }
        self.installed.store(stored.issued_at, Ordering::Relaxed);
        tracing::info!(domains = ?self.domains, not_after = stored.not_after, "ACME certificate installed");
        Ok(())
    }
}

impl Inner {
    async fn account(&self) -> Result<Account, String> {
        self.account
            .get_or_try_init(|| order::account(&self.config, &self.store))
            .await
            .cloned()
    }

    /// Brings `stored` up to date with the store (a cheap poll; the row is read only when it
    /// changed) and installs a certificate this instance does not serve yet.
    async fn refresh(
        &self,
        managed: &Managed,
        stored: &mut Option<StoredCertificate>,
    ) -> Result<(), String> {
        let version = self
            .store
            .acme_certificate_version(&managed.name)
            .await
            .map_err(|e| e.to_string())?;
        let Some((issued_at, revoked_at)) = version else {
            *stored = None;
            return Ok(());
        };
        if stored.as_ref().map(|s| s.issued_at) != Some(issued_at) {
            *stored = self
                .store
                .acme_certificate(&managed.name)
                .await
                .map_err(|e| e.to_string())?;
        }
        if let Some(current) = stored {
            current.revoked_at = revoked_at;
            if current.issued_at != managed.installed.load(Ordering::Relaxed)
                && let Err(e) = managed.install(current)
            {
                // Not served, and due for renewal (the plan finds it unusable).
                tracing::error!(domains = ?managed.domains, error = %e, "the stored ACME certificate is unusable");
            }
        }
        Ok(())
    }

    /// The loop of one certificate (see the module's description).
    async fn keep(self: Arc<Self>, managed: Arc<Managed>, stop: CancellationToken) {
        let sync = Duration::from_millis(self.config.sync_ms);
        let mut backoff = Backoff::new(
            Duration::from_secs(self.config.retry_min_s),
            Duration::from_secs(self.config.retry_max_s),
        );
        let mut plan = RenewalPlan::default();
        let mut stored = None;
        let mut account_tried: Option<Instant> = None;
        loop {
            match self.refresh(&managed, &mut stored).await {
                Ok(()) => {
                    self.restore_account_for_renewal_info(&stored, &mut account_tried)
                        .await;
                    let due = plan.due(stored.as_ref(), self.account.get()).await
                        || managed.renew_now.load(Ordering::Relaxed);
                    if due && backoff.ready() {
                        let seen = stored.as_ref().map(|s| s.issued_at);
                        let renewed = tokio::select! {
                            () = stop.cancelled() => return,
                            renewed = self.renew(&managed, seen, &mut backoff) => renewed,
                        };
                        if renewed {
                            continue;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(domains = ?managed.domains, error = %e, "ACME: cannot read the store")
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = managed.wake.notified() => {}
                () = tokio::time::sleep(sync) => {}
            }
        }
    }

    /// The CA's renewal information needs an account session: an instance serving a stored
    /// certificate opens one (at most once an hour while the CA cannot be reached).
    async fn restore_account_for_renewal_info(
        &self,
        stored: &Option<StoredCertificate>,
        tried: &mut Option<Instant>,
    ) {
        if stored.is_none()
            || self.account.get().is_some()
            || tried.is_some_and(|at| at.elapsed() < ACCOUNT_RETRY)
        {
            return;
        }
        *tried = Some(Instant::now());
        if let Err(e) = tokio::time::timeout(CA_TIMEOUT, self.account()).await {
            tracing::debug!(error = %e, "ACME: no account session yet");
        }
    }

    /// Takes the lease and orders; returns whether a certificate was issued. On failure the
    /// backoff grows; an instance that finds the lease taken, or finds that the certificate
    /// changed since it decided (another instance renewed meanwhile), orders nothing and looks
    /// again at the next sync.
    async fn renew(&self, managed: &Managed, seen: Option<i64>, backoff: &mut Backoff) -> bool {
        match self
            .store
            .take_acme_lease(&managed.name, &self.holder, LEASE_S)
            .await
        {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "ACME: cannot take the renewal lease");
                backoff.failed();
                return false;
            }
        }
        let unchanged = matches!(
            self.store.acme_certificate_version(&managed.name).await,
            Ok(version) if version.map(|(issued_at, _)| issued_at) == seen
        );
        let issued = match unchanged {
            true => {
                let result = tokio::time::timeout(ORDER_TIMEOUT, self.order(managed)).await;
                // Audited before the next await: a shutdown cancels this future at any await,
                // and a certificate already served must not go unrecorded.
                self.record_order(managed, result, backoff)
            }
            false => false,
        };
        if let Err(e) = self
            .store
            .release_acme_lease(&managed.name, &self.holder)
            .await
        {
            tracing::warn!(error = %e, "ACME: cannot release the renewal lease (it expires)");
        }
        issued
    }

    /// Audits an order's outcome and moves the backoff; returns whether it issued.
    fn record_order(
        &self,
        managed: &Managed,
        result: Result<Result<StoredCertificate, String>, tokio::time::error::Elapsed>,
        backoff: &mut Backoff,
    ) -> bool {
        let domains = managed.domains.join(",");
        match result {
            Ok(Ok(issued)) => {
                metrics::counter!("rampart_acme_orders_total", "result" => "issued").increment(1);
                backoff.succeeded();
                managed.renew_now.store(false, Ordering::Relaxed);
                let serial = crate::tls::certified_key_from_pem(&issued.cert_pem, &issued.key_pem)
                    .ok()
                    .and_then(|k| k.cert.first().and_then(|leaf| serial_hex(leaf)))
                    .unwrap_or_default();
                self.audit.event(AuditEvent::certificate(
                    "issued",
                    format!(
                        "{domains} serial {serial} not_after {} issued to {}",
                        issued.not_after, self.holder
                    ),
                ));
                true
            }
            failed => {
                let e = match failed {
                    Ok(Err(e)) => e,
                    _ => format!("no certificate within {} s", ORDER_TIMEOUT.as_secs()),
                };
                metrics::counter!("rampart_acme_orders_total", "result" => "failed").increment(1);
                self.audit.event(AuditEvent::certificate(
                    "failed",
                    format!("{domains} order by {} failed: {e}", self.holder),
                ));
                let pause = backoff.failed();
                tracing::error!(domains = ?managed.domains, error = %e, retry_in_s = pause.as_secs(), "ACME order failed; the served certificate stays");
                false
            }
        }
    }

    async fn order(&self, managed: &Managed) -> Result<StoredCertificate, String> {
        let account = tokio::time::timeout(CA_TIMEOUT, self.account())
            .await
            .map_err(|_| format!("the CA did not answer within {} s", CA_TIMEOUT.as_secs()))??;
        let ctx = OrderContext {
            store: &self.store,
            challenges: &self.challenges,
            kind: self.config.challenge,
            publish_wait: Duration::from_millis(self.config.sync_ms) + Duration::from_millis(500),
        };
        let issued = order::issue(&account, &managed.domains, &ctx).await?;
        self.store
            .save_acme_certificate(&managed.name, &issued)
            .await
            .map_err(|e| format!("storing the certificate: {e}"))?;
        managed.install(&issued)?;
        Ok(issued)
    }

    /// Copies the store's challenge answers into this instance, every `sync_ms`.
    async fn sync_challenges(self: Arc<Self>, stop: CancellationToken) {
        let sync = Duration::from_millis(self.config.sync_ms);
        loop {
            match self.store.acme_challenges().await {
                Ok(all) => self.challenges.replace_all(&all),
                Err(e) => tracing::debug!(error = %e, "ACME: cannot read the challenges"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(sync) => {}
            }
        }
    }
}
