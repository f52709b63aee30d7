//! Arbitrary bytes as the byte stream of one HTTP/1 connection through the framing guard
//! (`rampart::server::h1_guard::H1Guard`, which runs `validate_head`, the chunk-size and trailer
//! parsers and the body-framing state machine on whatever it is fed).
//!
//! The guard is driven through its public `AsyncRead` impl with a no-op waker over an in-memory
//! reader, so nothing here needs a runtime. The same bytes are delivered three ways: in one
//! piece, one byte per read, and in pieces whose sizes are derived from the input itself (read
//! into a small output buffer).
//!
//! Asserts:
//! - it never panics, and each delivery finishes (bounded number of polls);
//! - once it has returned end of stream, reading again returns end of stream again;
//! - what it passes on (what hyper would read) is a prefix of the input: the guard only cuts the
//!   stream, it never rewrites bytes;
//! - how the stream is split into reads does not matter: all three deliveries pass on the same
//!   bytes and agree on whether the connection was refused. (A difference would mean that the
//!   same bytes are framed differently depending on TCP segmentation: the desync the guard is
//!   there to prevent.)

#![no_main]

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use rampart::server::h1_guard::{H1Guard, HeadLimits, OnReject};
use tokio::io::{AsyncRead, ReadBuf};

/// Small limits so that the fuzzer reaches them with short inputs.
const LIMITS: HeadLimits = HeadLimits {
    max_header_bytes: 128,
    max_headers: 8,
    max_uri_bytes: 64,
    // The in-memory reader never pends, so the head clock never starts.
    read_timeout: std::time::Duration::from_secs(10),
};

/// An in-memory connection that returns at most `sizes[i]` bytes on the i-th read (cycling).
struct Pieces<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let size = this.sizes[this.next % this.sizes.len()].max(1);
        this.next += 1;
        let n = size.min(this.data.len()).min(buf.remaining());
        buf.put_slice(&this.data[..n]);
        this.data = &this.data[n..];
        Poll::Ready(Ok(()))
    }
}

struct Outcome {
    passed: Vec<u8>,
    refused: bool,
}

fn run(data: &[u8], sizes: Vec<usize>, out_buf: usize) -> Outcome {
    let refused = Arc::new(Mutex::new(false));
    let flag = refused.clone();
    let on_reject: OnReject = Box::new(move |_, _| {
        if let Ok(mut f) = flag.lock() {
            *f = true;
        }
        b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()
    });
    let io = Pieces {
        data,
        sizes,
        next: 0,
    };
    let mut guard = H1Guard::new(io, LIMITS, on_reject);
    let mut cx = Context::from_waker(Waker::noop());
    let mut passed = Vec::new();
    let mut scratch = vec![0u8; out_buf];
    // Every poll either returns bytes or consumes input; give generous headroom.
    let max_polls = 4 * data.len() + 16;
    let mut polls = 0;
    loop {
        polls += 1;
        assert!(polls <= max_polls, "the guard did not reach EOF");
        let mut rb = ReadBuf::new(&mut scratch);
        match Pin::new(&mut guard).poll_read(&mut cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                if rb.filled().is_empty() {
                    break;
                }
                passed.extend_from_slice(rb.filled());
            }
            Poll::Ready(Err(e)) => panic!("in-memory read failed: {e}"),
            Poll::Pending => panic!("in-memory reader never pends"),
        }
    }
    // A caller may read again after end of stream (or after a refusal): it must get EOF again.
    let mut rb = ReadBuf::new(&mut scratch);
    match Pin::new(&mut guard).poll_read(&mut cx, &mut rb) {
        Poll::Ready(Ok(())) => assert!(
            rb.filled().is_empty(),
            "bytes passed on after end of stream"
        ),
        other => panic!("read after end of stream: {other:?}"),
    }
    let refused = refused.lock().map(|f| *f).unwrap_or(false);
    Outcome { passed, refused }
}

fuzz_target!(|data: &[u8]| {
    let whole = run(data, vec![usize::MAX], 64 * 1024);
    assert!(
        data.starts_with(&whole.passed),
        "passed bytes are not a prefix of the input"
    );

    let bytewise = run(data, vec![1], 64 * 1024);
    assert_eq!(
        (&bytewise.passed, bytewise.refused),
        (&whole.passed, whole.refused),
        "one byte per read differs from one read (passed bytes, refused)"
    );

    // Piece sizes 1..=64 taken from the input so that the fuzzer can steer the split points.
    let sizes: Vec<usize> = data
        .iter()
        .take(16)
        .map(|b| usize::from(b % 64) + 1)
        .collect();
    let sizes = if sizes.is_empty() { vec![1] } else { sizes };
    let pieces = run(data, sizes, 7);
    assert_eq!(
        (&pieces.passed, pieces.refused),
        (&whole.passed, whole.refused),
        "split reads differ from one read (passed bytes, refused)"
    );
});
