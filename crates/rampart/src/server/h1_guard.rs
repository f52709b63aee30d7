//! The HTTP/1 framing guard: a strict pre-parser between the socket and hyper.
//!
//! Threat: request smuggling and desync. hyper reads ambiguous framing the lenient way RFC 9112
//! permits (a `Content-Length` beside `Transfer-Encoding` is dropped, duplicate equal lengths are
//! merged), and an upstream or another proxy may read the same bytes differently. Invariant: hyper
//! only ever receives request heads that this guard has validated, so every request reaching the
//! pipeline has exactly one framing. Refused: `Content-Length` with `Transfer-Encoding`, duplicate
//! or non-numeric `Content-Length`, any `Transfer-Encoding` but a single `chunked` (and none on
//! HTTP/1.0), obs-fold, bare CR or LF, bytes httparse rejects, missing or repeated `Host` on
//! HTTP/1.1, absolute-form targets, malformed chunk framing. A refusal writes a 400 (or 414/431)
//! problem document and closes the connection; the refused head never reaches hyper.
//!
//! Threat: slowloris, a head sent a byte at a time to hold the connection. The guard also keeps
//! the head clock (`HeadLimits::read_timeout`, the listener's `header_read_timeout_ms`): from its
//! first wait on the socket for a head until the head is complete. A head still incomplete when
//! it runs out is refused with a 408 (a connection that sent nothing is closed without an
//! answer). hyper's own header-read timer does the same, but allocates and registers a new timer
//! for every request; this one is one timer per busy connection, moved forward for each head (a
//! lock-free update in tokio while its deadline only grows), and armed only when a read finds
//! nothing waiting.
//!
//! Closing in the middle of a request is done in stages (RFC 9112 section 9.6: answer, shut down
//! the write side, discard what the client still sends for a bounded time and size, then close),
//! so that the client reads the answer rather than a reset.
//!
//! The guard tracks body framing (length or chunks) to find the next head on a keep-alive
//! connection. HTTP/2 connections (by ALPN, or the prior-knowledge preface, decided by the server
//! before any parser runs) never go through it: their framing is binary and enforced by the h2
//! crate. Hand-written because no crate offers a
//! validating HTTP/1 framer that can sit in front of hyper; httparse does the head parsing.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::keep_alive::{Activity, ReadReady};

use crate::config::listener::MAX_HEADERS_CEILING;
use crate::error::GatewayError;

/// Bytes of a request line beside its target: the method, two spaces, `HTTP/1.1`.
const REQUEST_LINE_OVERHEAD: usize = 64;
/// Longest accepted chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;
const READ_CHUNK: usize = 16 * 1024;
/// How long, and how many bytes, a connection closed in the middle of a request is still read and
/// discarded so that the client can read the answer (nginx's lingering close).
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// Byte limits enforced on each request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
    /// How long a head may take, from the guard's first wait on the socket for it.
    pub read_timeout: std::time::Duration,
}

/// Called once when the guard refuses a request: returns the bytes of the response to write.
pub type OnReject = Box<dyn FnOnce(&GatewayError, Option<&str>) -> Vec<u8> + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers(usize),
    Rejected,
    /// The head clock ran out before a head began: nothing more is read, nothing is answered.
    Closed,
}

/// Wraps a connection's byte stream; see the module doc.
pub struct H1Guard<IO> {
    io: IO,
    buf: BytesMut,
    /// Leading bytes of `buf` validated and ready for hyper.
    ready: usize,
    state: State,
    limits: HeadLimits,
    on_reject: Option<OnReject>,
    reply: Option<(Vec<u8>, usize)>,
    /// Set once the write side is shut down in the middle of a request.
    linger: Option<Linger>,
    /// Bounds the write phase of a staged close: a client that never reads cannot hold the
    /// connection open with a full send buffer.
    close_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Where reads and writes are reported for the keep-alive idle check (`keep_alive.rs`).
    activity: Option<Arc<Activity>>,
    /// The head clock's timer, made at the first wait for a head and kept until the connection
    /// parks; `head_clock_running` says whether it is timing the current head.
    head_clock: Option<Pin<Box<tokio::time::Sleep>>>,
    head_clock_running: bool,
}

impl<IO> H1Guard<IO> {
    pub fn new(io: IO, limits: HeadLimits, on_reject: OnReject) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            ready: 0,
            state: State::Head,
            limits,
            on_reject: Some(on_reject),
            reply: None,
            linger: None,
            close_deadline: None,
            activity: None,
            head_clock: None,
            head_clock_running: false,
        }
    }

    /// Reports reads and writes to `activity`, which decides when the connection is idle.
    pub fn report_to(mut self, activity: Arc<Activity>) -> Self {
        self.activity = Some(activity);
        self
    }

    /// Limits for the heads still to come (a reload's, when a kept-alive connection resumes).
    /// Called between requests: bytes already handed over were validated under the old limits.
    pub fn set_limits(&mut self, limits: HeadLimits) {
        self.limits = limits;
    }

    /// The connection parks between requests (`keep_alive.rs`): its wait is bounded by the parked
    /// timeouts, so the head clock stops and its timer is freed; the next head starts a new one.
    pub fn park(&mut self) {
        self.head_clock = None;
        self.head_clock_running = false;
    }

    /// Takes back bytes this guard had handed over and the reader did not consume (hyper's read
    /// buffer when a connection is parked): they are read again first, as they were validated.
    pub fn unread(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut buf = BytesMut::with_capacity(bytes.len() + self.buf.len());
        buf.extend_from_slice(bytes);
        buf.extend_from_slice(&self.buf);
        self.buf = buf;
        self.ready += bytes.len();
    }

    /// Between two requests, with nothing buffered and no refusal or close under way.
    pub fn is_between_requests(&self) -> bool {
        self.buf.is_empty()
            && self.state == State::Head
            && self.reply.is_none()
            && self.linger.is_none()
            && self.close_deadline.is_none()
    }

    fn report(&self, report: impl FnOnce(&Activity)) {
        if let Some(activity) = &self.activity {
            report(activity);
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.ready..]
    }

    /// Validates buffered bytes; returns whether any became ready or the state changed.
    fn advance(&mut self) -> bool {
        if self.pending().is_empty() {
            return false;
        }
        match self.state {
            State::Head => self.advance_head(),
            State::Body(left) => {
                let n = self.take_up_to(left);
                self.state = if n == left {
                    State::Head
                } else {
                    State::Body(left - n)
                };
                true
            }
            State::ChunkSize => self.advance_chunk_size(),
            State::ChunkData(left) => {
                let n = self.take_up_to(left);
                self.state = if n == left {
                    State::ChunkDataEnd
                } else {
                    State::ChunkData(left - n)
                };
                true
            }
            State::ChunkDataEnd => self.advance_chunk_end(),
            State::Trailers(seen) => self.advance_trailers(seen),
            State::Rejected | State::Closed => false,
        }
    }

    fn take_up_to(&mut self, left: u64) -> u64 {
        let n = (self.pending().len() as u64).min(left);
        self.ready += n as usize;
        n
    }

    fn advance_head(&mut self) -> bool {
        // Empty lines before a request line are allowed (RFC 9112 section 2.2); hyper skips them.
        // Skipped bytes are progress: returning `true` keeps `ready` consistent with the buffer
        // (the `h1_guard` fuzz target found a panic on a read after EOF otherwise).
        let mut skipped = false;
        while self.pending().starts_with(b"\r\n") {
            self.ready += 2;
            skipped = true;
        }
        let end = match find_head_end(self.pending()) {
            Ok(Some(end)) => end,
            Ok(None) => {
                return match self.size_verdict(self.pending().len()) {
                    Some(e) => self.reject(e, None),
                    None => skipped,
                };
            }
            Err(e) => return self.reject(e, None),
        };
        if let Some(e) = self.size_verdict(end) {
            return self.reject(e, None);
        }
        let head = &self.buf[self.ready..self.ready + end];
        match validate_head(head, &self.limits) {
            Ok(next) => {
                self.ready += end;
                self.state = next;
                self.head_clock_running = false;
                true
            }
            Err((e, method)) => self.reject(e, method.as_deref()),
        }
    }

    /// Measures the first `len` pending bytes of a head, complete or not, against the limits:
    /// the request target against `max_uri_bytes` (a 414 even before its line ends, so hyper's
    /// buffer never fills first and answers 431), the request line against that plus
    /// `REQUEST_LINE_OVERHEAD`, and the header section alone against `max_header_bytes`. The same
    /// bytes get the same verdict however they arrive in reads.
    fn size_verdict(&self, len: usize) -> Option<GatewayError> {
        let head = &self.pending()[..len];
        let line_end = find_subslice(head, b"\r\n");
        let line = &head[..line_end.unwrap_or(head.len())];
        let target = line
            .iter()
            .position(|&b| b == b' ')
            .map_or(&[][..], |sp| &line[sp + 1..]);
        let target = target.split(|&b| b == b' ').next().unwrap_or_default();
        if target.len() > self.limits.max_uri_bytes {
            return Some(GatewayError::UriTooLong {
                limit: self.limits.max_uri_bytes,
            });
        }
        if line.len() > self.limits.max_uri_bytes + REQUEST_LINE_OVERHEAD {
            return Some(GatewayError::MalformedRequest("request line too long"));
        }
        let fields = line_end.map_or(0, |at| len - at - 2);
        (fields > self.limits.max_header_bytes)
            .then_some(GatewayError::HeadersTooLarge("request head too large"))
    }

    fn advance_chunk_size(&mut self) -> bool {
        let line = match find_line(self.pending(), MAX_CHUNK_LINE) {
            Ok(Some(len)) => len,
            Ok(None) => return false,
            Err(e) => return self.reject(e, None),
        };
        match parse_chunk_size(&self.pending()[..line]) {
            Some(size) => {
                self.ready += line + 2;
                self.state = if size == 0 {
                    State::Trailers(0)
                } else {
                    State::ChunkData(size)
                };
                true
            }
            None => self.reject(GatewayError::MalformedRequest("invalid chunk size"), None),
        }
    }

    fn advance_chunk_end(&mut self) -> bool {
        let pending = self.pending();
        if pending.len() < 2 {
            return pending != b"\r"
                && self.reject(
                    GatewayError::MalformedRequest("chunk longer than its size"),
                    None,
                );
        }
        if &pending[..2] != b"\r\n" {
            return self.reject(
                GatewayError::MalformedRequest("chunk longer than its size"),
                None,
            );
        }
        self.ready += 2;
        self.state = State::ChunkSize;
        true
    }

    fn advance_trailers(&mut self, seen: usize) -> bool {
        let budget = self.limits.max_header_bytes.saturating_sub(seen);
        let line = match find_line(self.pending(), budget) {
            Ok(Some(len)) => len,
            Ok(None) => return false,
            Err(e) => return self.reject(e, None),
        };
        let field = &self.pending()[..line];
        if line == 0 {
            self.ready += 2;
            self.state = State::Head;
            return true;
        }
        if field[0] == b' ' || field[0] == b'\t' || !field.contains(&b':') {
            return self.reject(
                GatewayError::MalformedRequest("invalid trailer field"),
                None,
            );
        }
        self.ready += line + 2;
        self.state = State::Trailers(seen + line + 2);
        true
    }

    fn reject(&mut self, error: GatewayError, method: Option<&str>) -> bool {
        let reply = self
            .on_reject
            .take()
            .map(|f| f(&error, method))
            .unwrap_or_default();
        tracing::debug!(%error, "request refused by the framing guard");
        self.reply = Some((reply, 0));
        self.buf.truncate(self.ready);
        self.state = State::Rejected;
        true
    }

    /// After a read of the socket found nothing: starts the head clock if a head is awaited and
    /// the clock is not running, and returns whether it has run out (the head is then refused, or
    /// the connection closed if no byte of a head came).
    fn head_clock_ran_out(&mut self, cx: &mut Context<'_>) -> bool {
        if self.state != State::Head {
            return false;
        }
        let clock = if self.head_clock_running {
            self.head_clock.as_mut()
        } else {
            self.head_clock_running = true;
            let deadline = tokio::time::Instant::now() + self.limits.read_timeout;
            match &mut self.head_clock {
                Some(clock) => clock.as_mut().reset(deadline),
                None => self.head_clock = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.head_clock.as_mut()
        };
        if clock.is_none_or(|clock| clock.as_mut().poll(cx).is_pending()) {
            return false;
        }
        self.head_clock_running = false;
        if self.pending().is_empty() {
            self.state = State::Closed;
            true
        } else {
            self.reject(GatewayError::HeadTimeout, None)
        }
    }
}

/// The length of the head including its final CRLFCRLF, if complete; refuses bare CR or LF.
fn find_head_end(bytes: &[u8]) -> Result<Option<usize>, GatewayError> {
    // Only CR and LF decide anything: jump from one to the next (memchr, a word at a time)
    // rather than look at every byte of a head that can carry a kilobyte of token.
    for i in memchr::memchr2_iter(b'\r', b'\n', bytes) {
        match bytes[i] {
            b'\n' if i == 0 || bytes[i - 1] != b'\r' => {
                return Err(GatewayError::MalformedRequest("bare LF"));
            }
            b'\r' if bytes.get(i + 1).is_some_and(|&n| n != b'\n') => {
                return Err(GatewayError::MalformedRequest("bare CR"));
            }
            b'\n' if i >= 3 && &bytes[i - 3..=i] == b"\r\n\r\n" => return Ok(Some(i + 1)),
            _ => {}
        }
    }
    Ok(None)
}

fn find_subslice(bytes: &[u8], needle: &[u8]) -> Option<usize> {
    bytes.windows(needle.len()).position(|w| w == needle)
}

/// The length of the first line (without CRLF), if complete within `max` bytes.
fn find_line(bytes: &[u8], max: usize) -> Result<Option<usize>, GatewayError> {
    // `max` bytes of content, then the CR: the same verdict however the bytes arrive in reads
    // (an off-by-one here was found by the `h1_guard` fuzz target).
    for (i, &b) in bytes.iter().enumerate().take(max.saturating_add(1)) {
        match b {
            b'\n' => return Err(GatewayError::MalformedRequest("bare LF")),
            b'\r' => {
                return match bytes.get(i + 1) {
                    Some(b'\n') => Ok(Some(i)),
                    Some(_) => Err(GatewayError::MalformedRequest("bare CR")),
                    None => Ok(None),
                };
            }
            _ => {}
        }
    }
    if bytes.len() > max {
        return Err(GatewayError::MalformedRequest("line too long"));
    }
    Ok(None)
}

/// `1a`, `1a;ext=1`: hex digits (at most 16), optionally followed by extensions.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    if let Some(&next) = line.get(digits)
        && next != b';'
    {
        return None;
    }
    let text = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// The refusal and the request's method, if it had one (`Box<str>`: this is returned by value).
type HeadError = (GatewayError, Option<Box<str>>);

/// Parses one complete head and returns the state for its body.
fn validate_head(head: &[u8], limits: &HeadLimits) -> Result<State, HeadError> {
    // Uninitialised slots: httparse writes only those it fills, so a head with ten fields does
    // not first pay for zeroing 256 of them (8 KiB) as `EMPTY_HEADER` slots would.
    let mut storage =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CEILING];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, &mut storage) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err((GatewayError::MalformedRequest("incomplete head"), None));
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err((GatewayError::HeadersTooLarge("too many headers"), None));
        }
        Err(_) => {
            return Err((
                GatewayError::MalformedRequest("unparsable request head"),
                None,
            ));
        }
    }
    // The method is copied only for a refusal: an accepted head allocates nothing here.
    let fail = |e: GatewayError| (e, req.method.map(Box::from));
    if req.headers.len() > limits.max_headers {
        return Err(fail(GatewayError::HeadersTooLarge("too many headers")));
    }
    let target = req.path.unwrap_or("");
    if target.len() > limits.max_uri_bytes {
        return Err(fail(GatewayError::UriTooLong {
            limit: limits.max_uri_bytes,
        }));
    }
    let asterisk = target == "*" && req.method == Some("OPTIONS");
    if !(target.starts_with('/') || asterisk) {
        return Err(fail(GatewayError::MalformedRequest(
            "request target is not origin-form",
        )));
    }
    let http11 = req.version == Some(1);
    let (mut length, mut chunked, mut hosts) = (None::<u64>, 0usize, 0usize);
    for header in req.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Err(fail(GatewayError::MalformedRequest(
                    "duplicate Content-Length",
                )));
            }
            length =
                Some(parse_length(header.value).ok_or_else(|| {
                    fail(GatewayError::MalformedRequest("invalid Content-Length"))
                })?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !header.value.eq_ignore_ascii_case(b"chunked") {
                return Err(fail(GatewayError::MalformedRequest(
                    "unsupported Transfer-Encoding",
                )));
            }
            chunked += 1;
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    match (length, chunked, hosts) {
        (_, 2.., _) => Err(fail(GatewayError::MalformedRequest(
            "duplicate Transfer-Encoding",
        ))),
        (Some(_), 1, _) => Err(fail(GatewayError::MalformedRequest(
            "Content-Length with Transfer-Encoding",
        ))),
        (_, 1, _) if !http11 => Err(fail(GatewayError::MalformedRequest(
            "Transfer-Encoding on HTTP/1.0",
        ))),
        (_, _, 2..) => Err(fail(GatewayError::MalformedRequest(
            "multiple Host headers",
        ))),
        (_, _, 0) if http11 => Err(fail(GatewayError::MalformedRequest("missing Host header"))),
        (_, 1, _) => Ok(State::ChunkSize),
        (Some(n), _, _) if n > 0 => Ok(State::Body(n)),
        _ => Ok(State::Head),
    }
}

/// Digits only (no sign, spaces or commas), at most 19 of them so the value fits in a u64.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

impl<IO: AsyncRead + Unpin> AsyncRead for H1Guard<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.advance(n);
                this.ready -= n;
                if this.buf.is_empty() && this.state == State::Head {
                    // Everything handed to hyper and no body under way: an idle keep-alive
                    // connection keeps no buffer (a body keeps reusing its buffer).
                    this.buf = BytesMut::new();
                }
                return Poll::Ready(Ok(()));
            }
            if matches!(this.state, State::Rejected | State::Closed) {
                return Poll::Ready(Ok(()));
            }
            if this.advance() {
                continue;
            }
            if this.buf.is_empty() && this.state == State::Head {
                // Nothing pending (a new request, nearly always): read onto the stack and keep
                // only what arrived, as nginx frees its header buffers between keep-alive
                // requests. A 16 KiB buffer kept per connection made 10,000 idle connections
                // cost 160 MiB.
                let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
                let mut chunk = ReadBuf::uninit(&mut scratch);
                if Pin::new(&mut this.io)
                    .poll_read(cx, &mut chunk)?
                    .is_pending()
                {
                    this.report(Activity::guard_waiting);
                    if this.head_clock_ran_out(cx) {
                        continue;
                    }
                    return Poll::Pending;
                }
                if chunk.filled().is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.report(Activity::bytes_read);
                this.buf = BytesMut::from(chunk.filled());
                continue;
            }
            this.buf.reserve(READ_CHUNK);
            let read = tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.buf);
            let Poll::Ready(read) = read else {
                if this.head_clock_ran_out(cx) {
                    continue;
                }
                return Poll::Pending;
            };
            let n = read?;
            if n == 0 {
                // End of stream: an unvalidated partial head is dropped, hyper sees a clean EOF.
                this.buf.clear();
                return Poll::Ready(Ok(()));
            }
            this.report(Activity::bytes_read);
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for H1Guard<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.report(Activity::bytes_written);
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.report(Activity::bytes_written);
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        self.report(Activity::flushed);
        Poll::Ready(Ok(()))
    }

    /// Closes in stages (RFC 9112 section 9.6): the refusal is written after every response
    /// hyper has written, then the write side is shut down, and a connection left in the middle of
    /// a request is read and discarded for a bounded time and size before it is dropped. Closing
    /// with unread bytes would make the kernel send a reset, and the client would see a broken
    /// connection instead of the answer.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            let deadline = this
                .close_deadline
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER_TIME)));
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(())); // the client does not read: drop it
            }
            ready!(this.poll_write_reply(cx))?;
            ready!(Pin::new(&mut this.io).poll_flush(cx))?;
            ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            if matches!(this.state, State::Head | State::Closed) {
                return Poll::Ready(Ok(()));
            }
            this.linger = Some(Linger {
                deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
                left: LINGER_BYTES,
            });
        }
        this.poll_linger(cx)
    }
}

impl<IO: ReadReady> ReadReady for H1Guard<IO> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_read_ready(cx)
    }
}

/// The bounds of the discard phase of a staged close.
struct Linger {
    deadline: Pin<Box<tokio::time::Sleep>>,
    left: usize,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> H1Guard<IO> {
    fn poll_write_reply(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((reply, written)) = &mut self.reply {
            if *written >= reply.len() {
                self.reply = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &reply[*written..]))?;
            if n == 0 {
                self.reply = None;
                break;
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Reads and drops what the client still sends until it closes, or the bounds are reached.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(linger) = self.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        while linger.left > 0 && linger.deadline.as_mut().poll(cx).is_pending() {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    linger.left = linger.left.saturating_sub(buf.filled().len());
                }
                Poll::Ready(_) => break,
            }
        }
        linger.left = 0;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests;
