//! HTTP clients for tests: HTTPS trusting the test certificate (HTTP/2 or HTTP/1.1), or plain.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as Legacy;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A response read to the end.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A pooled client bound to one base URL.
#[derive(Clone)]
pub struct Client {
    inner: Legacy<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
}

impl Client {
    /// `ca_pem` is trusted for HTTPS; `h2` offers only HTTP/2 by ALPN, otherwise only HTTP/1.1.
    pub fn new(base: &str, ca_pem: Option<&str>, h2: bool) -> Self {
        Self::build(base, ca_pem, h2, None)
    }

    /// An HTTP/1.1 client presenting a TLS client certificate.
    pub fn with_identity(base: &str, ca_pem: &str, identity: &crate::ClientIdentity) -> Self {
        Self::build(base, Some(ca_pem), false, Some(identity))
    }

    fn build(
        base: &str,
        ca_pem: Option<&str>,
        h2: bool,
        identity: Option<&crate::ClientIdentity>,
    ) -> Self {
        crate::init();
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert.expect("test CA PEM")).expect("test CA");
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
        let tls = match identity {
            Some(id) => {
                let chain = vec![CertificateDer::from(id.der.clone())];
                let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).expect("client key");
                tls.with_client_auth_cert(chain, key)
                    .expect("client identity")
            }
            None => tls.with_no_client_auth(),
        };
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let connector = if h2 {
            builder.enable_http2().build()
        } else {
            builder.enable_http1().build()
        };
        let inner = Legacy::builder(TokioExecutor::new())
            .http2_only(h2)
            .build(connector);
        Self {
            inner,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// A request builder for `path` on this client's base URL.
    pub fn request(&self, method: Method, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(
            self.request(Method::GET, path)
                .body(Full::default())
                .expect("request"),
        )
        .await
    }

    /// Sends and reads the whole response; panics on a transport error.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> TestResponse {
        self.try_send(request).await.expect("request failed")
    }

    /// Sends and reads the whole response.
    pub async fn try_send(&self, request: Request<Full<Bytes>>) -> Result<TestResponse, String> {
        let response = self
            .inner
            .request(request)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(TestResponse {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        })
    }
}

/// A body of unknown length: one data frame, no size hint, so no `Content-Length` is sent
/// (HTTP/2 needs neither a length nor chunking to carry a body).
struct UnsizedBody(Option<Bytes>);

impl hyper::body::Body for UnsizedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// Sends `body` over cleartext HTTP/2 (prior knowledge) to `base` (`http://host:port`) without
/// a `Content-Length`, as an HTTP/2 client may.
pub async fn h2c_send_unsized(
    base: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> TestResponse {
    let authority = base.trim_start_matches("http://").trim_end_matches('/');
    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{authority}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(UnsizedBody(Some(body.into())))
        .expect("request");
    let response = sender.send_request(request).await.expect("h2 request");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("h2 body").to_bytes();
    TestResponse {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    }
}
