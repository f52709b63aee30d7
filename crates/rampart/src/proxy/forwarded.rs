//! The upstream request policy: what headers the upstream receives.
//!
//! Threat: clients forging `X-Forwarded-For` to spoof their address (defeating IP allow-lists and
//! rate limits), request smuggling through hop-by-hop headers, and upstreams trusting headers the
//! client set. Invariants: hop-by-hop headers (RFC 9110 section 7.6.1, and any named in
//! `Connection`) never reach the upstream; `X-Forwarded-*` and `Forwarded` from a peer outside
//! `trusted_proxies` are replaced, not appended to; the client address is the rightmost address
//! not in `trusted_proxies`.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::config::route::ClientIpHeader;
use crate::context::RequestCtx;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Hop-by-hop headers that a proxy must not forward.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers, including those listed in `Connection`, and `Upgrade` (Rampart
/// does not tunnel protocol switches).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

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

/// Rewrites the request headers for the upstream.
pub fn prepare(headers: &mut HeaderMap, cx: &RequestCtx, trusted: &[IpNet], preserve_host: bool) {
    strip_hop_by_hop(headers);
    let peer = cx.conn.peer.ip();
    let from_trusted = is_trusted(peer, trusted);
    let original_host = headers.get(header::HOST).cloned();
    if !from_trusted {
        for name in [
            &X_FORWARDED_FOR,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
            &X_FORWARDED_PORT,
            &X_REAL_IP,
        ] {
            headers.remove(name);
        }
        headers.remove(header::FORWARDED);
    }
    let chain = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(previous) if from_trusted => format!("{previous}, {peer}"),
        _ => peer.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        let proto = if cx.conn.tls { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if !headers.contains_key(&X_FORWARDED_HOST)
        && let Some(host) = &original_host
    {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    headers.insert(X_REQUEST_ID, cx.request_id.header_value().clone());
    if !preserve_host {
        // The client sets it from the target's authority.
        headers.remove(header::HOST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
