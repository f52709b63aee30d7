//! Certificates by ACME, end to end against a real CA (Pebble): issuance by TLS-ALPN-01 and by
//! HTTP-01, renewal at two thirds of the lifetime swapped under a connection held open, a
//! restart serving the stored certificate with the CA down, two instances sharing one
//! certificate through PostgreSQL (one orders, the other answers the CA and serves), the alert
//! when renewal keeps failing (and for a certificate file nobody replaced, its threshold changed
//! by reload), and OCSP stapling.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rampart_testkit::{
    OcspResponder, PebblePorts, PebbleServer, PgServer, RecordingUpstream, TestGateway, free_port,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;

const DOMAIN: &str = "api.rampart.test";
const SECRET: &str = "webhook-secret-0123456789-0123456789";

/// The `[acme]` section for `pebble`, syncing every `sync_ms`, retrying after a second.
fn acme_section(pebble: &PebbleServer, challenge: &str, sync_ms: u64) -> String {
    format!(
        "[acme]\ndirectory = \"{}\"\nca_file = \"{}\"\nagree_terms = true\ncontact = [\"mailto:ops@rampart.test\"]\nchallenge = \"{challenge}\"\nsync_ms = {sync_ms}\nretry_min_s = 1\nretry_max_s = 2\n",
        pebble.directory,
        pebble.ca_file.display()
    )
}

fn tls_listener(port: u16) -> String {
    format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:{port}\"\ntls = {{ acme_domains = [\"{DOMAIN}\"] }}\n"
    )
}

fn routes(upstream: &RecordingUpstream) -> String {
    format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n",
        upstream.url()
    )
}

/// Pebble issuing certificates valid `validity_s` seconds (naming `ocsp_url` as their OCSP
/// responder unless empty), validating TLS-ALPN-01 at the gateway's `port`.
fn pebble_for(port: u16, validity_s: u64, ocsp_url: &str) -> PebbleServer {
    let ports = PebblePorts {
        http: free_port(),
        tls: port,
    };
    PebbleServer::start_with_ocsp(ports, validity_s, ocsp_url)
}

/// A gateway on `port` with one ACME listener (TLS-ALPN-01, syncing every 200 ms) and a public
/// route, `more` adding to its config, once it serves its first certificate.
struct Issued {
    gw: TestGateway,
    /// Bind it (`_upstream`, not `..`) for as long as requests are proxied.
    _upstream: RecordingUpstream,
    /// Pebble's root.
    root: String,
    /// A connection opened on the first certificate.
    held: SendRequest<Empty<bytes::Bytes>>,
    serial: String,
}

impl Issued {
    async fn start(
        pebble: &PebbleServer,
        port: u16,
        more: impl FnOnce(rampart_testkit::TestGatewayBuilder) -> rampart_testkit::TestGatewayBuilder,
    ) -> Self {
        let upstream = RecordingUpstream::start().await;
        let builder = TestGateway::builder()
            .listeners(&tls_listener(port))
            .config(&acme_section(pebble, "tls-alpn-01", 200))
            .config(&routes(&upstream));
        let gw = more(builder).start().await;
        let root = pebble.root_pem().await;
        let (held, serial) = served(gw.addr, &root, Duration::from_secs(20), |_| true).await;
        Self {
            gw,
            _upstream: upstream,
            root,
            held,
            serial,
        }
    }
}

/// A TLS handshake with the gateway as `DOMAIN` offering these ALPN protocols, trusting only
/// Pebble's root.
async fn handshake(
    addr: SocketAddr,
    root_pem: &str,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut config = config;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())
}

/// A client connection to the gateway as `DOMAIN`, trusting only Pebble's root; the serial of
/// the certificate it was served.
async fn connect(
    addr: SocketAddr,
    root_pem: &str,
) -> Result<(SendRequest<Empty<bytes::Bytes>>, String), String> {
    let tls = handshake(addr, root_pem, &[]).await?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let serial = rampart::acme::serial_hex(&leaf).unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok((sender, serial))
}

async fn get(sender: &mut SendRequest<Empty<bytes::Bytes>>) -> StatusCode {
    let request = Request::get("/hello")
        .header("host", DOMAIN)
        .body(Empty::new())
        .unwrap();
    sender.send_request(request).await.unwrap().status()
}

/// Waits (up to `limit`) for a connection whose certificate satisfies `accept`.
async fn served(
    addr: SocketAddr,
    root_pem: &str,
    limit: Duration,
    accept: impl Fn(&str) -> bool,
) -> (SendRequest<Empty<bytes::Bytes>>, String) {
    let deadline = Instant::now() + limit;
    loop {
        let last = match connect(addr, root_pem).await {
            Ok((sender, serial)) if accept(&serial) => return (sender, serial),
            Ok((_, serial)) => format!("served {serial}"),
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "no such certificate within {limit:?} (last: {last})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The trail's gateway events (not requests), flushed first.
async fn events(gw: &TestGateway) -> Vec<Value> {
    gw.gateway.audit().flush().await;
    rampart_testkit::read_audit_lines(&gw.dir.path().join("audit.log"))
        .into_iter()
        .filter(|r| r["event"].is_string())
        .collect()
}

fn certificate_events(events: &[Value], outcome: &str) -> Vec<String> {
    events
        .iter()
        .filter(|r| r["event"] == "certificate" && r["outcome"] == outcome)
        .map(|r| r["detail"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn tls_alpn_01_issues_and_renewal_swaps_the_certificate_under_an_open_connection() {
    rampart_testkit::init();
    let port = free_port();
    // Renewal is due two thirds into the lifetime: after about 8 s.
    let pebble = pebble_for(port, 12, "");
    let Issued {
        gw,
        root,
        mut held,
        serial: first,
        _upstream,
        ..
    } = Issued::start(&pebble, port, |b| b).await;
    assert_eq!(get(&mut held).await, StatusCode::OK);
    // A client posing as the CA (ALPN `acme-tls/1` alone) while no challenge is pending gets no
    // certificate at all, and nobody gets a challenge certificate by adding `acme-tls/1`.
    let posing = handshake(gw.addr, &root, &[b"acme-tls/1"]).await;
    assert!(posing.is_err(), "no challenge certificate outside an order");
    let mixed = handshake(gw.addr, &root, &[b"acme-tls/1", b"http/1.1"]).await;
    let mixed = mixed.expect("the served certificate, verified against Pebble's root");
    assert_eq!(mixed.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));

    let (mut fresh, second) = served(gw.addr, &root, Duration::from_secs(30), |s| s != first).await;
    assert_eq!(get(&mut fresh).await, StatusCode::OK);
    // The connection opened before the swap is still served, on its own certificate.
    assert_eq!(get(&mut held).await, StatusCode::OK);
    assert_eq!(pebble.certificate_status(&first).await, "Valid");
    assert_eq!(pebble.certificate_status(&second).await, "Valid");

    let issued = certificate_events(&events(&gw).await, "issued");
    assert!(issued.len() >= 2, "{issued:?}");
    assert!(issued[0].contains(&format!("serial {first}")), "{issued:?}");
    assert!(
        issued[1].contains(&format!("serial {second}")),
        "{issued:?}"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("rampart_tls_certificate_expiry_seconds{listener=\"public\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("rampart_acme_orders_total{result=\"issued\"}"));
}

#[tokio::test]
async fn http_01_is_answered_on_the_redirect_listener_and_unknown_tokens_are_redirected() {
    rampart_testkit::init();
    let (tls_port, http_port) = (free_port(), free_port());
    let pebble = PebbleServer::start(
        PebblePorts {
            http: http_port,
            tls: free_port(),
        },
        3600,
    );
    let upstream = RecordingUpstream::start().await;
    let listeners = format!(
        "{}\n[[listeners]]\nname = \"http\"\nbind = \"127.0.0.1:{http_port}\"\nredirect_https_port = {tls_port}\n",
        tls_listener(tls_port)
    );
    let gw = TestGateway::builder()
        .listeners(&listeners)
        .admin_token()
        .config(&acme_section(&pebble, "http-01", 200))
        .config(&routes(&upstream))
        .start()
        .await;
    let root = pebble.root_pem().await;
    let (mut sender, serial) = served(gw.addr, &root, Duration::from_secs(20), |_| true).await;
    assert_eq!(get(&mut sender).await, StatusCode::OK);
    assert_eq!(pebble.certificate_status(&serial).await, "Valid");

    let plain = rampart_testkit::Client::new(&format!("http://localhost:{http_port}"), None, false);
    let unknown = plain.get("/.well-known/acme-challenge/not-a-token").await;
    assert_eq!(unknown.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(certificate_events(&events(&gw).await, "issued").len(), 1);

    // `[acme]` is opened at start: a reload changing it is refused whole, and the certificate
    // and the route stay as they were.
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        text.replace("sync_ms = 200", "sync_ms = 300"),
    )
    .unwrap();
    let refused = gw
        .admin(http::Method::POST, "/v1/reload", Value::Null)
        .await;
    let answer: Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(answer["reloaded"], false, "{answer}");
    assert!(
        answer["errors"]
            .as_str()
            .unwrap()
            .contains("acme: cannot change on reload"),
        "{answer}"
    );
    let (mut sender, again) = connect(gw.addr, &root).await.unwrap();
    assert_eq!(again, serial);
    assert_eq!(get(&mut sender).await, StatusCode::OK);
}

#[tokio::test]
async fn a_restart_serves_the_stored_certificate_with_the_ca_down() {
    rampart_testkit::init();
    let port = free_port();
    let mut pebble = pebble_for(port, 3600, "");
    let Issued {
        gw,
        root,
        serial,
        _upstream,
        ..
    } = Issued::start(&pebble, port, |b| b).await;
    pebble.stop();
    let gw = gw.restart().await;
    // Served from the store at once: no order, no CA.
    let (mut sender, again) = connect(gw.addr, &root).await.unwrap();
    assert_eq!(again, serial);
    assert_eq!(get(&mut sender).await, StatusCode::OK);
    let audit = events(&gw).await;
    // The first gateway's order was audited although it stopped right after serving.
    let issued = certificate_events(&audit, "issued");
    assert_eq!(issued.len(), 1, "one order in all: {issued:?}");
    let failed = certificate_events(&audit, "failed");
    assert!(failed.is_empty(), "{failed:?}");
}

#[tokio::test]
async fn two_instances_share_one_certificate_the_one_ordering_and_the_other_answering_the_ca() {
    rampart_testkit::init();
    let pg = PgServer::start();
    // The CA validates at A's port only; B orders (it starts first and takes the lease), so A
    // must answer B's challenge from the store.
    let (port_a, port_b) = (free_port(), free_port());
    let pebble = PebbleServer::start(
        PebblePorts {
            http: free_port(),
            tls: port_a,
        },
        3600,
    );
    let upstream = RecordingUpstream::start().await;
    let instance = async |port| {
        TestGateway::builder()
            .listeners(&tls_listener(port))
            .store_url(&pg.url)
            .config(&acme_section(&pebble, "tls-alpn-01", 1000))
            .config(&routes(&upstream))
            .start()
            .await
    };
    let b = instance(port_b).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = instance(port_a).await;
    let root = pebble.root_pem().await;
    let (mut on_b, serial) = served(b.addr, &root, Duration::from_secs(20), |_| true).await;
    let (mut on_a, on_a_serial) =
        served(a.addr, &root, Duration::from_secs(10), |s| s == serial).await;
    assert_eq!(on_a_serial, serial, "both serve the one certificate");
    assert_eq!(get(&mut on_a).await, StatusCode::OK);
    assert_eq!(get(&mut on_b).await, StatusCode::OK);
    assert_eq!(certificate_events(&events(&b).await, "issued").len(), 1);
    assert!(
        certificate_events(&events(&a).await, "issued").is_empty(),
        "only the lease holder orders"
    );
}

#[tokio::test]
async fn renewal_failing_until_near_expiry_sends_a_signed_expiry_alert() {
    rampart_testkit::init();
    let port = free_port();
    let mut pebble = pebble_for(port, 18, "");
    let receiver = RecordingUpstream::start().await;
    let alerts = format!(
        "[alerts]\ncertificate_expiry_s = 4\nwebhooks = [{{ name = \"soc\", url = \"{}/hook\", secret = {{ file = \"hook.secret\" }} }}]\n",
        receiver.url()
    );
    let Issued {
        gw,
        serial,
        _upstream,
        ..
    } = Issued::start(&pebble, port, |b| {
        b.file("hook.secret", SECRET).config(&alerts)
    })
    .await;
    // The CA goes away: renewal (due at 12 s) fails and backs off, and 4 s before the end the
    // alert goes out.
    pebble.stop();
    let deadline = Instant::now() + Duration::from_secs(25);
    while receiver.requests().is_empty() {
        assert!(Instant::now() < deadline, "no expiry alert");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let request = &receiver.requests()[0];
    let header = request.headers["rampart-signature"].to_str().unwrap();
    let (t, v1) = header.split_once(",v1=").unwrap();
    let timestamp = t.strip_prefix("t=").unwrap();
    let expected = rampart::policy::detect::alert::signature(
        SECRET.as_bytes(),
        timestamp.parse().unwrap(),
        &request.body,
    );
    assert_eq!(expected, header, "signed as every alert");
    assert!(!v1.is_empty());
    let alert: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(alert["detector"], "certificate_expiry");
    assert_eq!(alert["subject"], "public");
    assert!(alert["observed"].as_u64().unwrap() <= 4, "{alert}");
    assert!(alert["expires_at"].is_string(), "{alert}");
    // Still serving the old certificate (asked in-process: a handshake could meet it expired),
    // and the failures are on the record.
    let acme = gw.gateway.services.acme.as_ref().unwrap();
    assert_eq!(
        acme.status().await[0].serial.as_deref(),
        Some(serial.as_str())
    );
    assert!(!certificate_events(&events(&gw).await, "failed").is_empty());
}

/// What `openssl s_client -status` reports of the handshake's OCSP staple.
async fn stapled_status(addr: SocketAddr, root_file: &std::path::Path) -> String {
    let output = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            DOMAIN,
        ])
        .arg("-status")
        .arg("-CAfile")
        .arg(root_file)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Pebble naming an `openssl ocsp` responder (signing as the issuer, or `forged` with a key of
/// its own) in its certificates, and a gateway served one of them.
struct OcspSetup {
    _pebble: PebbleServer,
    _upstream: RecordingUpstream,
    responder: OcspResponder,
    gw: TestGateway,
    /// Pebble's root, for `openssl s_client`.
    root_file: std::path::PathBuf,
    serial: String,
}

impl OcspSetup {
    async fn start(forged: bool) -> Self {
        rampart_testkit::init();
        let (port, ocsp_port) = (free_port(), free_port());
        let pebble = pebble_for(port, 3600, &format!("http://127.0.0.1:{ocsp_port}"));
        let responder = match forged {
            true => OcspResponder::start_forged(&pebble, ocsp_port).await,
            false => OcspResponder::start(&pebble, ocsp_port).await,
        };
        let Issued {
            gw,
            root,
            serial,
            _upstream,
            ..
        } = Issued::start(&pebble, port, |b| b).await;
        let root_file = gw.dir.path().join("pebble-root.pem");
        std::fs::write(&root_file, &root).unwrap();
        Self {
            _pebble: pebble,
            _upstream,
            responder,
            gw,
            root_file,
            serial,
        }
    }
}

#[tokio::test]
async fn the_cas_ocsp_answer_is_stapled_to_the_handshake_once_it_says_good() {
    let OcspSetup {
        responder,
        gw,
        root_file,
        serial,
        ..
    } = OcspSetup::start(false).await;
    // The responder does not know the certificate yet: once asked, nothing is stapled.
    let deadline = Instant::now() + Duration::from_secs(10);
    while responder.requests() == 0 {
        assert!(Instant::now() < deadline, "the responder was never asked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = stapled_status(gw.addr, &root_file).await;
    assert!(
        before.contains("OCSP response: no response sent"),
        "{before}"
    );

    responder.mark_good(&serial);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = stapled_status(gw.addr, &root_file).await;
        if status.contains("Cert Status: good") {
            assert!(
                status.contains("OCSP Response Status: successful"),
                "{status}"
            );
            break;
        }
        if Instant::now() >= deadline {
            let metrics = gw.metrics().await;
            let ocsp: Vec<&str> = metrics.lines().filter(|l| l.contains("ocsp")).collect();
            panic!("no staple: {status}\n{ocsp:#?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("rampart_ocsp_fetches_total{result=\"stapled\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_ocsp_answer_not_signed_by_the_issuer_is_never_stapled() {
    let OcspSetup {
        responder,
        gw,
        root_file,
        serial,
        ..
    } = OcspSetup::start(true).await;
    responder.mark_good(&serial);
    // The responder reads its index again within a second or so.
    let deadline = Instant::now() + Duration::from_secs(10);
    while responder.status_of(&serial).await != "good" {
        assert!(Instant::now() < deadline, "the responder never says good");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Asked again after 2 s and 4 s more: each answer says good, none is signed by the CA.
    let asked = responder.requests();
    let deadline = Instant::now() + Duration::from_secs(20);
    while responder.requests() < asked + 2 {
        assert!(Instant::now() < deadline, "not asked again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = stapled_status(gw.addr, &root_file).await;
    assert!(
        status.contains("OCSP response: no response sent"),
        "{status}"
    );
}

#[tokio::test]
async fn a_reload_lowering_the_warning_time_alerts_on_a_certificate_file_about_to_lapse() {
    rampart_testkit::init();
    // A certificate file with two days left.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(2);
    let cert = params.self_signed(&key).unwrap();
    let receiver = RecordingUpstream::start().await;
    let upstream = RecordingUpstream::start().await;
    let alerts = |warn_s: u64| {
        format!(
            "[alerts]\ncertificate_expiry_s = {warn_s}\nwebhooks = [{{ name = \"soc\", url = \"{}/hook\", secret = {{ file = \"hook.secret\" }} }}]\n",
            receiver.url()
        )
    };
    let gw = TestGateway::builder()
        .listeners("[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\ntls = { cert_file = \"short.pem\", key_file = \"short.key\" }\n")
        .file("short.pem", &cert.pem())
        .file("short.key", &key.serialize_pem())
        .file("hook.secret", SECRET)
        .admin_token()
        .config(&alerts(3600))
        .config(&routes(&upstream))
        .start()
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        receiver.requests().is_empty(),
        "two days left, warning at one hour"
    );

    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let three_days = text.replace(
        "certificate_expiry_s = 3600",
        "certificate_expiry_s = 259200",
    );
    std::fs::write(&gw.config_path, three_days).unwrap();
    let reloaded = gw
        .admin(http::Method::POST, "/v1/reload", Value::Null)
        .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&reloaded.body).unwrap()["reloaded"],
        true
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.requests().is_empty() {
        assert!(Instant::now() < deadline, "no alert after the reload");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alert: Value = serde_json::from_slice(&receiver.requests()[0].body).unwrap();
    assert_eq!(alert["detector"], "certificate_expiry");
    assert_eq!(alert["subject"], "public");
    assert_eq!(alert["threshold"], 259_200);
    let left = alert["observed"].as_u64().unwrap();
    assert!((2 * 86_400 - 120..=2 * 86_400).contains(&left), "{alert}");
    // One alert per certificate, not one per look.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.requests().len(), 1);
    let client = rampart_testkit::Client::new(&gw.base_url(), Some(&cert.pem()), false);
    assert_eq!(client.get("/x").await.status, StatusCode::OK);
}
