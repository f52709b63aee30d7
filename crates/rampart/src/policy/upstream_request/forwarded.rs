//! `X-Forwarded-*` and hop-by-hop headers: what the upstream is told about the request's path.
//!
//! Threat: clients forging `X-Forwarded-For` to spoof their address (defeating IP allow-lists and
//! rate limits), request smuggling through hop-by-hop headers, and upstreams trusting headers the
//! client set. Invariants: hop-by-hop headers (RFC 9110 section 7.6.1, and any named in
//! `Connection`) never reach the upstream; `X-Forwarded-*` and `Forwarded` from a peer outside
//! `trusted_proxies` are replaced, not appended to; the client address is the rightmost address
//! not in `trusted_proxies`.

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::proxy::client_ip::is_trusted;

use crate::context::RequestCtx;
use crate::trace::TRACESTATE;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Hop-by-hop headers that a proxy must not forward, and `Upgrade`.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::UPGRADE,
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
    Census::taken(headers, false).strip_hop_by_hop(headers);
}

/// What one pass over a message's headers finds, so that only what is there costs a hashed
/// lookup: which hop-by-hop names are present (nearly always none in a request, and
/// `Connection: keep-alive` alone in an HTTP/1.1 response), whether `Connection` lists anything
/// beyond `keep-alive`, and (a request's only) whether any forwarding header or a `tracestate` is
/// there.
#[derive(Default)]
struct Census {
    hop_by_hop: u16,
    connection_lists_more: bool,
    forwarding: bool,
    tracestate: bool,
}

impl Census {
    /// `request`: whether to look for the forwarding headers and `tracestate` too (a response's
    /// hop-by-hop strip needs neither, and skips their comparisons on every header).
    fn taken(headers: &HeaderMap, request: bool) -> Self {
        let mut census = Self::default();
        for (name, value) in headers {
            if let Some(i) = hop_by_hop_index(name) {
                census.hop_by_hop |= 1 << i;
                census.connection_lists_more |=
                    name == header::CONNECTION && !only_keep_alive(value);
            } else if !request {
                continue;
            } else if FORWARDING.contains(name) {
                census.forwarding = true;
            } else if name == TRACESTATE {
                census.tracestate = true;
            }
        }
        census
    }

    fn strip_hop_by_hop(&self, headers: &mut HeaderMap) {
        if self.hop_by_hop == 0 {
            return;
        }
        if self.connection_lists_more {
            // Names that `Connection` lists beyond the standard ones (rare). Split as bytes: a
            // line with a byte outside ASCII still has its valid names removed.
            let listed: Vec<HeaderName> = headers
                .get_all(header::CONNECTION)
                .iter()
                .flat_map(|v| v.as_bytes().split(|&b| b == b','))
                .map(<[u8]>::trim_ascii)
                // `keep-alive`, the usual one, is removed below with the standard names.
                .filter(|name| !name.eq_ignore_ascii_case(b"keep-alive"))
                .filter_map(|name| HeaderName::from_bytes(name).ok())
                .collect();
            for name in listed {
                headers.remove(name);
            }
        }
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            if self.hop_by_hop & (1 << i) != 0 {
                headers.remove(name);
            }
        }
    }
}

/// Whether a `Connection` value lists `keep-alive` alone (the usual upstream answer), which the
/// standard names' removal covers.
fn only_keep_alive(value: &HeaderValue) -> bool {
    value
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"keep-alive")
}

/// Where `name` sits in `HOP_BY_HOP`, if it is hop-by-hop.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    HOP_BY_HOP.iter().position(|hop| hop == name)
}

/// Forwarding headers only a trusted proxy may set.
const FORWARDING: [HeaderName; 6] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    X_FORWARDED_PORT,
    X_REAL_IP,
    header::FORWARDED,
];

/// Rewrites the request headers for the upstream.
pub fn prepare(headers: &mut HeaderMap, cx: &RequestCtx, trusted: &[IpNet], preserve_host: bool) {
    let census = Census::taken(headers, true);
    census.strip_hop_by_hop(headers);
    // The client's `Host`, for `X-Forwarded-Host`. Unless the route preserves it, the upstream
    // gets its own: the client sets it from the target's authority.
    let original_host = if preserve_host {
        headers.get(header::HOST).cloned()
    } else {
        headers.remove(header::HOST)
    };
    let proto = HeaderValue::from_static(if cx.conn.tls { "https" } else { "http" });
    if is_trusted(cx.conn.peer.ip(), trusted) {
        extend_trusted(headers, cx, proto, original_host);
    } else {
        // Replaced, not appended to: removed (the census found whether any is there), then set
        // afresh, so none of them needs looking up.
        if census.forwarding {
            for name in &FORWARDING {
                headers.remove(name);
            }
        }
        // The connection's own address, formatted once when it was accepted.
        headers.insert(X_FORWARDED_FOR, cx.conn.peer_ip_header.clone());
        headers.insert(X_FORWARDED_PROTO, proto);
        if let Some(host) = original_host {
            headers.insert(X_FORWARDED_HOST, host);
        }
    }
    headers.insert(X_REQUEST_ID, cx.request_id.header_value().clone());
    cx.trace.apply(headers, census.tracestate);
}

/// A trusted proxy's forwarding headers are kept: the peer is appended to its
/// `X-Forwarded-For`, and its `X-Forwarded-Proto` and `-Host` win over this hop's.
fn extend_trusted(
    headers: &mut HeaderMap,
    cx: &RequestCtx,
    proto: HeaderValue,
    original_host: Option<HeaderValue>,
) {
    let previous = headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok());
    let forwarded_for = match previous {
        Some(previous) => HeaderValue::from_str(&format!("{previous}, {}", cx.conn.peer.ip())).ok(),
        None => Some(cx.conn.peer_ip_header.clone()),
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, proto);
    }
    if !headers.contains_key(&X_FORWARDED_HOST)
        && let Some(host) = original_host
    {
        headers.insert(X_FORWARDED_HOST, host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_keep_alive_response_loses_connection_and_keep_alive_only() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Keep-Alive"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn a_header_named_in_connection_close_is_removed_too() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-internal"),
        );
        h.insert("x-internal", HeaderValue::from_static("1"));
        h.insert("close", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn a_header_named_in_a_second_connection_line_is_removed_too() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-internal"));
        h.insert("x-internal", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn a_header_named_in_a_connection_line_with_a_non_ascii_byte_is_removed_too() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_bytes(b"x-secret, caf\xe9").unwrap_or(HeaderValue::from_static("")),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn keep_alive_with_space_around_it_is_removed_with_connection() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static(" Keep-Alive "));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
    }

    #[test]
    fn a_message_without_hop_by_hop_headers_is_untouched() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }
}
