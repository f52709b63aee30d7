//! `[acme]`: the CA, the account and how names are proven; listeners name their domains in
//! `tls.acme_domains`.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::Issue;
use crate::config::bounds::MAX_SECONDS;

/// The longest `sync_ms`: challenges must reach every instance well inside an order's time.
pub const MAX_SYNC_MS: u64 = 60_000;

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The CA's directory URL (`https://`). Default: Let's Encrypt.
    #[serde(default = "default_directory")]
    pub directory: String,
    /// Contact URLs of the account, e.g. `mailto:ops@example.com` (the CA warns them of
    /// problems with the certificates).
    #[serde(default)]
    pub contact: Vec<String>,
    /// You have read and agree to the CA's terms of service; CAs refuse accounts without it.
    pub agree_terms: bool,
    /// How the CA checks that the names are this gateway's: `tls-alpn-01` (default; on the
    /// TLS listener, port 443) or `http-01` (on a `redirect_https_port` listener, port 80).
    #[serde(default)]
    pub challenge: ChallengeKind,
    /// PEM roots trusted for the directory (a private CA, or Pebble in tests). Default: the
    /// public web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How often each instance reads the store for a certificate another instance renewed and
    /// for challenges to answer; the renewing instance waits this long before asking the CA to
    /// check a TLS-ALPN-01 challenge, so that whichever instance the CA reaches can answer.
    #[serde(default = "default_sync_ms")]
    #[schemars(range(min = 100, max = MAX_SYNC_MS))]
    pub sync_ms: u64,
    /// The first pause after a failed order; it doubles up to `retry_max_s`.
    #[serde(default = "default_retry_min_s")]
    #[schemars(range(min = 1, max = MAX_SECONDS))]
    pub retry_min_s: u64,
    #[serde(default = "default_retry_max_s")]
    #[schemars(range(min = 1, max = MAX_SECONDS))]
    pub retry_max_s: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ChallengeKind {
    #[default]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    #[serde(rename = "http-01")]
    Http01,
}

impl ChallengeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TlsAlpn01 => "tls-alpn-01",
            Self::Http01 => "http-01",
        }
    }
}

fn default_directory() -> String {
    LETS_ENCRYPT.to_owned()
}
fn default_sync_ms() -> u64 {
    10_000
}
fn default_retry_min_s() -> u64 {
    10
}
fn default_retry_max_s() -> u64 {
    3600
}

impl AcmeConfig {
    /// What the schema cannot say.
    pub fn issues(&self, issues: &mut Vec<Issue>) {
        if !self.agree_terms {
            issues.push(Issue::new(
                "/acme/agree_terms",
                "ACME CAs require agreeing to their terms of service: read them and set `agree_terms = true`",
            ));
        }
        if !self.directory.starts_with("https://") {
            issues.push(Issue::new("/acme/directory", "must be an https:// URL"));
        }
        for (i, contact) in self.contact.iter().enumerate() {
            if !contact.starts_with("mailto:") {
                issues.push(Issue::new(
                    format!("/acme/contact/{i}"),
                    "must be a mailto: URL",
                ));
            }
        }
        if self.retry_max_s < self.retry_min_s {
            issues.push(Issue::new(
                "/acme/retry_max_s",
                "must be at least `retry_min_s`",
            ));
        }
    }
}

/// Checks one name of `acme_domains`: a DNS name the CA can check (no IP address, no wildcard:
/// wildcards need DNS-01, which Rampart does not do).
pub fn domain_issue(domain: &str) -> Option<&'static str> {
    if domain.starts_with("*.") {
        return Some("wildcard names need the DNS-01 challenge, which Rampart does not answer");
    }
    if domain.parse::<std::net::IpAddr>().is_ok() {
        return Some("an IP address, not a DNS name");
    }
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    (!valid).then_some("not a lower-case DNS name")
}

#[cfg(test)]
mod tests {
    use super::domain_issue;

    #[test]
    fn only_plain_dns_names_are_ordered() {
        assert_eq!(domain_issue("api.example.com"), None);
        assert!(domain_issue("*.example.com").is_some());
        assert!(domain_issue("192.0.2.1").is_some());
        assert!(domain_issue("API.example.com").is_some());
        assert!(domain_issue("a..b").is_some());
        assert!(domain_issue("-a.b").is_some());
        assert!(domain_issue("").is_some());
    }
}
