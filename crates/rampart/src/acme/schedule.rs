//! When a certificate is renewed: at two thirds of its lifetime (Let's Encrypt's advice), or at
//! a random point of the window the CA's renewal information suggests (ARI, RFC 9773), and how
//! long to wait after a failed order.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use instant_acme::{Account, CertificateIdentifier};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::store::StoredCertificate;

/// How long the CA gets to give its renewal information.
const ARI_TIMEOUT: Duration = Duration::from_secs(30);

/// The renewal time of the stored certificate, recomputed when it changes.
#[derive(Default)]
pub(super) struct RenewalPlan {
    /// `issued_at` of the certificate planned for.
    planned_for: Option<i64>,
    at: Option<SystemTime>,
    /// When to ask the CA's renewal information again (`None`: the CA has none).
    ask_ari_at: Option<SystemTime>,
}

impl RenewalPlan {
    /// Whether the stored certificate should be replaced now (none, revoked, unusable, or its
    /// time came).
    pub(super) async fn due(
        &mut self,
        stored: Option<&StoredCertificate>,
        account: Option<&Account>,
    ) -> bool {
        let Some(stored) = stored else {
            return true;
        };
        if stored.revoked_at.is_some() {
            return true;
        }
        let leaf = CertificateDer::pem_slice_iter(stored.cert_pem.as_bytes())
            .next()
            .and_then(Result::ok);
        let Some(leaf) = leaf else {
            return true;
        };
        if self.planned_for != Some(stored.issued_at) {
            self.planned_for = Some(stored.issued_at);
            // A stored certificate that cannot be served (a key that does not match) is due now.
            let usable =
                crate::tls::certified_key_from_pem(&stored.cert_pem, &stored.key_pem).is_ok();
            self.at = crate::tls::validity_unix(&leaf)
                .filter(|_| usable)
                .map(|(from, to)| two_thirds(from, to));
            self.ask_ari_at = usable.then(SystemTime::now);
        }
        if let (Some(account), Some(ask)) = (account, self.ask_ari_at)
            && SystemTime::now() >= ask
        {
            self.ask_renewal_info(account, &leaf).await;
        }
        self.at.is_none_or(|at| SystemTime::now() >= at)
    }

    /// RFC 9773: a random point of the suggested window, asked again when the CA says.
    async fn ask_renewal_info(&mut self, account: &Account, leaf: &CertificateDer<'_>) {
        let Ok(id) = CertificateIdentifier::try_from(leaf) else {
            self.ask_ari_at = None;
            return;
        };
        // The CA's HTTP client has no timeout of its own: a CA that stalls must not stall the
        // loop that installs certificates other instances renewed.
        let asked = tokio::time::timeout(ARI_TIMEOUT, account.renewal_info(&id)).await;
        let Ok(answer) = asked else {
            self.ask_ari_at = Some(SystemTime::now() + Duration::from_secs(3600));
            return;
        };
        match answer {
            Ok((info, ask_again)) => {
                let start = to_system_time(info.suggested_window.start.unix_timestamp());
                let end = to_system_time(info.suggested_window.end.unix_timestamp());
                let span = end.duration_since(start).unwrap_or_default();
                let offset = span.mul_f64(rand::random::<f64>());
                self.at = Some(start + offset);
                self.ask_ari_at = Some(SystemTime::now() + ask_again.max(Duration::from_secs(60)));
            }
            Err(instant_acme::Error::Unsupported(_)) => self.ask_ari_at = None,
            Err(e) => {
                tracing::debug!(error = %e, "ACME renewal information unavailable; renewing at two thirds of the lifetime");
                self.ask_ari_at = Some(SystemTime::now() + Duration::from_secs(3600));
            }
        }
    }
}

/// Two thirds of the way from `not_before` to `not_after` (Unix seconds).
fn two_thirds(not_before: i64, not_after: i64) -> SystemTime {
    let lifetime = not_after.saturating_sub(not_before).max(0);
    to_system_time(not_before.saturating_add(lifetime / 3 * 2 + lifetime % 3 * 2 / 3))
}

fn to_system_time(unix: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0))
}

/// Pauses after failed orders: `min`, doubling up to `max`, reset by a success.
pub(super) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    until: Option<Instant>,
}

impl Backoff {
    pub(super) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
            until: None,
        }
    }

    pub(super) fn ready(&self) -> bool {
        self.until.is_none_or(|until| Instant::now() >= until)
    }

    /// Records a failure; returns the pause before the next attempt.
    pub(super) fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.until = Some(Instant::now() + pause);
        self.next = (self.next * 2).min(self.max);
        pause
    }

    pub(super) fn succeeded(&mut self) {
        self.next = self.min;
        self.until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_at_two_thirds_of_the_lifetime() {
        let at = |from, to| {
            two_thirds(from, to)
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        };
        assert_eq!(at(0, 90), 60);
        assert_eq!(at(1_000, 1_030), 1_020);
        assert_eq!(
            at(0, 7_776_000),
            5_184_000,
            "a 90-day certificate: at day 60"
        );
        assert_eq!(at(100, 50), 100, "a certificate already past its end: now");
    }

    #[test]
    fn backoff_doubles_to_its_ceiling_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(35));
        assert!(backoff.ready());
        assert_eq!(backoff.failed(), Duration::from_secs(10));
        assert!(!backoff.ready());
        assert_eq!(backoff.failed(), Duration::from_secs(20));
        assert_eq!(backoff.failed(), Duration::from_secs(35));
        assert_eq!(backoff.failed(), Duration::from_secs(35));
        backoff.succeeded();
        assert!(backoff.ready());
        assert_eq!(backoff.failed(), Duration::from_secs(10));
    }
}
