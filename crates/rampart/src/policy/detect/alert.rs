//! Alerts to webhooks: JSON (or a Slack message) signed with HMAC-SHA-256 over the timestamp and
//! the body, as Stripe and GitHub sign theirs, delivered with retries and backoff from a bounded
//! queue. A failing or slow webhook never slows requests: it only fills the queue, whose
//! overflow is dropped and counted.
//!
//! The signature header is `Rampart-Signature: t=UNIX_SECONDS,v1=HEX`, where `HEX` is
//! HMAC-SHA-256(secret, `UNIX_SECONDS` + "." + body). A receiver recomputes it, compares in
//! constant time and refuses old timestamps (replays).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc};

use super::config::{AlertFormat, AlertsConfig, WebhookConfig};
use crate::config::Issue;
use crate::config::secret::Secret;

/// Signing secrets shorter than this are refused (the hash's size, as for HMAC JWT secrets).
pub const MIN_SECRET_BYTES: usize = 32;
/// Deliveries in flight at once, across webhooks.
const CONCURRENT_DELIVERIES: usize = 32;
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub const SIGNATURE_HEADER: &str = "rampart-signature";

/// The `detector` of an alert that a served certificate is about to lapse.
pub const CERTIFICATE_EXPIRY: &str = "certificate_expiry";

/// One alert, as a webhook receives it (format `json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Alert {
    /// Unique per alert: receivers deduplicate retries by it.
    pub id: String,
    #[serde(serialize_with = "crate::audit::rfc3339")]
    pub time: SystemTime,
    pub detector: &'static str,
    pub subject: String,
    pub subject_kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The count that reached the threshold, within `window_s`.
    pub observed: u32,
    pub threshold: u32,
    pub window_s: u64,
    /// `blocked` or `alert`.
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "crate::audit::rfc3339_opt")]
    pub blocked_until: Option<SystemTime>,
    /// `certificate_expiry` only: when the served certificate lapses (then `observed` is the
    /// seconds left and `threshold` the warning's seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "crate::audit::rfc3339_opt")]
    pub expires_at: Option<SystemTime>,
    /// The gateway instance that saw it.
    pub instance: Arc<str>,
}

impl Alert {
    /// The message; client-influenced text (the subject, a claimed user name) is escaped as
    /// Slack asks (`&`, `<`, `>`), and backticks removed, so it cannot ping a channel, render a
    /// link or leave its code span.
    fn slack_text(&self) -> String {
        if self.detector == CERTIFICATE_EXPIRY {
            return format!(
                ":warning: Rampart: the certificate of listener `{}` expires in {} h. Instance {}.",
                slack_escape(&self.subject),
                self.observed / 3600,
                slack_escape(&self.instance)
            );
        }
        let route = self
            .route
            .as_deref()
            .map(|r| format!(" on route {}", slack_escape(r)))
            .unwrap_or_default();
        let action = match self.action {
            "blocked" => "blocked",
            _ => "not blocked",
        };
        format!(
            ":rotating_light: Rampart detected *{}* from `{}`{route}: {} in {} s (threshold {}); {action}. Instance {}.",
            self.detector,
            slack_escape(&self.subject),
            self.observed,
            self.window_s,
            self.threshold,
            slack_escape(&self.instance)
        )
    }
}

fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "'")
}

/// A webhook ready to deliver to.
pub struct Webhook {
    pub name: String,
    url: reqwest::Url,
    secret: Secret,
    format: AlertFormat,
    max_attempts: u32,
    http: reqwest::Client,
}

impl Webhook {
    pub fn build(config: &WebhookConfig, at: &str) -> Result<Self, Issue> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| Issue::new(format!("{at}/url"), format!("not a URL: {e}")))?;
        let loopback = url.host().is_some_and(|host| match host {
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
            url::Host::Domain(name) => name == "localhost",
        });
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(Issue::new(
                format!("{at}/url"),
                "alerts go over https:// (http:// only to a loopback address)",
            ));
        }
        let secret = config
            .secret
            .load()
            .map_err(|e| Issue::new(format!("{at}/secret"), e))?;
        if secret.expose().len() < MIN_SECRET_BYTES {
            return Err(Issue::new(
                format!("{at}/secret"),
                format!("the signing secret must be at least {MIN_SECRET_BYTES} bytes"),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Issue::new(at, format!("HTTP client: {e}")))?;
        Ok(Self {
            name: config.name.clone(),
            url,
            secret,
            format: config.format,
            max_attempts: config.max_attempts.max(1),
            http,
        })
    }

    fn body(&self, alert: &Alert) -> Vec<u8> {
        let value = match self.format {
            AlertFormat::Json => serde_json::to_value(alert),
            AlertFormat::Slack => Ok(serde_json::json!({ "text": alert.slack_text() })),
        };
        value
            .and_then(|v| serde_json::to_vec(&v))
            .unwrap_or_default()
    }

    /// Sends until a 2xx, a refusal that a retry cannot change (4xx but 408 and 429), or the
    /// last attempt; returns whether it was delivered.
    async fn deliver(&self, alert: &Alert) -> bool {
        let body = self.body(alert);
        let mut backoff = Duration::from_secs(1);
        for attempt in 1..=self.max_attempts {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let sent = self
                .http
                .post(self.url.clone())
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(
                    SIGNATURE_HEADER,
                    signature(self.secret.expose(), timestamp, &body),
                )
                .header("rampart-alert-id", alert.id.as_str())
                .body(body.clone())
                .send()
                .await;
            let status = sent.as_ref().map(reqwest::Response::status);
            match status {
                Ok(s) if s.is_success() => return true,
                Ok(s) if s.is_client_error() && s != 408 && s != 429 => {
                    tracing::warn!(webhook = %self.name, status = s.as_u16(), "the webhook refused an alert");
                    return false;
                }
                _ => {}
            }
            if attempt < self.max_attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        tracing::warn!(webhook = %self.name, attempts = self.max_attempts, "cannot deliver an alert to the webhook");
        false
    }
}

/// `t=UNIX_SECONDS,v1=HEX(HMAC-SHA-256(secret, "UNIX_SECONDS." + body))`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// The alert settings of the running config.
pub struct AlertSettings {
    pub dedup: Duration,
    pub webhooks: Vec<Arc<Webhook>>,
}

impl AlertSettings {
    /// Builds every webhook (reading their secrets), or every problem found.
    pub fn build(config: &AlertsConfig, issues: &mut Vec<Issue>) -> Self {
        let mut webhooks = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, hook) in config.webhooks.iter().enumerate() {
            let at = format!("/alerts/webhooks/{i}");
            if !names.insert(hook.name.as_str()) {
                issues.push(Issue::new(
                    format!("{at}/name"),
                    "webhook names must be unique",
                ));
            }
            match Webhook::build(hook, &at) {
                Ok(built) => webhooks.push(Arc::new(built)),
                Err(issue) => issues.push(issue),
            }
        }
        Self {
            dedup: Duration::from_secs(config.dedup_s),
            webhooks,
        }
    }
}

/// The queue of alerts to deliver; the delivery task reads the running config's webhooks.
#[derive(Clone)]
pub struct AlertQueue {
    tx: mpsc::Sender<Arc<Alert>>,
}

impl AlertQueue {
    pub fn start(capacity: usize, settings: Arc<ArcSwap<AlertSettings>>) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(deliver_all(rx, settings));
        Self { tx }
    }

    /// Queues an alert for every webhook; a full queue drops it (counted).
    pub fn send(&self, alert: Alert) {
        if self.tx.try_send(Arc::new(alert)).is_err() {
            metrics::counter!("rampart_alerts_total", "result" => "dropped").increment(1);
        }
    }
}

async fn deliver_all(mut rx: mpsc::Receiver<Arc<Alert>>, settings: Arc<ArcSwap<AlertSettings>>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    while let Some(alert) = rx.recv().await {
        for hook in settings.load().webhooks.iter() {
            // Waiting for a slot holds the queue: a dead webhook fills it, and the overflow is
            // dropped at `send`, never waited for.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let alert = alert.clone();
            let hook = hook.clone();
            tokio::spawn(async move {
                let result = match hook.deliver(&alert).await {
                    true => "delivered",
                    false => "failed",
                };
                metrics::counter!("rampart_alerts_total", "result" => result).increment(1);
                drop(slot);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_name_cannot_ping_a_slack_channel_or_leave_its_code_span() {
        let alert = Alert {
            id: "1".into(),
            time: SystemTime::UNIX_EPOCH,
            detector: "addresses_by_user",
            subject: "user:x` <!channel> <https://evil.example|login>".into(),
            subject_kind: "user",
            route: None,
            observed: 10,
            threshold: 10,
            window_s: 300,
            action: "alert",
            blocked_until: None,
            expires_at: None,
            instance: Arc::from("gw/1"),
        };
        let text = alert.slack_text();
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(!text.contains("<https"), "{text}");
        assert_eq!(
            text.matches('`').count(),
            2,
            "only the gateway's own code span: {text}"
        );
        assert!(text.contains("&lt;!channel&gt;"), "{text}");
    }

    /// The construction a receiver checks (Stripe's scheme), against a vector computed
    /// independently with Python's `hmac.new(b"k"*32, b'1700000000.{"a":1}', "sha256")`.
    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        assert_eq!(
            signature(&[b'k'; 32], 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=6935b796c0fec66e5dee52c86c7fd1218a424c32f1adb239ff2893c31e54f033"
        );
    }
}
