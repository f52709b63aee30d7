//! Transport security: TLS versions, ALPN, certificate hot reload, the HTTPS redirect listener.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use rampart_testkit::{Client, RecordingUpstream, TestGateway, WAIT, raw_exchange};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

fn routes(upstream: &RecordingUpstream) -> String {
    format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n",
        upstream.url()
    )
}

/// A TLS handshake with the given versions and ALPN; returns the negotiated version and protocol.
async fn handshake(
    gw: &TestGateway,
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Result<(rustls::ProtocolVersion, Option<Vec<u8>>), String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let conn = tls.get_ref().1;
    Ok((
        conn.protocol_version().unwrap(),
        conn.alpn_protocol().map(<[u8]>::to_vec),
    ))
}

#[tokio::test]
async fn tls13_and_tls12_are_accepted_and_alpn_picks_h2() {
    rampart_testkit::init();
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&routes(&upstream))
        .start()
        .await;
    let (v, alpn) = handshake(
        &gw,
        &gw.ca_pem,
        &[&rustls::version::TLS13],
        &[b"h2", b"http/1.1"],
    )
    .await
    .unwrap();
    assert_eq!(
        (v, alpn.as_deref()),
        (rustls::ProtocolVersion::TLSv1_3, Some(&b"h2"[..]))
    );
    let (v, alpn) = handshake(&gw, &gw.ca_pem, &[&rustls::version::TLS12], &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(
        (v, alpn.as_deref()),
        (rustls::ProtocolVersion::TLSv1_2, Some(&b"http/1.1"[..]))
    );
}

#[tokio::test]
async fn min_version_13_refuses_tls12_clients() {
    rampart_testkit::init();
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .listeners("[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\ntls = { cert_file = \"cert.pem\", key_file = \"key.pem\", min_version = \"1.3\" }\n")
        .config(&routes(&upstream))
        .start()
        .await;
    assert!(
        handshake(&gw, &gw.ca_pem, &[&rustls::version::TLS12], &[])
            .await
            .is_err()
    );
    assert!(
        handshake(&gw, &gw.ca_pem, &[&rustls::version::TLS13], &[])
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn plaintext_http_to_a_tls_listener_gets_no_http_answer() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&routes(&upstream))
        .start()
        .await;
    let got = raw_exchange(gw.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", WAIT).await;
    assert!(got.statuses().is_empty(), "{}", got.text());
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn certificate_is_reloaded_from_disk_without_dropping_connections() {
    rampart_testkit::init();
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&routes(&upstream))
        .start()
        .await;
    // An HTTP/2 connection opened with the old certificate.
    let old_client = gw.client_h2();
    assert_eq!(old_client.get("/a").await.status, StatusCode::OK);
    let (cert, key) = rampart::tls::self_signed(&["localhost"]).unwrap();
    // Replace the files the way deployment tools do: write aside, then rename over.
    let dir = gw.dir.path();
    std::fs::write(dir.join("cert.new"), &cert).unwrap();
    std::fs::write(dir.join("key.new"), &key).unwrap();
    std::fs::rename(dir.join("key.new"), dir.join("key.pem")).unwrap();
    std::fs::rename(dir.join("cert.new"), dir.join("cert.pem")).unwrap();
    let mut switched = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if handshake(&gw, &cert, &[&rustls::version::TLS13], &[])
            .await
            .is_ok()
        {
            switched = true;
            break;
        }
    }
    assert!(switched, "new handshakes get the new certificate");
    assert!(
        handshake(&gw, &gw.ca_pem, &[&rustls::version::TLS13], &[])
            .await
            .is_err(),
        "the old one is gone"
    );
    assert_eq!(
        old_client.get("/b").await.status,
        StatusCode::OK,
        "the established connection still works"
    );
}

#[tokio::test]
async fn a_broken_certificate_file_keeps_the_old_certificate() {
    rampart_testkit::init();
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&routes(&upstream))
        .start()
        .await;
    std::fs::write(
        gw.dir.path().join("cert.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        handshake(&gw, &gw.ca_pem, &[&rustls::version::TLS13], &[])
            .await
            .is_ok()
    );
    assert_eq!(gw.get("/x").await.status, StatusCode::OK);
}

#[tokio::test]
async fn redirect_listener_sends_308_to_https() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .listeners("[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\ntls = { cert_file = \"cert.pem\", key_file = \"key.pem\" }\n\n[[listeners]]\nname = \"redirect\"\nbind = \"127.0.0.1:0\"\nredirect_https_port = 8443\n")
        .config(&routes(&upstream))
        .start()
        .await;
    let redirect = gw.addrs[1].1;
    let client = Client::new(&format!("http://{redirect}"), None, false);
    let req = client
        .request(http::Method::POST, "/orders?id=1")
        .header("host", "api.example.com")
        .body(http_body_util::Full::default())
        .unwrap();
    let rsp = client.send(req).await;
    assert_eq!(rsp.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        rsp.header("location"),
        Some("https://api.example.com:8443/orders?id=1")
    );
    assert_eq!(rsp.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        rsp.header("strict-transport-security"),
        None,
        "no HSTS over plain HTTP"
    );
    assert_eq!(upstream.count(), 0);
}
