//! A real HTTP upstream on loopback that records what it received.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: http::Method,
    pub uri: http::Uri,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What the upstream answers.
pub type Reply = Arc<dyn Fn(&Recorded) -> Response<Full<Bytes>> + Send + Sync>;

/// A recording upstream; dropping it stops the server.
pub struct RecordingUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
    /// Ends every open connection too, so that a dropped upstream is really gone.
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

impl RecordingUpstream {
    /// Answers 200 with a small JSON body.
    pub async fn start() -> Self {
        Self::with_reply(Arc::new(|_| json(StatusCode::OK, r#"{"ok":true}"#))).await
    }

    /// Answers with `reply`.
    pub async fn with_reply(reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        Self::on(listener, reply)
    }

    /// Serves on an already-bound listener (for tests that restart an upstream on a known port).
    pub fn on(listener: TcpListener, reply: Reply) -> Self {
        Self::serve(listener, reply, None, Duration::ZERO)
    }

    /// Answers 200 after `delay` (the request is recorded when it arrives).
    pub async fn slow(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        Self::serve(
            listener,
            Arc::new(|_| json(StatusCode::OK, r#"{"ok":true}"#)),
            None,
            delay,
        )
    }

    fn serve(
        listener: TcpListener,
        reply: Reply,
        tls: Option<tokio_rustls::TlsAcceptor>,
        delay: Duration,
    ) -> Self {
        let addr = listener.local_addr().expect("upstream address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(accept(
            listener,
            seen.clone(),
            reply,
            tls,
            delay,
            stop.clone(),
        ));
        Self {
            addr,
            seen,
            task,
            stop,
        }
    }

    /// An HTTPS upstream with a fresh self-signed certificate for `localhost` and 127.0.0.1;
    /// returns the certificate PEM so that a test can trust it (or not).
    pub async fn start_tls() -> (Self, String) {
        crate::init();
        let (cert, key) = rampart::tls::self_signed(&["localhost", "127.0.0.1"]).expect("cert");
        let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("pem");
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server cert");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let reply: Reply = Arc::new(|_| json(StatusCode::OK, r#"{"ok":true}"#));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        (
            Self::serve(listener, reply, Some(acceptor), Duration::ZERO),
            cert,
        )
    }

    /// `http://127.0.0.1:port`, for the config.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or_default()
    }

    /// The last request, panicking if there was none.
    pub fn last(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the upstream received no request")
    }
}

/// A JSON response.
pub fn json(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

async fn accept(
    listener: TcpListener,
    seen: Arc<Mutex<Vec<Recorded>>>,
    reply: Reply,
    tls: Option<tokio_rustls::TlsAcceptor>,
    delay: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let seen = seen.clone();
        let reply = reply.clone();
        let tls = tls.clone();
        tokio::spawn(stop.clone().run_until_cancelled_owned(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let seen = seen.clone();
                let reply = reply.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    let recorded = Recorded {
                        method: parts.method,
                        uri: parts.uri,
                        version: parts.version,
                        headers: parts.headers,
                        body,
                    };
                    let response = reply(&recorded);
                    if let Ok(mut s) = seen.lock() {
                        s.push(recorded);
                    }
                    tokio::time::sleep(delay).await;
                    Ok::<_, Infallible>(response)
                }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        }));
    }
}
