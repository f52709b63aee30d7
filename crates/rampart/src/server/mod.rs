//! Listeners: accept loops, TLS handshakes, the HTTP/1 framing guard, hyper connection settings and
//! graceful draining (a request still waiting for its response at the drain deadline is answered
//! 503 and audited; a response already streaming then is cut, and audited). `serve` takes already-bound listeners and a shutdown future, which is what
//! lets tests run the real server in-process on port 0.

mod drain;
pub mod h1_guard;
pub mod keep_alive;
mod redirect;

pub use redirect::redirect_to_https;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use self::drain::{Drain, DrainWatch};
use self::h1_guard::{H1Guard, HeadLimits, OnReject};
use self::keep_alive::{Activity, H1Settings, ParkedTimeouts, ReadReady};
use crate::acme::challenge::{ACME_TLS_ALPN, Challenges, HTTP01_PATH};
use crate::audit::AuditRecord;
use crate::config::{Config, ListenerConfig};
use crate::context::{ConnInfo, Decision, RequestId};
use crate::error;
use crate::gateway::Gateway;
use crate::pipeline::service;
use crate::tls::{self, CertResolver, ClientCert};

/// A data-plane listener bound to its socket.
pub struct BoundListener {
    pub config: ListenerConfig,
    pub tcp: TcpListener,
    pub tls: Option<(TlsAcceptor, Arc<CertResolver>)>,
}

impl BoundListener {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Binds every listener of the config (TLS material is loaded here; ACME listeners answer
/// TLS-ALPN-01 from `challenges`).
pub async fn bind(
    config: &Config,
    challenges: &Arc<Challenges>,
) -> Result<Vec<BoundListener>, String> {
    let mut bound = Vec::new();
    for listener in &config.listeners {
        let tcp = TcpListener::bind(listener.bind).await.map_err(|e| {
            format!(
                "listener `{}`: cannot bind {}: {e}",
                listener.name, listener.bind
            )
        })?;
        let tls = match &listener.tls {
            Some(settings) => {
                let (server, resolver) =
                    tls::server_config(&listener.name, settings, challenges)
                        .map_err(|e| format!("listener `{}`: {e}", listener.name))?;
                Some((TlsAcceptor::from(server), resolver))
            }
            None => None,
        };
        bound.push(BoundListener {
            config: listener.clone(),
            tcp,
            tls,
        });
    }
    Ok(bound)
}

/// Serves until `shutdown` resolves, then drains in-flight requests for up to `drain` and flushes
/// the audit log.
pub async fn serve(
    gateway: Arc<Gateway>,
    listeners: Vec<BoundListener>,
    admin: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    // Accept loops give every connection a watch of the drain.
    let drain_signal = Arc::new(Drain::new());
    let stop = CancellationToken::new();
    let deadline = CancellationToken::new();
    let mut loops = Vec::new();
    for listener in listeners {
        loops.push(tokio::spawn(accept_loop(
            gateway.clone(),
            listener,
            drain_signal.clone(),
            stop.clone(),
            deadline.clone(),
        )));
    }
    if let Some(admin) = admin {
        loops.push(tokio::spawn(crate::admin::serve(
            gateway.clone(),
            admin,
            stop.clone(),
        )));
    }
    shutdown.await;
    tracing::info!("shutting down: draining in-flight requests");
    gateway.start_draining();
    stop.cancel();
    for task in loops {
        let _ = task.await;
    }
    drain_connections(&drain_signal, drain, &deadline).await;
    gateway.audit().close().await;
}

/// How long requests answered at the drain deadline get to write their 503 and audit record.
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Waits for connections to finish for up to `drain`; then answers what is still in flight with
/// a 503 problem (`deadline`) and gives those answers a short grace to be written and audited.
async fn drain_connections(drain_signal: &Drain, drain: Duration, deadline: &CancellationToken) {
    let finished = drain_signal.start();
    tokio::pin!(finished);
    if tokio::time::timeout(drain, &mut finished).await.is_ok() {
        return;
    }
    tracing::warn!("drain deadline reached; answering requests still in flight with 503");
    deadline.cancel();
    if tokio::time::timeout(DEADLINE_GRACE, &mut finished)
        .await
        .is_err()
    {
        tracing::warn!("closing remaining connections");
    }
}

/// What a connection takes from the server's shutdown: the watcher that lets the drain wait for
/// it, and the drain deadline, at which requests still in flight are answered 503. The token is
/// shared behind an `Arc` so that a request clones it without taking the token tree's lock.
struct ConnShutdown {
    drain: DrainWatch,
    deadline: Arc<CancellationToken>,
}

async fn accept_loop(
    gateway: Arc<Gateway>,
    listener: BoundListener,
    drain: Arc<Drain>,
    stop: CancellationToken,
    deadline: CancellationToken,
) {
    let deadline = Arc::new(deadline);
    let name: Arc<str> = Arc::from(listener.config.name.as_str());
    let open = metrics::gauge!("rampart_open_connections", "listener" => name.to_string());
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.tcp.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(ConnInfo::new(name.clone(), peer, listener.tls.is_some()));
        let tls = listener.tls.as_ref().map(|(acceptor, _)| acceptor.clone());
        let redirect = listener.config.redirect_https_port;
        let gateway = gateway.clone();
        let graceful = ConnShutdown {
            drain: drain.watch(),
            deadline: deadline.clone(),
        };
        let held = crate::telemetry::Held::enter(open.clone());
        tokio::spawn(async move {
            let _held = held;
            serve_connection(gateway, conn, stream, tls, redirect, graceful).await;
        });
    }
}

async fn serve_connection(
    gateway: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    redirect: Option<u16>,
    graceful: ConnShutdown,
) {
    // A task keeps room for the largest state its future can reach, for the connection's whole
    // life: the redirect, TLS and HTTP/2 paths are boxed, so that an idle plain HTTP/1
    // connection pays only for its own state.
    if let Some(port) = redirect {
        Box::pin(serve_redirect(
            &gateway,
            &conn,
            stream,
            port,
            graceful.drain,
        ))
        .await;
        return;
    }
    let timeout = Duration::from_millis(gateway.runtime().config.limits.header_read_timeout_ms);
    let Some(acceptor) = tls else {
        // Plaintext: HTTP/2 only with the prior-knowledge preface, decided before any parser runs.
        if let Some(h2) = starts_with_h2_preface(&stream, timeout).await {
            serve_http(gateway, conn, stream, h2, graceful).await;
        }
        return;
    };
    Box::pin(serve_tls(
        gateway, conn, stream, acceptor, timeout, graceful,
    ))
    .await;
}

async fn serve_tls(
    gateway: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    stream: TcpStream,
    acceptor: TlsAcceptor,
    timeout: Duration,
    graceful: ConnShutdown,
) {
    let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(peer = %conn.peer, error = %e, "TLS handshake failed");
            metrics::counter!("rampart_tls_handshake_failures_total").increment(1);
            return;
        }
        Err(_) => return,
    };
    let session = stream.get_ref().1;
    if session.alpn_protocol() == Some(ACME_TLS_ALPN) {
        // A CA's TLS-ALPN-01 validation: the handshake was the answer; no HTTP follows.
        return;
    }
    let h2 = session.alpn_protocol() == Some(b"h2");
    // rustls has verified the chain against the listener's client CA; only the leaf names the
    // caller.
    let client_cert = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| ClientCert::from_der(leaf))
        .map(Arc::new);
    let tls_version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
        Some(rustls::ProtocolVersion::TLSv1_2) => Some("TLSv1.2"),
        _ => None,
    };
    // Once per connection: the audit record names the version and the client certificate.
    let conn = Arc::new(ConnInfo {
        client_cert,
        tls_version,
        ..(*conn).clone()
    });
    serve_http(gateway, conn, stream, h2, graceful).await;
}

/// Serves HTTP on an established stream: HTTP/2, or HTTP/1 behind the framing guard.
async fn serve_http<IO>(
    gateway: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    io: IO,
    h2: bool,
    graceful: ConnShutdown,
) where
    IO: AsyncRead + AsyncWrite + ReadReady + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let service = {
        let gateway = gateway.clone();
        let conn = conn.clone();
        let activity = activity.clone();
        let deadline = graceful.deadline;
        // Boxed per request: hyper keeps room for one service future in every connection for
        // the connection's whole life, and the pipeline's future is kilobytes (all stages'
        // state); a box costs one allocation per request and leaves 16 bytes on an idle
        // connection (`alloc_budget.rs` measures both).
        service_fn(move |req| {
            activity.count(Box::pin(service::handle(
                gateway.clone(),
                conn.clone(),
                req,
                deadline.clone(),
            )))
        })
    };
    let mut drain = graceful.drain;
    if h2 {
        let builder = h2_builder(&gateway.runtime().config);
        let mut connection = Box::pin(builder.serve_connection(TokioIo::new(io), service));
        tokio::select! {
            _ = connection.as_mut() => return,
            () = drain.started() => connection.as_mut().graceful_shutdown(),
        }
        let _ = connection.await;
    } else {
        let guard = guard(io, &gateway, &conn).report_to(activity.clone());
        let current = || h1_settings(&gateway.runtime().config);
        let timeouts = || parked_timeouts(&gateway.runtime().config.limits);
        keep_alive::serve(current, timeouts, guard, service, &activity, &mut drain).await;
    }
}

/// A plain-HTTP listener that only redirects to HTTPS.
async fn serve_redirect(
    gateway: &Arc<Gateway>,
    conn: &Arc<ConnInfo>,
    stream: TcpStream,
    port: u16,
    mut drain: DrainWatch,
) {
    let runtime = gateway.runtime();
    let headers = runtime.default_headers.clone();
    let challenges = gateway.services.acme_challenges.clone();
    let service = service_fn(move |req| {
        let mut response = match http01_answer(&req, &challenges) {
            Some(answer) => answer,
            None => redirect_to_https(&req, port),
        };
        headers.apply(response.headers_mut(), false);
        std::future::ready(Ok::<_, std::convert::Infallible>(response))
    });
    let io = TokioIo::new(guard(stream, gateway, conn));
    let mut connection = pin!(http1_builder(&runtime.config).serve_connection(io, service));
    tokio::select! {
        _ = connection.as_mut() => return,
        () = drain.started() => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}

/// A CA's HTTP-01 validation request (RFC 8555 section 8.3): the key authorization of a token
/// this instance knows, as `application/octet-stream`. Unknown tokens are redirected like any
/// other path.
fn http01_answer(
    req: &http::Request<hyper::body::Incoming>,
    challenges: &Challenges,
) -> Option<http::Response<crate::body::Body>> {
    let token = req.uri().path().strip_prefix(HTTP01_PATH)?;
    if req.method() != http::Method::GET {
        return None;
    }
    let answer = challenges.http_answer(token)?;
    let mut response = http::Response::new(crate::body::full(answer));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    Some(response)
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Peeks at the first bytes: `Some(true)` for the HTTP/2 preface, `Some(false)` for anything else,
/// `None` if the client sent too little before the header timeout (the connection is dropped).
async fn starts_with_h2_preface(stream: &TcpStream, timeout: Duration) -> Option<bool> {
    let mut buf = [0u8; 24];
    let peeked = tokio::time::timeout(timeout, async {
        loop {
            let n = stream.peek(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            if !H2_PREFACE.starts_with(&buf[..n]) {
                return Some(false);
            }
            if n == H2_PREFACE.len() {
                return Some(true);
            }
            // A prefix of the preface: wait for more bytes.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    peeked.await.ok().flatten()
}

/// A kept-alive HTTP/1 connection's settings from the limits.
fn h1_settings(config: &Config) -> H1Settings {
    H1Settings {
        builder: http1_builder(config),
        head_limits: head_limits(&config.limits),
    }
}

/// How long a parked connection waits for its next request.
fn parked_timeouts(limits: &crate::config::LimitsConfig) -> ParkedTimeouts {
    ParkedTimeouts {
        idle: Duration::from_millis(limits.idle_timeout_ms),
        first_request: Duration::from_millis(limits.header_read_timeout_ms),
    }
}

/// hyper's HTTP/1 settings from the limits.
fn http1_builder(config: &Config) -> http1::Builder {
    let limits = &config.limits;
    let mut builder = http1::Builder::new();
    builder
        // The framing guard times each head (`h1_guard.rs`, the head clock): hyper's own timer
        // would allocate and register a new timer for every request.
        .header_read_timeout(None)
        // Above the largest head the guard lets through (target, request line and header
        // section are limited separately), so that the guard's 414 or 431 is what a client gets.
        .max_buf_size(limits.max_header_bytes + limits.max_uri_bytes + 8192)
        .max_headers(limits.max_headers)
        // The framing guard ends the stream after refusing a head; requests before it must still
        // get their responses, so a read EOF is not a reason to drop them.
        .half_close(true)
        .keep_alive(true);
    builder
}

/// hyper's HTTP/2 settings from the limits; the protocol is always decided before (no sniffing
/// with an unbounded wait inside hyper-util's `auto`).
fn h2_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let limits = &config.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new()).http2_only();
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(crate::policy::hygiene::h2_header_list_ceiling(limits))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}

/// Puts the framing guard in front of an HTTP/1 connection.
fn guard<IO>(io: IO, gateway: &Arc<Gateway>, conn: &Arc<ConnInfo>) -> H1Guard<IO> {
    let limits = &gateway.runtime().config.limits;
    H1Guard::new(io, head_limits(limits), reject_hook(gateway, conn))
}

fn head_limits(limits: &crate::config::LimitsConfig) -> HeadLimits {
    HeadLimits {
        max_header_bytes: limits.max_header_bytes,
        max_headers: limits.max_headers,
        max_uri_bytes: limits.max_uri_bytes,
        read_timeout: Duration::from_millis(limits.header_read_timeout_ms),
    }
}

/// What the guard does on a refusal: audit it, count it, and render the problem response.
fn reject_hook(gateway: &Arc<Gateway>, conn: &Arc<ConnInfo>) -> OnReject {
    let gateway = gateway.clone();
    let conn = conn.clone();
    Box::new(move |err, method| {
        let request_id = RequestId::generate();
        let runtime = gateway.runtime();
        let headers = runtime.default_headers.to_map(conn.tls);
        let method: String = method.unwrap_or("-").chars().take(16).collect();
        let record = AuditRecord {
            reason: Some(err.detail()),
            code: Some(err.public_code()),
            tls_version: conn.tls_version,
            ..AuditRecord::answered(
                request_id.clone(),
                conn.peer.ip(),
                conn.listener.clone(),
                method.into(),
                err.status().as_u16(),
                Decision::Deny,
            )
        };
        crate::telemetry::RouteMetrics::unrouted().record(&record, Duration::ZERO);
        gateway.audit().record(record);
        error::into_raw_http1(err, request_id.as_str(), &headers)
    })
}
