//! What happens on a detection, off the request path: counted in metrics, recorded in the audit
//! trail, the subject blocked when the detector says so, and one alert per detector and subject
//! within `[alerts] dedup_s`, to the log and to every webhook.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use super::alert::{Alert, AlertQueue, AlertSettings};
use super::blocks::BlockList;
use super::engine::{DetectSettings, Detection};
use super::rules::RULES;
use crate::audit::{AuditEvent, AuditSink, DetectionNote};

/// Detector-and-subject pairs remembered for deduplication at most (attackers choose subjects;
/// past this the oldest are forgotten, which can only repeat an alert).
const DEDUP_ENTRIES: u64 = 100_000;

pub struct Responder {
    pub blocks: Arc<BlockList>,
    pub alerts: AlertQueue,
    pub alert_settings: Arc<ArcSwap<AlertSettings>>,
    pub detect_settings: Arc<ArcSwap<DetectSettings>>,
    pub audit: AuditSink,
    pub instance: Arc<str>,
    /// When each detector-and-subject pair last alerted.
    alerted: moka::sync::Cache<(&'static str, String), Instant>,
}

impl Responder {
    pub fn new(
        blocks: Arc<BlockList>,
        alerts: AlertQueue,
        alert_settings: Arc<ArcSwap<AlertSettings>>,
        detect_settings: Arc<ArcSwap<DetectSettings>>,
        audit: AuditSink,
        instance: Arc<str>,
    ) -> Self {
        Self {
            blocks,
            alerts,
            alert_settings,
            detect_settings,
            audit,
            instance,
            alerted: moka::sync::Cache::builder()
                .max_capacity(DEDUP_ENTRIES)
                .time_to_live(Duration::from_secs(crate::config::bounds::MAX_SECONDS))
                .build(),
        }
    }

    /// Handles detections until the engine's sender is gone.
    pub async fn run(self, mut detections: mpsc::Receiver<Detection>) {
        while let Some(detection) = detections.recv().await {
            self.handle(detection).await;
        }
    }

    pub async fn handle(&self, d: Detection) {
        let detector = d.rule.name();
        metrics::counter!("rampart_detections_total", "detector" => detector).increment(1);
        let subject = d.subject.to_string();
        let blocked_until = match d.block_for {
            Some(duration) => self.block(&d, duration).await,
            None => None,
        };
        let threshold = RULES
            .iter()
            .position(|r| *r == d.rule)
            .map_or(0, |i| self.detect_settings.load().rules[i].threshold);
        self.audit.event(AuditEvent::detection(DetectionNote {
            detector,
            subject: subject.clone(),
            route: d.route.as_deref().map(str::to_owned),
            observed: d.observed,
            window_s: d.window.as_secs(),
            blocked_until,
        }));
        if !self.first_within_dedup(detector, &subject) {
            metrics::counter!("rampart_alerts_total", "result" => "deduplicated").increment(1);
            return;
        }
        tracing::warn!(
            target: "rampart::alert",
            detector,
            subject = %subject,
            route = d.route.as_deref().unwrap_or(""),
            observed = d.observed,
            window_s = d.window.as_secs(),
            blocked = blocked_until.is_some(),
            "suspicious activity detected"
        );
        self.alerts.send(Alert {
            id: uuid::Uuid::new_v4().to_string(),
            time: SystemTime::now(),
            detector,
            subject_kind: d.subject.kind(),
            subject,
            route: d.route.as_deref().map(str::to_owned),
            observed: d.observed,
            threshold,
            window_s: d.window.as_secs(),
            action: if blocked_until.is_some() {
                "blocked"
            } else {
                "alert"
            },
            blocked_until,
            expires_at: None,
            instance: self.instance.clone(),
        });
    }

    async fn block(&self, d: &Detection, duration: Duration) -> Option<SystemTime> {
        match self
            .blocks
            .raise(d.subject.clone(), d.rule.name(), duration)
            .await
        {
            Ok(until) => {
                metrics::counter!("rampart_blocks_total", "by" => d.rule.name()).increment(1);
                Some(until)
            }
            Err(full) => {
                tracing::error!(detector = d.rule.name(), error = %full, "cannot block");
                None
            }
        }
    }

    /// Whether this pair has not alerted within the dedup window (and records that it now has).
    fn first_within_dedup(&self, detector: &'static str, subject: &str) -> bool {
        let window = self.alert_settings.load().dedup;
        let key = (detector, subject.to_owned());
        let now = Instant::now();
        if let Some(last) = self.alerted.get(&key)
            && now.saturating_duration_since(last) < window
        {
            return false;
        }
        self.alerted.insert(key, now);
        true
    }
}
