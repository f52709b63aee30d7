//! Origins in canonical form (RFC 6454 section 6.2 serialization).
//!
//! Two spellings of one origin (`HTTPS://App.Example.com:443` and `https://app.example.com`) name
//! the same security principal, so they are compared only after both are brought to one form:
//! scheme and host lower-cased, the scheme's default port removed. What the gateway echoes in
//! `Access-Control-Allow-Origin` is that canonical form, never the client's spelling.
//!
//! Invariant: anything that is not `scheme://host[:port]` with a plain host (letters, digits, `-`,
//! `.`, or a bracketed IPv6 literal) and a decimal port has no canonical form, and so matches no
//! allow-list entry.

/// An origin in canonical form: `scheme://host` or `scheme://host:port` (non-default port only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin(String);

impl Origin {
    /// Parses an `Origin` header value sent by a client.
    pub(super) fn parse(text: &str) -> Option<Self> {
        canonicalize(text, false).map(Self)
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Canonical form of `scheme://host[:port]`, or `None` when the text is not an origin.
/// `wildcard` lets the host hold `*` (config entries such as `https://*.example.com`; the caller
/// checks where the star stands).
pub(super) fn canonicalize(text: &str, wildcard: bool) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let (host, port) = split_host_port(rest)?;
    if !valid_host(host, wildcard) {
        return None;
    }
    let host = host.to_ascii_lowercase();
    match port {
        Some(port) if port != default_port => Some(format!("{scheme}://{host}:{port}")),
        _ => Some(format!("{scheme}://{host}")),
    }
}

/// Splits `host[:port]` (host possibly a bracketed IPv6 literal); the port must be decimal.
fn split_host_port(rest: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if rest.starts_with('[') {
        let end = rest.find(']')? + 1;
        let (host, tail) = rest.split_at(end);
        match tail {
            "" => (host, None),
            _ => (host, Some(tail.strip_prefix(':')?)),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

fn valid_host(host: &str, wildcard: bool) -> bool {
    if let Some(literal) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return literal.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || (wildcard && b == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_compared_in_rfc6454_canonical_form() {
        let c = |t| canonicalize(t, false);
        assert_eq!(
            c("HTTPS://App.Example.COM").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            c("https://app.example.com:443").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            c("http://app.example.com:80").as_deref(),
            Some("http://app.example.com")
        );
        assert_eq!(
            c("https://app.example.com:8443").as_deref(),
            Some("https://app.example.com:8443")
        );
        assert_eq!(c("https://[::1]:443").as_deref(), Some("https://[::1]"));
        for bad in [
            "null",
            "ftp://a.com",
            "https://",
            "https://a.com/",
            "https://a.com:",
            "https://a.com:99999",
            "https://a.com:+1",
            "https://u@a.com",
            "https://a.com:1:2",
            "https://a b.com",
            "https://[zz]",
            "https://*.a.com",
        ] {
            assert_eq!(c(bad), None, "{bad}");
        }
        assert_eq!(
            canonicalize("https://*.a.com:443", true).as_deref(),
            Some("https://*.a.com")
        );
    }
}
