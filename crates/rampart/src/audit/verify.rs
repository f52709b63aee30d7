//! `rampart audit verify`: walks an audit trail (the current file and its rotated ones, in any
//! order) along its chain (`chain.rs`) and names the first record that was altered, removed,
//! inserted or reordered, a checkpoint whose signature does not hold, and a trail or rotated
//! file cut short.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use super::chain::{self, GENESIS};

/// A trail that holds together.
#[derive(Debug)]
pub struct Verified {
    pub files: usize,
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub checkpoints: u64,
    /// The key the checkpoints are signed with (base64).
    pub key: String,
    /// Starts after a trail that did not end sealed (a crash, or lines added while the gateway
    /// was stopped, which the restart then chained on): worth a look.
    pub unsealed_starts: u64,
    /// Records the gateway dropped (its queue full), as its last checkpoint says.
    pub dropped: u64,
}

/// The first thing wrong with a trail.
#[derive(Debug, PartialEq, Eq)]
pub enum Finding {
    /// A record's bytes changed since it was written (or the line is not a record).
    Altered { at: Place, seq: Option<u64> },
    /// Records missing between two that are there.
    Removed { at: Place, from: u64, to: u64 },
    /// A record whose number was seen before: one of the two was inserted.
    Inserted { at: Place, seq: u64 },
    /// A record that comes after one it should precede.
    Reordered { at: Place, seq: u64 },
    /// A checkpoint whose signature does not verify (forged, altered, or another key's).
    BadSignature { at: Place, seq: u64 },
    /// The trail, or a rotated file, does not end sealed.
    Truncated {
        file: PathBuf,
        after_seq: u64,
        detail: &'static str,
    },
    /// A file that cannot be read.
    Unreadable { file: PathBuf, error: String },
}

/// A line of a file (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Altered { at, seq: Some(seq) } => write!(
                f,
                "{at}: record {seq} was altered (its hash is not what the next record chains to)"
            ),
            Self::Altered { at, seq: None } => {
                write!(f, "{at}: altered: not an audit record of the chain")
            }
            Self::Removed { at, from, to } if from == to => {
                write!(f, "{at}: record {from} was removed before this line")
            }
            Self::Removed { at, from, to } => {
                write!(
                    f,
                    "{at}: records {from} to {to} were removed before this line"
                )
            }
            Self::Inserted { at, seq } => write!(
                f,
                "{at}: record {seq} appears a second time: a record was inserted"
            ),
            Self::Reordered { at, seq } => {
                write!(
                    f,
                    "{at}: record {seq} is out of order: records were reordered"
                )
            }
            Self::BadSignature { at, seq } => write!(
                f,
                "{at}: the signature of checkpoint {seq} does not verify with the trail's key"
            ),
            Self::Truncated {
                file,
                after_seq,
                detail,
            } => write!(
                f,
                "{}: truncated after record {after_seq}: {detail}",
                file.display()
            ),
            Self::Unreadable { file, error } => write!(f, "{}: {error}", file.display()),
        }
    }
}

/// The fields of a line that the chain uses.
#[derive(serde::Deserialize)]
struct Link {
    seq: u64,
    prev: String,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    sig: Option<String>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    dropped: Option<u64>,
    #[serde(default)]
    after: Option<String>,
}

struct Line {
    at: Place,
    bytes: Vec<u8>,
    /// Whether the line ended with its newline.
    complete: bool,
    link: Option<Link>,
}

/// Verifies the trail in `files`; `public_key` (base64, as in `FILE.key.pub`) pins the key,
/// otherwise the key of the first checkpoint is the trail's. A trail must start at record 1
/// unless `allow_missing_head` (its oldest files were rotated away).
pub fn verify(
    files: &[PathBuf],
    public_key: Option<&str>,
    allow_missing_head: bool,
) -> Result<Verified, Finding> {
    let mut ordered = Vec::new();
    // `audit.log*` also matches the signing key and its public half, and a log from before the
    // chain moved aside: never read them as records (and never open the private key).
    for file in files.iter().filter(|f| !is_key_file(f)) {
        let lines = read_lines(file)?;
        let first = lines.iter().find_map(|l| l.link.as_ref().map(|k| k.seq));
        if first.is_none()
            && let Some(line) = lines.first()
        {
            // Not one record in a file that is not empty.
            return Err(if line.complete {
                Finding::Altered {
                    at: line.at.clone(),
                    seq: None,
                }
            } else {
                Finding::Truncated {
                    file: file.clone(),
                    after_seq: 0,
                    detail: "its last line is cut short",
                }
            });
        }
        ordered.push((first, file.clone(), lines));
    }
    // Oldest first, by their first record; empty files (a fresh file after rotation) last.
    ordered.sort_by_key(|(first, _, _)| first.unwrap_or(u64::MAX));
    let file_count = ordered.len();
    if file_count == 0 {
        return Err(Finding::Unreadable {
            file: PathBuf::new(),
            error: "no audit file given (only key files)".to_owned(),
        });
    }
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for (_, _, lines) in &ordered {
        for link in lines.iter().filter_map(|l| l.link.as_ref()) {
            *seen.entry(link.seq).or_default() += 1;
        }
    }
    let mut walk = Walk::new(public_key.map(str::to_owned), allow_missing_head);
    for (index, (_, file, lines)) in ordered.iter().enumerate() {
        for line in lines {
            walk.step(line, &seen)?;
        }
        let last_file = index + 1 == file_count || ordered[index + 1].0.is_none();
        if !lines.is_empty() {
            walk.end_of_file(file, last_file)?;
        }
        if last_file {
            break;
        }
    }
    walk.finish(file_count)
}

pub(super) fn is_key_file(file: &Path) -> bool {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    name.is_some_and(|n| {
        n.ends_with(".key") || n.ends_with(".key.pub") || n.contains(".unchained-")
    })
}

fn read_lines(file: &Path) -> Result<Vec<Line>, Finding> {
    let bytes = std::fs::read(file).map_err(|e| Finding::Unreadable {
        file: file.to_path_buf(),
        error: e.to_string(),
    })?;
    let mut lines = Vec::new();
    let mut rest = &bytes[..];
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        let (line, complete, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], true, &rest[end + 1..]),
            None => (rest, false, &rest[rest.len()..]),
        };
        lines.push(Line {
            at: Place {
                file: file.to_path_buf(),
                line: number,
            },
            bytes: line.to_vec(),
            complete,
            link: serde_json::from_slice(line).ok(),
        });
        rest = next;
    }
    Ok(lines)
}

/// The last record walked.
struct Last {
    seq: u64,
    hash: [u8; 32],
    /// The checkpoint's reason, when it was one.
    reason: Option<String>,
    at: Place,
}

struct Walk {
    key: Option<String>,
    allow_missing_head: bool,
    unsealed_starts: u64,
    dropped: u64,
    last: Option<Last>,
    first_seq: Option<u64>,
    records: u64,
    checkpoints: u64,
}

impl Walk {
    fn new(pinned_key: Option<String>, allow_missing_head: bool) -> Self {
        Self {
            key: pinned_key,
            allow_missing_head,
            unsealed_starts: 0,
            dropped: 0,
            last: None,
            first_seq: None,
            records: 0,
            checkpoints: 0,
        }
    }

    fn step(&mut self, line: &Line, seen: &HashMap<u64, u32>) -> Result<(), Finding> {
        let at = line.at.clone();
        let Some(link) = line.link.as_ref().filter(|_| line.complete) else {
            if !line.complete {
                return Err(Finding::Truncated {
                    file: at.file,
                    after_seq: self.last.as_ref().map_or(0, |last| last.seq),
                    detail: "its last line is cut short",
                });
            }
            return Err(Finding::Altered { at, seq: None });
        };
        match &self.last {
            None => {
                if link.seq == 1 && link.prev != hex::encode(GENESIS) {
                    return Err(Finding::Altered { at, seq: Some(1) });
                }
                // Records before the first are missing: removed, unless the caller says the
                // oldest files were rotated away.
                if link.seq > 1 && !self.allow_missing_head {
                    return Err(Finding::Removed {
                        at,
                        from: 1,
                        to: link.seq - 1,
                    });
                }
            }
            Some(last) => {
                let last_seq = last.seq;
                let expected = last_seq.saturating_add(1);
                if link.seq == expected && link.prev != hex::encode(last.hash) {
                    return Err(Finding::Altered {
                        at: last.at.clone(),
                        seq: Some(last_seq),
                    });
                }
                if link.seq > expected {
                    return Err(if seen.contains_key(&expected) {
                        Finding::Reordered { at, seq: link.seq }
                    } else {
                        Finding::Removed {
                            at,
                            from: expected,
                            to: link.seq - 1,
                        }
                    });
                }
                if link.seq < expected {
                    return Err(if seen.get(&link.seq).copied().unwrap_or(0) > 1 {
                        Finding::Inserted { at, seq: link.seq }
                    } else {
                        Finding::Reordered { at, seq: link.seq }
                    });
                }
            }
        }
        let checkpoint = link.event.as_deref() == Some("checkpoint");
        if checkpoint {
            self.check_signature(link, &at)?;
            self.checkpoints += 1;
            self.dropped = link.dropped.unwrap_or(0);
        }
        if link.event.as_deref() == Some("start") && link.after.as_deref() == Some("unsealed") {
            self.unsealed_starts += 1;
        }
        self.first_seq.get_or_insert(link.seq);
        self.records += 1;
        self.last = Some(Last {
            seq: link.seq,
            hash: Sha256::digest(&line.bytes).into(),
            reason: link.reason.clone().filter(|_| checkpoint),
            at,
        });
        Ok(())
    }

    fn check_signature(&mut self, link: &Link, at: &Place) -> Result<(), Finding> {
        let bad = || Finding::BadSignature {
            at: at.clone(),
            seq: link.seq,
        };
        let (Some(line_key), Some(sig), Some(reason), Some(time)) =
            (&link.key, &link.sig, &link.reason, &link.time)
        else {
            return Err(bad());
        };
        // The first checkpoint names the trail's key unless one was pinned; a later checkpoint
        // with another key is a forgery.
        let key = self.key.get_or_insert_with(|| line_key.clone());
        if key != line_key {
            return Err(bad());
        }
        let (Ok(key), Ok(sig)) = (B64.decode(key.as_bytes()), B64.decode(sig.as_bytes())) else {
            return Err(bad());
        };
        UnparsedPublicKey::new(&ED25519, key)
            .verify(
                &chain::Checkpoint {
                    seq: link.seq,
                    prev_hex: &link.prev,
                    reason,
                    time,
                    dropped: link.dropped.unwrap_or(0),
                }
                .message(),
                &sig,
            )
            .map_err(|_| bad())
    }

    /// A file that is not the last must end with its rotation checkpoint.
    fn end_of_file(&self, file: &Path, last_file: bool) -> Result<(), Finding> {
        match &self.last {
            Some(last) if !last_file && last.reason.as_deref() != Some("rotation") => {
                Err(Finding::Truncated {
                    file: file.to_path_buf(),
                    after_seq: last.seq,
                    detail: "a rotated file must end with its rotation checkpoint",
                })
            }
            _ => Ok(()),
        }
    }

    fn finish(self, files: usize) -> Result<Verified, Finding> {
        let Some(last) = self.last else {
            return Err(Finding::Unreadable {
                file: PathBuf::new(),
                error: "no audit record in the files given".to_owned(),
            });
        };
        let last_seq = last.seq;
        if last.reason.as_deref() != Some("shutdown") {
            return Err(Finding::Truncated {
                file: last.at.file,
                after_seq: last_seq,
                detail: "the trail does not end with a shutdown checkpoint: cut short, or its gateway is still running or did not stop cleanly",
            });
        }
        Ok(Verified {
            files,
            records: self.records,
            first_seq: self.first_seq.unwrap_or(0),
            last_seq,
            checkpoints: self.checkpoints,
            key: self.key.unwrap_or_default(),
            unsealed_starts: self.unsealed_starts,
            dropped: self.dropped,
        })
    }
}
