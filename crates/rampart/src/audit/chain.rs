//! The tamper-evident chain over the audit trail.
//!
//! Threat: an intruder (or an insider) who edits, deletes, inserts or reorders audit lines, or
//! cuts the file short, to hide what happened. Every line carries `seq` (one more than the line
//! before it, across rotations and restarts) and `prev` (the SHA-256, in hex, of the line before
//! it exactly as written, without its newline). Checkpoint lines sign their own `seq` and `prev`
//! with Ed25519, and so everything before them: one every `checkpoint_every` lines, one closing
//! each rotated file (`"reason":"rotation"`) and one at shutdown (`"reason":"shutdown"`).
//! `rampart audit verify` (`verify.rs`) walks the lines and names the first problem.
//!
//! What it proves, and what not: a line before the last checkpoint cannot be changed without the
//! signing key. After it, the hash chain alone holds, and whoever can write the file could
//! rewrite that tail from scratch; a trail that does not end with the shutdown checkpoint was cut
//! short or its gateway is still running (or crashed). The key sits on the gateway's machine, so
//! the chain detects tampering by someone who can edit the log but not read the key; shipping
//! the trail off the machine (syslog, OTLP) is the defence against someone who can do both.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;

/// `prev` of the very first line.
pub const GENESIS: [u8; 32] = [0; 32];

/// What a checkpoint says, all of it signed: its place in the chain, why it was written (a trail
/// cut after a periodic checkpoint cannot pass for one closed at shutdown), when, and how many
/// records the writer had dropped so far (a full queue leaves no line to chain).
pub struct Checkpoint<'a> {
    pub seq: u64,
    pub prev_hex: &'a str,
    pub reason: &'a str,
    pub time: &'a str,
    pub dropped: u64,
}

impl Checkpoint<'_> {
    /// The bytes signed.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "rampart-audit-checkpoint\n{}\n{}\n{}\n{}\n{}",
            self.seq, self.prev_hex, self.reason, self.time, self.dropped
        )
        .into_bytes()
    }
}

/// SHA-256 by aws-lc (assembly, SHA extensions where the CPU has them): once per audit line.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Why a checkpoint is written.
#[derive(Debug, Clone, Copy)]
pub enum Reason {
    Periodic,
    Rotation,
    Shutdown,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Periodic => "periodic",
            Self::Rotation => "rotation",
            Self::Shutdown => "shutdown",
        }
    }
}

/// The writer's end of the chain.
pub struct Chain {
    seq: u64,
    prev: [u8; 32],
    since_checkpoint: u64,
    checkpoint_every: u64,
    key: Ed25519KeyPair,
    public_key: String,
}

impl Chain {
    /// Continues after `last_line` (the last line written before, in this file or the rotated
    /// one before it), or starts a new chain.
    pub fn resume(key: Ed25519KeyPair, checkpoint_every: u64, last_line: Option<&[u8]>) -> Self {
        let (seq, prev) = match last_line.and_then(|line| Some((line_seq(line)?, line))) {
            Some((seq, line)) => (seq, sha256(line)),
            None => (0, GENESIS),
        };
        let public_key = B64.encode(key.public_key().as_ref());
        Self {
            seq,
            prev,
            since_checkpoint: 0,
            checkpoint_every: checkpoint_every.max(1),
            key,
            public_key,
        }
    }

    /// Completes a serialized JSON object (`{...}`, no newline) with `seq` and `prev`, and
    /// makes it the chain's last line.
    pub fn seal(&mut self, line: &mut Vec<u8>) {
        if line.last() == Some(&b'}') {
            line.pop();
            if line.last() != Some(&b'{') {
                line.push(b',');
            }
        } else {
            // Not an object: start one, so that the line still parses and chains.
            line.clear();
            line.push(b'{');
        }
        // Saturating: a forged last line with a huge `seq` must not panic the writer (verify
        // reports the chain as broken there).
        self.seq = self.seq.saturating_add(1);
        line.extend_from_slice(b"\"seq\":");
        let _ = write!(line, "{}", self.seq);
        line.extend_from_slice(b",\"prev\":\"");
        let mut prev = [0; 64];
        // 32 bytes fill 64 digits exactly: the length check cannot fail.
        let _ = hex::encode_to_slice(self.prev, &mut prev);
        line.extend_from_slice(&prev);
        line.extend_from_slice(b"\"}");
        self.prev = sha256(line);
        self.since_checkpoint += 1;
    }

    pub fn checkpoint_due(&self) -> bool {
        self.since_checkpoint >= self.checkpoint_every
    }

    /// Writes a signed checkpoint line into `line` (sealed, no newline).
    pub fn checkpoint(
        &mut self,
        line: &mut Vec<u8>,
        reason: Reason,
        time: SystemTime,
        dropped: u64,
    ) {
        let time = super::writer::rfc3339_text(time);
        let prev = hex::encode(self.prev);
        let signed = Checkpoint {
            seq: self.seq.saturating_add(1),
            prev_hex: &prev,
            reason: reason.as_str(),
            time: &time,
            dropped,
        };
        let signature = self.key.sign(&signed.message());
        line.clear();
        let _ = write!(
            line,
            "{{\"time\":\"{time}\",\"event\":\"checkpoint\",\"reason\":\"{}\",\"dropped\":{dropped},\"key\":\"{}\",\"sig\":\"{}\"}}",
            reason.as_str(),
            self.public_key,
            B64.encode(signature.as_ref()),
        );
        self.seal(line);
        self.since_checkpoint = 0;
    }
}

/// How the trail written before this start ended: what the `start` event says (`after`), so
/// that a restart after a crash, or over lines appended while the gateway was stopped, is
/// visible to whoever reviews the trail (`rampart audit verify` counts them).
pub fn how_it_ended(last_line: Option<&[u8]>) -> &'static str {
    #[derive(serde::Deserialize)]
    struct Tail {
        event: Option<String>,
        reason: Option<String>,
    }
    match last_line.map(serde_json::from_slice::<Tail>) {
        None => "nothing",
        Some(Ok(Tail {
            event: Some(event),
            reason: Some(reason),
        })) if event == "checkpoint" && reason == "shutdown" => "shutdown",
        Some(_) => "unsealed",
    }
}

/// The `seq` of a written line, if it has one.
pub fn line_seq(line: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: u64,
    }
    serde_json::from_slice::<Seq>(line).ok().map(|s| s.seq)
}

/// The last line of the trail written at `path`: the current file's, or the rotated one's when
/// the current file is empty or missing. Read once at start, off the request path.
pub fn last_line(path: &Path) -> Option<Vec<u8>> {
    [path.to_path_buf(), super::writer::numbered(path, 1)]
        .iter()
        .find_map(|file| last_line_of(file))
}

/// Cuts a line left incomplete by a crash (no newline) off the end of `path`, so that the next
/// line does not run into it; returns how many bytes went (said in the `start` event).
pub fn discard_partial_line(path: &Path) -> std::io::Result<u64> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(0);
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(0);
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(keep as u64)?;
    Ok((bytes.len() - keep) as u64)
}

fn last_line_of(file: &Path) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).ok()?;
    let len = f.metadata().ok()?.len();
    // Lines are short; a record with a long validation report stays well under this.
    let tail = len.min(1 << 20);
    f.seek(SeekFrom::Start(len - tail)).ok()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).ok()?;
    let text = bytes.strip_suffix(b"\n")?;
    let start = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    Some(text[start..].to_vec())
}

/// The signing key at `path` (PKCS#8 PEM), made (mode 0600, with `PATH.pub` beside it: the
/// public key in base64, for `rampart audit verify --public-key`; copy it somewhere the
/// gateway's machine cannot write) when it does not exist yet and no trail exists either: a
/// trail whose key went missing is refused rather than continued under a new key, which would
/// make every earlier checkpoint look forged.
pub fn load_or_create_key(path: &Path, trail_exists: bool) -> std::io::Result<Ed25519KeyPair> {
    let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    if path.exists() {
        warn_if_readable_by_others(path);
        let der = PrivatePkcs8KeyDer::from_pem_file(path)
            .map_err(|e| invalid(format!("{}: not a PKCS#8 PEM key: {e}", path.display())))?;
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|e| invalid(format!("{}: not an Ed25519 key: {e}", path.display())))?;
        let public = public_key_path(path);
        if !public.exists() {
            std::fs::write(
                public,
                format!("{}\n", B64.encode(key.public_key().as_ref())),
            )?;
        }
        return Ok(key);
    }
    if trail_exists {
        return Err(invalid(format!(
            "the audit trail exists but its signing key {} does not: restore the key, or move the trail away to start a new one",
            path.display()
        )));
    }
    let key = Ed25519KeyPair::generate().map_err(|_| invalid("key generation failed".into()))?;
    let der = key
        .to_pkcs8()
        .map_err(|_| invalid("key encoding failed".into()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    write_private(path, &pem("PRIVATE KEY", der.as_ref()))?;
    std::fs::write(
        public_key_path(path),
        format!("{}\n", B64.encode(key.public_key().as_ref())),
    )?;
    Ok(key)
}

/// `PATH.pub`.
pub fn public_key_path(key: &Path) -> PathBuf {
    super::writer::with_suffix(key, ".pub")
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the audit signing key is readable by other users: chmod 600 it");
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = B64.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(chunk));
        text.push('\n');
    }
    let _ = writeln!(text, "-----END {label}-----");
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn sealed_lines_chain_by_the_hash_of_the_line_before() {
        let key = Ed25519KeyPair::generate().unwrap();
        let mut chain = Chain::resume(key, 10, None);
        let mut first = br#"{"a":1}"#.to_vec();
        chain.seal(&mut first);
        assert!(
            first.ends_with(format!(r#","seq":1,"prev":"{}"}}"#, hex::encode(GENESIS)).as_bytes())
        );
        let mut second = br#"{"b":2}"#.to_vec();
        chain.seal(&mut second);
        let expected = hex::encode(Sha256::digest(&first));
        assert!(String::from_utf8(second).unwrap().contains(&expected));
    }

    #[test]
    fn a_resumed_chain_continues_after_the_last_line() {
        let key = Ed25519KeyPair::generate().unwrap();
        let last = br#"{"x":1,"seq":41,"prev":"00"}"#;
        let mut chain = Chain::resume(key, 10, Some(last));
        let mut line = b"{}".to_vec();
        chain.seal(&mut line);
        let text = String::from_utf8(line).unwrap();
        assert!(text.starts_with(r#"{"seq":42,"prev":""#), "{text}");
        assert!(text.contains(&hex::encode(Sha256::digest(last))));
    }
}
