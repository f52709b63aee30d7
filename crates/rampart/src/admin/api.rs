//! The `/v1` admin API: API keys, token revocations, blocks, ACME certificates, reload, status, and its
//! own OpenAPI document.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use http::StatusCode;
use http::header::AUTHORIZATION;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem;
use crate::audit::AuditRecord;
use crate::context::{Decision, RequestId};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::policy::authn::api_key::NewKey;
use crate::policy::authn::{ApiKeys, AuthFailure};

/// The OpenAPI document of this API (checked against the routes by a test).
pub const OPENAPI: &str = include_str!("openapi.json");

pub(super) fn routes(gateway: Arc<Gateway>) -> Router<Arc<Gateway>> {
    let protected = Router::new()
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/{id}", get(get_key))
        .route("/v1/keys/{id}/rotate", post(rotate_key))
        .route("/v1/keys/{id}/revoke", post(revoke_key))
        .route(
            "/v1/revocations",
            get(super::revocations::list).post(super::revocations::revoke),
        )
        .route(
            "/v1/blocks",
            get(super::blocks::list).post(super::blocks::add),
        )
        .route("/v1/blocks/{subject}", delete(super::blocks::lift))
        .route("/v1/certificates", get(super::certificates::list))
        .route(
            "/v1/certificates/{listener}/revoke",
            post(super::certificates::revoke),
        )
        .route("/v1/reload", post(reload))
        .route("/v1/status", get(status))
        .route_layer(middleware::from_fn_with_state(gateway, require_admin));
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .merge(protected)
}

async fn openapi() -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Admin authentication and the audit record of every call.
async fn require_admin(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = crate::context::method_label(request.method());
    let path = request.uri().path().to_owned();
    let client_ip = peer_ip(&request);
    let expected = gateway.runtime().config.admin.token_sha256.clone();
    let verdict = match expected {
        None => Err(GatewayError::RouteNotFound),
        Some(expected) => check_token(request.headers(), &expected),
    };
    let authorized = verdict.is_ok();
    let response = match verdict {
        Ok(()) => next.run(request).await,
        Err(e) => problem(&e),
    };
    let status = response.status();
    let decision = match status.as_u16() {
        200..=399 => Decision::Allow,
        400..=499 => Decision::Deny,
        _ => Decision::Error,
    };
    gateway.audit().record(AuditRecord {
        route: Some(Arc::from("admin-api")),
        path,
        reason: response
            .extensions()
            .get::<AdminNote>()
            .map(|n| n.0.clone()),
        principal: authorized.then(|| "admin".to_owned()),
        auth_method: Some("admin_token"),
        duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        ..AuditRecord::answered(
            RequestId::generate(),
            client_ip,
            Arc::from("admin"),
            method,
            status.as_u16(),
            decision,
        )
    });
    response
}

/// The admin client's address, from the connection (`serve` attaches it); unspecified when the
/// router is driven without a connection (in-process tests), never a made-up loopback address.
fn peer_ip(request: &Request) -> std::net::IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |info| {
            info.0.ip().to_canonical()
        })
}

fn check_token(headers: &http::HeaderMap, expected_hex: &str) -> Result<(), GatewayError> {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| GatewayError::Unauthenticated(AuthFailure::missing("no admin token")))?;
    let digest = Sha256::digest(presented.trim().as_bytes());
    if bool::from(
        hex::encode(digest)
            .as_bytes()
            .ct_eq(expected_hex.to_ascii_lowercase().as_bytes()),
    ) {
        Ok(())
    } else {
        Err(GatewayError::Unauthenticated(AuthFailure::invalid_token(
            "wrong admin token",
        )))
    }
}

/// What an admin call did, for its audit record.
#[derive(Clone)]
struct AdminNote(String);

pub(super) fn noted(mut response: Response, note: String) -> Response {
    response.extensions_mut().insert(AdminNote(note));
    response
}

fn keys(gateway: &Gateway) -> Result<&Arc<ApiKeys>, GatewayError> {
    gateway
        .services
        .api_keys
        .as_ref()
        .ok_or_else(|| GatewayError::ServiceUnavailable("API keys are not configured".into()))
}

pub(super) fn store_error(e: crate::store::StoreError) -> GatewayError {
    tracing::error!(error = %e, "admin store operation failed");
    GatewayError::ServiceUnavailable("store".into())
}

pub(super) fn json_response(status: StatusCode, value: Value) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn list_keys(State(gateway): State<Arc<Gateway>>) -> Response {
    let result = async {
        let keys = keys(&gateway)?
            .store()
            .list_keys()
            .await
            .map_err(store_error)?;
        Ok::<_, GatewayError>(json_response(StatusCode::OK, json!({ "keys": keys })))
    };
    result.await.unwrap_or_else(|e| problem(&e))
}

async fn get_key(State(gateway): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let result = async {
        let key = keys(&gateway)?
            .store()
            .key(&id)
            .await
            .map_err(store_error)?;
        let key = key.ok_or_else(|| GatewayError::ResourceNotFound(id.clone()))?;
        Ok::<_, GatewayError>(json_response(StatusCode::OK, json!(key)))
    };
    result.await.unwrap_or_else(|e| problem(&e))
}

async fn create_key(State(gateway): State<Arc<Gateway>>, body: Bytes) -> Response {
    let result = async {
        let new: NewKey = serde_json::from_slice(&body)
            .map_err(|e| GatewayError::InvalidInput(format!("key request: {e}")))?;
        validate_new_key(&new)?;
        let (record, plaintext) = keys(&gateway)?.create(&new).await.map_err(store_error)?;
        let note = format!("created key {} for {}", record.id, record.owner);
        Ok::<_, GatewayError>(noted(
            json_response(
                StatusCode::CREATED,
                json!({ "key": plaintext, "record": record }),
            ),
            note,
        ))
    };
    result.await.unwrap_or_else(|e| problem(&e))
}

fn validate_new_key(new: &NewKey) -> Result<(), GatewayError> {
    let printable = |s: &str| !s.is_empty() && s.len() <= 200 && s.chars().all(|c| !c.is_control());
    if !printable(&new.name) || !printable(&new.owner) {
        return Err(GatewayError::InvalidInput(
            "name and owner must be 1 to 200 printable characters".into(),
        ));
    }
    let token =
        |s: &String| !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| b.is_ascii_graphic());
    if !new.scopes.iter().all(token) || !new.roles.iter().all(token) {
        return Err(GatewayError::InvalidInput(
            "scopes and roles are non-empty words without spaces".into(),
        ));
    }
    if new.expires_in_s.is_some_and(|s| s <= 0) {
        return Err(GatewayError::InvalidInput(
            "expires_in_s must be positive".into(),
        ));
    }
    Ok(())
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    #[serde(default)]
    grace_s: Option<u64>,
}

async fn rotate_key(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        let request: RotateRequest = if body.is_empty() {
            RotateRequest::default()
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| GatewayError::InvalidInput(format!("rotate request: {e}")))?
        };
        let grace = request.grace_s.map(Duration::from_secs);
        let rotated = keys(&gateway)?
            .rotate(&id, grace)
            .await
            .map_err(store_error)?;
        let (record, plaintext) =
            rotated.ok_or_else(|| GatewayError::ResourceNotFound(id.clone()))?;
        let note = format!("rotated key {id} to {}", record.id);
        Ok::<_, GatewayError>(noted(
            json_response(
                StatusCode::CREATED,
                json!({ "key": plaintext, "record": record }),
            ),
            note,
        ))
    };
    result.await.unwrap_or_else(|e| problem(&e))
}

async fn revoke_key(State(gateway): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let result = async {
        let service = keys(&gateway)?;
        if !service.revoke(&id).await.map_err(store_error)? {
            return Err(GatewayError::ResourceNotFound(id.clone()));
        }
        let record = service.store().key(&id).await.map_err(store_error)?;
        Ok::<_, GatewayError>(noted(
            json_response(StatusCode::OK, json!(record)),
            format!("revoked key {id}"),
        ))
    };
    result.await.unwrap_or_else(|e| problem(&e))
}

async fn reload(State(gateway): State<Arc<Gateway>>) -> Response {
    let Some(path) = gateway.services.config_path.clone() else {
        return problem(&GatewayError::ServiceUnavailable(
            "no config file to reload".into(),
        ));
    };
    // Off the async workers, like every reload (file I/O, state carried over).
    let outcome = tokio::task::spawn_blocking(move || crate::run::reload(&gateway, &path)).await;
    let Ok(outcome) = outcome else {
        return problem(&GatewayError::Internal("reload did not finish".into()));
    };
    match outcome {
        Ok(()) => noted(
            json_response(StatusCode::OK, json!({ "reloaded": true })),
            "config reloaded".into(),
        ),
        Err(e) => {
            let text = e.to_string();
            noted(
                json_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({ "reloaded": false, "errors": text }),
                ),
                format!("reload refused: {text}"),
            )
        }
    }
}

async fn status(State(gateway): State<Arc<Gateway>>) -> Response {
    let runtime = gateway.runtime();
    let upstreams: Vec<Value> = runtime
        .upstreams
        .values()
        .map(|u| json!({ "name": &*u.name, "targets": u.targets.len(), "healthy": u.healthy_targets() }))
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "ready": gateway.is_ready(),
            "routes": runtime.router.routes().len(),
            "upstreams": upstreams,
            "api_keys": gateway.services.api_keys.is_some(),
            "audit_dropped": gateway.audit().dropped(),
        }),
    )
}

/// A fresh admin token (256 random bits, base64url) and its SHA-256 hex for `admin.token_sha256`.
pub fn new_admin_token() -> (String, String) {
    use base64::Engine;
    use rand::Rng;
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    (token, hash)
}
