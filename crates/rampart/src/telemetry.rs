//! Metrics (Prometheus, served by the admin listener) and log set-up helpers.
//!
//! Invariant: the recorder's memory is bounded whether or not anyone scrapes `/metrics`. The
//! exporter keeps every histogram sample in a queue until its upkeep folds them into buckets
//! (about 40 bytes per request); rendering runs it, but the admin listener may be off or unscraped,
//! so a background thread runs it every `UPKEEP_INTERVAL` from the moment the recorder exists.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::SharedString;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::audit::AuditRecord;
use crate::context::Decision;

/// Latency buckets in seconds: fine-grained below 10 ms, where a gateway's own cost lives.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often the recorder's pending histogram samples are folded into their buckets.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
const UPKEEP_THREAD: &str = "metrics-upkeep";

/// The process-wide Prometheus recorder, installed on first use, with its upkeep running.
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
        spawn_upkeep(handle.clone(), UPKEEP_INTERVAL, true);
        describe_metrics();
        present_at_zero();
        process::record_start();
        process::record();
        handle
    })
}

/// Runs the recorder's upkeep every `interval`, for the life of the process. A plain thread, so
/// that it needs no runtime and outlives any one of them (the recorder is process-wide too).
/// With `process_metrics`, it also refreshes the process gauges from `/proc` (file reads, so
/// here and not on a scrape, which runs on the runtime's threads).
fn spawn_upkeep(handle: PrometheusHandle, interval: Duration, process_metrics: bool) {
    let spawned = std::thread::Builder::new()
        .name(UPKEEP_THREAD.to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                handle.run_upkeep();
                if process_metrics {
                    process::record();
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start metrics upkeep; memory grows until /metrics is scraped");
    }
}

/// Counters: name and help text (`# HELP` in `/metrics`).
const COUNTERS: [(&str, &str); 27] = [
    (
        "rampart_shipping_refused_total",
        "Audit lines an OTLP logs receiver refused one by one (a non-retryable 4xx), skipped so that the lines after them are shipped.",
    ),
    (
        "rampart_shipping_lost_total",
        "Audit lines rotated away before a shipper (syslog, OTLP logs) sent them: the receiver was down longer than the files were kept.",
    ),
    (
        "rampart_spans_total",
        "Spans of sampled requests, by result: exported, failed (the OTLP receiver refused or was unreachable), dropped (queue full).",
    ),
    (
        "rampart_detections_total",
        "Detections of suspicious activity, by detector (present at zero for each).",
    ),
    (
        "rampart_detections_dropped_total",
        "Detections dropped because the responder's queue was full.",
    ),
    (
        "rampart_blocks_total",
        "Blocks raised, by who raised them (a detector, or operator).",
    ),
    (
        "rampart_blocks_refused_total",
        "Blocks not raised because the block list was full (detect.max_blocks).",
    ),
    (
        "rampart_alerts_total",
        "Alerts, by result: delivered (to one webhook), failed (after every attempt), dropped (queue full), deduplicated (within alerts.dedup_s).",
    ),
    (
        "rampart_validation_total",
        "Contract checks by route, operation and outcome (passed, refused, reported)",
    ),
    (
        "rampart_requests_total",
        "Requests answered, by route, status and decision (allow, deny, error).",
    ),
    (
        "rampart_auth_failures_total",
        "Failed authentications, by credential method presented (bearer, dpop, api_key, basic, none) and reason (missing, invalid_request, invalid_token, invalid_dpop_proof, use_dpop_nonce, unavailable).",
    ),
    (
        "rampart_clients_blocked_total",
        "Client addresses blocked after repeated authentication failures.",
    ),
    (
        "rampart_audit_dropped_total",
        "Audit records dropped because the writer queue was full.",
    ),
    (
        "rampart_config_reloads_total",
        "Configuration reloads, by result (ok, error).",
    ),
    (
        "rampart_certificate_reloads_total",
        "Certificate reloads after their files' content changed, by result (ok, error).",
    ),
    (
        "rampart_acme_orders_total",
        "ACME orders this instance made, by result (issued, failed).",
    ),
    (
        "rampart_ocsp_fetches_total",
        "OCSP responses fetched for stapling, by result (stapled, failed).",
    ),
    (
        "rampart_acme_revocations_total",
        "ACME certificates revoked through the admin API.",
    ),
    (
        "rampart_store_errors_total",
        "Store operations that failed (the store unreachable or erroring), by use.",
    ),
    (
        "rampart_dpop_replay_cache_full_total",
        "DPoP proofs refused because the replay cache was full.",
    ),
    (
        "rampart_introspection_errors_total",
        "Token introspection calls that failed (server unreachable or bad answer).",
    ),
    (
        "rampart_jwks_fetches_total",
        "JWKS fetches, by issuer and result (ok, error).",
    ),
    (
        "rampart_rate_limit_total",
        "Rate-limit and quota decisions, by limit, route and outcome.",
    ),
    (
        "rampart_redis_errors_total",
        "Redis operations that failed, by use (rate_limit, quota, dpop).",
    ),
    (
        "rampart_tls_handshake_failures_total",
        "TLS handshakes that failed.",
    ),
    (
        "rampart_upstream_ejections_total",
        "Upstream targets taken out of rotation by passive health checks.",
    ),
    (
        "rampart_upstream_errors_total",
        "Upstream failures, by upstream and kind.",
    ),
];

/// Gauges and histograms: name, unit and help text.
const GAUGES: [(&str, metrics::Unit, &str); 10] = [
    (
        "rampart_blocks_active",
        metrics::Unit::Count,
        "Blocks in force on this instance (detectors', operators' and shared ones).",
    ),
    (
        "rampart_build_info",
        metrics::Unit::Count,
        "Always 1; the version label says which build is running.",
    ),
    (
        "rampart_open_connections",
        metrics::Unit::Count,
        "Client connections open, by listener.",
    ),
    (
        "process_resident_memory_bytes",
        metrics::Unit::Bytes,
        "Resident memory of the process (updated every 5 s).",
    ),
    (
        "process_cpu_seconds_total",
        metrics::Unit::Seconds,
        "User and system CPU time of the process (updated every 5 s).",
    ),
    (
        "process_open_fds",
        metrics::Unit::Count,
        "Open file descriptors of the process (updated every 5 s).",
    ),
    (
        "rampart_upstream_healthy_targets",
        metrics::Unit::Count,
        "Healthy targets of each upstream.",
    ),
    (
        "rampart_upstream_in_flight",
        metrics::Unit::Count,
        "Requests in flight to each upstream.",
    ),
    (
        "rampart_tls_certificate_expiry_seconds",
        metrics::Unit::Seconds,
        "notAfter of the certificate each TLS listener serves, in Unix seconds; set at start and on every certificate reload (alert on this minus time()).",
    ),
    (
        "process_start_time_seconds",
        metrics::Unit::Seconds,
        "When the process started (its metrics recorder), in Unix seconds.",
    ),
];
const HISTOGRAMS: [(&str, &str); 2] = [
    (
        "rampart_request_duration_seconds",
        "Time from request head to the end of the response, by route.",
    ),
    (
        "rampart_upstream_duration_seconds",
        "Time the upstream took to answer, by target.",
    ),
];

/// One unit counted in a gauge for as long as this lives (an open connection, a request in
/// flight to an upstream): decremented on drop, however its owner ends, also when a future is
/// dropped mid-flight, which a decrement after an `await` would miss. Owned (`Gauge`) or
/// borrowed (`&Gauge`), so the request path needs no clone.
pub struct Held<G: std::borrow::Borrow<metrics::Gauge>>(G);

impl<G: std::borrow::Borrow<metrics::Gauge>> Held<G> {
    pub fn enter(gauge: G) -> Self {
        gauge.borrow().increment(1.0);
        Self(gauge)
    }
}

impl<G: std::borrow::Borrow<metrics::Gauge>> Drop for Held<G> {
    fn drop(&mut self) {
        self.0.borrow().decrement(1.0);
    }
}

/// Counters without labels, shown at zero from the start (an alert on `increase()` needs the
/// series to exist before the first event), and the build's version.
fn present_at_zero() {
    for name in [
        "rampart_audit_dropped_total",
        "rampart_clients_blocked_total",
        "rampart_dpop_replay_cache_full_total",
        "rampart_tls_handshake_failures_total",
        "rampart_detections_dropped_total",
        "rampart_blocks_refused_total",
        "rampart_shipping_lost_total",
        "rampart_shipping_refused_total",
        "rampart_acme_revocations_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    // Counters whose labels are a small fixed set: each series at zero too.
    let results: [(&'static str, &[&'static str]); 6] = [
        ("rampart_spans_total", &["exported", "failed", "dropped"]),
        ("rampart_acme_orders_total", &["issued", "failed"]),
        ("rampart_ocsp_fetches_total", &["stapled", "failed"]),
        ("rampart_config_reloads_total", &["ok", "error"]),
        ("rampart_certificate_reloads_total", &["ok", "error"]),
        (
            "rampart_alerts_total",
            &["delivered", "failed", "dropped", "deduplicated"],
        ),
    ];
    for (name, values) in results {
        for value in values {
            metrics::counter!(name, "result" => *value).increment(0);
        }
    }
    metrics::gauge!("rampart_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// The standard process metrics (as Prometheus client libraries name them), from `/proc`.
mod process {
    use std::time::{SystemTime, UNIX_EPOCH};

    /// Linux reports CPU times in clock ticks of 1/100 s (`USER_HZ`, fixed for user space).
    const TICKS_PER_SECOND: f64 = 100.0;

    pub(super) fn record_start() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics::gauge!("process_start_time_seconds").set(now);
    }

    pub(super) fn record() {
        if let Some(kb) = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| vm_rss_kb(&status))
        {
            metrics::gauge!("process_resident_memory_bytes").set(kb * 1024.0);
        }
        if let Some(ticks) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| cpu_ticks(&stat))
        {
            metrics::gauge!("process_cpu_seconds_total").set(ticks / TICKS_PER_SECOND);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            metrics::gauge!("process_open_fds").set(fds.count() as f64);
        }
    }

    fn vm_rss_kb(status: &str) -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// utime + stime: fields 14 and 15, counted after the command name's closing parenthesis
    /// (the name itself may hold spaces).
    fn cpu_ticks(stat: &str) -> Option<f64> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some(utime + stime)
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]

        #[test]
        fn cpu_time_is_read_past_a_command_name_with_spaces() {
            let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 0 0";
            assert_eq!(super::cpu_ticks(stat), Some(300.0));
            assert_eq!(
                super::vm_rss_kb("Name: x\nVmRSS:\t  2048 kB\n"),
                Some(2048.0)
            );
        }
    }
}

/// Describes every metric once, when the recorder is installed, so that `/metrics` carries help
/// text (and the type) for each; a test checks that every metric the code records is listed.
fn describe_metrics() {
    for (name, help) in COUNTERS {
        metrics::describe_counter!(name, help);
    }
    for (name, unit, help) in GAUGES {
        metrics::describe_gauge!(name, unit, help);
    }
    for (name, help) in HISTOGRAMS {
        metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
    }
}

/// Every metric name described above.
#[cfg(test)]
pub(crate) fn described_metrics() -> Vec<&'static str> {
    let counters = COUNTERS.iter().map(|(n, _)| *n);
    let gauges = GAUGES.iter().map(|(n, _, _)| *n);
    let histograms = HISTOGRAMS.iter().map(|(n, _)| *n);
    counters.chain(gauges).chain(histograms).collect()
}

/// A route's request metrics, with their handles made once per build: recording a request then
/// costs atomic adds, not a registry lookup that builds, hashes and compares a label set (three
/// per request before, about 2 % of a plain proxied request's CPU).
pub struct RouteMetrics {
    route: SharedString,
    duration: metrics::Histogram,
    /// `rampart_requests_total` per (status code of `STATUS_CODES`, decision), made on first use.
    requests: [[OnceLock<metrics::Counter>; 3]; STATUS_CODES.len()],
}

impl RouteMetrics {
    /// The handles for `route`; the recorder must be installed first (`metrics_handle`).
    pub fn new(route: &Arc<str>) -> Self {
        let route = SharedString::from(Arc::clone(route));
        Self {
            duration: metrics::histogram!("rampart_request_duration_seconds", "route" => route.clone()),
            route,
            requests: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
        }
    }

    /// The metrics of requests no route matched (404s, framing errors), shared by all of them.
    pub fn unrouted() -> Arc<Self> {
        static UNROUTED: OnceLock<Arc<RouteMetrics>> = OnceLock::new();
        UNROUTED
            .get_or_init(|| Arc::new(Self::new(&Arc::from(UNROUTED_LABEL))))
            .clone()
    }

    /// Request metrics, recorded when the response ends (from the audit body).
    pub fn record(&self, record: &AuditRecord, elapsed: Duration) {
        self.requests_counter(record.status, record.decision)
            .increment(1);
        self.duration.record(elapsed.as_secs_f64());
    }

    fn requests_counter(&self, status: u16, decision: Decision) -> metrics::Counter {
        let counter = |status: SharedString| {
            metrics::counter!(
                "rampart_requests_total",
                "route" => self.route.clone(),
                "status" => status,
                "decision" => decision.as_str(),
            )
        };
        match STATUS_CODES.iter().position(|(code, _)| *code == status) {
            Some(i) => self.requests[i][decision_slot(decision)]
                .get_or_init(|| counter(SharedString::const_str(STATUS_CODES[i].1)))
                .clone(),
            None => counter(SharedString::from(std::borrow::Cow::Owned(
                status.to_string(),
            ))),
        }
    }
}

/// Where a decision's counters sit in `RouteMetrics::requests` (a new decision fails to compile
/// here rather than index out of bounds).
fn decision_slot(decision: Decision) -> usize {
    match decision {
        Decision::Allow => 0,
        Decision::Deny => 1,
        Decision::Error => 2,
    }
}

/// The `route` label of requests that matched no route.
const UNROUTED_LABEL: &str = "(none)";

/// The status codes whose counters are kept ready; others are looked up each time.
const STATUS_CODES: [(u16, &str); 24] = [
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

/// Counts an upstream failure by kind.
pub(crate) fn upstream_error(upstream: &Arc<str>, kind: &'static str) {
    metrics::counter!(
        "rampart_upstream_errors_total",
        "upstream" => SharedString::from(Arc::clone(upstream)),
        "kind" => kind,
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident memory of this process in bytes (each nextest test runs in its own process).
    fn rss_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        pages * 4096
    }

    /// Records `samples` histogram values in batches, pausing between batches as real traffic
    /// would; returns how much resident memory grew.
    fn growth_while_recording(
        recorder: &metrics_exporter_prometheus::PrometheusRecorder,
        samples: u64,
    ) -> u64 {
        let before = rss_bytes();
        metrics::with_local_recorder(recorder, || {
            let histogram = metrics::histogram!("rampart_request_duration_seconds", "route" => "r");
            for batch in 0..samples / 50_000 {
                for i in 0..50_000 {
                    histogram.record((batch * 50_000 + i) as f64 * 1e-6);
                }
                std::thread::sleep(Duration::from_millis(15));
            }
        });
        rss_bytes().saturating_sub(before)
    }

    #[test]
    fn metrics_memory_stays_flat_without_scrapes_when_upkeep_runs() {
        const SAMPLES: u64 = 2_000_000;
        let with_upkeep = PrometheusBuilder::new().build_recorder();
        spawn_upkeep(with_upkeep.handle(), Duration::from_millis(5), false);
        let flat = growth_while_recording(&with_upkeep, SAMPLES);
        // The control: the same load with no upkeep and no scrape keeps every sample.
        let without_upkeep = PrometheusBuilder::new().build_recorder();
        let grown = growth_while_recording(&without_upkeep, SAMPLES);
        assert!(
            grown > 8 * 1024 * 1024,
            "the control should keep ~8 bytes per sample, grew {grown}"
        );
        assert!(
            flat < 4 * 1024 * 1024,
            "with upkeep the recorder grew {flat} bytes over {SAMPLES} samples"
        );
    }

    /// The names of this process's threads.
    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .filter_map(|t| t.ok())
                    .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                    .map(|name| name.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_global_recorder_starts_its_upkeep_without_any_listener() {
        metrics_handle();
        // A thread names itself once it runs: give it a moment on a loaded machine.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !thread_names().iter().any(|name| name == UPKEEP_THREAD) {
            assert!(
                std::time::Instant::now() < deadline,
                "no upkeep thread among {:?}",
                thread_names()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every `"rampart_..."` name in the library's source has help text.
    #[test]
    fn every_metric_has_help_text() {
        let described = super::described_metrics();
        let mut missing = Vec::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for piece in text.split("\"rampart_").skip(1) {
                    let name: String = piece
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    let whole_literal = piece[name.len()..].starts_with('"');
                    let name = format!("rampart_{name}");
                    if name.len() > 8 && whole_literal && !described.contains(&name.as_str()) {
                        missing.push(name);
                    }
                }
            }
        }
        assert!(missing.is_empty(), "metrics without help text: {missing:?}");
    }
}
