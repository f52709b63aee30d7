//! A raw client for malformed HTTP: bytes in, bytes out, and whether the server closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// What came back on the connection.
#[derive(Debug)]
pub struct RawExchange {
    pub response: Vec<u8>,
    /// The server closed the connection (rather than the read timing out).
    pub closed: bool,
}

impl RawExchange {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.response).into_owned()
    }

    /// Status codes of every response on the connection, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.text()
            .split("HTTP/1.1 ")
            .skip(1)
            .filter_map(|rest| rest.get(..3)?.parse().ok())
            .collect()
    }
}

/// Writes `bytes` on a plain connection and reads until the server closes or `wait` passes.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> RawExchange {
    let stream = TcpStream::connect(addr).await.expect("connect");
    exchange(stream, bytes, wait).await
}

/// The same over TLS with ALPN `http/1.1`, trusting `ca_pem`.
pub async fn raw_tls_exchange(
    addr: SocketAddr,
    ca_pem: &str,
    bytes: &[u8],
    wait: Duration,
) -> RawExchange {
    crate::init();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("PEM")).expect("CA");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    exchange(tls, bytes, wait).await
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    bytes: &[u8],
    wait: Duration,
) -> RawExchange {
    stream.write_all(bytes).await.expect("write");
    let _ = stream.flush().await;
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + wait;
    let closed = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => response.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    RawExchange { response, closed }
}

/// Default wait for raw exchanges.
pub const WAIT: Duration = Duration::from_secs(3);
