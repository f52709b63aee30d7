//! The policy as a whole: a client's forged identity, forwarding and credential headers are
//! replaced or removed, whatever the route.

use std::sync::Arc;

use http::HeaderMap;

use super::*;
use crate::context::{ConnInfo, RequestCtx, RequestId};

fn cx() -> RequestCtx {
    let peer: std::net::SocketAddr = ([203, 0, 113, 7], 5000).into();
    let conn = ConnInfo::new(Arc::from("public"), peer, true);
    RequestCtx::new(conn, RequestId::generate(), peer.ip())
}

#[test]
fn forged_identity_forwarding_and_consumed_credentials_never_reach_the_upstream() {
    let identity = Arc::new(IdentityHeaders::new(&IdentityHeadersConfig::default()));
    let policy = UpstreamRequest::new(
        Arc::from(Vec::new()),
        false,
        vec![http::header::AUTHORIZATION],
        identity,
    );
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-rampart-subject", "admin"),
        ("x-forwarded-for", "10.0.0.1"),
        ("authorization", "Bearer consumed"),
        ("connection", "x-secret"),
        ("x-secret", "1"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            http::HeaderValue::from_static(value),
        );
    }
    policy.apply(&mut headers, &cx());
    assert!(
        headers.get("x-rampart-subject").is_none(),
        "no principal, no subject"
    );
    assert_eq!(headers["x-forwarded-for"], "203.0.113.7");
    assert!(headers.get("authorization").is_none());
    assert!(
        headers.get("x-secret").is_none(),
        "named in Connection: hop-by-hop"
    );
    assert!(headers.get("x-request-id").is_some());
}

#[test]
fn a_tracestate_the_gateway_does_not_continue_never_reaches_the_upstream() {
    let identity = Arc::new(IdentityHeaders::new(&IdentityHeadersConfig::default()));
    let policy = UpstreamRequest::new(Arc::from(Vec::new()), false, Vec::new(), identity);
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("tracestate"),
        http::HeaderValue::from_static("vendor=forged"),
    );
    headers.append(
        HeaderName::from_static("tracestate"),
        http::HeaderValue::from_static("other=forged"),
    );
    policy.apply(&mut headers, &cx());
    assert!(headers.get("tracestate").is_none(), "{headers:?}");
    assert!(headers.get("traceparent").is_some());
}

#[test]
fn a_forged_forwarded_or_x_real_ip_alone_never_reaches_the_upstream() {
    for name in ["forwarded", "x-real-ip", "x-forwarded-port"] {
        let identity = Arc::new(IdentityHeaders::new(&IdentityHeadersConfig::default()));
        let policy = UpstreamRequest::new(Arc::from(Vec::new()), false, Vec::new(), identity);
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static(name),
            http::HeaderValue::from_static("for=10.0.0.1"),
        );
        policy.apply(&mut headers, &cx());
        assert!(headers.get(name).is_none(), "{name}: {headers:?}");
        assert_eq!(headers["x-forwarded-for"], "203.0.113.7");
    }
}
