//! A real ACME CA for tests: Let's Encrypt's Pebble (Debian package `pebble`), with
//! `pebble-challtestsrv` as its DNS server answering 127.0.0.1 for every name, so that the CA
//! validates challenges against the gateway on loopback. Both run on free ports from the
//! installed binaries and are stopped on drop; `scripts/test` installs the package.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ca::TestCa;
use crate::client::Client;
use crate::free_port;

/// Where Pebble validates: the gateway's ports for each challenge.
pub struct PebblePorts {
    /// The port HTTP-01 validation connects to (a redirect listener).
    pub http: u16,
    /// The port TLS-ALPN-01 validation connects to (the TLS listener).
    pub tls: u16,
}

/// A running Pebble.
pub struct PebbleServer {
    /// `https://127.0.0.1:PORT/dir`
    pub directory: String,
    /// The PEM file of the CA that signed Pebble's own HTTPS listener (`[acme] ca_file`).
    pub ca_file: PathBuf,
    ca_pem: String,
    management_port: u16,
    config: PathBuf,
    dns_port: u16,
    pebble: Option<Child>,
    dns: Option<Child>,
    _dir: tempfile::TempDir,
}

impl PebbleServer {
    /// Starts Pebble issuing certificates valid for `validity_s` seconds.
    pub fn start(ports: PebblePorts, validity_s: u64) -> Self {
        Self::start_with_ocsp(ports, validity_s, "")
    }

    /// `start`, with certificates naming `ocsp_url` as their OCSP responder (Pebble has none of
    /// its own: see `OcspResponder`).
    pub fn start_with_ocsp(ports: PebblePorts, validity_s: u64, ocsp_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("pebble listener CA");
        let listener = ca.server(&["127.0.0.1", "localhost"]);
        let ca_file = dir.path().join("listener-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &listener.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &listener.key_pem).unwrap();
        let (acme_port, management_port, dns_port) = (free_port(), free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme_port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": ports.http,
                "tlsPort": ports.tls,
                "ocspResponderURL": ocsp_url,
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity_s,
            }
        });
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut server = Self {
            directory: format!("https://127.0.0.1:{acme_port}/dir"),
            ca_file,
            ca_pem: ca.pem(),
            management_port,
            config: config_path,
            dns_port,
            pebble: None,
            dns: None,
            _dir: dir,
        };
        server.start_dns();
        server.restart();
        server
    }

    fn start_dns(&mut self) {
        let mut child = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{}", self.dns_port)])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv is not installed (apt-get install pebble)");
        // It serves DNS over TCP too: once that port answers, so does UDP.
        crate::wait_for_port(&mut child, self.dns_port, "pebble-challtestsrv");
        self.dns = Some(child);
    }

    /// Starts Pebble (again: a new CA, as Pebble keeps nothing) after `stop`.
    pub fn restart(&mut self) {
        let mut child = Command::new("pebble")
            .arg("-config")
            .arg(&self.config)
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns_port)])
            // Validate at once instead of after a random pause of up to 15 s.
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Pebble refuses 5 % of valid nonces by default to exercise clients; instant-acme
            // retries twice, yet three refusals in a row failed an order about once in 50 runs
            // under load. Orders that fail are retried by the gateway, which tests of their
            // own prove; here an order must not fail at random.
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble is not installed (apt-get install pebble)");
        crate::wait_for_port(&mut child, self.management_port, "pebble");
        self.pebble = Some(child);
    }

    /// Kills Pebble (the CA unreachable).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn management(&self) -> Client {
        Client::new(
            &format!("https://localhost:{}", self.management_port),
            Some(&self.ca_pem),
            false,
        )
    }

    /// The root that issued certificates chain to (PEM), for clients of the gateway.
    pub async fn root_pem(&self) -> String {
        let response = self.management().get("/roots/0").await;
        assert_eq!(response.status, 200, "pebble roots");
        response.text()
    }

    /// A PEM document from the management interface (`/intermediates/0`, `/intermediate-keys/0`).
    pub async fn management_pem(&self, path: &str) -> String {
        let response = self.management().get(path).await;
        assert_eq!(response.status, 200, "pebble {path}");
        response.text()
    }

    /// `Valid` or `Revoked`, as Pebble records the certificate with this hex serial.
    pub async fn certificate_status(&self, serial_hex: &str) -> String {
        let response = self
            .management()
            .get(&format!("/cert-status-by-serial/{serial_hex}"))
            .await;
        assert_eq!(
            response.status,
            200,
            "pebble cert status: {}",
            response.text()
        );
        let status: serde_json::Value = serde_json::from_str(&response.text()).unwrap();
        status["Status"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for PebbleServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(mut child) = self.dns.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An OCSP responder for Pebble's certificates: `openssl ocsp` signing with Pebble's
/// intermediate (the certificates' issuer), answering from an index file the test fills.
pub struct OcspResponder {
    index: PathBuf,
    issuer: PathBuf,
    port: u16,
    child: Child,
    requests: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl OcspResponder {
    /// Answers on `port` (the URL given to `PebbleServer::start_with_ocsp`); every certificate
    /// is `unknown` until marked; answers are valid for a minute.
    pub async fn start(pebble: &PebbleServer, port: u16) -> Self {
        Self::start_signing(pebble, port, false).await
    }

    /// A responder whose answers are signed by a key of its own, not by the certificates'
    /// issuer: what a forged or misconfigured responder sends.
    pub async fn start_forged(pebble: &PebbleServer, port: u16) -> Self {
        Self::start_signing(pebble, port, true).await
    }

    async fn start_signing(pebble: &PebbleServer, port: u16, forged: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let issuer = dir.path().join("issuer.pem");
        std::fs::write(&issuer, pebble.management_pem("/intermediates/0").await).unwrap();
        let (signer, key) = (dir.path().join("signer.pem"), dir.path().join("signer.key"));
        if forged {
            let other = TestCa::new("not the issuer").server(&["ocsp.test"]);
            std::fs::write(&signer, other.cert_pem).unwrap();
            std::fs::write(&key, other.key_pem).unwrap();
        } else {
            std::fs::write(&signer, pebble.management_pem("/intermediates/0").await).unwrap();
            std::fs::write(&key, pebble.management_pem("/intermediate-keys/0").await).unwrap();
        }
        let index = dir.path().join("index.txt");
        std::fs::write(&index, "").unwrap();
        let mut child = Command::new("openssl")
            .arg("ocsp")
            .arg("-index")
            .arg(&index)
            .args(["-port", &port.to_string()])
            .arg("-rsigner")
            .arg(&signer)
            .arg("-rkey")
            .arg(&key)
            .arg("-CA")
            .arg(&issuer)
            .args(["-nmin", "1", "-ignore_err"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl is not installed");
        // Ready once it says so. Not by connecting: `openssl ocsp` serves one connection at a
        // time and waits forever on one that closes without a request.
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("openssl ocsp exited").unwrap();
            if line.contains("waiting for OCSP client connections") {
                break;
            }
        }
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("Received request") {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self {
            index,
            issuer,
            port,
            child,
            requests,
            _dir: dir,
        }
    }

    /// What the responder answers for this serial (`good`, `unknown`...), asked as any OCSP
    /// client would (its signature not checked: a forged responder is asked too).
    pub async fn status_of(&self, serial_hex: &str) -> String {
        let output = tokio::process::Command::new("openssl")
            .arg("ocsp")
            .arg("-issuer")
            .arg(&self.issuer)
            .args(["-serial", &format!("0x{serial_hex}")])
            .args(["-url", &format!("http://127.0.0.1:{}", self.port)])
            .args(["-noverify", "-no_nonce"])
            .output()
            .await
            .expect("openssl");
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("0x{serial_hex}: ")))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// From now on the certificate with this hex serial is `good`.
    pub fn mark_good(&self, serial_hex: &str) {
        let mut serial = serial_hex.to_uppercase();
        if serial.len() % 2 == 1 {
            serial.insert(0, '0');
        }
        let line = format!("V\t991231235959Z\t\t{serial}\tunknown\t/CN=test\n");
        let mut text = std::fs::read_to_string(&self.index).unwrap();
        text.push_str(&line);
        std::fs::write(&self.index, text).unwrap();
    }
}

impl Drop for OcspResponder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
