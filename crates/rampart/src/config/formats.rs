//! String formats that serde would parse into typed values (socket addresses, CIDRs).
//!
//! serde stops at the first value it cannot parse and reports it without a key path, so these
//! fields carry a schema `format` instead: the schema pass checks every one of them, together with
//! the other structural errors, each with its path and line. The schema-only types below give the
//! generated schema (and editors) the same formats.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// `IP:port`, e.g. `127.0.0.1:8443` or `[::1]:8443` (listener and admin `bind`).
pub const SOCKET_ADDRESS: &str = "socket-address";
/// An IP network in CIDR notation, e.g. `10.0.0.0/8` (`proxy.trusted_proxies`).
pub const IP_NETWORK: &str = "ip-network";

/// Registers the checks of the formats above with the schema validator.
pub(super) fn register(options: jsonschema::ValidationOptions) -> jsonschema::ValidationOptions {
    options
        .with_format(SOCKET_ADDRESS, |s: &str| {
            s.parse::<std::net::SocketAddr>().is_ok()
        })
        .with_format(IP_NETWORK, |s: &str| s.parse::<ipnet::IpNet>().is_ok())
        .should_validate_formats(true)
}

/// The message for a value that is not of `format`; `None` for formats not defined here.
pub(super) fn message(format: &str, value: &serde_json::Value) -> Option<String> {
    let shown = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned);
    let expected = match format {
        SOCKET_ADDRESS => "an IP address and port such as `127.0.0.1:8443` or `[::1]:8443`",
        IP_NETWORK => "an IP network in CIDR notation such as `10.0.0.0/8` or `fd00::/8`",
        _ => return None,
    };
    Some(format!("`{shown}` is not {expected}"))
}

/// Schema of a socket-address string.
pub struct SocketAddress;

impl JsonSchema for SocketAddress {
    fn schema_name() -> Cow<'static, str> {
        "SocketAddress".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": SOCKET_ADDRESS })
    }
}

/// Schema of a CIDR string.
pub struct IpNetwork;

impl JsonSchema for IpNetwork {
    fn schema_name() -> Cow<'static, str> {
        "IpNetwork".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": IP_NETWORK })
    }
}
