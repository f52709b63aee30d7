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
                tokio::spawn(serve(stream, after, body, r.clone()));
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

async fn serve(
    mut stream: TcpStream,
    after: After,
    body: &'static [u8],
    requests: Arc<AtomicUsize>,
) {
    let mut buffer = Vec::new();
    loop {
        // Requests here have no body: one ends at its blank line.
        let end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        buffer.drain(..end);
        requests.fetch_add(1, Ordering::SeqCst);
        let close = if matches!(after, After::AnnouncedClose) {
            "Connection: close\r\n"
        } else {
            ""
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{close}\r\n",
            body.len()
        );
        if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(body).await.is_err()
        {
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
methods = ["GET"]
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
    let gw = gateway(&upstream, "").await;
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
