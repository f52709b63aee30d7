//! The value a limit counts by, from the request and the verified principal.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::config::KeyPart;
use crate::context::{AuthMethod, RequestCtx};

/// A limit's key for one request: the limit, the route and each part, length-prefixed so that
/// values cannot run into each other.
pub(super) struct KeyValue(Vec<u8>);

impl KeyValue {
    pub(super) fn of(
        limit: &str,
        route: &str,
        parts: &[KeyPart],
        req: &http::request::Parts,
        cx: &RequestCtx,
    ) -> Self {
        let mut bytes = Vec::with_capacity(64);
        let mut push = |value: &[u8]| {
            bytes.extend_from_slice(&(value.len() as u32).to_be_bytes());
            bytes.extend_from_slice(value);
        };
        push(limit.as_bytes());
        push(route.as_bytes());
        for part in parts {
            match part {
                KeyPart::Ip => push(&ip_group(cx.client_ip)),
                KeyPart::Route => {}
                KeyPart::Header(name) => {
                    push(req.headers.get(name).map_or(&[][..], |v| v.as_bytes()));
                }
                KeyPart::Principal => {
                    push(
                        cx.principal
                            .as_ref()
                            .map_or(&[][..], |p| p.subject.as_bytes()),
                    );
                }
                KeyPart::ClientId => push(
                    cx.principal
                        .as_ref()
                        .and_then(|p| p.client_id.as_deref())
                        .unwrap_or("")
                        .as_bytes(),
                ),
                KeyPart::ApiKey => {
                    let id = cx.principal.as_ref().and_then(|p| match &p.method {
                        AuthMethod::ApiKey(id) => Some(id.clone()),
                        _ => None,
                    });
                    push(id.as_deref().unwrap_or("").as_bytes());
                }
                KeyPart::Claim(name) => {
                    let value = cx
                        .principal
                        .as_ref()
                        .and_then(|p| p.claims.get(name))
                        .map(|v| match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .unwrap_or_default();
                    push(value.as_bytes());
                }
            }
        }
        Self(bytes)
    }

    /// The in-memory key: SipHash with a per-process random key (no chosen collisions).
    pub(super) fn local(&self) -> u64 {
        static STATE: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
        let mut hasher = STATE.get_or_init(Default::default).build_hasher();
        hasher.write(&self.0);
        hasher.finish()
    }

    /// The Redis key: a digest, so that key values (API key ids, claims) are not stored.
    pub(super) fn redis(&self) -> String {
        let digest = Sha256::digest(&self.0);
        format!("rampart:rl:{}", hex::encode(&digest[..16]))
    }
}

/// IPv4 as is; IPv6 by /64, since one subscriber usually holds a whole /64.
fn ip_group(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets()[..8].to_vec(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_in_one_slash_64_share_a_key() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or(IpAddr::from([0; 4]));
        let b: IpAddr = "2001:db8:1:2:ffff::9"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(ip_group(a), ip_group(b));
        assert_ne!(ip_group(a), ip_group(c));
    }
}
