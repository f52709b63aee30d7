//! Detection of suspicious activity, and the responses to it: alerts and temporary blocks.
//!
//! Threat: an attack under way that nobody is told about (credential stuffing, object-id
//! enumeration, a shared or leaked key, scanning, rate-limit evasion), and an attacker who simply
//! keeps going. Invariants:
//! - detectors read the audit records on the audit writer's thread, after each line is written
//!   (`engine.rs`): the request path does no counting and no extra allocation;
//! - every detector counts per key in a window (`window.rs`), in maps bounded by `max_tracked`
//!   (attackers choose the keys), with its own thresholds (`rules.rs`, `[detect]`);
//! - a detection is counted in metrics, recorded in the audit trail, blocks its subject when the
//!   detector is set to (`blocks.rs`: shared through Redis, listed and lifted in the admin API),
//!   and alerts once per detector and subject within `[alerts] dedup_s` to the log and to signed
//!   webhooks (`alert.rs`) through bounded queues: a slow webhook never slows requests;
//! - a blocked request is refused with 403 `blocked` and `Retry-After`, before any other stage
//!   for an address or a network (`Stage::Blocklist`), right after authentication for a caller,
//!   and its audit record names the detector;
//! - a user name is never blocked (anyone can claim one); the claimed name of failed Basic
//!   credentials is only counted.
//!
//! Settings follow reloads; counts and blocks survive them.

pub mod alert;
pub mod blocks;
pub mod config;
mod engine;
mod respond;
pub mod rules;
pub mod subject;
mod window;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

pub use config::{AlertsConfig, DetectConfig};
pub use engine::{DetectSettings, Detection, Detectors};
pub use respond::Responder;

use crate::audit::AuditSink;
use crate::store::redis::SharedRedis;
use alert::{AlertQueue, AlertSettings};
use blocks::BlockList;

/// Detections waiting for the responder at most; past this they are dropped and counted.
const DETECTION_QUEUE: usize = 1024;

/// The process's detection state, outliving reloads: blocks, and the running settings.
pub struct Watch {
    pub blocks: Arc<BlockList>,
    pub settings: Arc<ArcSwap<DetectSettings>>,
    pub alert_settings: Arc<ArcSwap<AlertSettings>>,
    alert_queue_capacity: usize,
    /// The alert queue, once `start` has run.
    alerts: std::sync::OnceLock<AlertQueue>,
}

impl Watch {
    pub fn new(detect: &DetectConfig, alerts: &AlertsConfig, redis: Option<SharedRedis>) -> Self {
        // Every detector's series exists from the start: an alert rule on `increase()` needs it.
        for rule in rules::RULES {
            metrics::counter!("rampart_detections_total", "detector" => rule.name()).increment(0);
        }
        metrics::counter!("rampart_detections_total", "detector" => alert::CERTIFICATE_EXPIRY)
            .increment(0);
        let max_blocks = usize::try_from(detect.max_blocks).unwrap_or(usize::MAX);
        let blocks = BlockList::new(max_blocks, redis);
        blocks.configure(detect);
        Self {
            blocks: Arc::new(blocks),
            settings: Arc::new(ArcSwap::from_pointee(DetectSettings::new(detect, &[]))),
            alert_settings: Arc::new(ArcSwap::from_pointee(AlertSettings {
                dedup: std::time::Duration::from_secs(alerts.dedup_s),
                webhooks: Vec::new(),
            })),
            alert_queue_capacity: alerts.queue_capacity,
            alerts: std::sync::OnceLock::new(),
        }
    }

    /// Applies the settings of a built runtime (start and every reload).
    pub fn configure(
        &self,
        config: &crate::config::Config,
        settings: &DetectSettings,
        alerts: &Arc<AlertSettings>,
    ) {
        self.blocks.configure(&config.detect);
        if **self.settings.load() != *settings {
            self.settings.store(Arc::new(settings.clone()));
        }
        self.alert_settings.store(alerts.clone());
    }

    /// Queues an alert that is not a detection (a certificate about to lapse); before `start`
    /// it is only logged by its sender.
    pub fn send_alert(&self, alert: alert::Alert) {
        if let Some(queue) = self.alerts.get() {
            queue.send(alert);
        }
    }

    /// The detectors, to be handed to the audit writer, and the responder's end of their queue.
    pub fn detectors(&self) -> (Detectors, mpsc::Receiver<Detection>) {
        let (tx, rx) = mpsc::channel(DETECTION_QUEUE);
        (Detectors::new(self.settings.clone(), tx), rx)
    }

    /// Starts the responder, the alert delivery and the block sync (inside a tokio runtime).
    pub fn start(&self, detections: mpsc::Receiver<Detection>, audit: AuditSink) {
        let alerts = AlertQueue::start(self.alert_queue_capacity, self.alert_settings.clone());
        let _ = self.alerts.set(alerts.clone());
        let responder = Responder::new(
            self.blocks.clone(),
            alerts,
            self.alert_settings.clone(),
            self.settings.clone(),
            audit,
            instance_name(),
        );
        tokio::spawn(responder.run(detections));
        self.blocks.spawn_sync();
    }
}

impl Default for Watch {
    fn default() -> Self {
        Self::new(&DetectConfig::default(), &AlertsConfig::default(), None)
    }
}

/// This instance in alerts: the host name and the process id.
pub(crate) fn instance_name() -> Arc<str> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "rampart".to_owned());
    Arc::from(format!("{host}/{}", std::process::id()))
}
