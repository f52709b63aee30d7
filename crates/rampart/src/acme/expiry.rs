//! The alert before a served certificate lapses, for every TLS listener (files and ACME alike):
//! a renewal that keeps failing, or a file nobody replaced, is told to a person while there is
//! still time. One alert per listener and certificate; the warning time is
//! `[alerts] certificate_expiry_s` of the running config.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::policy::detect::alert::{Alert, CERTIFICATE_EXPIRY};
use crate::runtime::gateway::Gateway;
use crate::tls::CertResolver;

/// How often the served certificates are looked at (a read of a number each: no parsing).
const PAUSE: Duration = Duration::from_secs(1);

pub struct ExpiryWatch;

impl ExpiryWatch {
    /// Watches until the gateway is gone.
    pub fn spawn(gateway: Weak<Gateway>, resolvers: Vec<Arc<CertResolver>>) {
        if resolvers.is_empty() {
            return;
        }
        tokio::spawn(async move {
            // The `notAfter` already alerted on, per listener.
            let mut alerted: HashMap<String, i64> = HashMap::new();
            loop {
                let Some(gateway) = gateway.upgrade() else {
                    return;
                };
                let warn_s = gateway.runtime().config.alerts.certificate_expiry_s;
                for resolver in &resolvers {
                    check(&gateway, resolver, warn_s, &mut alerted);
                }
                drop(gateway);
                tokio::time::sleep(PAUSE).await;
            }
        });
    }
}

fn check(
    gateway: &Gateway,
    resolver: &CertResolver,
    warn_s: u64,
    alerted: &mut HashMap<String, i64>,
) {
    let Some(not_after) = resolver.not_after() else {
        return;
    };
    let now = crate::store::now();
    let left = not_after.saturating_sub(now);
    if left > i64::try_from(warn_s).unwrap_or(i64::MAX) {
        return;
    }
    let listener = resolver.listener();
    if alerted.get(listener) == Some(&not_after) {
        return;
    }
    alerted.insert(listener.to_owned(), not_after);
    tracing::warn!(
        target: "rampart::alert",
        listener,
        seconds_left = left,
        "the served certificate expires soon"
    );
    metrics::counter!("rampart_detections_total", "detector" => CERTIFICATE_EXPIRY).increment(1);
    gateway.services.watch.send_alert(Alert {
        id: uuid::Uuid::new_v4().to_string(),
        time: SystemTime::now(),
        detector: CERTIFICATE_EXPIRY,
        subject: listener.to_owned(),
        subject_kind: "listener",
        route: None,
        observed: u32::try_from(left.max(0)).unwrap_or(u32::MAX),
        threshold: u32::try_from(warn_s).unwrap_or(u32::MAX),
        window_s: 0,
        action: "alert",
        blocked_until: None,
        expires_at: Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(not_after).unwrap_or(0))),
        instance: crate::policy::detect::instance_name(),
    });
}
