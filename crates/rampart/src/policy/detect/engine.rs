//! The detectors' engine: reads each request record on the audit writer's thread (after the
//! line is written, so the request path pays nothing), counts per rule, and hands detections to
//! the responder through a bounded queue.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use super::rules::{RULES, Rule, Thresholds};
use super::subject::Subject;
use super::window::{Measure, Tracker};
use crate::audit::{AuditRecord, RecordObserver};

/// The detectors' settings, built from `[detect]` by each build and swapped in by a reload;
/// the counts already made are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectSettings {
    pub rules: [Thresholds; RULES.len()],
    pub max_tracked: usize,
    /// Addresses never counted (so never blocked by a detector): `[detect] exempt` and the
    /// trusted proxies, whose own address stands in for every client they could not name.
    pub exempt: Vec<ipnet::IpNet>,
}

impl DetectSettings {
    pub fn new(config: &super::DetectConfig, trusted_proxies: &[ipnet::IpNet]) -> Self {
        Self {
            rules: RULES.map(|rule| rule.thresholds(config)),
            max_tracked: usize::try_from(config.max_tracked).unwrap_or(usize::MAX),
            exempt: config
                .exempt
                .iter()
                .chain(trusted_proxies)
                .copied()
                .collect(),
        }
    }

    /// Records no detector reads: the admin API's own, refusals of requests already blocked
    /// (or a block would renew itself), and exempt addresses.
    fn ignores(&self, record: &AuditRecord) -> bool {
        let ip = record.client_ip.to_canonical();
        &*record.listener == "admin"
            || matches!(record.code, Some("blocked" | "too_many_failures"))
            || self.exempt.iter().any(|net| net.contains(&ip))
    }

    pub fn any_enabled(&self) -> bool {
        self.rules.iter().any(|r| r.enabled)
    }
}

/// One detection: a rule's threshold reached by a subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub rule: Rule,
    pub subject: Subject,
    /// The route, for the per-route detectors.
    pub route: Option<Arc<str>>,
    /// The count that reached the threshold.
    pub observed: u32,
    pub window: Duration,
    pub block_for: Option<Duration>,
}

/// What a tracker counts under: the subject, and the route for per-route rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key(Subject, Option<Arc<str>>);

/// The counting state of every rule. Owned by the audit writer's thread: no locks.
pub struct Detectors {
    settings: Arc<ArcSwap<DetectSettings>>,
    trackers: [Tracker<Key>; RULES.len()],
    /// Keyed fingerprints of distinct values (an attacker cannot aim collisions).
    fingerprint: RandomState,
    out: mpsc::Sender<Detection>,
}

/// Public codes of the refusals each kind of detector reads (`docs/errors.md`).
const AUTH_FAILURE_CODES: [&str; 3] = ["invalid_token", "invalid_request", "invalid_dpop_proof"];
const SCANNING_CODES: [&str; 3] = [
    "route_not_found",
    "method_not_allowed",
    "operation_not_declared",
];
const VALIDATION_CODES: [&str; 3] = [
    "validation_failed",
    "unsupported_media_type",
    "bad_request_body",
];

impl Detectors {
    pub fn new(settings: Arc<ArcSwap<DetectSettings>>, out: mpsc::Sender<Detection>) -> Self {
        let capacity = settings.load().max_tracked;
        Self {
            settings,
            trackers: RULES.map(|_| Tracker::new(capacity)),
            fingerprint: RandomState::new(),
            out,
        }
    }

    /// Counts one record at `now`; returns the detections it completes.
    pub fn observe_at(&mut self, record: &AuditRecord, now: Instant) -> Vec<Detection> {
        let settings = self.settings.load();
        let mut found = Vec::new();
        if settings.ignores(record) {
            return found;
        }
        // Named once per record, not once per rule (its text is copied and bounded).
        let caller = Subject::caller(record.key_id.as_deref(), record.principal.as_deref());
        for (i, rule) in RULES.iter().enumerate() {
            let thresholds = settings.rules[i];
            if !thresholds.enabled {
                continue;
            }
            let Some((key, measure)) = self.counted(*rule, record, caller.as_ref()) else {
                continue;
            };
            let tracker = &mut self.trackers[i];
            tracker.set_capacity(settings.max_tracked);
            if let Some(observed) =
                tracker.add(&key, measure, now, thresholds.window, thresholds.threshold)
            {
                let Key(subject, route) = key;
                found.push(Detection {
                    rule: *rule,
                    block_for: thresholds.block_for.filter(|_| subject.blockable()),
                    subject,
                    route,
                    observed,
                    window: thresholds.window,
                });
            }
        }
        found
    }

    /// What a rule counts for this record, if the record concerns it; `caller` is the record's
    /// key or principal as a subject.
    fn counted(
        &self,
        rule: Rule,
        r: &AuditRecord,
        caller: Option<&Subject>,
    ) -> Option<(Key, Measure)> {
        let code = r.code.unwrap_or("");
        let auth_failed = AUTH_FAILURE_CODES.contains(&code);
        let caller = || caller.cloned();
        let source = || Subject::source(r.client_ip);
        let distinct =
            |value: &dyn Fingerprinted| Measure::Distinct(value.fingerprint(&self.fingerprint));
        let on_route = |subject: Subject| Key(subject, r.route.clone());
        let alone = |subject: Subject| Key(subject, None);
        match rule {
            Rule::AuthFailuresByAddress if auth_failed => Some((alone(source()), Measure::Events)),
            Rule::AuthFailuresByNetwork if auth_failed => {
                Some((alone(Subject::network_of(r.client_ip)), Measure::Events))
            }
            Rule::UsersByAddress if auth_failed => {
                let user = r.claimed_user.as_deref()?.as_str();
                Some((alone(source()), distinct(&user)))
            }
            Rule::AddressesByUser if auth_failed => {
                let user = r.claimed_user.as_deref()?.as_str();
                Some((alone(Subject::user(user)), distinct(&source())))
            }
            Rule::ObjectEnumeration => {
                r.route.as_ref()?;
                let status = r.upstream_status.unwrap_or(r.status);
                let refused = matches!(status, 403 | 404) && !SCANNING_CODES.contains(&code);
                refused.then(|| (on_route(caller().unwrap_or_else(source)), Measure::Events))
            }
            Rule::IdWalk => {
                r.route.as_ref()?;
                let subject = caller().unwrap_or_else(source);
                Some((on_route(subject), distinct(&r.path.as_str())))
            }
            Rule::KeySharing => {
                let network = Subject::network_of(r.client_ip);
                Some((alone(caller()?), distinct(&network)))
            }
            Rule::LimitEvasion => Some((alone(caller()?), distinct(&source()))),
            // Distinct paths: a scanner probes many, a broken client polls one.
            Rule::Scanning if SCANNING_CODES.contains(&code) => {
                Some((alone(source()), distinct(&r.path.as_str())))
            }
            Rule::ValidationFailures if VALIDATION_CODES.contains(&code) => {
                Some((alone(source()), Measure::Events))
            }
            _ => None,
        }
    }
}

impl RecordObserver for Detectors {
    fn observe(&mut self, record: &AuditRecord) {
        for detection in self.observe_at(record, Instant::now()) {
            if self.out.try_send(detection).is_err() {
                metrics::counter!("rampart_detections_dropped_total").increment(1);
            }
        }
    }
}

/// A value counted as distinct, by its keyed fingerprint.
trait Fingerprinted {
    fn fingerprint(&self, keyed: &RandomState) -> u64;
}

impl<T: Hash> Fingerprinted for T {
    fn fingerprint(&self, keyed: &RandomState) -> u64 {
        keyed.hash_one(self)
    }
}
