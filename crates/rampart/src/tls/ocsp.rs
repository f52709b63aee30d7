//! OCSP stapling (RFC 6960, RFC 6066 section 8): where the served certificate names an OCSP
//! responder (its Authority Information Access), the gateway fetches a signed "good" answer from
//! it and hands it to clients in the handshake, so that they need not ask the CA themselves (a
//! privacy leak and a latency cost) and a must-staple certificate works.
//!
//! A staple is served only if the CA (the certificate's issuer) signed it, it speaks of this
//! certificate, it says `good` and it is current; it is fetched again halfway to its
//! `nextUpdate`, and dropped when that passes without a fresh one. Responses signed by a delegated
//! responder certificate are not stapled (Let's Encrypt and most CAs sign with the issuer).
//!
//! DER types come from RustCrypto's `x509-ocsp`; the signature is checked with aws-lc-rs.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls::pki_types::CertificateDer;
use x509_cert::der::asn1::{Null, OctetString};
use x509_cert::der::{Any, Decode, Encode, oid::ObjectIdentifier};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest,
};
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::CertResolver;

/// How often each listener looks at whether its staple needs fetching (no network unless so).
const TICK: Duration = Duration::from_secs(1);
/// The first pause after a failed fetch; it doubles up to `RETRY_MAX`.
const RETRY_MIN: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(3600);
/// A responder gets this long to answer, and this many bytes.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Clocks differ: a `thisUpdate` this far in the future is still taken.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");

/// Why no staple came of a fetch.
#[derive(Debug)]
enum Refusal {
    /// The CA says the certificate is revoked.
    Revoked,
    Other(String),
}

impl From<String> for Refusal {
    fn from(why: String) -> Self {
        Self::Other(why)
    }
}

impl From<&str> for Refusal {
    fn from(why: &str) -> Self {
        Self::Other(why.to_owned())
    }
}

/// A fetched staple that may be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staple {
    pub der: Vec<u8>,
    /// Fetch again from then on.
    pub refresh_at: SystemTime,
    /// Never serve it after this.
    pub expires_at: SystemTime,
}

/// Keeps the listener's staple fresh until the resolver is gone.
pub fn spawn_stapler(resolver: &Arc<CertResolver>) {
    let resolver = Arc::downgrade(resolver);
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build();
        let client = match client {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(error = %e, "OCSP stapling off: no HTTP client");
                return;
            }
        };
        let mut state = StaplerState::default();
        while let Some(resolver) = Weak::upgrade(&resolver) {
            state.tick(&resolver, &client).await;
            drop(resolver);
            tokio::time::sleep(TICK).await;
        }
    });
}

/// What the stapler knows of the served certificate.
#[derive(Default)]
struct StaplerState {
    /// The leaf the state is about.
    leaf: Option<CertificateDer<'static>>,
    /// Its responder and issuer, or `None`: it names no responder.
    target: Option<(String, CertificateDer<'static>)>,
    staple: Option<Staple>,
    retry_at: Option<SystemTime>,
    retry_pause: Duration,
}

impl StaplerState {
    async fn tick(&mut self, resolver: &CertResolver, client: &reqwest::Client) {
        let Some(key) = resolver.current() else {
            return;
        };
        let Some(leaf) = key.cert.first() else {
            return;
        };
        if self.leaf.as_ref() != Some(leaf) {
            // A new certificate: start over.
            *self = Self {
                leaf: Some(leaf.clone()),
                target: target(&key.cert),
                retry_pause: RETRY_MIN,
                ..Self::default()
            };
        }
        let Some((url, issuer)) = &self.target else {
            return;
        };
        let now = SystemTime::now();
        if let Some(staple) = &self.staple
            && now >= staple.expires_at
        {
            tracing::warn!(
                listener = resolver.listener(),
                "the OCSP staple lapsed; serving none"
            );
            resolver.staple(leaf, None);
            self.staple = None;
        }
        if key.ocsp.is_none()
            && let Some(staple) = &self.staple
        {
            // The same certificate installed again (its files rewritten): staple it again.
            resolver.staple(leaf, Some(staple.der.clone()));
        }
        let due = self.staple.as_ref().is_none_or(|s| now >= s.refresh_at);
        if !due || self.retry_at.is_some_and(|at| now < at) {
            return;
        }
        match fetch(client, url, leaf, issuer).await {
            Ok(staple) => {
                resolver.staple(leaf, Some(staple.der.clone()));
                metrics::counter!("rampart_ocsp_fetches_total", "result" => "stapled").increment(1);
                self.staple = Some(staple);
                self.retry_at = None;
                self.retry_pause = RETRY_MIN;
            }
            Err(Refusal::Revoked) => {
                // Serving a "good" answer the CA has since taken back would mislead clients.
                metrics::counter!("rampart_ocsp_fetches_total", "result" => "failed").increment(1);
                tracing::error!(
                    listener = resolver.listener(),
                    "the CA says the served certificate is REVOKED; replace it (rampart cert revoke renews an ACME one)"
                );
                resolver.staple(leaf, None);
                self.staple = None;
                self.retry_at = Some(now + self.retry_pause);
                self.retry_pause = (self.retry_pause * 2).min(RETRY_MAX);
            }
            Err(Refusal::Other(e)) => {
                metrics::counter!("rampart_ocsp_fetches_total", "result" => "failed").increment(1);
                tracing::warn!(listener = resolver.listener(), error = %e, retry_in_s = self.retry_pause.as_secs(), "OCSP staple not refreshed");
                self.retry_at = Some(now + self.retry_pause);
                self.retry_pause = (self.retry_pause * 2).min(RETRY_MAX);
            }
        }
    }
}

/// The leaf's OCSP responder URL (`http://` or `https://`) and its issuer (the next
/// certificate of the chain), if both are there.
fn target(chain: &[CertificateDer<'static>]) -> Option<(String, CertificateDer<'static>)> {
    let (leaf, issuer) = (chain.first()?, chain.get(1)?);
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let url = parsed.extensions().iter().find_map(|ext| {
        let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() else {
            return None;
        };
        aia.accessdescs
            .iter()
            .find_map(|desc| match (&desc.access_method, &desc.access_location) {
                (method, GeneralName::URI(uri))
                    if *method == x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP =>
                {
                    Some((*uri).to_owned())
                }
                _ => None,
            })
    })?;
    (url.starts_with("http://") || url.starts_with("https://")).then(|| (url, issuer.clone()))
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    leaf: &CertificateDer<'_>,
    issuer: &CertificateDer<'_>,
) -> Result<Staple, Refusal> {
    let id = cert_id(leaf, issuer)?;
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![Request {
                req_cert: id.clone(),
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(|e| format!("encoding the request: {e}"))?;
    let mut response = client
        .post(url)
        .header(http::header::CONTENT_TYPE, "application/ocsp-request")
        .body(request)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", with_causes(&e)))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()).into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("{url}: a response over {MAX_RESPONSE_BYTES} bytes").into());
        }
        body.extend_from_slice(&chunk);
    }
    check(&body, &id, issuer, SystemTime::now())
}

/// An error and its causes, for the log ("error sending request" alone says little).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// RFC 6960 section 4.1.1 with SHA-1, the hash every responder accepts.
fn cert_id(leaf: &CertificateDer<'_>, issuer: &CertificateDer<'_>) -> Result<CertId, String> {
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf).map_err(|e| e.to_string())?;
    let (_, issuer) = x509_parser::parse_x509_certificate(issuer).map_err(|e| e.to_string())?;
    let sha1 = |bytes: &[u8]| {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes)
            .as_ref()
            .to_vec()
    };
    let octets = |bytes: Vec<u8>| OctetString::new(bytes).map_err(|e| e.to_string());
    let serial = leaf.tbs_certificate.raw_serial();
    let first_significant = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: SHA1,
            parameters: Some(Any::from(Null)),
        },
        issuer_name_hash: octets(sha1(leaf.tbs_certificate.issuer.as_raw()))?,
        issuer_key_hash: octets(sha1(
            &issuer.tbs_certificate.subject_pki.subject_public_key.data,
        ))?,
        serial_number: SerialNumber::new(&serial[first_significant..])
            .map_err(|e| e.to_string())?,
    })
}

/// Accepts a response only if the issuer signed it and it says `good` for `id` now.
fn check(
    der: &[u8],
    id: &CertId,
    issuer: &CertificateDer<'_>,
    now: SystemTime,
) -> Result<Staple, Refusal> {
    let response = OcspResponse::from_der(der).map_err(|e| format!("not an OCSP response: {e}"))?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(format!("the responder says {:?}", response.response_status).into());
    }
    let bytes = response.response_bytes.ok_or("a response without a body")?;
    if bytes.response_type != OCSP_BASIC {
        return Err("not a basic OCSP response".into());
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|e| format!("not a basic OCSP response: {e}"))?;
    verify_signature(&basic, issuer)?;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| same_certificate(&r.cert_id, id))
        .ok_or("the response is about another certificate")?;
    match single.cert_status {
        CertStatus::Good(_) => {}
        CertStatus::Revoked(_) => return Err(Refusal::Revoked),
        CertStatus::Unknown(_) => return Err("the responder does not know the certificate".into()),
    }
    let this_update = UNIX_EPOCH + single.this_update.0.to_unix_duration();
    let next_update = single
        .next_update
        .map(|t| UNIX_EPOCH + t.0.to_unix_duration())
        .ok_or("a response without nextUpdate")?;
    if this_update > now + CLOCK_SKEW || next_update <= now {
        return Err("the response is not current".into());
    }
    let halfway = next_update.duration_since(this_update).unwrap_or_default() / 2;
    Ok(Staple {
        der: der.to_vec(),
        refresh_at: this_update + halfway,
        expires_at: next_update,
    })
}

fn same_certificate(a: &CertId, b: &CertId) -> bool {
    a.serial_number.as_bytes() == b.serial_number.as_bytes()
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
}

/// The signature over `tbsResponseData`, by the issuer's key.
fn verify_signature(basic: &BasicOcspResponse, issuer: &CertificateDer<'_>) -> Result<(), String> {
    let algorithm: &'static dyn VerificationAlgorithm =
        match basic.signature_algorithm.oid.to_string().as_str() {
            "1.2.840.113549.1.1.11" => &signature::RSA_PKCS1_2048_8192_SHA256,
            "1.2.840.113549.1.1.12" => &signature::RSA_PKCS1_2048_8192_SHA384,
            "1.2.840.113549.1.1.13" => &signature::RSA_PKCS1_2048_8192_SHA512,
            "1.2.840.10045.4.3.2" => &signature::ECDSA_P256_SHA256_ASN1,
            "1.2.840.10045.4.3.3" => &signature::ECDSA_P384_SHA384_ASN1,
            other => return Err(format!("an unsupported signature algorithm {other}")),
        };
    let (_, issuer) = x509_parser::parse_x509_certificate(issuer).map_err(|e| e.to_string())?;
    let signed = basic
        .tbs_response_data
        .to_der()
        .map_err(|e| format!("re-encoding the response: {e}"))?;
    let signature = basic.signature.raw_bytes();
    UnparsedPublicKey::new(
        algorithm,
        &issuer.tbs_certificate.subject_pki.subject_public_key.data,
    )
    .verify(&signed, signature)
    .map_err(|_| "the response is not signed by the certificate's issuer".to_owned())
}
