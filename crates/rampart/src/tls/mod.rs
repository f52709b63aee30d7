//! Server TLS: rustls with the aws-lc-rs provider, TLS 1.2 and 1.3 only, certificates reloaded
//! from disk or replaced by ACME without dropping connections (new handshakes get the new
//! certificate, established connections keep theirs).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Once};

use arc_swap::ArcSwapOption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use sha2::{Digest, Sha256};

pub mod ocsp;

use crate::acme::challenge::{ACME_TLS_ALPN, Challenges};
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
    /// `None` only for an ACME listener before its first certificate: handshakes then fail.
    current: ArcSwapOption<CertifiedKey>,
    /// The PEM files it is read from (`None` for ACME).
    files: Option<(PathBuf, PathBuf)>,
    /// TLS-ALPN-01 answers, for an ACME listener.
    challenges: Option<Arc<Challenges>>,
    /// The listener's name, the label of its certificate-expiry gauge.
    listener: Arc<str>,
    /// `notAfter` of the served certificate, Unix seconds (`i64::MIN`: none yet).
    not_after: AtomicI64,
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(challenges) = &self.challenges
            && let Some(mut protocols) = hello.alpn()
            && protocols.next() == Some(ACME_TLS_ALPN)
            && protocols.next().is_none()
        {
            // RFC 8737 section 3: a validation handshake offers `acme-tls/1` alone, and gets the
            // challenge certificate of the name it asks for (or no handshake).
            return challenges.tls_alpn_certificate(hello.server_name()?);
        }
        self.current.load_full()
    }
}

impl CertResolver {
    pub fn load(listener: &str, cert_file: &Path, key_file: &Path) -> Result<Self, String> {
        let resolver = Self {
            current: ArcSwapOption::from_pointee(load_certified_key(cert_file, key_file)?),
            files: Some((cert_file.to_path_buf(), key_file.to_path_buf())),
            challenges: None,
            listener: Arc::from(listener),
            not_after: AtomicI64::new(i64::MIN),
        };
        resolver.record_expiry();
        Ok(resolver)
    }

    /// A listener whose certificate comes by ACME: none until the first is installed.
    pub fn for_acme(listener: &str, challenges: Arc<Challenges>) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            files: None,
            challenges: Some(challenges),
            listener: Arc::from(listener),
            not_after: AtomicI64::new(i64::MIN),
        }
    }

    /// Reads the files again; on any error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), String> {
        let Some((cert_file, key_file)) = &self.files else {
            return Err("this listener's certificate comes by ACME, not from files".into());
        };
        self.install(load_certified_key(cert_file, key_file)?);
        Ok(())
    }

    /// Serves this certificate to new handshakes from now on.
    pub fn install(&self, key: CertifiedKey) {
        self.current.store(Some(Arc::new(key)));
        self.record_expiry();
    }

    /// Staples an OCSP response (or none) to the served certificate, if it is still `leaf`
    /// (a certificate swapped meanwhile keeps its own).
    pub fn staple(&self, leaf: &CertificateDer<'_>, ocsp: Option<Vec<u8>>) {
        self.current.rcu(|current| match current {
            Some(key) if key.cert.first() == Some(leaf) => {
                let mut stapled = CertifiedKey::clone(key);
                stapled.ocsp = ocsp.clone();
                Some(Arc::new(stapled))
            }
            other => other.clone(),
        });
    }

    /// `notAfter` of the served certificate (Unix seconds), read without parsing it.
    pub fn not_after(&self) -> Option<i64> {
        let not_after = self.not_after.load(Ordering::Relaxed);
        (not_after != i64::MIN).then_some(not_after)
    }

    /// The listener's name.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// Sets `rampart_tls_certificate_expiry_seconds{listener}` to the served leaf's `notAfter`
    /// (Unix seconds), so that an alert can fire before the certificate lapses.
    fn record_expiry(&self) {
        let Some(not_after) = self.current_leaf().as_deref().and_then(not_after_unix) else {
            return;
        };
        self.not_after.store(not_after, Ordering::Relaxed);
        metrics::gauge!(
            "rampart_tls_certificate_expiry_seconds",
            "listener" => metrics::SharedString::from(Arc::clone(&self.listener)),
        )
        .set(not_after as f64);
    }

    /// The PEM files, for a file-based listener.
    pub fn files(&self) -> Option<[&Path; 2]> {
        self.files
            .as_ref()
            .map(|(cert, key)| [cert.as_path(), key.as_path()])
    }

    /// The leaf certificate now served (DER), for tests and status.
    pub fn current_leaf(&self) -> Option<CertificateDer<'static>> {
        self.current.load().as_ref()?.cert.first().cloned()
    }

    /// The certificate now served, with its chain and key.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

/// A certificate chain and key from PEM text (as ACME delivers and the store keeps them).
pub fn certified_key_from_pem(cert_pem: &str, key_pem: &str) -> Result<CertifiedKey, String> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad certificate PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("bad private key PEM: {e}"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(certs, key, &provider)
        .map_err(|e| format!("certificate and key do not match or are unsupported: {e}"))
}

fn load_certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    certified_key_from_pem(&read(cert_file)?, &read(key_file)?)
        .map_err(|e| format!("{} and {}: {e}", cert_file.display(), key_file.display()))
}

/// `notAfter` of a DER certificate, in Unix seconds.
pub fn not_after_unix(der: &[u8]) -> Option<i64> {
    Some(validity_unix(der)?.1)
}

/// `notBefore` and `notAfter` of a DER certificate, in Unix seconds.
pub fn validity_unix(der: &[u8]) -> Option<(i64, i64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let validity = cert.validity();
    Some((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

/// A listener's rustls configuration: HTTP/2 and HTTP/1.1 by ALPN (and `acme-tls/1` for
/// TLS-ALPN-01 on an ACME listener). `challenges` answers those; it is the process's one set.
pub fn server_config(
    listener: &str,
    config: &TlsConfig,
    challenges: &Arc<Challenges>,
) -> Result<(Arc<rustls::ServerConfig>, Arc<CertResolver>), String> {
    let acme = !config.acme_domains.is_empty();
    let resolver = match (&config.cert_file, &config.key_file) {
        (Some(cert_file), Some(key_file)) if !acme => {
            CertResolver::load(listener, cert_file, key_file)?
        }
        _ if acme => CertResolver::for_acme(listener, challenges.clone()),
        _ => {
            return Err(
                "no certificate: give `cert_file` and `key_file`, or `acme_domains`".into(),
            );
        }
    };
    let resolver = Arc::new(resolver);
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
    if acme {
        server.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
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
