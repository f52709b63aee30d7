//! The audit log: one JSON line per request.
//!
//! Threat: an incident nobody can reconstruct, or an audit log that leaks the credentials it should
//! help protect. Invariants: every request the gateway answers produces one record when its
//! response ends (status, decision, reason, bytes, latencies); a record never holds header values,
//! query strings or bodies, so no `Authorization`, `Cookie` or API key can reach it; records are
//! written off the request path (bounded queue, writer thread) and flushed on shutdown. When the
//! queue is full a record is dropped and counted (`rampart_audit_dropped_total`) rather than
//! stalling requests.

mod body;
pub mod config;
mod writer;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

pub use body::AuditBody;
pub use config::AuditConfig;
pub use writer::AuditSink;

use crate::context::Decision;

/// One audit record. Only gateway-derived values: no header, query or body content.
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

    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_us: u64,
    pub upstream: Option<Arc<str>>,
    pub upstream_us: Option<u64>,
    /// The contract's operation and what validation refused, reported, sanitized or stripped
    /// (pointers and counts, never values); absent when nothing was validated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<crate::context::Validation>,
}
