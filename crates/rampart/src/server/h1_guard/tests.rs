use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const LIMITS: HeadLimits = HeadLimits {
    max_header_bytes: 1024,
    max_headers: 10,
    max_uri_bytes: 128,
    read_timeout: HEAD_TIMEOUT,
};
const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Feeds `input` through the guard; returns what hyper would have read and the refusal, if any.
async fn run(input: &[u8]) -> (Vec<u8>, Option<String>) {
    let refused = Arc::new(Mutex::new(None));
    let seen = refused.clone();
    let hook: OnReject = Box::new(move |e, _| {
        if let Ok(mut slot) = seen.lock() {
            *slot = Some(e.to_string());
        }
        Vec::new()
    });
    let mut guard = H1Guard::new(input, LIMITS, hook);
    let mut out = Vec::new();
    let _ = guard.read_to_end(&mut out).await;
    let refusal = refused.lock().ok().and_then(|mut r| r.take());
    (out, refusal)
}

#[tokio::test]
async fn well_formed_pipelined_requests_pass_through_unchanged() {
    let input = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloPUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n";
    let (out, refusal) = run(input).await;
    assert_eq!(refusal, None);
    assert_eq!(out, input.to_vec());
}

#[tokio::test]
async fn te_cl_smuggling_is_refused_before_hyper_sees_it() {
    let first = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let mut input = first.clone();
    input.extend_from_slice(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n");
    let (out, refusal) = run(&input).await;
    assert_eq!(
        out, first,
        "only the valid request before the attack is delivered"
    );
    assert_eq!(
        refusal.as_deref(),
        Some("malformed request: Content-Length with Transfer-Encoding")
    );
}

#[tokio::test]
async fn cl_cl_duplicate_content_length_is_refused() {
    let (out, refusal) =
        run(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc")
            .await;
    assert!(out.is_empty());
    assert_eq!(
        refusal.as_deref(),
        Some("malformed request: duplicate Content-Length")
    );
}

#[tokio::test]
async fn framing_attacks_are_each_refused() {
    let cases: [(&[u8], &str); 11] = [
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", "invalid Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", "invalid Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "unsupported Transfer-Encoding"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "duplicate Transfer-Encoding"),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding on HTTP/1.0"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "multiple Host headers"),
        (b"GET / HTTP/1.1\r\n\r\n", "missing Host header"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", "unparsable request head"),
        (b"GET / HTTP/1.1\nHost: x\n\n", "bare LF"),
        (b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", "bare CR"),
        (b"GET http://evil/ HTTP/1.1\r\nHost: x\r\n\r\n", "request target is not origin-form"),
    ];
    for (input, reason) in cases {
        let (out, refusal) = run(input).await;
        assert!(
            out.is_empty(),
            "{reason}: leaked {:?}",
            String::from_utf8_lossy(&out)
        );
        let refusal = refusal.unwrap_or_default();
        assert!(refusal.ends_with(reason), "{reason}: got {refusal}");
    }
}

#[tokio::test]
async fn chunk_longer_than_declared_is_refused() {
    let (_, refusal) = run(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(
        refusal.as_deref(),
        Some("malformed request: chunk longer than its size")
    );
}

#[tokio::test]
async fn oversized_heads_and_targets_are_refused() {
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(200));
    let (_, refusal) = run(long_target.as_bytes()).await;
    assert_eq!(
        refusal.as_deref(),
        Some("request target longer than 128 bytes")
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "a".repeat(2000)
    );
    let (_, refusal) = run(big.as_bytes()).await;
    assert_eq!(
        refusal.as_deref(),
        Some("request headers exceed request head too large")
    );
    let many: String = (0..12).map(|i| format!("X-{i}: 1\r\n")).collect();
    let (_, refusal) = run(format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes()).await;
    assert_eq!(
        refusal.as_deref(),
        Some("request headers exceed too many headers")
    );
}

#[tokio::test]
async fn target_over_the_uri_limit_is_414_before_its_line_ends() {
    // Longer than the header limit and still incomplete: the target decides, not the head size.
    let partial = format!("GET /{}", "a".repeat(1500));
    let (_, refusal) = run(partial.as_bytes()).await;
    assert_eq!(
        refusal.as_deref(),
        Some("request target longer than 128 bytes")
    );
    let (_, refusal) = run(format!("GET /{} HTTP/1.", "a".repeat(127)).as_bytes()).await;
    assert_eq!(refusal, None, "a target at the limit waits for the rest");
}

#[tokio::test]
async fn header_section_is_limited_without_the_request_line() {
    // A 120-byte target and 950 bytes of headers: over 1024 together, under each limit alone.
    let head = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "a".repeat(119),
        "b".repeat(930)
    );
    let (out, refusal) = run(head.as_bytes()).await;
    assert_eq!(refusal, None);
    assert_eq!(out, head.as_bytes());
    let incomplete = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}", "b".repeat(1100));
    let (_, refusal) = run(incomplete.as_bytes()).await;
    assert_eq!(
        refusal.as_deref(),
        Some("request headers exceed request head too large")
    );
}

#[tokio::test]
async fn h2_preface_on_an_http1_connection_is_refused() {
    let (out, refusal) = run(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert!(out.is_empty());
    assert!(refusal.is_some());
}

#[tokio::test]
async fn truncated_head_at_eof_is_not_delivered() {
    let (out, refusal) = run(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    assert!(out.is_empty());
    assert_eq!(refusal, None);
}

/// Regressions from the `h1_guard` fuzz target (inputs in `fuzz/regressions/h1_guard`).
#[tokio::test]
async fn fuzz_regressions_do_not_panic_and_do_not_depend_on_read_boundaries() {
    for name in [
        "crlf-then-eof",
        "crlf-partial-head",
        "trailer-line-budget-plus-one",
    ] {
        let path = format!(
            "{}/../../fuzz/regressions/h1_guard/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let input = std::fs::read(&path).unwrap_or_default();
        assert!(!input.is_empty(), "{path}");
        let whole = run(&input).await;
        // Byte by byte: the same verdict and output as in one read.
        let mut split = Vec::new();
        let refused = Arc::new(Mutex::new(None));
        let seen = refused.clone();
        let hook: OnReject = Box::new(move |e, _| {
            if let Ok(mut slot) = seen.lock() {
                *slot = Some(e.to_string());
            }
            Vec::new()
        });
        let reader = tokio_test_reader(&input);
        let mut guard = H1Guard::new(reader, LIMITS, hook);
        let _ = guard.read_to_end(&mut split).await;
        // A read after EOF is EOF again, not a panic.
        let mut more = Vec::new();
        let _ = guard.read_to_end(&mut more).await;
        assert!(more.is_empty(), "{name}");
        let refusal = refused.lock().ok().and_then(|mut r| r.take());
        assert_eq!((split, refusal), whole, "{name}");
    }
}

/// A reader that returns one byte per read.
fn tokio_test_reader(input: &[u8]) -> impl tokio::io::AsyncRead + Unpin {
    struct OneByte(std::collections::VecDeque<u8>);
    impl tokio::io::AsyncRead for OneByte {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(b) = self.0.pop_front() {
                buf.put_slice(&[b]);
            }
            std::task::Poll::Ready(Ok(()))
        }
    }
    OneByte(input.iter().copied().collect())
}

#[tokio::test]
async fn bytes_given_back_at_parking_are_read_again_first_and_not_validated_twice() {
    let input: &[u8] =
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut guard = H1Guard::new(input, LIMITS, Box::new(|_, _| Vec::new()));
    let mut first = [0u8; 40];
    guard.read_exact(&mut first).await.unwrap_or_default();
    // hyper parsed the first request and kept the start of the second in its read buffer.
    let split = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n".len();
    guard.unread(&first[split..]);
    assert!(!guard.is_between_requests(), "given-back bytes are pending");
    let mut rest = Vec::new();
    guard.read_to_end(&mut rest).await.unwrap_or_default();
    assert_eq!(rest, input[split..].to_vec());
    assert!(guard.is_between_requests());
}

/// A guard over one end of an in-memory connection whose other end is returned: what the client
/// sends, and when, is up to the test. The refusal, if any, is recorded in the returned slot.
fn guarded_pipe() -> (
    H1Guard<tokio::io::DuplexStream>,
    tokio::io::DuplexStream,
    Arc<Mutex<Option<String>>>,
) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let refused = Arc::new(Mutex::new(None));
    let seen = refused.clone();
    let hook: OnReject = Box::new(move |e, _| {
        if let Ok(mut slot) = seen.lock() {
            *slot = Some(format!("{} {}", e.status().as_u16(), e));
        }
        b"refused".to_vec()
    });
    (H1Guard::new(server, LIMITS, hook), client, refused)
}

/// The paused clock stopped at `at` after `started`, give or take tokio's millisecond tick.
fn assert_ran_out_at(started: tokio::time::Instant, at: std::time::Duration) {
    let elapsed = started.elapsed();
    assert!(
        elapsed >= at && elapsed <= at + std::time::Duration::from_millis(2),
        "the head clock ran out after {elapsed:?}, not {at:?}"
    );
}

/// Reads what the guard passes on until it ends the stream; `None` if it is still waiting after
/// `within` (of the paused clock).
async fn read_until_end(
    guard: &mut H1Guard<tokio::io::DuplexStream>,
    within: std::time::Duration,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    tokio::time::timeout(within, guard.read_to_end(&mut out))
        .await
        .ok()
        .map(|_| out)
}

#[tokio::test(start_paused = true)]
async fn a_head_sent_too_slowly_is_refused_with_408_when_the_head_clock_runs_out() {
    let (mut guard, mut client, refused) = guarded_pipe();
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let out = read_until_end(&mut guard, HEAD_TIMEOUT * 2).await;
    assert_eq!(
        out,
        Some(Vec::new()),
        "no byte of the slow head is passed on"
    );
    assert_ran_out_at(started, HEAD_TIMEOUT);
    assert_eq!(
        refused.lock().unwrap().as_deref(),
        Some("408 the request head was not complete in time")
    );
    // The refusal is written before the connection closes.
    let _ = guard.shutdown().await;
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, b"refused");
}

#[tokio::test(start_paused = true)]
async fn a_head_trickled_byte_by_byte_does_not_restart_the_clock() {
    let (mut guard, mut client, refused) = guarded_pipe();
    let feeder = tokio::spawn(async move {
        for &byte in b"GET /a HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaa" {
            if client.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        // Keep the connection open, sending nothing more.
        tokio::time::sleep(HEAD_TIMEOUT * 10).await;
        drop(client);
    });
    let started = tokio::time::Instant::now();
    let out = read_until_end(&mut guard, HEAD_TIMEOUT * 4).await;
    assert_eq!(out, Some(Vec::new()));
    assert!(
        started.elapsed() <= HEAD_TIMEOUT + std::time::Duration::from_millis(500),
        "the clock kept running while bytes trickled in: {:?}",
        started.elapsed()
    );
    assert!(
        refused
            .lock()
            .unwrap()
            .as_deref()
            .is_some_and(|r| r.starts_with("408"))
    );
    feeder.abort();
}

#[tokio::test(start_paused = true)]
async fn each_head_of_a_kept_alive_connection_gets_the_whole_clock() {
    let (mut guard, mut client, refused) = guarded_pipe();
    let head = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut got = vec![0u8; head.len()];
    // Three heads, each split in two and completed just before the clock would run out: the clock
    // stops at each complete head and starts again for the next.
    for _ in 0..3 {
        client.write_all(&head[..10]).await.unwrap();
        let reader = async {
            guard.read_exact(&mut got).await.unwrap();
        };
        let writer = async {
            tokio::time::sleep(HEAD_TIMEOUT - std::time::Duration::from_millis(100)).await;
            client.write_all(&head[10..]).await.unwrap();
        };
        tokio::join!(reader, writer);
        assert_eq!(&got, head);
    }
    assert_eq!(*refused.lock().unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_sends_a_head_is_closed_without_an_answer() {
    let (mut guard, mut client, refused) = guarded_pipe();
    let started = tokio::time::Instant::now();
    let out = read_until_end(&mut guard, HEAD_TIMEOUT * 2).await;
    assert_eq!(out, Some(Vec::new()));
    assert_ran_out_at(started, HEAD_TIMEOUT);
    assert_eq!(*refused.lock().unwrap(), None, "nothing to refuse");
    let _ = guard.shutdown().await;
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    assert!(answer.is_empty(), "closed without an answer");
}

#[tokio::test(start_paused = true)]
async fn a_body_is_not_timed_by_the_head_clock() {
    let (mut guard, mut client, refused) = guarded_pipe();
    let head = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n";
    client.write_all(head).await.unwrap();
    client.write_all(b"ab").await.unwrap();
    let mut got = vec![0u8; head.len() + 2];
    guard.read_exact(&mut got).await.unwrap();
    // The body's pace is the body policy's business (`hygiene::body`), not the head clock's.
    let mut rest = [0u8; 2];
    let reader = guard.read_exact(&mut rest);
    let writer = async {
        tokio::time::sleep(HEAD_TIMEOUT * 3).await;
        client.write_all(b"cd").await.unwrap();
    };
    let (read, ()) = tokio::join!(reader, writer);
    read.unwrap();
    assert_eq!(&rest, b"cd");
    assert_eq!(*refused.lock().unwrap(), None);
}
