//! Distributed tracing: W3C Trace Context (`traceparent`, `tracestate`) accepted from the peers
//! the config trusts and propagated upstream, and spans of sampled requests (one per request,
//! one per stage it ran, the refusing stage marked) exported by OTLP (`export.rs`).
//!
//! Threat: a client that forges trace context to join someone else's trace, or forces every
//! request to be sampled and floods the tracing backend. Invariants: an incoming `traceparent`
//! is believed only from `[tracing] accept_from` (the trusted proxies by default), and only when
//! it is well-formed (version 00 layout, lowercase hex, non-zero ids); otherwise a new trace
//! starts and the client's `traceparent` and `tracestate` are replaced, never forwarded. A new
//! trace is sampled at `sample_ratio`, only when spans are exported; a believed parent's
//! decision is followed. The request path formats one header and, only when sampled, notes
//! when each stage began; spans are built and sent off the request path, by the audit writer's
//! thread and an exporter task.

pub mod config;
pub mod export;

use std::time::{Instant, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use rand::Rng as _;

pub use config::{TraceAccept, TracingConfig};

use crate::stage::Stage;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The most of an incoming `tracestate` forwarded (the W3C limit is 32 members of 256 bytes).
const MAX_TRACESTATE: usize = 512;

/// A trace id, shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceId(pub [u8; 16]);

/// A span id, shown as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SpanId(pub [u8; 8]);

/// The request's place in a trace.
#[derive(Clone, Debug)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// The gateway's own span: the parent the upstream sees.
    pub span_id: SpanId,
    /// The caller's span, when its context was believed.
    pub parent: Option<SpanId>,
    pub sampled: bool,
    /// The believed caller's `tracestate`, passed on unchanged.
    pub tracestate: Option<HeaderValue>,
}

/// What a sampled request carries to the exporter.
#[derive(Debug)]
pub struct SampledRequest {
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub clock: StageClock,
}

/// What a sampled request notes for its spans: when it began, and when each stage began.
#[derive(Debug)]
pub struct StageClock {
    pub began: SystemTime,
    began_at: Instant,
    /// (stage, nanoseconds since `began`), in the order they ran.
    pub marks: Vec<(Stage, u64)>,
}

impl StageClock {
    pub fn start(began_at: Instant) -> Self {
        Self {
            // The wall-clock time of `began_at` itself, which the marks are measured from.
            began: SystemTime::now()
                .checked_sub(began_at.elapsed())
                .unwrap_or(SystemTime::UNIX_EPOCH),
            began_at,
            marks: Vec::with_capacity(12),
        }
    }

    pub fn mark(&mut self, stage: Stage) {
        let at = u64::try_from(self.began_at.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.marks.push((stage, at));
    }
}

impl TraceContext {
    /// A placeholder until the request's own context is made (`from_request`).
    pub fn unset() -> Self {
        Self {
            trace_id: TraceId([0; 16]),
            span_id: SpanId([0; 8]),
            parent: None,
            sampled: false,
            tracestate: None,
        }
    }

    /// The context of a request: the caller's, when its peer is believed and its `traceparent`
    /// is well-formed; a new trace otherwise (sampled at `sample_ratio`).
    pub fn from_request(headers: &HeaderMap, believed: bool, sample_ratio: f64) -> Self {
        // One handle on the thread's generator for the request's draws (`rand::random` fetches
        // it again for each).
        let mut rng = rand::rng();
        let span_id = SpanId(nonzero_random(&mut rng));
        let parent = believed
            .then(|| only_one(headers, &TRACEPARENT))
            .flatten()
            .and_then(|v| parse_traceparent(v.as_bytes()));
        match parent {
            Some((trace_id, parent, sampled)) => Self {
                trace_id,
                span_id,
                parent: Some(parent),
                sampled,
                tracestate: only_one(headers, &TRACESTATE)
                    .filter(|v| v.len() <= MAX_TRACESTATE)
                    .cloned(),
            },
            None => Self {
                trace_id: TraceId(nonzero_random(&mut rng)),
                span_id,
                parent: None,
                sampled: sample_ratio > 0.0 && rng.random::<f64>() < sample_ratio,
                tracestate: None,
            },
        }
    }

    /// `traceparent` for the upstream: this trace, the gateway's span as the parent.
    pub fn traceparent(&self) -> HeaderValue {
        // Written on the stack: the header value's own copy is the request's one allocation.
        let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
        text[3..35].copy_from_slice(&self.trace_id.hex());
        text[36..52].copy_from_slice(&self.span_id.hex());
        if self.sampled {
            text[54] = b'1';
        }
        // Hex and dashes only: always a valid header value.
        HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Replaces the client's trace headers with this context's.
    /// `carries_tracestate`: whether `headers` holds a `tracestate` now (the caller's one pass
    /// over them found it), so that the usual request without one costs no lookup for it.
    pub fn apply(&self, headers: &mut HeaderMap, carries_tracestate: bool) {
        headers.insert(TRACEPARENT, self.traceparent());
        match &self.tracestate {
            Some(state) => {
                headers.insert(TRACESTATE, state.clone());
            }
            None if carries_tracestate => {
                headers.remove(&TRACESTATE);
            }
            None => {}
        }
    }
}

/// The header's value when it appears once: two `traceparent`s are no context (W3C Trace
/// Context section 3.2), and two `tracestate`s are dropped rather than merged.
fn only_one<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// Version 00's layout (`00-TRACE-PARENT-FLAGS`); a later version is read by the same layout
/// and may carry more after a dash (W3C Trace Context, section 3.2.4).
fn parse_traceparent(value: &[u8]) -> Option<(TraceId, SpanId, bool)> {
    if value.len() < 55 || (value.len() > 55 && (value[..2] == *b"00" || value[55] != b'-')) {
        return None;
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let text = std::str::from_utf8(&value[..55]).ok()?;
    let mut parts = text.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version == "ff" || !is_lower_hex(version) {
        return None;
    }
    let trace_id = TraceId(hex_array(trace)?);
    let parent = SpanId(hex_array(parent)?);
    let flags: [u8; 1] = hex_array(flags)?;
    if trace_id.0 == [0; 16] || parent.0 == [0; 8] {
        return None;
    }
    Some((trace_id, parent, flags[0] & 1 == 1))
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Exactly `2 * N` lowercase hex digits (W3C Trace Context refuses uppercase).
fn hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    if !is_lower_hex(text) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

fn nonzero_random<const N: usize>(rng: &mut impl rand::Rng) -> [u8; N] {
    let mut bytes = [0; N];
    loop {
        // `fill_bytes`, not `random::<[u8; N]>()`, which draws a whole word for every byte.
        rng.fill_bytes(&mut bytes);
        if bytes != [0; N] {
            return bytes;
        }
    }
}

impl TraceId {
    /// The 32 hex digits, on the stack: every audit record writes one, and a formatter per
    /// byte cost 4,500 instructions of a 100,000-instruction request.
    pub fn hex(&self) -> [u8; 32] {
        let mut text = [0; 32];
        // 16 bytes fill 32 digits exactly: the length check cannot fail.
        let _ = hex::encode_to_slice(self.0, &mut text);
        text
    }
}

impl SpanId {
    /// The 16 hex digits, on the stack.
    pub fn hex(&self) -> [u8; 16] {
        let mut text = [0; 16];
        let _ = hex::encode_to_slice(self.0, &mut text);
        text
    }
}

/// Hex digits as text (they are ASCII).
fn digits(hex: &[u8]) -> &str {
    std::str::from_utf8(hex).unwrap_or_default()
}

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(digits(&self.hex()))
    }
}

impl std::fmt::Display for SpanId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(digits(&self.hex()))
    }
}

impl std::fmt::Debug for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Debug for SpanId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for TraceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(digits(&self.hex()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(traceparent: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_str(traceparent).unwrap());
        h.insert(TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        h
    }

    #[test]
    fn a_believed_parent_is_continued_with_a_new_span_and_its_sampling() {
        let cx = TraceContext::from_request(&headers(VALID), true, 0.0);
        assert_eq!(cx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(cx.parent.unwrap().to_string(), "00f067aa0ba902b7");
        assert!(cx.sampled, "the parent's decision is followed");
        let sent = cx.traceparent();
        let sent = sent.to_str().unwrap();
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(
            !sent.contains("00f067aa0ba902b7"),
            "the gateway's span is the new parent"
        );
        assert!(sent.ends_with("-01"));
        assert_eq!(cx.tracestate.unwrap(), "congo=t61rcWkgMzE");
    }

    #[test]
    fn an_untrusted_peers_context_is_replaced_by_a_new_trace() {
        let cx = TraceContext::from_request(&headers(VALID), false, 0.0);
        assert_ne!(cx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(cx.parent.map(|p| p.to_string()), None);
        assert!(!cx.sampled, "a client cannot force sampling");
        let mut upstream = headers(VALID);
        cx.apply(&mut upstream, true);
        assert!(upstream.get(&TRACESTATE).is_none());
        assert_ne!(upstream[&TRACEPARENT], VALID);
    }

    #[test]
    fn malformed_trace_parents_are_never_believed() {
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // uppercase
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // 00 with more
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // short
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", // separator
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", // one-digit version
        ] {
            assert_eq!(
                parse_traceparent(bad.as_bytes()).map(|p| p.0),
                None,
                "{bad}"
            );
        }
        // A later version, longer, is read by version 00's layout.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra";
        assert!(parse_traceparent(later.as_bytes()).is_some());
    }

    #[test]
    fn two_traceparent_headers_are_no_context() {
        let mut h = headers(VALID);
        h.append(TRACEPARENT, HeaderValue::from_static(VALID));
        let cx = TraceContext::from_request(&h, true, 0.0);
        assert_eq!(cx.parent.map(|p| p.to_string()), None);
    }

    #[test]
    fn new_traces_are_sampled_at_the_ratio() {
        let sampled = (0..2000)
            .filter(|_| TraceContext::from_request(&HeaderMap::new(), true, 0.25).sampled)
            .count();
        assert!((350..650).contains(&sampled), "{sampled} of 2000 at 0.25");
        assert!(
            !(0..200).any(|_| TraceContext::from_request(&HeaderMap::new(), true, 0.0).sampled)
        );
    }
}
