//! Shipping the audit trail to a syslog receiver: RFC 5424 messages over TCP with TLS (RFC 5425
//! framing), at least once, with the trail's own files as the spool.
//!
//! Threat: a trail that exists on one machine only, edited or lost with it. Invariants:
//! - every line of the trail (requests, events, detections, checkpoints) is sent in order, as
//!   written, from the audit files themselves: while the receiver is down nothing is lost as long
//!   as the files are kept (`[audit] max_files` x `max_file_bytes` bounds that spool); what
//!   rotation removed before it was sent is counted (`rampart_syslog_lost_total`);
//! - the last line known received is kept in `FILE.shipped` and survives restarts. A line counts
//!   as received once the connection it went out on was seen open `CONFIRM_AFTER` later; after a
//!   connection fails, every line not yet confirmed is sent again (so a receiver may see a line
//!   twice, never miss one, unless it loses what it had acknowledged by keeping it open);
//! - a dedicated thread does the file reads and the blocking socket writes: the request path and
//!   the audit writer never wait for the receiver.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::audit::{line_seq, numbered, with_suffix};
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
        if self.address.rsplit_once(':').is_none() {
            issues.push(Issue::new("/syslog/address", "host:port"));
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

/// The shipper thread's handle: dropped, it stops after its current step.
pub struct Shipper {
    stop: Arc<AtomicBool>,
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Shipper {
    /// Starts shipping `trail` (the audit file) as `config` says.
    pub fn start(config: &SyslogConfig, trail: &Path, max_files: u32) -> Result<Self, String> {
        let tls = tls_config(config)?;
        let host = config
            .address
            .rsplit_once(':')
            .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or_default();
        let name = config.server_name.as_deref().unwrap_or(host).to_owned();
        let server_name =
            ServerName::try_from(name).map_err(|e| format!("syslog.server_name: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut ship = Ship {
            address: config.address.clone(),
            server_name,
            tls,
            header: Header::new(&config.app_name),
            trail: trail.to_path_buf(),
            cursor_file: with_suffix(trail, ".shipped"),
            max_files,
            stop: stop.clone(),
        };
        std::thread::Builder::new()
            .name("rampart-syslog".into())
            .spawn(move || ship.run())
            .map_err(|e| format!("cannot start the syslog shipper: {e}"))?;
        Ok(Self { stop })
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
        #[derive(Deserialize)]
        struct Fields<'a> {
            #[serde(borrow, default)]
            time: Option<&'a str>,
            #[serde(borrow, default)]
            event: Option<&'a str>,
        }
        let fields: Fields<'_> = serde_json::from_slice(line).unwrap_or(Fields {
            time: None,
            event: None,
        });
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
            .unwrap_or("-");
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

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

struct Ship {
    address: String,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    header: Header,
    trail: PathBuf,
    cursor_file: PathBuf,
    max_files: u32,
    stop: Arc<AtomicBool>,
}

/// Where the next line is read from: a file of the trail, by its inode, and an offset.
struct Reader {
    file: BufReader<File>,
    inode: u64,
}

impl Ship {
    fn run(&mut self) {
        let mut confirmed = read_cursor(&self.cursor_file);
        let mut backoff = Duration::from_secs(1);
        while !self.stop.load(Ordering::Relaxed) {
            let Some(mut stream) = self.connect() else {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            };
            backoff = Duration::from_secs(1);
            // A new connection resends everything not confirmed on the last one.
            confirmed = self.ship(&mut stream, confirmed);
            tracing::warn!("the syslog connection ended; lines not confirmed will be sent again");
        }
    }

    fn connect(&self) -> Option<TlsStream> {
        let addr = self.address.to_socket_addrs().ok()?.next()?;
        let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| tracing::warn!(error = %e, "cannot reach the syslog receiver"))
            .ok()?;
        tcp.set_write_timeout(Some(WRITE_TIMEOUT)).ok()?;
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
        Some(stream)
    }

    /// Sends the lines after `confirmed` until the connection fails or the shipper stops;
    /// returns the last line confirmed.
    fn ship(&self, stream: &mut TlsStream, mut confirmed: u64) -> u64 {
        let mut sent = confirmed;
        let mut unconfirmed: VecDeque<(Instant, u64)> = VecDeque::new();
        let mut reader = None;
        let mut pending = Vec::new();
        let mut framed = Vec::with_capacity(64 * 1024);
        while !self.stop.load(Ordering::Relaxed) {
            if reader.is_none() {
                reader = self.open_after(sent);
            }
            framed.clear();
            let mut last = sent;
            if let Some(r) = reader.as_mut() {
                while let Some(line) = next_line(r, &mut pending) {
                    let Some(seq) = line_seq(&line) else {
                        continue;
                    };
                    if seq <= sent {
                        continue;
                    }
                    self.header.frame(&line, &mut framed);
                    last = seq;
                    if framed.len() >= 60 * 1024 {
                        break;
                    }
                }
                if framed.is_empty() && self.rotated(r) {
                    // The file was rotated after it was read to its end: the rest is in the
                    // new one (the writer seals a file before it renames it).
                    reader = None;
                    continue;
                }
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
            std::thread::sleep(POLL);
        }
        confirmed
    }

    /// The file holding the first line after `seq`, positioned at its start: the current file,
    /// or a rotated one when the current one begins later.
    fn open_after(&self, seq: u64) -> Option<Reader> {
        let mut candidates = vec![self.trail.clone()];
        candidates.extend((1..=self.max_files).map(|n| numbered(&self.trail, n)));
        let mut chosen = None;
        for path in candidates {
            let Ok(file) = File::open(&path) else { break };
            let first = first_seq(&path);
            chosen = Some(file);
            if first.is_none_or(|first| first <= seq + 1) {
                break;
            }
        }
        let file = chosen?;
        let first = {
            let mut probe = BufReader::new(file.try_clone().ok()?);
            let mut line = Vec::new();
            probe.read_until(b'\n', &mut line).ok()?;
            line_seq(&line)
        };
        if let Some(first) = first
            && first > seq + 1
        {
            let lost = first - seq - 1;
            tracing::error!(
                lost,
                "audit lines were rotated away before they were shipped"
            );
            metrics::counter!("rampart_syslog_lost_total").increment(lost);
        }
        let inode = file.metadata().ok()?.ino();
        let mut file = BufReader::new(file);
        file.seek(SeekFrom::Start(0)).ok()?;
        Some(Reader { file, inode })
    }

    /// Whether the file being read is no longer the trail's current file.
    fn rotated(&self, reader: &Reader) -> bool {
        std::fs::metadata(&self.trail).is_ok_and(|m| m.ino() != reader.inode)
    }
}

/// The next complete line, or `None` at the end of what is written (a partial last line waits
/// in `pending` for its newline).
fn next_line(reader: &mut Reader, pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    match reader.file.read_until(b'\n', pending) {
        Ok(_) if pending.ends_with(b"\n") => {
            let mut line = std::mem::take(pending);
            line.pop();
            Some(line)
        }
        _ => None,
    }
}

fn first_seq(path: &Path) -> Option<u64> {
    let mut line = Vec::new();
    BufReader::new(File::open(path).ok()?)
        .read_until(b'\n', &mut line)
        .ok()?;
    line_seq(&line)
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

fn read_cursor(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Written aside and renamed, so that a crash leaves the old cursor or the new one.
fn write_cursor(path: &Path, seq: u64) {
    let aside = with_suffix(path, ".tmp");
    let written =
        std::fs::write(&aside, format!("{seq}\n")).and_then(|()| std::fs::rename(&aside, path));
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot record how far the trail was shipped");
    }
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
        header.frame(br#"{"time":"t","event":"detection","seq":8}"#, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("<132>1 t gw-1 rampart 42 detection - ")
        );
    }
}
