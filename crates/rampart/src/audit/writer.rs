//! The audit writer: a thread that owns the output, fed by a bounded queue.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::chain::{self, Chain, Reason};
use super::{AuditConfig, AuditEvent, AuditRecord, RecordObserver};

enum Message {
    Record(Box<AuditRecord>),
    Event(Box<AuditEvent>),
    /// Flush everything queued before this message, then answer.
    Flush(oneshot::Sender<()>),
    /// Seal the trail with a shutdown checkpoint, flush, then answer.
    Close(oneshot::Sender<()>),
}

/// The request-path handle: cheap to clone, never blocks.
#[derive(Clone)]
pub struct AuditSink {
    tx: Option<mpsc::Sender<Message>>,
    dropped: Arc<AtomicU64>,
}

impl AuditSink {
    /// Starts the writer thread, which hands each request record to the `observers` (the
    /// detectors, the span exporter) after writing it. With `enabled = false` records are discarded.
    pub fn start(
        config: &AuditConfig,
        observers: Vec<Box<dyn RecordObserver>>,
    ) -> std::io::Result<Self> {
        if !config.enabled {
            return Ok(Self::disabled());
        }
        let dropped = Arc::new(AtomicU64::new(0));
        let output = Output::open(config, dropped.clone())?;
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        std::thread::Builder::new()
            .name("rampart-audit".into())
            .spawn(move || write_loop(rx, output, observers))?;
        Ok(Self {
            tx: Some(tx),
            dropped,
        })
    }

    /// A sink that discards records.
    pub fn disabled() -> Self {
        Self {
            tx: None,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues a record; a full queue drops it and counts the loss. The request path boxes its
    /// record when the response starts, so that the ~900-byte record moves as a pointer.
    pub fn record(&self, record: impl Into<Box<AuditRecord>>) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(Message::Record(record.into())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("rampart_audit_dropped_total").increment(1);
        }
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues an event (a start, a reload); like a record, dropped and counted when the queue
    /// is full (callable from any thread, async or not).
    pub fn event(&self, event: AuditEvent) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(Message::Event(Box::new(event))).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("rampart_audit_dropped_total").increment(1);
        }
    }

    /// Waits until every record queued so far is written and flushed.
    pub async fn flush(&self) {
        self.ask(Message::Flush).await;
    }

    /// Writes the shutdown checkpoint after every record queued so far, and flushes: the trail
    /// ends sealed (`rampart audit verify` reports a trail that does not).
    pub async fn close(&self) {
        self.ask(Message::Close).await;
    }

    async fn ask(&self, message: fn(oneshot::Sender<()>) -> Message) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(message(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Under load the writer drains the queue in batches and then naps for `BATCH_PAUSE` instead of
/// parking on the queue: a parked receiver makes every request pay a thread wake-up (a futex call
/// and, on a busy core, a context switch), which measured at a third of the gateway's CPU time per
/// request. An idle gateway parks the writer, and its log is flushed whenever the queue runs dry.
///
/// The nap is short because the writer shares the workers' cores: woken from its nap, it takes a
/// worker's core until its batch is done, and the requests on that core wait. Naps of 20 ms made
/// batches of up to 1.8 ms at 18,000 requests a second and held the worker off its core for over
/// a millisecond 44 to 48 times in 4 s; naps of 2 ms, 5 to 10 times (`perf sched`,
/// docs/benchmarks.md, fifteenth round). Records also reach the detectors sooner. The price: from
/// about 50 to 500 records a second, more naps end with the queue empty, and the next record
/// wakes a parked writer (a futex call on the request path), at rates that leave the core idle.
const BATCH_PAUSE: Duration = Duration::from_millis(2);

/// Under steady load the file is written at least this often rather than after every short batch
/// (fewer, larger writes); the queue running dry still flushes at once.
const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// Capacity the reused line buffer keeps between records.
const LINE_BUFFER_KEEP: usize = 64 * 1024;

fn write_loop(
    mut rx: mpsc::Receiver<Message>,
    mut output: Output,
    mut observers: Vec<Box<dyn RecordObserver>>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        let mut flushed_at = Instant::now();
        while let Some(message) = next.take() {
            handle(message, &mut output, &mut observers);
            while let Ok(message) = rx.try_recv() {
                handle(message, &mut output, &mut observers);
            }
            if flushed_at.elapsed() >= FLUSH_EVERY {
                output.flush();
                flushed_at = Instant::now();
            }
            std::thread::sleep(BATCH_PAUSE);
            next = rx.try_recv().ok();
        }
        // The queue ran dry: what was written reaches the file before the writer parks.
        output.flush();
    }
}

fn handle(message: Message, output: &mut Output, observers: &mut [Box<dyn RecordObserver>]) {
    match message {
        Message::Record(record) => {
            output.write(|line| record.write_json(line));
            for observer in observers.iter_mut() {
                observer.observe(&record);
            }
        }
        Message::Event(mut event) => {
            if event.event == "start" {
                event.after = Some(output.resumed_after);
                event.discarded_bytes = (output.discarded > 0).then_some(output.discarded);
            }
            output.write(|line| serde_json::to_writer(line, &*event));
        }
        Message::Flush(done) => {
            output.flush();
            let _ = done.send(());
        }
        Message::Close(done) => {
            output.closed = true;
            output.checkpoint(Reason::Shutdown);
            output.flush();
            let _ = done.send(());
        }
    }
}

enum Sink {
    Stdout(BufWriter<std::io::Stdout>),
    File {
        writer: BufWriter<File>,
        path: PathBuf,
        written: u64,
    },
}

struct Output {
    sink: Sink,
    line: Vec<u8>,
    chain: Chain,
    max_bytes: u64,
    max_files: u32,
    /// Records the sink dropped (queue full), in every checkpoint.
    dropped: Arc<AtomicU64>,
    /// After the shutdown checkpoint: a late record (answered at the drain deadline) is followed
    /// by another, so that the trail still ends sealed.
    closed: bool,
    /// How the trail before this start ended (`chain::how_it_ended`), for the `start` event.
    resumed_after: &'static str,
    /// Bytes of a line a crash left incomplete, cut at start.
    discarded: u64,
}

impl Output {
    fn open(config: &AuditConfig, dropped: Arc<AtomicU64>) -> std::io::Result<Self> {
        let discarded = match &config.file {
            Some(file) => chain::discard_partial_line(file)?,
            None => 0,
        };
        let mut last = config.file.as_deref().and_then(chain::last_line);
        if let (Some(file), Some(line)) = (&config.file, &last)
            && chain::line_seq(line).is_none()
        {
            // A log from before the chain (an upgrade): kept aside whole, and a chain begins.
            let aside = unchained_path(file);
            match std::fs::rename(file, &aside) {
                // The last line was a rotated file's: the current one is not there to move.
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            tracing::warn!(file = %file.display(), moved_to = %aside.display(), "the audit log had no hash chain (written before this version): moved aside, a new chained trail begins");
            last = None;
        }
        let trail_exists = last.is_some();
        let key = match (&config.signing_key_file, &config.file) {
            (Some(key), _) => chain::load_or_create_key(key, trail_exists)?,
            (None, Some(file)) => chain::load_or_create_key(&default_key_path(file), trail_exists)?,
            (None, None) => {
                tracing::warn!(
                    "audit log on stdout without [audit] signing_key_file: its checkpoints are signed with a key that lives only as long as the process"
                );
                aws_lc_rs::signature::Ed25519KeyPair::generate()
                    .map_err(|_| std::io::Error::other("audit signing key generation failed"))?
            }
        };
        let resumed_after = chain::how_it_ended(last.as_deref());
        let chain = Chain::resume(key, config.checkpoint_every, last.as_deref());
        let sink = match &config.file {
            None => Sink::Stdout(BufWriter::new(std::io::stdout())),
            Some(path) => {
                let file = open_append(path)?;
                let written = file.metadata().map(|m| m.len()).unwrap_or(0);
                Sink::File {
                    writer: BufWriter::with_capacity(64 * 1024, file),
                    path: path.clone(),
                    written,
                }
            }
        };
        Ok(Self {
            sink,
            line: Vec::with_capacity(1024),
            chain,
            max_bytes: config.max_file_bytes,
            max_files: config.max_files,
            dropped,
            closed: false,
            resumed_after,
            discarded,
        })
    }

    /// Writes one line, which `fill` appends to the (empty) line buffer.
    fn write(&mut self, fill: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>) {
        // One buffer for every line: a record costs no allocation here.
        self.line.clear();
        if let Err(e) = fill(&mut self.line) {
            tracing::error!(error = %e, "audit record not serializable");
            return;
        }
        self.chain.seal(&mut self.line);
        self.emit();
        if self.closed {
            // No rotation after the shutdown checkpoint: the trail must end with it.
            self.checkpoint(Reason::Shutdown);
            return;
        }
        if self.chain.checkpoint_due() {
            self.checkpoint(Reason::Periodic);
        }
        self.rotate_if_needed();
    }

    fn checkpoint(&mut self, reason: Reason) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        self.chain
            .checkpoint(&mut self.line, reason, SystemTime::now(), dropped);
        self.emit();
    }

    /// Writes the sealed line in `self.line`, with its newline.
    fn emit(&mut self) {
        self.line.push(b'\n');
        let line = &self.line;
        let result = match &mut self.sink {
            Sink::Stdout(w) => w.write_all(line),
            Sink::File {
                writer, written, ..
            } => {
                *written += line.len() as u64;
                writer.write_all(line)
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "audit write failed");
        }
        // One oversized record (a long validation report) must not pin its buffer forever.
        self.line.shrink_to(LINE_BUFFER_KEEP);
    }

    fn rotate_if_needed(&mut self) {
        let Sink::File { written, .. } = &self.sink else {
            return;
        };
        if *written < self.max_bytes {
            return;
        }
        // Each rotated file ends sealed, so that a file cut short is told from one rotated.
        self.checkpoint(Reason::Rotation);
        let Sink::File {
            writer,
            path,
            written,
        } = &mut self.sink
        else {
            return;
        };
        let _ = writer.flush();
        for n in (1..self.max_files).rev() {
            let _ = std::fs::rename(numbered(path, n), numbered(path, n + 1));
        }
        if self.max_files > 0 {
            let _ = std::fs::rename(&*path, numbered(path, 1));
        }
        match open_append(path) {
            Ok(file) => {
                *writer = BufWriter::with_capacity(64 * 1024, file);
                *written = 0;
            }
            Err(e) => {
                // Keep writing to the old (renamed) file and try again after another
                // `max_bytes`, rather than rotating, and so deleting history, on every record.
                *written = 0;
                tracing::error!(error = %e, "audit file rotation failed");
            }
        }
    }

    fn flush(&mut self) {
        let result = match &mut self.sink {
            Sink::Stdout(w) => w.flush(),
            Sink::File { writer, .. } => writer.flush(),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "audit flush failed");
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// `FILE.unchained-SECONDS`: where a log written before the chain goes.
fn unchained_path(file: &Path) -> PathBuf {
    let seconds = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    with_suffix(file, &format!(".unchained-{seconds}"))
}

/// `FILE.key`: the default signing key of the audit file `FILE`.
fn default_key_path(file: &Path) -> PathBuf {
    with_suffix(file, ".key")
}

pub(super) fn numbered(path: &Path, n: u32) -> PathBuf {
    with_suffix(path, &format!(".{n}"))
}

/// `path` with `suffix` appended to its file name (`audit.log` -> `audit.log.1`).
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Serializes a time as RFC 3339 UTC (`2026-12-04T14:25:04.123456789Z`, trailing zeros of
/// the fraction dropped); formatted on the stack, as every audit line has one.
pub fn rfc3339<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let mut text = [0; RFC3339_MAX];
    s.serialize_str(rfc3339_into(*time, &mut text))
}

pub fn rfc3339_text(time: SystemTime) -> String {
    rfc3339_into(time, &mut [0; RFC3339_MAX]).to_owned()
}

/// The longest RFC 3339 UTC time with nanoseconds, with room to spare.
pub(super) const RFC3339_MAX: usize = 40;

pub(super) fn rfc3339_into(time: SystemTime, text: &mut [u8; RFC3339_MAX]) -> &str {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    // Checked: a time past the year 9999 is written as "" rather than panicking the writer.
    let Some(at) = time::Duration::try_from(since)
        .ok()
        .and_then(|since| time::OffsetDateTime::UNIX_EPOCH.checked_add(since))
    else {
        return "";
    };
    let mut out = &mut text[..];
    if at
        .format_into(&mut out, &time::format_description::well_known::Rfc3339)
        .is_err()
    {
        return "";
    }
    // What is left of the slice tells how much was written: the count time 0.3's `format_into`
    // returns for RFC 3339 falls short of it when there is a fraction (the test below).
    let len = RFC3339_MAX - out.len();
    std::str::from_utf8(&text[..len]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_keeps_the_fraction_without_trailing_zeros() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_796_393_104, 123_456_000);
        assert_eq!(rfc3339_text(at), "2026-12-04T14:05:04.123456Z");
        let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_393_104);
        assert_eq!(rfc3339_text(whole), "2026-12-04T14:05:04Z");
    }

    fn sink_writing_to(file: &Path) -> AuditSink {
        let config = AuditConfig {
            file: Some(file.to_path_buf()),
            ..AuditConfig::default()
        };
        AuditSink::start(&config, Vec::new()).unwrap_or_else(|e| panic!("the writer starts: {e}"))
    }

    fn lines_in(file: &Path) -> usize {
        std::fs::read(file).map_or(0, |text| text.split(|b| *b == b'\n').count() - 1)
    }

    /// Polls until `file` holds more than `lines` lines or `within` has passed.
    fn grows_within(file: &Path, lines: usize, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if lines_in(file) > lines {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn a_record_reaches_the_file_when_the_queue_runs_dry_without_an_explicit_flush() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let file = dir.path().join("audit.log");
        let sink = sink_writing_to(&file);
        sink.event(AuditEvent::start("config"));
        assert!(grows_within(&file, 0, Duration::from_secs(5)));
    }

    #[test]
    fn under_steady_load_the_file_is_written_before_the_load_stops() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let file = dir.path().join("audit.log");
        let sink = sink_writing_to(&file);
        // An event every millisecond: each 2 ms nap ends with the queue holding more, so only
        // the periodic flush (every 20 ms) can put lines in the file while the load lasts; the
        // buffer's 64 KiB of ~180-byte lines would take some 360 ms to fill, after the check.
        let load = {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(1);
                while Instant::now() < until {
                    sink.event(AuditEvent::reload(None, None));
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        // After the load's start (where a late first sender can let the queue run dry once),
        // the file must keep growing.
        std::thread::sleep(Duration::from_millis(50));
        let grew_during_load = grows_within(&file, lines_in(&file), Duration::from_millis(250));
        assert!(!load.is_finished(), "the load outlasts the check");
        assert!(grew_during_load);
        assert!(load.join().is_ok());
    }

    #[test]
    fn rfc3339_of_a_time_past_year_9999_is_empty_not_a_panic() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(rfc3339_text(far), "");
    }
}
