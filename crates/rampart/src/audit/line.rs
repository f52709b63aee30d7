//! One audit record as one JSON object, written the way `serde_json::to_writer` writes the
//! derived `Serialize` (the test holds both to the same bytes), with the member names written
//! as the constants they are.
//!
//! Why by hand: serde writes every member name of every record through its string escaper, and
//! the writer thread shares the proxy's core; with the names as literals a record costs about
//! 3,000 fewer instructions (docs/benchmarks.md, issue 10, ninth round). The values still go
//! through serde_json, escaped as before.

use serde::Serialize;

use super::AuditRecord;
use super::writer::{RFC3339_MAX, rfc3339_into};

impl AuditRecord {
    /// Appends this record as one JSON object (no newline).
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        // Every field named, none with `..`: a field added to the record does not compile until
        // it is written here too (or named as skipped, as `sampled` is).
        let AuditRecord {
            time,
            request_id,
            client_ip,
            listener,
            method,
            route,
            path,
            status,
            decision,
            reason,
            principal,
            auth_method,
            key_id,
            trace_id,
            refused_by,
            sampled: _,
            code,
            claimed_user,
            bytes_in,
            bytes_out,
            duration_us,
            upstream,
            upstream_us,
            upstream_status,
            http_version,
            tls_version,
            host,
            user_agent,
            validation,
        } = self;
        let mut text = [0; RFC3339_MAX];
        out.extend_from_slice(b"{\"time\":");
        serde_json::to_writer(&mut *out, rfc3339_into(*time, &mut text))?;
        member(out, "request_id", request_id)?;
        member(out, "client_ip", client_ip)?;
        member(out, "listener", listener)?;
        member(out, "method", method)?;
        member(out, "route", route)?;
        member(out, "path", path)?;
        member(out, "status", status)?;
        member(out, "decision", decision)?;
        member(out, "reason", reason)?;
        member(out, "principal", principal)?;
        member(out, "auth_method", auth_method)?;
        present(out, "key_id", key_id.as_ref())?;
        present(out, "trace_id", trace_id.as_ref())?;
        present(out, "refused_by", refused_by.as_ref())?;
        present(out, "code", code.as_ref())?;
        present(out, "claimed_user", claimed_user.as_ref())?;
        member(out, "bytes_in", bytes_in)?;
        member(out, "bytes_out", bytes_out)?;
        member(out, "duration_us", duration_us)?;
        member(out, "upstream", upstream)?;
        member(out, "upstream_us", upstream_us)?;
        present(out, "upstream_status", upstream_status.as_ref())?;
        member(out, "http_version", http_version)?;
        present(out, "tls_version", tls_version.as_ref())?;
        present(out, "host", host.as_ref())?;
        present(out, "user_agent", user_agent.as_ref())?;
        present(out, "validation", validation.as_ref())?;
        out.push(b'}');
        Ok(())
    }
}

/// `,"name":value`. Names are plain identifiers: nothing in them to escape.
fn member(out: &mut Vec<u8>, name: &str, value: &impl Serialize) -> serde_json::Result<()> {
    debug_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    serde_json::to_writer(&mut *out, value)
}

/// A member written only when present (`skip_serializing_if = "Option::is_none"`).
fn present(
    out: &mut Vec<u8>,
    name: &str,
    value: Option<&impl Serialize>,
) -> serde_json::Result<()> {
    match value {
        Some(value) => member(out, name, value),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::audit::ClientText;
    use crate::context::{Decision, RequestId, Validation};
    use crate::trace::TraceId;

    fn every_member_set() -> AuditRecord {
        AuditRecord {
            time: SystemTime::UNIX_EPOCH + Duration::new(1_796_000_000, 123_456_789),
            request_id: RequestId::generate(),
            client_ip: "2001:db8::7"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
            listener: Arc::from("public \"main\""),
            method: "PATCH".into(),
            route: Some(Arc::from("orders\\v2")),
            path: "/orders/\u{e9}\u{1}\n".into(),
            status: 403,
            decision: Decision::Deny,
            reason: Some("scope \"write\" missing".into()),
            principal: Some("alice\t".into()),
            auth_method: Some("jwt"),
            key_id: Some(Arc::from("k1")),
            trace_id: Some(TraceId([7; 16])),
            refused_by: Some("authorize"),
            sampled: None,
            code: Some("forbidden"),
            claimed_user: Some(Arc::new("bob".into())),
            bytes_in: u64::MAX,
            bytes_out: 0,
            duration_us: 1234,
            upstream: Some(Arc::from("http://127.0.0.1:9")),
            upstream_us: Some(99),
            upstream_status: Some(502),
            http_version: "HTTP/2",
            tls_version: Some("TLSv1.3"),
            host: Some(ClientText::new(b"api.example\xff")),
            user_agent: Some(ClientText::new(b"curl/8 \"x\"")),
            validation: Some(Validation {
                operation: Some(Arc::from("createOrder")),
                violations: vec!["/body/x~1y".into()],
                sanitized: 2,
                stripped: vec!["/items/*/secret".into()],
                stripped_total: 9,
                leak: Some("stack-trace"),
                ..Validation::default()
            }),
        }
    }

    fn by_serde(record: &AuditRecord) -> Vec<u8> {
        serde_json::to_vec(record).unwrap_or_default()
    }

    fn by_hand(record: &AuditRecord) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(record.write_json(&mut out).is_ok());
        out
    }

    #[test]
    fn a_record_is_written_byte_for_byte_as_serde_writes_it() {
        let full = every_member_set();
        assert_eq!(
            String::from_utf8_lossy(&by_hand(&full)),
            String::from_utf8_lossy(&by_serde(&full))
        );
        let bare = AuditRecord::answered(
            RequestId::generate(),
            std::net::Ipv4Addr::LOCALHOST.into(),
            Arc::from("admin"),
            "GET".into(),
            200,
            Decision::Allow,
        );
        assert_eq!(by_hand(&bare), by_serde(&bare));
        // Every optional member, alone: each is written or left out as serde does.
        let optional: [fn(&mut AuditRecord); 10] = [
            |r| r.key_id = None,
            |r| r.trace_id = None,
            |r| r.refused_by = None,
            |r| r.code = None,
            |r| r.claimed_user = None,
            |r| r.upstream_status = None,
            |r| r.tls_version = None,
            |r| r.host = None,
            |r| r.user_agent = None,
            |r| r.validation = None,
        ];
        for clear in optional {
            let mut record = every_member_set();
            clear(&mut record);
            assert_eq!(by_hand(&record), by_serde(&record));
        }
    }

    #[test]
    fn a_written_record_is_one_json_object_with_its_values_escaped() {
        let line = by_hand(&every_member_set());
        let parsed: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
        assert_eq!(parsed["path"], "/orders/\u{e9}\u{1}\n");
        assert_eq!(parsed["listener"], "public \"main\"");
        assert_eq!(parsed["time"], "2026-11-30T00:53:20.123456789Z");
        assert!(!line.contains(&b'\n'));
    }
}
