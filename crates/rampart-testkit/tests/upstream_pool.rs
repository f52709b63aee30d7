//! End-to-end: HTTP/1.1 upstream connections are reused while they can be, and never when they
//! cannot (closed by the upstream, announced `Connection: close`, idle too long, or left with a
//! response unread). The upstream here is a raw TCP server that counts its connections.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use rampart_testkit::TestGateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the raw upstream answers.
#[derive(Clone, Copy)]
enum Reply {
    /// `Content-Length` and these bytes (none to a HEAD).
    Fixed(&'static [u8]),
    /// The bytes in two chunks, `Transfer-Encoding: chunked`.
    Chunked(&'static [u8]),
    /// 204 without a body.
    NoContent,
    /// `Content-Length` of this many bytes of `x`.
    Large(usize),
}

/// How the raw upstream ends an exchange.
#[derive(Clone, Copy)]
enum After {
    /// Keeps the connection open for the next request.
    KeepAlive,
    /// Closes the connection after the response, announcing nothing (as an idle timeout does).
    SilentClose,
    /// Answers with `Connection: close`, then waits for the client to close.
    AnnouncedClose,
}

struct RawUpstream {
    url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawUpstream {
    /// Answers every request with a 200 and `body` (of `Content-Length` bytes).
    async fn start(after: After, body: &'static [u8]) -> Self {
        Self::answering(after, Reply::Fixed(body)).await
    }

    async fn answering(after: After, reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, after, reply, r.clone()));
            }
        });
        Self {
            url,
            connections,
            requests,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads until `buffer` holds `len` bytes; false when the peer closed first.
async fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>, len: usize) -> bool {
    while buffer.len() < len {
        let mut chunk = [0u8; 16384];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

async fn serve(mut stream: TcpStream, after: After, reply: Reply, requests: Arc<AtomicUsize>) {
    let mut buffer = Vec::new();
    loop {
        let end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let wanted = buffer.len() + 1;
            if !fill(&mut stream, &mut buffer, wanted).await {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
        let is_head = head.starts_with("head ");
        let body_len: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        if !fill(&mut stream, &mut buffer, end + body_len).await {
            return;
        }
        buffer.drain(..end + body_len);
        requests.fetch_add(1, Ordering::SeqCst);
        // `/delay/{ms}` answers that much later.
        if let Some(ms) = head
            .split_whitespace()
            .nth(1)
            .and_then(|target| target.strip_prefix("/delay/"))
            .and_then(|ms| ms.parse().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let close = if matches!(after, After::AnnouncedClose) {
            "Connection: close\r\n"
        } else {
            ""
        };
        let large;
        let (status, framing, body): (&str, String, &[u8]) = match reply {
            Reply::Fixed(body) => ("200 OK", format!("Content-Length: {}", body.len()), body),
            Reply::Chunked(body) => ("200 OK", "Transfer-Encoding: chunked".to_owned(), body),
            Reply::NoContent => ("204 No Content", String::new(), b""),
            Reply::Large(len) => {
                large = vec![b'x'; len];
                ("200 OK", format!("Content-Length: {len}"), &large)
            }
        };
        let framing = if framing.is_empty() {
            String::new()
        } else {
            format!("{framing}\r\n")
        };
        let mut out =
            format!("HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n{framing}{close}\r\n")
                .into_bytes();
        if !is_head {
            if let Reply::Chunked(body) = reply {
                let (a, b) = body.split_at(body.len() / 2);
                for part in [a, b] {
                    out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                    out.extend_from_slice(part);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            } else {
                out.extend_from_slice(body);
            }
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
        match after {
            After::KeepAlive => {}
            After::SilentClose => return,
            After::AnnouncedClose => {
                // Wait for the client to close; a request sent anyway is not answered.
                let mut rest = [0u8; 1024];
                while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
                return;
            }
        }
    }
}

async fn gateway(upstream: &RawUpstream, upstream_extra: &str) -> TestGateway {
    TestGateway::builder()
        .config(&format!(
            r#"
[[upstreams]]
name = "api"
targets = ["{}"]
{upstream_extra}

[[routes]]
name = "all"
path_prefix = "/"
methods = ["GET", "HEAD", "POST"]
upstream = "api"
public = true
"#,
            upstream.url
        ))
        .start()
        .await
}

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    let upstream = RawUpstream::start(After::KeepAlive, b"hello").await;
    let gw = gateway(&upstream, "").await;
    for _ in 0..20 {
        let rsp = gw.get("/x").await;
        assert_eq!(rsp.status, StatusCode::OK);
        assert_eq!(rsp.text(), "hello");
    }
    assert_eq!(upstream.requests(), 20);
    assert_eq!(
        upstream.connections(),
        1,
        "one keep-alive connection for all"
    );
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_costs_no_request() {
    let upstream = RawUpstream::start(After::SilentClose, b"fresh").await;
    let gw = gateway(&upstream, "").await;
    for _ in 0..10 {
        let rsp = gw.get("/x").await;
        assert_eq!(rsp.status, StatusCode::OK, "{}", rsp.text());
        assert_eq!(rsp.text(), "fresh");
        // Time for the upstream's FIN to arrive, as it would after an idle timeout.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(upstream.requests(), 10);
    assert_eq!(upstream.connections(), 10);
}

#[tokio::test]
async fn a_connection_announced_closing_is_not_reused() {
    let upstream = RawUpstream::start(After::AnnouncedClose, b"bye").await;
    // A request stuck on a closing connection would fail fast, not after 30 s.
    let gw = gateway(&upstream, "request_timeout_ms = 2000").await;
    for _ in 0..5 {
        let rsp = gw.get("/x").await;
        assert_eq!(rsp.status, StatusCode::OK, "{}", rsp.text());
        assert_eq!(rsp.text(), "bye");
    }
    assert_eq!(
        upstream.requests(),
        5,
        "no request was lost on a closing connection"
    );
    assert_eq!(upstream.connections(), 5);
}

#[tokio::test]
async fn a_connection_idle_longer_than_the_idle_timeout_is_not_reused() {
    let upstream = RawUpstream::start(After::KeepAlive, b"ok").await;
    let gw = gateway(&upstream, "idle_timeout_ms = 100").await;
    assert_eq!(gw.get("/x").await.status, StatusCode::OK);
    assert_eq!(gw.get("/x").await.status, StatusCode::OK);
    assert_eq!(upstream.connections(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(gw.get("/x").await.status, StatusCode::OK);
    assert_eq!(upstream.connections(), 2, "the idle connection had expired");
}

#[tokio::test]
async fn no_connection_is_kept_when_max_idle_is_zero() {
    let upstream = RawUpstream::start(After::KeepAlive, b"ok").await;
    let gw = gateway(&upstream, "max_idle_per_target = 0").await;
    for _ in 0..5 {
        assert_eq!(gw.get("/x").await.status, StatusCode::OK);
    }
    assert_eq!(upstream.connections(), 5);
}

#[tokio::test]
async fn posts_with_bodies_share_one_connection() {
    let upstream = RawUpstream::start(After::KeepAlive, b"stored").await;
    let gw = gateway(&upstream, "").await;
    let client = gw.client();
    for i in 0..10 {
        let body = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "y".repeat(i * 1000));
        let rsp = client
            .send(
                client
                    .request(http::Method::POST, "/x")
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap(),
            )
            .await;
        assert_eq!(rsp.status, StatusCode::OK);
        assert_eq!(rsp.text(), "stored");
    }
    assert_eq!(upstream.requests(), 10);
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn chunked_responses_end_and_free_their_connection() {
    let upstream = RawUpstream::answering(After::KeepAlive, Reply::Chunked(b"in two parts")).await;
    let gw = gateway(&upstream, "").await;
    for _ in 0..5 {
        let rsp = gw.get("/x").await;
        assert_eq!(rsp.status, StatusCode::OK);
        assert_eq!(rsp.text(), "in two parts");
    }
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn bodiless_responses_free_their_connection() {
    let upstream = RawUpstream::answering(After::KeepAlive, Reply::NoContent).await;
    let gw = gateway(&upstream, "").await;
    for _ in 0..5 {
        assert_eq!(gw.get("/x").await.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(upstream.connections(), 1, "204s");

    let upstream = RawUpstream::start(After::KeepAlive, b"not sent to a HEAD").await;
    let gw = gateway(&upstream, "").await;
    let client = gw.client();
    for _ in 0..5 {
        let rsp = client
            .send(
                client
                    .request(http::Method::HEAD, "/x")
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap(),
            )
            .await;
        assert_eq!(rsp.status, StatusCode::OK);
        assert!(rsp.text().is_empty());
    }
    assert_eq!(upstream.requests(), 5);
    assert_eq!(upstream.connections(), 1, "HEADs");
}

#[tokio::test]
async fn a_response_the_client_abandons_never_leaks_into_the_next_one() {
    let upstream = RawUpstream::answering(After::KeepAlive, Reply::Large(8 << 20)).await;
    let gw = TestGateway::builder()
        .plaintext()
        .config(&format!(
            "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n",
            upstream.url
        ))
        .start()
        .await;
    // A raw client reads the head and a little of the 8 MiB body, then goes away.
    let mut raw = TcpStream::connect(gw.addr).await.unwrap();
    raw.write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut some = vec![0u8; 64 * 1024];
    let n = raw.read(&mut some).await.unwrap();
    assert!(String::from_utf8_lossy(&some[..n]).starts_with("HTTP/1.1 200"));
    drop(raw);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The next request gets a whole, clean response on another upstream connection.
    let rsp = gw.get("/again").await;
    assert_eq!(rsp.status, StatusCode::OK);
    assert_eq!(rsp.body.len(), 8 << 20);
    assert!(rsp.body.iter().all(|&b| b == b'x'));
    assert_eq!(upstream.connections(), 2);
}

/// The request timeout's timer lives with the pooled connection and is moved to each request's
/// deadline: a reused connection must give every request its whole timeout, after its timer fired
/// while the connection sat idle, and when the next request follows at once (the deadline moved
/// forward without the timer being registered again), and still time out a request that is slow.
#[tokio::test]
async fn each_request_on_a_reused_connection_gets_its_whole_timeout() {
    let upstream = RawUpstream::start(After::KeepAlive, b"ok").await;
    let gw = gateway(&upstream, "request_timeout_ms = 400").await;
    assert_eq!(gw.get("/x").await.status, StatusCode::OK);
    // Idle in the pool past the first request's deadline: its timer fires unheeded.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for _ in 0..3 {
        let rsp = gw.get("/delay/250").await;
        assert_eq!(rsp.status, StatusCode::OK, "{}", rsp.text());
    }
    assert_eq!(
        upstream.connections(),
        1,
        "all on the one pooled connection"
    );
    let started = std::time::Instant::now();
    let rsp = gw.get("/delay/1500").await;
    assert_eq!(rsp.status, StatusCode::GATEWAY_TIMEOUT, "{}", rsp.text());
    assert_eq!(rsp.json()["code"], "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "timed out after {:?}",
        started.elapsed()
    );
    assert_eq!(gw.get("/x").await.status, StatusCode::OK);
}
