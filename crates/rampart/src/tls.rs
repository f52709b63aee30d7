//! Server TLS: rustls with the aws-lc-rs provider, TLS 1.2 and 1.3 only, certificates reloaded
//! from disk without dropping connections (new handshakes get the new certificate, established
//! connections keep theirs).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use sha2::{Digest, Sha256};

use crate::config::{ClientAuthConfig, TlsConfig, TlsVersion};

/// Installs aws-lc-rs as the process's rustls provider (the redis and reqwest crates use the
/// process default). Idempotent; call it first thing in `main` and in tests.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        // jsonwebtoken picks its backend at run time too; pin it to the same library.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    });
}

/// The current certificate of a listener, swappable at run time.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
    cert_file: PathBuf,
    key_file: PathBuf,
    /// The listener's name, the label of its certificate-expiry gauge.
    listener: Arc<str>,
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl CertResolver {
    pub fn load(listener: &str, cert_file: &Path, key_file: &Path) -> Result<Self, String> {
        let resolver = Self {
            current: ArcSwap::from_pointee(load_certified_key(cert_file, key_file)?),
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            listener: Arc::from(listener),
        };
        resolver.record_expiry();
        Ok(resolver)
    }

    /// Reads the files again; on any error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), String> {
        let key = load_certified_key(&self.cert_file, &self.key_file)?;
        self.current.store(Arc::new(key));
        self.record_expiry();
        Ok(())
    }

    /// Sets `rampart_tls_certificate_expiry_seconds{listener}` to the served leaf's `notAfter`
    /// (Unix seconds), so that an alert can fire before the certificate lapses.
    fn record_expiry(&self) {
        let Some(not_after) = self.current_leaf().as_deref().and_then(not_after_unix) else {
            return;
        };
        metrics::gauge!(
            "rampart_tls_certificate_expiry_seconds",
            "listener" => metrics::SharedString::from(Arc::clone(&self.listener)),
        )
        .set(not_after as f64);
    }

    pub fn files(&self) -> [&Path; 2] {
        [&self.cert_file, &self.key_file]
    }

    /// The leaf certificate now served (DER), for tests and status.
    pub fn current_leaf(&self) -> Option<CertificateDer<'static>> {
        self.current.load().cert.first().cloned()
    }
}

fn load_certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("cannot read {}: {e}", cert_file.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM in {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("cannot read a private key from {}: {e}", key_file.display()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(certs, key, &provider)
        .map_err(|e| format!("certificate and key do not match or are unsupported: {e}"))?;
    Ok(certified)
}

/// `notAfter` of a DER certificate, in Unix seconds.
fn not_after_unix(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// A listener's rustls configuration: HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(
    listener: &str,
    config: &TlsConfig,
) -> Result<(Arc<rustls::ServerConfig>, Arc<CertResolver>), String> {
    let resolver = Arc::new(CertResolver::load(
        listener,
        &config.cert_file,
        &config.key_file,
    )?);
    let versions: &[&'static rustls::SupportedProtocolVersion] = match config.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .map_err(|e| format!("TLS setup failed: {e}"))?;
    let server = match &config.client_auth {
        Some(client_auth) => builder.with_client_cert_verifier(client_verifier(client_auth)?),
        None => builder.with_no_client_auth(),
    };
    let mut server = server.with_cert_resolver(resolver.clone());
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(server), resolver))
}

/// Verifies client certificates against the configured CA bundle (chain, validity, EKU clientAuth,
/// by rustls-webpki). Without `required`, a client may also connect anonymously.
fn client_verifier(config: &ClientAuthConfig) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let file = config.ca_file.display();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&config.ca_file)
        .map_err(|e| format!("cannot read {file}: {e}"))?
    {
        let cert = cert.map_err(|e| format!("bad PEM in {file}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate in {file}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("no CA certificate in {file}"));
    }
    let builder = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    );
    let builder = if config.required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))
}

/// The identity in a verified client certificate, as policies and the upstream see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// base64url SHA-256 of the DER certificate: RFC 8705 `x5t#S256`.
    pub sha256: String,
    /// The subject distinguished name (RFC 4514 form).
    pub subject: String,
    /// The subject common name, if any.
    pub common_name: Option<String>,
    /// DNS, URI and e-mail subject alternative names.
    pub sans: Vec<String>,
}

impl ClientCert {
    /// Reads the leaf certificate rustls has already verified; `None` if it does not parse (it
    /// cannot then be used as an identity).
    pub fn from_der(der: &[u8]) -> Option<Self> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(v) | GeneralName::URI(v) | GeneralName::RFC822Name(v) => {
                        sans.push((*v).to_owned());
                    }
                    _ => {}
                }
            }
        }
        Some(Self {
            sha256: thumbprint(der),
            subject: subject.to_string(),
            common_name,
            sans,
        })
    }
}

/// RFC 8705 section 3.1: base64url (no padding) of the SHA-256 of the DER certificate.
pub fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

/// A self-signed certificate and key (PEM) for the given names, for the demo and tests.
pub fn self_signed(names: &[&str]) -> Result<(String, String), String> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let key = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("certificate generation failed: {e}"))?;
    Ok((key.cert.pem(), key.signing_key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A self-signed certificate valid until `not_after_year`-01-01, as PEM (cert, key).
    fn cert_until(not_after_year: i32) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(not_after_year, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn gauge(listener: &str) -> Option<f64> {
        let text = crate::telemetry::metrics_handle().render();
        let prefix = format!(r#"rampart_tls_certificate_expiry_seconds{{listener="{listener}"}} "#);
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn certificate_expiry_gauge_is_set_at_load_and_on_reload() {
        crate::telemetry::metrics_handle();
        let dir = std::env::temp_dir().join(format!("rampart-tls-expiry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        let write = |(cert, key): (String, String)| {
            std::fs::write(&cert_file, cert).unwrap();
            std::fs::write(&key_file, key).unwrap();
        };
        write(cert_until(2031));
        let resolver = CertResolver::load("edge", &cert_file, &key_file).unwrap();
        assert_eq!(gauge("edge"), Some(1_924_992_000.0), "2031-01-01T00:00:00Z");
        write(cert_until(2032));
        resolver.reload().unwrap();
        assert_eq!(gauge("edge"), Some(1_956_528_000.0), "2032-01-01T00:00:00Z");
        std::fs::remove_dir_all(&dir).ok();
    }
}
