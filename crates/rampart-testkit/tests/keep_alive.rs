//! Idle HTTP/1 keep-alive connections give their hyper buffers back (server/keep_alive.rs): what
//! a client sees must not change. A parked connection serves its next request, a slow answer or a
//! paused stream is not cut or marked `Connection: close`, and the listener's idle timeout closes
//! what stays silent; a reload's limits reach connections kept alive from before it. (`alloc_budget.rs`
//! measures the heap a parked connection keeps.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rampart::server::keep_alive::PARK_AFTER;
use rampart_testkit::{RecordingUpstream, TestGateway};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Long enough for any connection idle since its start to have been parked.
const PARKED: Duration = Duration::from_millis(3 * PARK_AFTER.as_millis() as u64);

async fn gateway(upstream: &str, limits: &str) -> TestGateway {
    TestGateway::builder()
        .plaintext()
        .config(&config(upstream, limits))
        .start()
        .await
}

fn config(upstream: &str, limits: &str) -> String {
    format!(
        r#"{limits}
[[upstreams]]
name = "api"
targets = ["{upstream}"]

[[routes]]
name = "public"
path_prefix = "/"
upstream = "api"
public = true
"#
    )
}

/// One response: its head (lower-cased) and body; chunked bodies are decoded.
async fn read_response(reader: &mut BufReader<TcpStream>) -> (String, Vec<u8>) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).await.expect("read head");
        assert!(
            n > 0,
            "the connection closed before a response; got {head:?}"
        );
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let mut body = Vec::new();
    if head.contains("transfer-encoding: chunked") {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await.expect("chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("hex size");
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await.expect("chunk");
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
    {
        body.resize(length.trim().parse().expect("length"), 0);
        reader.read_exact(&mut body).await.expect("body");
    }
    (head, body)
}

async fn get(reader: &mut BufReader<TcpStream>, path: &str) -> (String, Vec<u8>) {
    exchange(
        reader,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
    .await
}

/// Sends one request and reads its response.
async fn exchange(reader: &mut BufReader<TcpStream>, request: &str) -> (String, Vec<u8>) {
    reader
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .expect("write");
    read_response(reader).await
}

/// The paths the upstream received, in order.
fn upstream_paths(upstream: &RecordingUpstream) -> Vec<String> {
    upstream
        .requests()
        .iter()
        .map(|r| r.uri.path().to_owned())
        .collect()
}

/// Waits for the gateway to close `conn` cleanly, 1 to 5 s from now (a 1 s idle timeout counted
/// from the parking, 0.5 to 1 s after the last answer).
async fn assert_closed_by_a_one_second_idle_timeout(conn: &mut BufReader<TcpStream>, why: &str) {
    let idle = Instant::now();
    assert_closed_cleanly(conn, Duration::from_secs(30)).await;
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
        "closed after {waited:?}; {why}"
    );
}

/// Waits at most `within` for the gateway to close `conn` cleanly.
async fn assert_closed_cleanly(conn: &mut BufReader<TcpStream>, within: Duration) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(within, conn.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "expected a clean close: {read:?}"
    );
}

async fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(addr).await.expect("connect"))
}

fn assert_kept_alive(head: &str) {
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
}

#[tokio::test]
async fn a_parked_connection_serves_its_next_requests() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream.url(), "").await;
    let mut conn = connect(gw.addr).await;
    let (head, _) = get(&mut conn, "/first").await;
    assert_kept_alive(&head);
    for path in ["/after-parking", "/after-parking-again"] {
        tokio::time::sleep(PARKED).await;
        let (head, _) = get(&mut conn, path).await;
        assert_kept_alive(&head);
    }
    assert_eq!(
        upstream_paths(&upstream),
        ["/first", "/after-parking", "/after-parking-again"]
    );
}

#[tokio::test]
async fn pipelined_requests_sent_to_a_parked_connection_are_all_answered() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream.url(), "").await;
    let mut conn = connect(gw.addr).await;
    get(&mut conn, "/first").await;
    tokio::time::sleep(PARKED).await;
    let pipelined = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    conn.get_mut()
        .write_all(pipelined.as_bytes())
        .await
        .unwrap();
    for _ in 0..2 {
        let (head, _) = read_response(&mut conn).await;
        assert_kept_alive(&head);
    }
    assert_eq!(upstream.count(), 3);
}

#[tokio::test]
async fn an_answer_slower_than_the_park_delay_keeps_the_connection_open() {
    let upstream = RecordingUpstream::slow(PARKED).await;
    let gw = gateway(&upstream.url(), "").await;
    let mut conn = connect(gw.addr).await;
    let (head, _) = get(&mut conn, "/slow").await;
    assert_kept_alive(&head);
    let (head, _) = get(&mut conn, "/slow-again").await;
    assert_kept_alive(&head);
}

/// Reads one request head off a raw upstream connection; false once the gateway closed it.
async fn read_request_head(stream: &mut BufReader<TcpStream>) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return false;
        }
        if line == "\r\n" {
            return true;
        }
    }
}

/// An upstream whose chunked answer pauses between chunks for longer than a parking takes.
async fn pausing_stream_upstream(pause: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                while read_request_head(&mut stream).await {
                    let out = stream.get_mut();
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                                Transfer-Encoding: chunked\r\n\r\n";
                    let _ = out.write_all(head.as_bytes()).await;
                    for part in ["one,", "two,", "three"] {
                        let chunk = format!("{:x}\r\n{part}\r\n", part.len());
                        let _ = out.write_all(chunk.as_bytes()).await;
                        tokio::time::sleep(pause).await;
                    }
                    let _ = out.write_all(b"0\r\n\r\n").await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_stream_that_pauses_longer_than_the_park_delay_arrives_whole() {
    let upstream = pausing_stream_upstream(PARKED).await;
    let gw = gateway(&format!("http://{upstream}"), "").await;
    let mut conn = connect(gw.addr).await;
    let (head, body) = get(&mut conn, "/stream").await;
    assert_kept_alive(&head);
    assert_eq!(body, b"one,two,three");
    let (head, body) = get(&mut conn, "/stream").await;
    assert_kept_alive(&head);
    assert_eq!(body, b"one,two,three");
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream.url(), "[limits]\nidle_timeout_ms = 1000\n").await;
    let mut conn = connect(gw.addr).await;
    get(&mut conn, "/once").await;
    assert_closed_by_a_one_second_idle_timeout(&mut conn, "the idle timeout is 1 s after parking")
        .await;
}

/// A gateway whose drain would wait 20 s for connections that do not close themselves.
async fn gateway_with_a_long_drain(upstream: &str) -> TestGateway {
    TestGateway::builder()
        .plaintext()
        .drain_timeout_ms(20_000)
        .config(&config(upstream, ""))
        .start()
        .await
}

#[tokio::test]
async fn draining_closes_parked_connections_without_waiting_for_the_drain_timeout() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway_with_a_long_drain(&upstream.url()).await;
    let mut conn = connect(gw.addr).await;
    get(&mut conn, "/once").await;
    tokio::time::sleep(PARKED).await;
    let stopping = Instant::now();
    gw.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "the drain waited {:?} for an idle connection",
        stopping.elapsed()
    );
    assert_closed_cleanly(&mut conn, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn draining_answers_the_request_in_flight_with_connection_close_then_closes_the_connection() {
    // Answered before the connection's first idle check (one park delay after it opened):
    // nothing but the drain signal itself wakes the connection between the drain and the
    // answer, so the answer carries `Connection: close` only if the drain's wake-up was
    // registered.
    let upstream_delay = PARK_AFTER * 3 / 5;
    let upstream = RecordingUpstream::slow(upstream_delay).await;
    let gw = gateway_with_a_long_drain(&upstream.url()).await;
    let mut conn = connect(gw.addr).await;
    conn.get_mut()
        .write_all(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let waiting = Instant::now();
    while upstream.count() < 1 {
        assert!(
            waiting.elapsed() < upstream_delay,
            "the second request did not reach the upstream in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopping = Instant::now();
    let stop = tokio::spawn(gw.stop());
    let (head, _) = read_response(&mut conn).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("connection: close"),
        "the drain reached the busy connection: {head}"
    );
    assert_closed_cleanly(&mut conn, Duration::from_secs(2)).await;
    stop.await.expect("stopped");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "the drain waited {:?}",
        stopping.elapsed()
    );
}

/// An upstream answering every request with `size` bytes.
async fn large_body_upstream(size: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                while read_request_head(&mut stream).await {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
                    );
                    let out = stream.get_mut();
                    let _ = out.write_all(head.as_bytes()).await;
                    let _ = out.write_all(&vec![b'x'; size]).await;
                }
            });
        }
    });
    addr
}

const LARGE: usize = 8 * 1024 * 1024;

#[tokio::test]
async fn a_large_answer_to_a_client_that_pauses_reading_arrives_whole() {
    let upstream = large_body_upstream(LARGE).await;
    let gw = gateway(&format!("http://{upstream}"), "").await;
    for close in ["", "Connection: close\r\n"] {
        let mut conn = connect(gw.addr).await;
        let request = format!("GET /large HTTP/1.1\r\nHost: localhost\r\n{close}\r\n");
        conn.get_mut().write_all(request.as_bytes()).await.unwrap();
        // The socket buffers fill and the gateway waits longer than a parking takes.
        tokio::time::sleep(PARKED).await;
        let (head, body) = read_response(&mut conn).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(body.len(), LARGE, "{close:?}: the answer was cut");
        if close.is_empty() {
            let (head, body) = get(&mut conn, "/large").await;
            assert_kept_alive(&head);
            assert_eq!(body.len(), LARGE);
        }
    }
}

#[tokio::test]
async fn empty_lines_alone_do_not_keep_a_connection_open_past_the_header_timeout() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream.url(), "[limits]\nheader_read_timeout_ms = 1000\n").await;
    let mut conn = connect(gw.addr).await;
    get(&mut conn, "/once").await;
    conn.get_mut().write_all(b"\r\n").await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), conn.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(_))),
        "the connection stayed open: {read:?}"
    );
}

/// A GET carrying `pad` bytes of header value.
async fn get_padded(reader: &mut BufReader<TcpStream>, pad: usize) -> (String, Vec<u8>) {
    let pad = "a".repeat(pad);
    exchange(
        reader,
        &format!("GET /padded HTTP/1.1\r\nHost: localhost\r\nX-Pad: {pad}\r\n\r\n"),
    )
    .await
}

/// A reload's `[limits]` reach connections opened before it, from their next request after a
/// pause: an operator tightening the head limit, the header timeout or the idle timeout against an
/// attack must not find the attacker's kept-alive connections on the old values.
#[tokio::test]
async fn a_reload_applies_its_limits_to_connections_kept_alive_from_before_it() {
    let upstream = RecordingUpstream::start().await;
    let gw = gateway(&upstream.url(), "").await;
    let mut headers_conn = connect(gw.addr).await;
    let mut idle_conn = connect(gw.addr).await;
    let mut slow_conn = connect(gw.addr).await;
    let (head, _) = get_padded(&mut headers_conn, 6000).await;
    assert_kept_alive(&head);
    let (head, _) = get(&mut idle_conn, "/before").await;
    assert_kept_alive(&head);
    let (head, _) = get(&mut slow_conn, "/before-slow").await;
    assert_kept_alive(&head);
    // Parked under the old timeouts (60 s idle), so that each resumes after the reload.
    tokio::time::sleep(PARKED).await;

    let tightened = "[limits]\nmax_header_bytes = 4096\nidle_timeout_ms = 1000\nheader_read_timeout_ms = 1000\n";
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let text = text.replace(
        &config(&upstream.url(), ""),
        &config(&upstream.url(), tightened),
    );
    std::fs::write(&gw.config_path, text).unwrap();
    rampart::run::reload(&gw.gateway, &gw.config_path).unwrap();
    tokio::time::sleep(PARKED).await;

    let (head, body) = get_padded(&mut headers_conn, 6000).await;
    assert!(
        head.starts_with("http/1.1 431"),
        "the old head limit held: {head}"
    );
    assert!(
        head.contains("content-type: application/problem+json"),
        "not the gateway's problem document: {head}"
    );
    assert!(
        !String::from_utf8_lossy(&body).contains("aaaa"),
        "the refusal echoed the header"
    );
    // A head that stalls on a connection from before the reload is cut by the reloaded header
    // timeout (1 s from the guard's first wait), not the old one (10 s), with a masked 408.
    slow_conn
        .get_mut()
        .write_all(b"GET /slow HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let (head, body) = tokio::time::timeout(Duration::from_secs(8), read_response(&mut slow_conn))
        .await
        .expect("the stalled head was still waiting after 8 s");
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "not the gateway's problem document: {head}"
    );
    assert!(String::from_utf8_lossy(&body).contains("request_timeout"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the old header timeout held: {:?}",
        started.elapsed()
    );
    let (head, _) = get(&mut idle_conn, "/after").await;
    assert_kept_alive(&head);
    assert_closed_by_a_one_second_idle_timeout(
        &mut idle_conn,
        "the reloaded idle timeout is 1 s after parking, the old one 60 s",
    )
    .await;
    assert_eq!(
        upstream_paths(&upstream),
        ["/padded", "/before", "/before-slow", "/after"],
        "the refused heads never reached it"
    );
}
