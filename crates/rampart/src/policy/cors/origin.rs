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

use std::borrow::Cow;

/// An origin in canonical form: `scheme://host` or `scheme://host:port` (non-default port only).
/// Borrowed from the client's text when that is already canonical, as browsers send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin<'a>(Cow<'a, str>);

impl<'a> Origin<'a> {
    /// Parses an `Origin` header value sent by a client.
    pub(super) fn parse(text: &'a str) -> Option<Self> {
        canonicalize(text, false).map(Self)
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the canonical form is the client's text itself.
    pub(super) fn is_as_sent(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }
}

/// Canonical form of `scheme://host[:port]`, or `None` when the text is not an origin.
/// `wildcard` lets the host hold `*` (config entries such as `https://*.example.com`; the caller
/// checks where the star stands). The text itself when it is already canonical (every request
/// through a CORS route asks: no allocation then).
pub(super) fn canonicalize(text: &str, wildcard: bool) -> Option<Cow<'_, str>> {
    let (scheme, rest) = text.split_once("://")?;
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else if scheme.eq_ignore_ascii_case("http") {
        80
    } else {
        return None;
    };
    let (host, port) = split_host_port(rest)?;
    if !valid_host(host, wildcard) {
        return None;
    }
    let lower = |s: &str| !s.bytes().any(|b| b.is_ascii_uppercase());
    // The port as written is canonical when it is not the default and has no leading zero
    // (its digits parsed to `port`: as many digits as `port` has, then none is a leading zero).
    let port_canonical = match port {
        None => true,
        Some(port) => port != default_port && rest.len() == host.len() + 1 + decimal_digits(port),
    };
    if lower(scheme) && lower(host) && port_canonical {
        return Some(Cow::Borrowed(text));
    }
    let scheme = scheme.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    match port {
        Some(port) if port != default_port => Some(format!("{scheme}://{host}:{port}")),
        _ => Some(format!("{scheme}://{host}")),
    }
    .map(Cow::Owned)
}

fn decimal_digits(n: u16) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
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

    /// The canonical form built from scratch, as before the borrowed fast path.
    fn rebuilt(text: &str, wildcard: bool) -> Option<String> {
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

    /// Borrowing the client's text is only a shortcut: on origins built from the pieces that
    /// matter (case, default and leading-zero ports, IPv6, wildcards), the result is the one
    /// built from scratch, and borrowed only when it is the text itself.
    #[test]
    fn the_borrowed_canonical_form_is_the_rebuilt_one() {
        let schemes = ["https", "http", "HTTPS", "Http", "ftp"];
        let hosts = [
            "app.example.com",
            "App.Example.com",
            "[::1]",
            "*.a.com",
            "a b",
            "",
        ];
        let ports = [
            "", ":443", ":80", ":0443", ":8443", ":08443", ":0", ":00", ":65535", ":65536", ":",
        ];
        for scheme in schemes {
            for host in hosts {
                for port in ports {
                    let text = format!("{scheme}://{host}{port}");
                    for wildcard in [false, true] {
                        let fast = canonicalize(&text, wildcard);
                        assert_eq!(
                            fast.as_deref(),
                            rebuilt(&text, wildcard).as_deref(),
                            "{text}"
                        );
                        if let Some(Cow::Borrowed(borrowed)) = fast {
                            assert_eq!(borrowed, text);
                        }
                    }
                }
            }
        }
        assert!(matches!(
            canonicalize("https://app.example.com", false),
            Some(Cow::Borrowed(_))
        ));
    }

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
