//! Shipping the audit trail to a syslog receiver: RFC 5424 messages over TCP with TLS (RFC 5425
//! framing), at least once, with the trail's own files as the spool.
//!
//! Threat: a trail that exists on one machine only, edited or lost with it. Invariants:
//! - every line of the trail (requests, events, detections, checkpoints) is sent in order, as
//!   written, from the audit files themselves: while the receiver is down nothing is lost as long
//!   as the files are kept (`[audit] max_files` x `max_file_bytes` bounds that spool); what
//!   rotation removed before it was sent is counted (`rampart_shipping_lost_total`);
//! - the last line known received is kept in `FILE.shipped` and survives restarts. A line counts
//!   as received once the connection it went out on was seen open `CONFIRM_AFTER` later; after a
//!   connection fails, every line not yet confirmed is sent again (so a receiver may see a line
//!   twice, never miss one, unless it loses what it had kept the connection open over: a
//!   receiver that drops its in-memory queue, or a host that vanished without closing, whose
//!   kernel buffers held the lines; RFC 5425 has no acknowledgements, `otlp_logs.rs` has them);
//! - a dedicated thread does the file reads and the blocking socket writes: the request path and
//!   the audit writer never wait for the receiver.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::audit::tail::{
    LineFields, ShipperHandle, Stop, Tail, cursor_path, read_cursor, write_cursor,
};
use crate::config::Issue;

/// How long a connection must stay open after a line went out on it for the line to count as
/// received.
const CONFIRM_AFTER: Duration = Duration::from_secs(2);
/// How often the files are read for new lines.
const POLL: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// `[syslog]`: where the audit trail is shipped.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` of an RFC 5425 (syslog over TLS) receiver, such as rsyslog's imtcp with gtls.
    pub address: String,
    /// The name its certificate is checked against (default: the host of `address`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// PEM bundle of CAs to trust instead of the built-in web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `APP-NAME` of the messages.
    #[serde(default = "default_app")]
    pub app_name: String,
}

fn default_app() -> String {
    "rampart".to_owned()
}

impl SyslogConfig {
    pub fn validate(&self, audit: &crate::audit::AuditConfig, issues: &mut Vec<Issue>) {
        if audit.file.is_none() || !audit.enabled {
            issues.push(Issue::new(
                "/syslog",
                "the trail is shipped from its files: set [audit] file",
            ));
        }
        let port = self
            .address
            .rsplit_once(':')
            .map(|(_, port)| port.parse::<u16>());
        if !matches!(port, Some(Ok(port)) if port > 0) {
            issues.push(Issue::new(
                "/syslog/address",
                "host:port ([v6]:port for IPv6)",
            ));
        }
        let printable =
            |s: &str| !s.is_empty() && s.len() <= 48 && s.bytes().all(|b| b.is_ascii_graphic());
        if !printable(&self.app_name) {
            issues.push(Issue::new(
                "/syslog/app_name",
                "1 to 48 printable ASCII characters (RFC 5424 APP-NAME)",
            ));
        }
    }
}

/// The syslog shipper.
pub struct Shipper;

impl Shipper {
    /// Starts shipping `trail` (the audit file) as `config` says.
    pub fn start(
        config: &SyslogConfig,
        trail: &Path,
        max_files: u32,
    ) -> Result<ShipperHandle, String> {
        let tls = tls_config(config)?;
        let host = config
            .address
            .rsplit_once(':')
            .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or_default();
        let name = config.server_name.as_deref().unwrap_or(host).to_owned();
        let server_name =
            ServerName::try_from(name).map_err(|e| format!("syslog.server_name: {e}"))?;
        let (handle, stop) = ShipperHandle::new();
        let mut ship = Ship {
            address: config.address.clone(),
            server_name,
            tls,
            header: Header::new(&config.app_name),
            trail: trail.to_path_buf(),
            cursor_file: cursor_path(trail, ".shipped"),
            max_files,
            stop,
        };
        std::thread::Builder::new()
            .name("rampart-syslog".into())
            .spawn(move || ship.run())
            .map_err(|e| format!("cannot start the syslog shipper: {e}"))?;
        Ok(handle)
    }
}

fn tls_config(config: &SyslogConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    let settings = crate::config::upstream::UpstreamTlsConfig {
        ca_file: config.ca_file.clone(),
        verify: true,
    };
    crate::proxy::tls_client::client_config(&settings).map(Arc::new)
}

/// The parts of an RFC 5424 header that do not change.
struct Header {
    host: String,
    app: String,
    pid: u32,
}

impl Header {
    fn new(app: &str) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or_else(|| "-".to_owned());
        Self {
            host,
            app: app.to_owned(),
            pid: std::process::id(),
        }
    }

    /// `LEN <PRI>1 TIMESTAMP HOST APP PID MSGID - LINE`: facility local0; a detection is a
    /// warning, another event a notice, a request informational.
    fn frame(&self, line: &[u8], out: &mut Vec<u8>) {
        let fields = LineFields::of(line);
        let (severity, msgid) = match fields.event {
            Some("detection") => (4, "detection"),
            Some(event) if event.len() <= 32 && event.bytes().all(|b| b.is_ascii_graphic()) => {
                (5, event)
            }
            Some(_) => (5, "event"),
            None => (6, "request"),
        };
        let time = fields
            .time
            .filter(|t| t.len() <= 40 && t.bytes().all(|b| b.is_ascii_graphic()))
            .map_or_else(|| "-".to_owned(), rfc5424_time);
        let message = format!(
            "<{}>1 {time} {} {} {} {msgid} - ",
            16 * 8 + severity,
            self.host,
            self.app,
            self.pid
        );
        let len = message.len() + line.len();
        out.extend_from_slice(format!("{len} ").as_bytes());
        out.extend_from_slice(message.as_bytes());
        out.extend_from_slice(line);
    }
}

/// RFC 5424 allows at most six digits of a second's fraction; the trail writes up to nine.
fn rfc5424_time(time: &str) -> String {
    let Some((whole, rest)) = time.split_once('.') else {
        return time.to_owned();
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (fraction, zone) = rest.split_at(digits);
    format!("{whole}.{}{zone}", &fraction[..digits.min(6)])
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

struct Ship {
    address: String,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    header: Header,
    trail: PathBuf,
    cursor_file: PathBuf,
    max_files: u32,
    stop: Stop,
}

impl Ship {
    fn run(&mut self) {
        let mut confirmed =
            Tail::new(&self.trail, self.max_files).start_from(read_cursor(&self.cursor_file));
        let mut backoff = Duration::from_secs(1);
        while !self.stop.is_set() {
            if let Some(mut stream) = self.connect() {
                // A new connection resends everything not confirmed on the last one.
                let before = confirmed;
                confirmed = self.ship(&mut stream, confirmed);
                tracing::warn!(
                    "the syslog connection ended; lines not confirmed will be sent again"
                );
                if confirmed > before {
                    backoff = Duration::from_secs(1);
                }
            }
            // Also after a connection that took nothing: a receiver that accepts and closes
            // at once is not retried in a tight loop.
            self.stop.pause(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn connect(&self) -> Option<TlsStream> {
        let addr = self.address.to_socket_addrs().ok()?.next()?;
        let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| tracing::warn!(error = %e, "cannot reach the syslog receiver"))
            .ok()?;
        tcp.set_write_timeout(Some(WRITE_TIMEOUT)).ok()?;
        // A peer that accepts and never answers must not hold the handshake (and the stop).
        tcp.set_read_timeout(Some(CONNECT_TIMEOUT)).ok()?;
        tcp.set_nodelay(true).ok()?;
        let conn =
            rustls::ClientConnection::new(self.tls.clone(), self.server_name.clone()).ok()?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                tracing::warn!(error = %e, "TLS handshake with the syslog receiver failed");
                return None;
            }
        }
        stream.sock.set_read_timeout(None).ok()?;
        Some(stream)
    }

    /// Sends the lines after `confirmed` until the connection fails or the shipper stops;
    /// returns the last line confirmed.
    fn ship(&self, stream: &mut TlsStream, mut confirmed: u64) -> u64 {
        let mut tail = Tail::new(&self.trail, self.max_files);
        let mut sent = confirmed;
        let mut unconfirmed: VecDeque<(Instant, u64)> = VecDeque::new();
        let mut framed = Vec::with_capacity(64 * 1024);
        while !self.stop.is_set() {
            // Confirmed: sent long enough ago on a connection still open (checked before each
            // batch, so that the cursor moves under sustained load too).
            if !alive(stream) {
                return confirmed;
            }
            while let Some((at, seq)) = unconfirmed.front().copied() {
                if at.elapsed() < CONFIRM_AFTER {
                    break;
                }
                unconfirmed.pop_front();
                confirmed = seq;
                write_cursor(&self.cursor_file, confirmed);
            }
            framed.clear();
            let mut last = sent;
            while framed.len() < 60 * 1024 {
                let Some((seq, line)) = tail.next_after(last) else {
                    break;
                };
                self.header.frame(&line, &mut framed);
                last = seq;
            }
            if !framed.is_empty() {
                if stream
                    .write_all(&framed)
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    return confirmed;
                }
                sent = last;
                unconfirmed.push_back((Instant::now(), sent));
                continue;
            }
            self.stop.pause(POLL);
        }
        confirmed
    }
}

/// Whether the receiver still holds the connection open: nothing to read (it never writes) and
/// no close seen.
fn alive(stream: &mut TlsStream) -> bool {
    if stream.sock.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let open = match stream.read(&mut byte) {
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        // A close, or bytes a syslog receiver never sends.
        Ok(_) => false,
    };
    stream.sock.set_nonblocking(false).is_ok() && open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_framed_as_an_octet_counted_rfc_5424_message() {
        let header = Header {
            host: "gw-1".into(),
            app: "rampart".into(),
            pid: 42,
        };
        let line = br#"{"time":"2026-12-03T18:00:00.5Z","status":200,"seq":7}"#;
        let mut out = Vec::new();
        header.frame(line, &mut out);
        let text = String::from_utf8(out).unwrap();
        let (len, message) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), message.len());
        assert_eq!(
            message,
            r#"<134>1 2026-12-03T18:00:00.5Z gw-1 rampart 42 request - {"time":"2026-12-03T18:00:00.5Z","status":200,"seq":7}"#
        );
        let mut out = Vec::new();
        header.frame(
            br#"{"time":"2026-12-03T18:00:00.123456789Z","seq":8}"#,
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(" 2026-12-03T18:00:00.123456Z "),
            "six digits at most: {text}"
        );
        let mut out = Vec::new();
        header.frame(br#"{"time":"t","event":"detection","seq":8}"#, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("<132>1 t gw-1 rampart 42 detection - ")
        );
    }
}
