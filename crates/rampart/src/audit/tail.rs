//! Reading the trail as it is written, from a given `seq` on, across rotations: what the
//! shippers (`syslog.rs`, `otlp_logs.rs`) send, with a cursor file recording how far the receiver
//! has it. The files themselves are the spool: nothing is copied aside.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::chain::line_seq;
use super::writer::{numbered, with_suffix};

/// The trail read line by line after a `seq`.
pub struct Tail {
    trail: PathBuf,
    max_files: u32,
    reader: Option<Reader>,
    /// A line read in part (its writer had not finished it).
    pending: Vec<u8>,
    /// The highest `seq` already counted as lost (a gap is counted once, not at every retry).
    lost_to: u64,
}

/// A file of the trail, known by its inode (the path moves at rotation).
struct Reader {
    file: BufReader<File>,
    inode: u64,
}

impl Tail {
    pub fn new(trail: &Path, max_files: u32) -> Self {
        Self {
            trail: trail.to_path_buf(),
            max_files,
            reader: None,
            pending: Vec::new(),
            lost_to: 0,
        }
    }

    /// Where a shipper starts: its cursor, unless the trail is behind it (a new trail beside an
    /// old cursor file), when it starts from the beginning rather than skip the new lines.
    pub fn start_from(&self, cursor: u64) -> u64 {
        let last = super::chain::last_line(&self.trail)
            .as_deref()
            .and_then(line_seq)
            .unwrap_or(0);
        if cursor > last {
            tracing::warn!(
                cursor,
                last,
                "the audit trail is behind the shipped cursor (a new trail?): shipping it from its start"
            );
            return 0;
        }
        cursor
    }

    /// Starts reading again from the files (after a failed send, to resend from the cursor).
    pub fn rewind(&mut self) {
        self.reader = None;
        self.pending.clear();
    }

    /// The next whole line whose `seq` is above `after`, with its `seq`; `None` while nothing
    /// more is written.
    pub fn next_after(&mut self, after: u64) -> Option<(u64, Vec<u8>)> {
        loop {
            if self.reader.is_none() {
                self.reader = self.open(after, Pick::Holding);
                self.pending.clear();
            }
            let reader = self.reader.as_mut()?;
            match next_line(reader, &mut self.pending) {
                Some(line) => match line_seq(&line) {
                    Some(seq) if seq > after => return Some((seq, line)),
                    _ => continue,
                },
                // Renamed since: the writer flushed it before the rename, so one more read
                // finds whatever it added after the end seen; only then is the rest in the file
                // that follows it.
                None if self.rotated() => {
                    let reader = self.reader.as_mut()?;
                    if let Some(line) = next_line(reader, &mut self.pending) {
                        match line_seq(&line) {
                            Some(seq) if seq > after => return Some((seq, line)),
                            _ => continue,
                        }
                    }
                    let next = self.open(after, Pick::After)?;
                    self.reader = Some(next);
                    self.pending.clear();
                }
                None => return None,
            }
        }
    }

    /// Whether the file being read is no longer the trail's current file.
    fn rotated(&self) -> bool {
        let Some(reader) = &self.reader else {
            return false;
        };
        std::fs::metadata(&self.trail).is_ok_and(|m| m.ino() != reader.inode)
    }

    /// The trail's files that hold lines, with the `seq` of their first line, newest first (a
    /// file missing while the writer renames is passed over, an empty one holds nothing yet).
    fn files(&self) -> Vec<(u64, File)> {
        std::iter::once(self.trail.clone())
            .chain((1..=self.max_files).map(|n| numbered(&self.trail, n)))
            .filter_map(|path| {
                let file = File::open(&path).ok()?;
                Some((first_seq(&file)?, file))
            })
            .collect()
    }

    /// A file to read from, at its start: the one holding the line after `seq` (`Holding`),
    /// or the one beginning after `seq` (`After`, once a file is read out). When the line after
    /// `seq` is in no file any more, the first file after the gap, and the gap is counted.
    fn open(&mut self, seq: u64, pick: Pick) -> Option<Reader> {
        let next = seq.saturating_add(1);
        let files = self.files();
        let holding = match pick {
            Pick::Holding => files.iter().position(|(first, _)| *first <= next),
            Pick::After => None,
        };
        let index = holding.or_else(|| {
            files
                .iter()
                .enumerate()
                .filter(|(_, (first, _))| *first > seq)
                .min_by_key(|(_, (first, _))| *first)
                .map(|(i, _)| i)
        })?;
        let (first, file) = files.into_iter().nth(index)?;
        if first > next && seq > 0 && first - 1 > self.lost_to {
            let lost = first - next.max(self.lost_to.saturating_add(1));
            self.lost_to = first - 1;
            tracing::error!(lost, "audit lines were gone before they were shipped");
            metrics::counter!("rampart_shipping_lost_total").increment(lost);
        }
        let inode = file.metadata().ok()?.ino();
        let mut file = BufReader::new(file);
        file.seek(SeekFrom::Start(0)).ok()?;
        Some(Reader { file, inode })
    }
}

#[derive(Clone, Copy)]
enum Pick {
    Holding,
    After,
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

fn first_seq(file: &File) -> Option<u64> {
    let mut line = Vec::new();
    BufReader::new(file.try_clone().ok()?)
        .read_until(b'\n', &mut line)
        .ok()?;
    line_seq(&line)
}

/// What a shipper reads of a line besides the line itself: its time and, for an event, its
/// name (a line that does not parse has neither).
#[derive(Default, serde::Deserialize)]
pub struct LineFields<'a> {
    #[serde(borrow, default)]
    pub time: Option<&'a str>,
    #[serde(borrow, default)]
    pub event: Option<&'a str>,
}

impl<'a> LineFields<'a> {
    pub fn of(line: &'a [u8]) -> Self {
        serde_json::from_slice(line).unwrap_or_default()
    }
}

/// A shipper thread's handle: dropped (with the last copy of the services), the thread stops
/// at once, even from a pause.
pub struct ShipperHandle {
    stop: Stop,
}

impl ShipperHandle {
    /// A handle, and the signal its thread watches.
    pub fn new() -> (Self, Stop) {
        let stop = Stop(std::sync::Arc::new((
            std::sync::Mutex::new(false),
            std::sync::Condvar::new(),
        )));
        (Self { stop: stop.clone() }, stop)
    }
}

impl Drop for ShipperHandle {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop.0;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
    }
}

/// What a shipper thread watches: whether to stop, and pauses a stop ends early.
#[derive(Clone)]
pub struct Stop(std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Stop {
    pub fn is_set(&self) -> bool {
        *self.0.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits `pause`, or less if the handle is dropped meanwhile.
    pub fn pause(&self, pause: std::time::Duration) {
        let (stopped, wake) = &*self.0;
        let guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
        let _ = wake.wait_timeout_while(guard, pause, |stopped| !*stopped);
    }
}

/// `FILE.SUFFIX`: where a shipper records the last `seq` its receiver has.
pub fn cursor_path(trail: &Path, suffix: &str) -> PathBuf {
    with_suffix(trail, suffix)
}

pub fn read_cursor(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Written aside and renamed, so that a crash leaves the old cursor or the new one.
pub fn write_cursor(path: &Path, seq: u64) {
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

    fn line(seq: u64) -> String {
        format!("{{\"seq\":{seq}}}\n")
    }

    #[test]
    fn lines_are_read_after_the_cursor_across_a_rotation_and_a_partial_line() {
        let dir = tempfile::tempdir().unwrap();
        let trail = dir.path().join("audit.log");
        std::fs::write(numbered(&trail, 1), format!("{}{}", line(1), line(2))).unwrap();
        std::fs::write(&trail, format!("{}{{\"seq\":", line(3))).unwrap();
        let mut tail = Tail::new(&trail, 5);
        assert_eq!(
            tail.next_after(1).map(|l| l.0),
            Some(2),
            "from the rotated file"
        );
        assert_eq!(
            tail.next_after(2).map(|l| l.0),
            Some(3),
            "then the current one"
        );
        assert_eq!(tail.next_after(3), None, "a partial line waits");
        // The writer finishes the line and adds one.
        std::fs::write(&trail, format!("{}{}", line(3), line(4))).unwrap();
        assert_eq!(
            tail.next_after(3).map(|l| l.0),
            Some(4),
            "the partial line, finished"
        );
        // The writer rotates: the current file becomes .1, a new one starts.
        std::fs::rename(numbered(&trail, 1), numbered(&trail, 2)).unwrap();
        std::fs::rename(&trail, numbered(&trail, 1)).unwrap();
        std::fs::write(&trail, line(5)).unwrap();
        assert_eq!(
            tail.next_after(4).map(|l| l.0),
            Some(5),
            "followed into the new file"
        );
        // A shipper restarting at cursor 1 reads the rest in order.
        let mut tail = Tail::new(&trail, 5);
        let mut after = 1;
        let mut seen = Vec::new();
        while let Some((seq, _)) = tail.next_after(after) {
            seen.push(seq);
            after = seq;
        }
        assert_eq!(seen, vec![2, 3, 4, 5]);
    }

    #[test]
    fn lines_added_just_before_a_rotation_are_read_before_the_next_file() {
        let dir = tempfile::tempdir().unwrap();
        let trail = dir.path().join("audit.log");
        std::fs::write(&trail, line(1)).unwrap();
        let mut tail = Tail::new(&trail, 5);
        assert_eq!(tail.next_after(0).map(|l| l.0), Some(1));
        assert_eq!(tail.next_after(1), None, "at the end");
        // Between that read and the next, the writer adds a line, then rotates.
        let mut current = std::fs::OpenOptions::new()
            .append(true)
            .open(&trail)
            .unwrap();
        std::io::Write::write_all(&mut current, line(2).as_bytes()).unwrap();
        std::fs::rename(&trail, numbered(&trail, 1)).unwrap();
        std::fs::write(&trail, line(3)).unwrap();
        assert_eq!(tail.next_after(1).map(|l| l.0), Some(2), "not skipped");
        assert_eq!(tail.next_after(2).map(|l| l.0), Some(3));
    }

    #[test]
    fn a_cursor_ahead_of_a_new_trail_starts_it_from_the_beginning() {
        let dir = tempfile::tempdir().unwrap();
        let trail = dir.path().join("audit.log");
        std::fs::write(&trail, format!("{}{}", line(1), line(2))).unwrap();
        let tail = Tail::new(&trail, 5);
        assert_eq!(tail.start_from(5000), 0);
        assert_eq!(tail.start_from(1), 1);
    }

    #[test]
    fn dropping_the_handle_ends_a_shippers_pause_at_once() {
        let (handle, stop) = ShipperHandle::new();
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            stop.pause(std::time::Duration::from_secs(600));
            let _ = done.send(stop.is_set());
        });
        drop(handle);
        let stopped = ended.recv_timeout(std::time::Duration::from_secs(60));
        assert_eq!(stopped, Ok(true), "the pause ended with the stop");
    }

    #[test]
    fn an_empty_file_just_rotated_in_hides_no_older_line() {
        let dir = tempfile::tempdir().unwrap();
        let trail = dir.path().join("audit.log");
        std::fs::write(
            numbered(&trail, 1),
            format!("{}{}{}", line(1), line(2), line(3)),
        )
        .unwrap();
        std::fs::write(&trail, "").unwrap();
        let mut tail = Tail::new(&trail, 5);
        assert_eq!(tail.next_after(1).map(|l| l.0), Some(2));
        assert_eq!(tail.next_after(2).map(|l| l.0), Some(3));
        assert_eq!(tail.next_after(3), None, "nothing more yet");
        std::fs::write(&trail, line(4)).unwrap();
        assert_eq!(tail.next_after(3).map(|l| l.0), Some(4));
    }

    #[test]
    fn a_gap_in_the_trail_is_stepped_over_not_spun_on() {
        let dir = tempfile::tempdir().unwrap();
        let trail = dir.path().join("audit.log");
        // Lines 4 to 6 are gone (a file removed, or cut).
        std::fs::write(numbered(&trail, 2), format!("{}{}", line(1), line(2))).unwrap();
        std::fs::write(numbered(&trail, 1), line(3)).unwrap();
        std::fs::write(&trail, format!("{}{}", line(7), line(8))).unwrap();
        let mut tail = Tail::new(&trail, 5);
        let mut after = 2;
        let mut seen = Vec::new();
        while let Some((seq, _)) = tail.next_after(after) {
            seen.push(seq);
            after = seq;
        }
        assert_eq!(seen, vec![3, 7, 8]);
    }
}
