//! Shipping the audit trail to an OpenTelemetry collector as OTLP log records (OTLP/HTTP, JSON
//! encoding, `ENDPOINT/v1/logs`), at least once, with the trail's own files as the spool.
//!
//! Threat: as for syslog (`syslog.rs`), a trail that lives and dies with one machine.
//! Invariants: every line of the trail is sent in order, one log record per line, the line
//! itself as the body (so a collector's copy can be verified with `rampart audit verify`); a
//! batch counts as received only when the collector answers 2xx, and `FILE.otlp-shipped`
//! records the last line so received, so a refused batch, an outage or a restart resends from
//! there (duplicates possible, never a gap, unless rotation removed the lines first, which is
//! counted); a dedicated thread reads the files and posts, off the request path.
//!
//! Written over `reqwest` and `serde_json` for the reason given in `trace/export.rs`: the OTLP
//! JSON mapping of a log record is a few fields, and the records already exist as lines.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::tail::{
    LineFields, ShipperHandle, Stop, Tail, cursor_path, read_cursor, write_cursor,
};
use crate::config::Issue;
use crate::config::bounds::MAX_MILLIS;

/// Lines per post at most, and bytes of lines (a collector refuses large requests: 4 MiB is
/// the gRPC default, and a conservative HTTP one).
const BATCH: usize = 512;
const BATCH_BYTES: usize = 4 * 1024 * 1024;
const POLL: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// `[otlp_logs]`: where the audit trail is shipped as OTLP logs.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtlpLogsConfig {
    /// An OTLP/HTTP receiver (`http://collector:4318`); records go to `ENDPOINT/v1/logs`.
    pub endpoint: String,
    /// `service.name` of the records.
    #[serde(default = "default_service")]
    pub service_name: String,
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = MAX_MILLIS))]
    pub timeout_ms: u64,
}

fn default_service() -> String {
    "rampart".to_owned()
}
fn default_timeout() -> u64 {
    10_000
}

impl OtlpLogsConfig {
    pub fn validate(&self, audit: &crate::audit::AuditConfig, issues: &mut Vec<Issue>) {
        if audit.file.is_none() || !audit.enabled {
            issues.push(Issue::new(
                "/otlp_logs",
                "the trail is shipped from its files: set [audit] file",
            ));
        }
        if crate::trace::export::signal_url(&self.endpoint, "logs")
            .is_none_or(|u| !matches!(u.scheme(), "http" | "https"))
        {
            issues.push(Issue::new(
                "/otlp_logs/endpoint",
                "an http:// or https:// URL of an OTLP/HTTP receiver",
            ));
        }
    }
}

/// Starts shipping `trail` (the audit file) as `config` says.
pub fn start(
    config: &OtlpLogsConfig,
    trail: &Path,
    max_files: u32,
) -> Result<ShipperHandle, String> {
    let url = crate::trace::export::signal_url(&config.endpoint, "logs")
        .ok_or("otlp_logs.endpoint is not a URL")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(config.timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("OTLP logs client: {e}"))?;
    let (handle, stop) = ShipperHandle::new();
    let ship = Ship {
        url,
        http,
        service: config.service_name.clone(),
        tail: Tail::new(trail, max_files),
        cursor_file: cursor_path(trail, ".otlp-shipped"),
        stop,
    };
    std::thread::Builder::new()
        .name("rampart-otlp-logs".into())
        .spawn(move || ship.run())
        .map_err(|e| format!("cannot start the OTLP logs shipper: {e}"))?;
    Ok(handle)
}

struct Ship {
    url: reqwest::Url,
    http: reqwest::Client,
    service: String,
    tail: Tail,
    cursor_file: std::path::PathBuf,
    stop: Stop,
}

impl Ship {
    fn run(mut self) {
        // Its own small runtime: the posts block this thread only.
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            tracing::error!("cannot start the OTLP logs shipper's runtime");
            return;
        };
        let mut confirmed = self.tail.start_from(read_cursor(&self.cursor_file));
        let mut backoff = Duration::from_secs(1);
        // Halved while the receiver refuses a batch as such (too large, or one bad record).
        let mut limit = BATCH;
        while !self.stop.is_set() {
            let mut records = Vec::new();
            let (mut last, mut bytes) = (confirmed, 0);
            while records.len() < limit && bytes < BATCH_BYTES {
                let Some((seq, line)) = self.tail.next_after(last) else {
                    break;
                };
                bytes += line.len();
                records.push(log_record(seq, &line));
                last = seq;
            }
            if records.is_empty() {
                self.stop.pause(POLL);
                continue;
            }
            let count = records.len();
            match runtime.block_on(self.post(records)) {
                Ok(()) => {
                    confirmed = last;
                    write_cursor(&self.cursor_file, confirmed);
                    backoff = Duration::from_secs(1);
                    limit = BATCH;
                }
                // Refused as such (not a passing outage): a smaller batch, down to the one
                // record the receiver will never take, which is counted and passed over rather
                // than holding up every line after it.
                Err(Post::Refused(status)) if count == 1 => {
                    tracing::error!(
                        seq = last,
                        status,
                        "the OTLP logs receiver refuses this audit line; it is skipped"
                    );
                    metrics::counter!("rampart_shipping_refused_total").increment(1);
                    confirmed = last;
                    write_cursor(&self.cursor_file, confirmed);
                    self.tail.rewind();
                }
                Err(Post::Refused(_)) => {
                    limit = (count / 2).max(1);
                    self.tail.rewind();
                }
                Err(Post::Failed(why)) => {
                    tracing::warn!(error = %why, "the OTLP logs receiver did not take a batch; it is sent again");
                    // Read again from the last line received.
                    self.tail.rewind();
                    self.stop.pause(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn post(&self, records: Vec<Value>) -> Result<(), Post> {
        let body = json!({"resourceLogs": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": self.service}},
            ]},
            "scopeLogs": [{
                "scope": {"name": "rampart.audit", "version": env!("CARGO_PKG_VERSION")},
                "logRecords": records,
            }],
        }]});
        let answer = self
            .http
            .post(self.url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| Post::Failed(e.to_string()))?;
        let status = answer.status();
        match status.as_u16() {
            200..=299 => Ok(()),
            // What OTLP says to retry as it is: throttling and a receiver not ready.
            429 | 502 | 503 | 504 => Err(Post::Failed(format!("answered {status}"))),
            400..=499 => Err(Post::Refused(status.as_u16())),
            _ => Err(Post::Failed(format!("answered {status}"))),
        }
    }
}

/// Why a post was not taken.
enum Post {
    /// Worth the same batch again later (the receiver unreachable, busy or failing).
    Failed(String),
    /// Refused as sent (OTLP's non-retryable 4xx): the batch itself must change.
    Refused(u16),
}

/// One line as an OTLP log record: its time, a severity by kind (request INFO, event INFO2,
/// detection WARN), the line as the body, and its `seq` and event as attributes.
fn log_record(seq: u64, line: &[u8]) -> Value {
    let fields = LineFields::of(line);
    let observed = nanos(SystemTime::now());
    let time = fields
        .time
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .and_then(|t| u64::try_from(t.unix_timestamp_nanos()).ok())
        .unwrap_or(observed);
    let (number, text) = match fields.event {
        Some("detection") => (13, "WARN"),
        Some(_) => (10, "INFO2"),
        None => (9, "INFO"),
    };
    let mut attributes =
        vec![json!({"key": "rampart.seq", "value": {"intValue": seq.to_string()}})];
    if let Some(event) = fields.event {
        attributes.push(json!({"key": "rampart.event", "value": {"stringValue": event}}));
    }
    json!({
        "timeUnixNano": time.to_string(),
        "observedTimeUnixNano": observed.to_string(),
        "severityNumber": number,
        "severityText": text,
        "body": {"stringValue": String::from_utf8_lossy(line)},
        "attributes": attributes,
    })
}

fn nanos(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_becomes_a_log_record_with_its_time_severity_and_seq() {
        let record = log_record(
            7,
            br#"{"time":"2026-12-03T18:00:00.5Z","event":"detection","seq":7}"#,
        );
        assert_eq!(record["timeUnixNano"], "1796320800500000000");
        assert_eq!(record["severityNumber"], 13);
        assert_eq!(record["attributes"][0]["value"]["intValue"], "7");
        assert_eq!(record["attributes"][1]["value"]["stringValue"], "detection");
        assert!(
            record["body"]["stringValue"]
                .as_str()
                .unwrap()
                .contains("\"seq\":7")
        );
    }
}
