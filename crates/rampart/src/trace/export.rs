//! Spans of sampled requests, sent to an OTLP/HTTP receiver as OTLP JSON.
//!
//! Written by hand over `serde_json` rather than with the OpenTelemetry SDK: the spans are made
//! from the request's finished audit record on the audit writer's thread (a request span and one
//! span per stage it ran, from the marks its `StageClock` took), so the request path never
//! touches a span API; the SDK would add its own span objects, batch processor and runtime
//! (with tonic and prost) to do what the OTLP JSON mapping states in a page. The exporter task
//! batches, posts with a timeout, and drops (counted) what a slow or dead receiver cannot take:
//! tracing never slows requests.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{SampledRequest, SpanId, TracingConfig};
use crate::audit::{AuditRecord, RecordObserver};

/// Spans posted at once at most, and the longest a span waits for its batch.
const BATCH: usize = 512;
const BATCH_DELAY: Duration = Duration::from_secs(1);

/// Where spans go, following reloads.
pub struct ExportSettings {
    endpoint: Option<reqwest::Url>,
    service_name: String,
    timeout: Duration,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self::new(&TracingConfig::default())
    }
}

impl ExportSettings {
    pub fn new(config: &TracingConfig) -> Self {
        Self {
            endpoint: config
                .otlp_endpoint
                .as_deref()
                .and_then(|e| signal_url(e, "traces")),
            service_name: config.service_name.clone(),
            timeout: Duration::from_millis(config.export_timeout_ms),
        }
    }
}

/// `ENDPOINT/v1/SIGNAL` (`traces`, `logs`), appended to the endpoint's own path
/// (`https://host/otlp` gives `https://host/otlp/v1/traces`), as OTLP exporters do; an endpoint
/// already naming it is kept.
pub(crate) fn signal_url(endpoint: &str, signal: &str) -> Option<reqwest::Url> {
    let mut url = reqwest::Url::parse(endpoint).ok()?;
    if url
        .path()
        .trim_end_matches('/')
        .ends_with(&format!("/v1/{signal}"))
    {
        return Some(url);
    }
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .push("v1")
        .push(signal);
    Some(url)
}

/// The audit writer's side: turns a sampled record into spans and queues them.
pub struct SpanExporter {
    settings: Arc<ArcSwap<ExportSettings>>,
    tx: mpsc::Sender<Value>,
}

impl SpanExporter {
    /// The observer for the audit writer, and the task that posts its batches.
    pub fn start(settings: Arc<ArcSwap<ExportSettings>>, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(post_batches(rx, settings.clone()));
        Self { settings, tx }
    }
}

impl RecordObserver for SpanExporter {
    fn observe(&mut self, record: &AuditRecord) {
        let Some(sampled) = &record.sampled else {
            return;
        };
        if self.settings.load().endpoint.is_none() {
            return;
        }
        // A full queue (a receiver down, or forced sampling) costs the writer nothing more.
        if self.tx.capacity() == 0 {
            metrics::counter!("rampart_spans_total", "result" => "dropped").increment(1);
            return;
        }
        for span in spans(record, sampled) {
            if self.tx.try_send(span).is_err() {
                metrics::counter!("rampart_spans_total", "result" => "dropped").increment(1);
            }
        }
    }
}

/// The request's span (kind server) and one span per stage (kind internal), the refusing
/// stage's with an error status.
fn spans(r: &AuditRecord, sampled: &SampledRequest) -> Vec<Value> {
    let began = nanos(sampled.clock.began);
    let ended = began.saturating_add(r.duration_us.saturating_mul(1000));
    let Some(trace_id) = r.trace_id.map(|id| id.to_string()) else {
        return Vec::new();
    };
    let route = r.route.as_deref().unwrap_or("unrouted");
    let mut attributes = vec![
        text("http.request.method", &r.method),
        text("url.path", &r.path),
        int("http.response.status_code", u64::from(r.status)),
        text("rampart.route", route),
        text("rampart.decision", r.decision.as_str()),
        text("client.address", &r.client_ip.to_string()),
        text("network.protocol.name", "http"),
        text("rampart.request_id", r.request_id.as_str()),
    ];
    attributes.extend(r.code.map(|code| text("rampart.code", code)));
    attributes.extend(r.refused_by.map(|stage| text("rampart.refused_by", stage)));
    attributes.extend(r.upstream.as_deref().map(|u| text("rampart.upstream", u)));
    let server_error = r.status >= 500;
    let mut out = vec![span(
        &trace_id,
        sampled.span_id,
        sampled.parent,
        &format!("{} {route}", r.method),
        2,
        (began, ended),
        attributes,
        status(server_error, r.code),
    )];
    let marks = &sampled.clock.marks;
    let mut rng = rand::rng();
    for (i, (stage, at)) in marks.iter().enumerate() {
        let start = began.saturating_add(*at);
        let end = marks
            .get(i + 1)
            .map_or(ended, |(_, next)| began.saturating_add(*next));
        let refused_here = i + 1 == marks.len() && r.refused_by == Some(stage.name());
        out.push(span(
            &trace_id,
            SpanId(super::nonzero_random(&mut rng)),
            Some(sampled.span_id),
            stage.name(),
            1,
            (start, end.max(start)),
            Vec::new(),
            status(refused_here, r.code),
        ));
    }
    out
}

#[allow(clippy::too_many_arguments)] // one OTLP span's fields, named at each call
fn span(
    trace_id: &str,
    id: SpanId,
    parent: Option<SpanId>,
    name: &str,
    kind: u8,
    (start, end): (u64, u64),
    attributes: Vec<Value>,
    status: Value,
) -> Value {
    let mut span = json!({
        "traceId": trace_id,
        "spanId": id.to_string(),
        "name": name,
        "kind": kind,
        // 64-bit integers are strings in OTLP JSON.
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": end.to_string(),
        "attributes": attributes,
        "status": status,
    });
    if let Some(parent) = parent {
        span["parentSpanId"] = json!(parent.to_string());
    }
    span
}

fn status(error: bool, code: Option<&str>) -> Value {
    match (error, code) {
        (true, Some(code)) => json!({"code": 2, "message": code}),
        (true, None) => json!({"code": 2}),
        _ => json!({"code": 0}),
    }
}

fn text(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

fn int(key: &str, value: u64) -> Value {
    json!({"key": key, "value": {"intValue": value.to_string()}})
}

fn nanos(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

/// Collects spans into batches (up to `BATCH`, or what came within `BATCH_DELAY`) and posts
/// each once; a failed post is dropped and counted, never retried into a growing backlog.
async fn post_batches(mut rx: mpsc::Receiver<Value>, settings: Arc<ArcSwap<ExportSettings>>) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let settings = settings.load_full();
        let Some(endpoint) = settings.endpoint.clone() else {
            continue;
        };
        let count = batch.len() as u64;
        let body = json!({"resourceSpans": [{
            "resource": {"attributes": [text("service.name", &settings.service_name)]},
            "scopeSpans": [{
                "scope": {"name": "rampart", "version": env!("CARGO_PKG_VERSION")},
                "spans": batch,
            }],
        }]});
        let sent = http
            .post(endpoint)
            .timeout(settings.timeout)
            .json(&body)
            .send()
            .await;
        let result = match sent {
            Ok(r) if r.status().is_success() => "exported",
            Ok(r) => {
                tracing::warn!(
                    status = r.status().as_u16(),
                    "the OTLP receiver refused spans"
                );
                "failed"
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot send spans to the OTLP receiver");
                "failed"
            }
        };
        metrics::counter!("rampart_spans_total", "result" => result).increment(count);
    }
}

#[cfg(test)]
mod tests {
    use super::signal_url;

    #[test]
    fn the_traces_path_is_appended_to_the_endpoints_own_path() {
        for (endpoint, expected) in [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            (
                "https://otlp.example/otlp",
                "https://otlp.example/otlp/v1/traces",
            ),
            (
                "https://otlp.example/otlp/v1/traces",
                "https://otlp.example/otlp/v1/traces",
            ),
        ] {
            assert_eq!(
                signal_url(endpoint, "traces").unwrap().as_str(),
                expected,
                "{endpoint}"
            );
        }
    }
}
