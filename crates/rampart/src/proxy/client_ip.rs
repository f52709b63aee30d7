//! The client's address: the socket peer, or, behind trusted proxies, the rightmost address of
//! the configured forwarding header that is not itself a trusted proxy.
//!
//! Threat: clients forging `X-Forwarded-For` or `Forwarded` to spoof their address (defeating IP
//! allow-lists and rate limits). Invariant: only a peer in `trusted_proxies` is believed, and only
//! in the one header the config names.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{self, HeaderName};
use ipnet::IpNet;

use crate::config::route::ClientIpHeader;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Whether `peer` is one of the configured trusted proxies.
pub fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    // `::ffff:10.0.0.1` on a dual-stack socket is the IPv4 proxy 10.0.0.1.
    let peer = peer.to_canonical();
    trusted.iter().any(|net| net.contains(&peer))
}

/// The client's address: the socket peer, or with a trusted peer the rightmost hop of the
/// configured header (`X-Forwarded-For`, or the RFC 7239 `Forwarded` header's `for=` parameters)
/// that is not itself a trusted proxy.
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    which: ClientIpHeader,
) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    let (name, parse): (&HeaderName, fn(&str) -> Option<IpAddr>) = match which {
        ClientIpHeader::XForwardedFor => (&X_FORWARDED_FOR, |hop| hop.trim().parse().ok()),
        ClientIpHeader::Forwarded => (&header::FORWARDED, forwarded_for),
    };
    for value in headers.get_all(name) {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for hop in text.split(',') {
            match parse(hop) {
                Some(ip) => hops.push(ip),
                // An unparsable (or obfuscated, or `unknown`) hop breaks the chain: stop believing
                // anything before it.
                None => hops.clear(),
            }
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip, trusted))
        .unwrap_or(peer)
}

/// The address in one `Forwarded` element (`for=192.0.2.60;proto=https`,
/// `for="[2001:db8::1]:4711"`); `None` for `unknown`, obfuscated names or no `for`.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then_some(value.trim())
    })?;
    let value = value.trim_matches('"');
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let host = match value.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => value,
    };
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const XFF: ClientIpHeader = ClientIpHeader::XForwardedFor;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().filter_map(|n| n.parse().ok()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn xff(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn spoofed_forwarded_for_from_untrusted_peer_is_ignored() {
        let h = xff("1.2.3.4");
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &nets(&["10.0.0.0/8"]), XFF),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn rightmost_untrusted_hop_is_the_client() {
        let h = xff("6.6.6.6, 198.51.100.7, 10.0.0.2");
        let got = client_ip(ip("10.0.0.1"), &h, &nets(&["10.0.0.0/8"]), XFF);
        assert_eq!(got, ip("198.51.100.7"));
    }

    #[test]
    fn rfc7239_forwarded_is_read_when_configured_and_only_then() {
        const FWD: ClientIpHeader = ClientIpHeader::Forwarded;
        let proxies = nets(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert(
            header::FORWARDED,
            HeaderValue::from_static(
                "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.2:8080",
            ),
        );
        // A client-sent X-Forwarded-For is not what this proxy writes: ignored.
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &proxies, FWD),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &proxies, XFF), ip("1.2.3.4"));
        // An obfuscated hop breaks the chain: nothing before it is believed.
        h.insert(
            header::FORWARDED,
            HeaderValue::from_static("for=198.51.100.7, for=_hidden, for=10.0.0.2"),
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &proxies, FWD), ip("10.0.0.1"));
        // From an untrusted peer it means nothing.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &proxies, FWD),
            ip("203.0.113.9")
        );
    }
}
