//! The audit log: one JSON line per request, and per event (start, config reload, checkpoint),
//! chained and signed against tampering (`chain.rs`, checked by `verify.rs`).
//!
//! Threat: an incident nobody can reconstruct, or an audit log that leaks the credentials it should
//! help protect. Invariants: every request the gateway answers produces one record when its
//! response ends (status, decision, reason, bytes, latencies); a record holds no header value but
//! Host and User-Agent (bounded), and no query string or body, so no `Authorization`, `Cookie` or
//! API key can reach it; records are
//! written off the request path (bounded queue, writer thread) and flushed on shutdown. When the
//! queue is full a record is dropped and counted (`rampart_audit_dropped_total`) rather than
//! stalling requests.

mod body;
pub mod chain;
pub mod config;
mod line;
pub mod report;
pub mod tail;
pub mod verify;
mod writer;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

pub use body::AuditBody;
pub use config::AuditConfig;
pub use writer::{AuditSink, rfc3339, rfc3339_text};

/// Reads each request record on the writer's thread, after its line is written: the detectors'
/// input, which so costs the request path nothing.
pub trait RecordObserver: Send + 'static {
    fn observe(&mut self, record: &AuditRecord);
}

/// `rfc3339` for an optional time.
pub fn rfc3339_opt<S: serde::Serializer>(
    time: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => rfc3339(time, s),
        None => s.serialize_none(),
    }
}

use crate::context::Decision;

/// Text a client sent (Host, User-Agent), as it goes into the audit record: at most
/// `CLIENT_TEXT_MAX` bytes, invalid UTF-8 replaced, escaped by JSON. Copied inline (the record is
/// boxed once anyway): holding the request's own `HeaderValue` instead would pin hyper's read
/// buffer until the record is written, and cost an 8 KiB buffer and an allocation per request.
#[derive(Clone)]
pub struct ClientText {
    len: u16,
    bytes: [u8; CLIENT_TEXT_MAX],
}

/// The most of a client-sent header kept in a record.
pub const CLIENT_TEXT_MAX: usize = 256;

impl ClientText {
    pub fn new(value: &[u8]) -> Self {
        let len = value.len().min(CLIENT_TEXT_MAX);
        let mut bytes = [0; CLIENT_TEXT_MAX];
        bytes[..len].copy_from_slice(&value[..len]);
        Self {
            len: u16::try_from(len).unwrap_or(0),
            bytes,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for ClientText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl serde::Serialize for ClientText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// One audit record. Gateway-derived values, and two client-sent headers that identify the
/// client and are no credentials (Host, User-Agent, bounded); no other header, no query string,
/// no body.
#[derive(Debug, serde::Serialize)]
pub struct AuditRecord {
    #[serde(serialize_with = "writer::rfc3339")]
    pub time: SystemTime,
    pub request_id: crate::context::RequestId,
    pub client_ip: IpAddr,
    pub listener: Arc<str>,
    /// The request method; the standard ones borrowed, never allocated.
    pub method: std::borrow::Cow<'static, str>,
    pub route: Option<Arc<str>>,
    /// The normalized path, without the query string.
    pub path: String,
    pub status: u16,
    pub decision: Decision,
    /// The internal reason for a denial or failure; the client only saw the public code.
    pub reason: Option<String>,
    /// The authenticated subject, if any.
    pub principal: Option<String>,
    /// How the principal was authenticated (`jwt`).
    pub auth_method: Option<&'static str>,
    /// The id of the API key used, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Arc<str>>,
    /// The W3C trace the request belongs to (`trace::TraceContext`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<crate::trace::TraceId>,
    /// The pipeline stage that refused the request or failed (`Stage::name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_by: Option<&'static str>,
    /// For a sampled request: what its spans are made of (exported, never written).
    #[serde(skip)]
    pub sampled: Option<Box<crate::trace::SampledRequest>>,
    /// The public code of a refusal or failure (`docs/errors.md`), what the client was told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// The user name of failed credentials (HTTP Basic), bounded; never verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_user: Option<Arc<String>>,

    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_us: u64,
    pub upstream: Option<Arc<str>>,
    pub upstream_us: Option<u64>,
    /// The upstream's own status, before any masking (the client may have seen a 502).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// `HTTP/1.1` or `HTTP/2`.
    pub http_version: &'static str,
    /// `TLSv1.3` or `TLSv1.2` on a TLS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<&'static str>,
    /// The Host (or `:authority`) the client sent, bounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<ClientText>,
    /// The User-Agent the client sent, bounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<ClientText>,
    /// The contract's operation and what validation refused, reported, sanitized or stripped
    /// (pointers and counts, never values); absent when nothing was validated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<crate::context::Validation>,
}

impl AuditRecord {
    /// A record of an answer made without an upstream, a principal or a body (a framing
    /// refusal, an admin call, a test): callers set what they know beyond it.
    pub fn answered(
        request_id: crate::context::RequestId,
        client_ip: IpAddr,
        listener: Arc<str>,
        method: std::borrow::Cow<'static, str>,
        status: u16,
        decision: Decision,
    ) -> Self {
        Self {
            time: SystemTime::now(),
            request_id,
            client_ip,
            listener,
            method,
            route: None,
            path: String::new(),
            status,
            decision,
            reason: None,
            principal: None,
            auth_method: None,
            key_id: None,
            trace_id: None,
            refused_by: None,
            sampled: None,
            code: None,
            claimed_user: None,
            bytes_in: 0,
            bytes_out: 0,
            duration_us: 0,
            upstream: None,
            upstream_us: None,
            upstream_status: None,
            http_version: "HTTP/1.1",
            tls_version: None,
            host: None,
            user_agent: None,
            validation: None,
        }
    }
}

/// A gateway event in the audit trail: not a request, but part of what an auditor needs (which
/// config was running when).
#[derive(Debug, serde::Serialize)]
pub struct AuditEvent {
    #[serde(serialize_with = "writer::rfc3339")]
    pub time: SystemTime,
    /// `start`, `config_reload`, `detection` or `certificate`.
    pub event: &'static str,
    /// `applied` or `refused`, for a reload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    /// The SHA-256 of the config file's text, in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
    /// Why a reload was refused (the config's errors, without values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For a start: how the trail before it ended (`shutdown`, `unsealed`: a crash, or lines
    /// added while the gateway was stopped; `nothing`: a new trail). Filled by the writer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<&'static str>,
    /// For a start: bytes of an incomplete last line (a crash) cut from the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discarded_bytes: Option<u64>,
    /// For a detection: what was detected and what was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<DetectionNote>,
}

/// A detection as the audit trail records it.
#[derive(Debug, serde::Serialize)]
pub struct DetectionNote {
    pub detector: &'static str,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    pub observed: u32,
    pub window_s: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "rfc3339_opt")]
    pub blocked_until: Option<SystemTime>,
}

impl AuditEvent {
    /// The gateway started on the config with this text.
    pub fn start(config_text: &str) -> Self {
        Self {
            time: SystemTime::now(),
            event: "start",
            outcome: None,
            config_sha256: Some(config_sha256(config_text)),
            detail: None,
            after: None,
            discarded_bytes: None,
            detection: None,
        }
    }

    /// A reload of the config with this text (`None`: the file could not be read).
    pub fn reload(config_text: Option<&str>, refused: Option<String>) -> Self {
        Self {
            time: SystemTime::now(),
            event: "config_reload",
            outcome: Some(if refused.is_some() {
                "refused"
            } else {
                "applied"
            }),
            config_sha256: config_text.map(config_sha256),
            detail: refused,
            after: None,
            discarded_bytes: None,
            detection: None,
        }
    }
}

impl AuditEvent {
    /// An ACME certificate was `issued` or `revoked`, or its order `failed` (the detail says
    /// which names, which serial, and which instance).
    pub fn certificate(outcome: &'static str, detail: String) -> Self {
        Self {
            time: SystemTime::now(),
            event: "certificate",
            outcome: Some(outcome),
            config_sha256: None,
            detail: Some(detail),
            after: None,
            discarded_bytes: None,
            detection: None,
        }
    }

    /// A detector's threshold was reached.
    pub fn detection(note: DetectionNote) -> Self {
        Self {
            time: SystemTime::now(),
            event: "detection",
            outcome: Some(if note.blocked_until.is_some() {
                "blocked"
            } else {
                "alert"
            }),
            config_sha256: None,
            detail: None,
            after: None,
            discarded_bytes: None,
            detection: Some(note),
        }
    }
}

pub fn config_sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}
