//! `/v1/blocks`: the addresses the brute-force guard has blocked, and lifting one block.
//!
//! Without this an operator who sees a legitimate client locked out (a NAT gateway shared with an
//! attacker, a misconfigured batch job) could only restart the gateway, which lifts every block.
//! Both calls sit behind the admin token and are audited like every `/v1` call.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use super::api::{json_response, noted};
use super::problem;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::policy::authn::brute_force::BruteForceGuard;

/// The most blocks listed in one answer (the guard tracks up to 100,000; `total` says how many).
const MAX_LISTED: usize = 1000;

/// The process's guard, while the running config has brute-force blocking on.
fn guard(gateway: &Gateway) -> Result<&Arc<BruteForceGuard>, GatewayError> {
    if gateway.runtime().config.brute_force.enabled {
        Ok(&gateway.services.brute_force)
    } else {
        Err(GatewayError::ServiceUnavailable(
            "brute-force blocking is off".into(),
        ))
    }
}

pub(super) async fn list(State(gateway): State<Arc<Gateway>>) -> Response {
    let result = guard(&gateway).map(|guard| {
        let (blocks, total) = guard.blocks(MAX_LISTED);
        let blocks: Vec<_> = blocks
            .iter()
            .map(|(ip, left)| json!({ "ip": ip.to_string(), "retry_after_s": left }))
            .collect();
        json_response(StatusCode::OK, json!({ "blocks": blocks, "total": total }))
    });
    result.unwrap_or_else(|e| problem(&e))
}

pub(super) async fn clear(State(gateway): State<Arc<Gateway>>, Path(ip): Path<String>) -> Response {
    let result = async {
        let guard = guard(&gateway)?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| GatewayError::InvalidInput("not an IP address".into()))?;
        // Blocks are keyed by the canonical address (IPv4-mapped IPv6 peers count as IPv4).
        let ip = ip.to_canonical();
        if !guard.unblock(ip).await {
            return Err(GatewayError::ResourceNotFound(ip.to_string()));
        }
        Ok::<_, GatewayError>(noted(
            json_response(StatusCode::OK, json!({ "unblocked": ip.to_string() })),
            format!("lifted the brute-force block on {ip}"),
        ))
    };
    result.await.unwrap_or_else(|e| problem(&e))
}
