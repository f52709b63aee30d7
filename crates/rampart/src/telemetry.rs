//! Metrics (Prometheus, served by the admin listener) and log set-up helpers.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::SharedString;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::audit::AuditRecord;

/// Latency buckets in seconds: fine-grained below 10 ms, where a gateway's own cost lives.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed (an embedding application's); then ours
        // renders empty, which is better than a panic.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Request metrics, recorded when the response ends (from the audit body).
pub(crate) fn record_request(record: &AuditRecord, elapsed: Duration) {
    let route: SharedString = match &record.route {
        Some(name) => SharedString::from(Arc::clone(name)),
        None => SharedString::const_str("(none)"),
    };
    metrics::counter!(
        "rampart_requests_total",
        "route" => route.clone(),
        "status" => status_label(record.status),
        "decision" => record.decision.as_str(),
    )
    .increment(1);
    metrics::histogram!("rampart_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    if let (Some(upstream), Some(us)) = (&record.upstream, record.upstream_us) {
        metrics::histogram!("rampart_upstream_duration_seconds", "target" => SharedString::from(Arc::clone(upstream)))
            .record(us as f64 / 1e6);
    }
}

/// Status codes as static label values, so that recording a metric does not allocate.
fn status_label(status: u16) -> SharedString {
    const CODES: [(u16, &str); 24] = [
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (206, "206"),
        (301, "301"),
        (302, "302"),
        (304, "304"),
        (307, "307"),
        (308, "308"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (409, "409"),
        (413, "413"),
        (414, "414"),
        (422, "422"),
        (429, "429"),
        (431, "431"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
    ];
    match CODES.iter().find(|(code, _)| *code == status) {
        Some((_, text)) => SharedString::const_str(text),
        None => SharedString::from(std::borrow::Cow::Owned(status.to_string())),
    }
}

/// Counts an upstream failure by kind.
pub(crate) fn upstream_error(upstream: &Arc<str>, kind: &'static str) {
    metrics::counter!(
        "rampart_upstream_errors_total",
        "upstream" => SharedString::from(Arc::clone(upstream)),
        "kind" => kind,
    )
    .increment(1);
}
