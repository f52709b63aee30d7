//! `/v1/revocations`: revoke access tokens before they expire, by `jti` or by the token itself
//! (only its SHA-256 is kept).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use super::api::{json_response, noted, store_error};
use super::problem;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::policy::authn::revocation::{Revocations, jti_id, token_hash_id};
use crate::store::{self, Revocation};

/// How long a revocation is kept when the request does not say: longer than access tokens live.
const DEFAULT_KEEP_S: i64 = 86_400;
const MAX_KEEP_S: i64 = 366 * 86_400;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    #[serde(default)]
    jti: Option<String>,
    /// The token itself; hashed at once and never stored or logged.
    #[serde(default)]
    token: Option<String>,
    /// Keep the revocation this long (at least until the token expires).
    #[serde(default)]
    expires_in_s: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
}

fn revocations(gateway: &Gateway) -> Result<&Arc<Revocations>, GatewayError> {
    gateway
        .services
        .revocations
        .as_ref()
        .ok_or_else(|| GatewayError::ServiceUnavailable("no store for revocations".into()))
}

pub(super) async fn revoke(State(gateway): State<Arc<Gateway>>, body: Bytes) -> Response {
    let result = async {
        let request: RevokeRequest = serde_json::from_slice(&body)
            .map_err(|e| GatewayError::InvalidInput(format!("revocation request: {e}")))?;
        let revocation = to_revocation(request)?;
        revocations(&gateway)?
            .revoke(revocation.clone())
            .await
            .map_err(store_error)?;
        let note = format!("revoked token {}", revocation.token_id);
        Ok::<_, GatewayError>(noted(
            json_response(StatusCode::CREATED, json!(revocation)),
            note,
        ))
    };
    result.await.unwrap_or_else(|e| problem(&e))
}

fn to_revocation(request: RevokeRequest) -> Result<Revocation, GatewayError> {
    let token_id = match (&request.jti, &request.token) {
        (Some(jti), None) if valid_text(jti, 256) => jti_id(jti),
        (None, Some(token)) if valid_text(token, 16_384) => token_hash_id(token),
        _ => {
            return Err(GatewayError::InvalidInput(
                "give exactly one of `jti` (up to 256 characters) or `token`".into(),
            ));
        }
    };
    let keep = request.expires_in_s.unwrap_or(DEFAULT_KEEP_S);
    if !(1..=MAX_KEEP_S).contains(&keep) {
        return Err(GatewayError::InvalidInput(
            "expires_in_s must be between 1 and 31622400".into(),
        ));
    }
    let reason = request.reason.unwrap_or_default();
    if !valid_text(&reason, 200) && !reason.is_empty() {
        return Err(GatewayError::InvalidInput(
            "reason: up to 200 printable characters".into(),
        ));
    }
    let now = store::now();
    Ok(Revocation {
        token_id,
        reason,
        revoked_at: now,
        expires_at: now.saturating_add(keep),
    })
}

fn valid_text(text: &str, max: usize) -> bool {
    !text.is_empty() && text.len() <= max && text.chars().all(|c| !c.is_control())
}

pub(super) async fn list(State(gateway): State<Arc<Gateway>>) -> Response {
    let result = async {
        let all = revocations(&gateway)?
            .store()
            .revocations_since(0)
            .await
            .map_err(store_error)?;
        Ok::<_, GatewayError>(json_response(StatusCode::OK, json!({ "revocations": all })))
    };
    result.await.unwrap_or_else(|e| problem(&e))
}
