//! `/v1/blocks`: the blocks in force (raised by the detectors, by an operator, or by the
//! brute-force guard), an operator's own block, and lifting one.
//!
//! Without this an operator who sees a legitimate client locked out (a NAT gateway shared with an
//! attacker, a misconfigured batch job) could only restart the gateway, and one who sees an
//! attack could not stop it. Every call sits behind the admin token and is audited like every
//! `/v1` call; blocks raised or lifted here reach every instance sharing Redis.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use super::api::{json_response, noted};
use super::problem;
use crate::audit::rfc3339;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::policy::detect::blocks::OPERATOR;
use crate::policy::detect::subject::Subject;

/// The most blocks listed in one answer (`total` says how many there are).
const MAX_LISTED: usize = 1000;
/// The longest block an operator can set through the API: 30 days.
const MAX_BLOCK_S: u64 = 30 * 24 * 3600;

/// One block as listed.
#[derive(serde::Serialize)]
struct Listed {
    subject: String,
    kind: &'static str,
    /// The detector, `operator`, or `brute_force`.
    by: Arc<str>,
    retry_after_s: u64,
    #[serde(serialize_with = "rfc3339")]
    until: SystemTime,
}

pub(super) async fn list(State(gateway): State<Arc<Gateway>>) -> Response {
    let now = SystemTime::now();
    let (blocks, mut total) = gateway.services.watch.blocks.list(MAX_LISTED);
    let mut listed: Vec<Listed> = blocks
        .into_iter()
        .filter_map(|(subject, block)| {
            Some(Listed {
                retry_after_s: block.seconds_left(now)?,
                kind: subject.kind(),
                subject: subject.to_string(),
                by: block.by,
                until: block.until,
            })
        })
        .collect();
    let (guarded, guarded_total) = gateway.services.brute_force.blocks(MAX_LISTED);
    total += guarded_total;
    listed.extend(guarded.into_iter().map(|(ip, left)| Listed {
        subject: ip.to_string(),
        kind: "address",
        by: Arc::from("brute_force"),
        retry_after_s: left,
        until: now + Duration::from_secs(left),
    }));
    listed.truncate(MAX_LISTED);
    json_response(StatusCode::OK, json!({ "blocks": listed, "total": total }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBlock {
    subject: String,
    duration_s: u64,
}

pub(super) async fn add(State(gateway): State<Arc<Gateway>>, body: Bytes) -> Response {
    let result = async {
        let request: NewBlock = serde_json::from_slice(&body)
            .map_err(|e| GatewayError::InvalidInput(format!("block request: {e}")))?;
        let subject = parse(&request.subject)?;
        if !(1..=MAX_BLOCK_S).contains(&request.duration_s) {
            return Err(GatewayError::InvalidInput(format!(
                "duration_s must be between 1 and {MAX_BLOCK_S}"
            )));
        }
        let until = gateway
            .services
            .watch
            .blocks
            .raise(
                subject.clone(),
                OPERATOR,
                Duration::from_secs(request.duration_s),
            )
            .await
            .map_err(|full| GatewayError::ServiceUnavailable(full.to_string()))?;
        let body =
            json!({ "subject": subject.to_string(), "until": crate::audit::rfc3339_text(until) });
        Ok::<_, GatewayError>(noted(
            json_response(StatusCode::CREATED, body),
            format!("blocked {subject} for {} s", request.duration_s),
        ))
    };
    result.await.unwrap_or_else(|e| problem(&e))
}

pub(super) async fn lift(
    State(gateway): State<Arc<Gateway>>,
    Path(subject): Path<String>,
) -> Response {
    let result = async {
        let subject = parse(&subject)?;
        // The brute-force guard's block first: it needs no Redis.
        let guarded = match subject {
            Subject::Address(ip) => gateway.services.brute_force.unblock(ip).await,
            _ => false,
        };
        let lifted = gateway
            .services
            .watch
            .blocks
            .lift(&subject)
            .await
            .map_err(|_| {
                GatewayError::ServiceUnavailable(
                    "lifted here, but Redis cannot be reached: other instances keep the block"
                        .into(),
                )
            })?;
        if !lifted && !guarded {
            return Err(GatewayError::ResourceNotFound(subject.to_string()));
        }
        Ok::<_, GatewayError>(noted(
            json_response(StatusCode::OK, json!({ "unblocked": subject.to_string() })),
            format!("lifted the block on {subject}"),
        ))
    };
    result.await.unwrap_or_else(|e| problem(&e))
}

fn parse(text: &str) -> Result<Subject, GatewayError> {
    Subject::parse(text).map_err(|why| GatewayError::InvalidInput(why.into()))
}
