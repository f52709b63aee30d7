//! `/v1/certificates`: the ACME certificates served, and revoking one (RFC 8555 section 7.6).
//!
//! A revocation is for a key that leaked or a name given up: the gateway asks the CA to revoke
//! the served certificate with the account's key, marks it in the store, and orders its
//! replacement at once; every instance installs the replacement at its next sync.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use super::api::{json_response, noted};
use super::problem;
use crate::acme::RevokeError;
use crate::error::GatewayError;
use crate::gateway::Gateway;

pub(super) async fn list(State(gateway): State<Arc<Gateway>>) -> Response {
    let certificates = match &gateway.services.acme {
        Some(acme) => acme.status().await,
        None => Vec::new(),
    };
    json_response(StatusCode::OK, json!({ "certificates": certificates }))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Revocation {
    /// RFC 5280 reason code (1: keyCompromise, 4: superseded, 5: cessationOfOperation...).
    #[serde(default)]
    reason: Option<u8>,
}

pub(super) async fn revoke(
    State(gateway): State<Arc<Gateway>>,
    Path(listener): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        let request: Revocation = if body.is_empty() {
            Revocation::default()
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| GatewayError::InvalidInput(format!("revocation request: {e}")))?
        };
        let acme = gateway
            .services
            .acme
            .as_ref()
            .ok_or_else(|| GatewayError::ResourceNotFound("no ACME listener".into()))?;
        let serial = acme
            .revoke(&listener, request.reason)
            .await
            .map_err(|e| match e {
                RevokeError::UnknownListener | RevokeError::NoCertificate => {
                    GatewayError::ResourceNotFound(e.to_string())
                }
                RevokeError::BadReason => GatewayError::InvalidInput(e.to_string()),
                RevokeError::Failed(why) => GatewayError::ServiceUnavailable(why),
            })?;
        Ok::<_, GatewayError>(noted(
            json_response(
                StatusCode::OK,
                json!({ "listener": listener, "revoked_serial": serial, "replacement": "ordered" }),
            ),
            format!("revoked the certificate {serial} of listener {listener}"),
        ))
    };
    result.await.unwrap_or_else(|e| problem(&e))
}
