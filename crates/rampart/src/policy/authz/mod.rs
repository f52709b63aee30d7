//! Authorization: what an authenticated caller may do on a route.
//!
//! Threat: a valid credential used beyond its grant (a read-only token writing, one tenant's
//! token reading another's data). Invariants: requirements are checked on the verified principal
//! only, never on request data; every condition listed must hold (all-of, with explicit `any_`
//! lists); roles grant permissions only through the configured RBAC table (least privilege: a role
//! grants nothing unless listed); a missing scope answers 403 `insufficient_scope` naming the
//! required scopes (RFC 6750 section 3.1), any other shortfall a plain 403.

pub mod config;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

pub use config::{AuthorizeConfig, RbacConfig};

use crate::context::{Principal, RequestCtx};
use crate::error::GatewayError;
use crate::pipeline::{Flow, Policy, Stage};

pub use crate::error::denial::Shortfall;

/// The authorization stage of one route.
pub struct Authorize {
    scopes: Vec<String>,
    any_scopes: Vec<String>,
    roles: Vec<String>,
    any_roles: Vec<String>,
    permissions: Vec<String>,
    claims: BTreeMap<String, String>,
    /// role -> permissions, shared by all routes.
    rbac: Arc<BTreeMap<String, Vec<String>>>,
}

impl Authorize {
    pub fn new(config: &AuthorizeConfig, rbac: Arc<BTreeMap<String, Vec<String>>>) -> Self {
        Self {
            scopes: config.scopes.clone(),
            any_scopes: config.any_scopes.clone(),
            roles: config.roles.clone(),
            any_roles: config.any_roles.clone(),
            permissions: config.permissions.clone(),
            claims: config.claims.clone(),
            rbac,
        }
    }

    /// Checks every requirement against the principal.
    pub fn check(&self, principal: &Principal) -> Result<(), Shortfall> {
        let has_scope = |s: &String| principal.scopes.contains(s);
        if !self.scopes.iter().all(has_scope) {
            return Err(Shortfall::Scope(self.scopes.join(" ")));
        }
        if !self.any_scopes.is_empty() && !self.any_scopes.iter().any(has_scope) {
            return Err(Shortfall::Scope(self.any_scopes.join(" ")));
        }
        let has_role = |r: &String| principal.roles.contains(r);
        if !self.roles.iter().all(has_role) {
            return Err(Shortfall::Other(format!("requires roles {:?}", self.roles)));
        }
        if !self.any_roles.is_empty() && !self.any_roles.iter().any(has_role) {
            return Err(Shortfall::Other(format!(
                "requires one of roles {:?}",
                self.any_roles
            )));
        }
        if !self.permissions.is_empty() {
            let granted: HashSet<&String> = principal
                .roles
                .iter()
                .filter_map(|role| self.rbac.get(role))
                .flatten()
                .collect();
            if let Some(missing) = self.permissions.iter().find(|p| !granted.contains(p)) {
                return Err(Shortfall::Other(format!(
                    "no role grants permission {missing:?}"
                )));
            }
        }
        for (claim, expected) in &self.claims {
            let matches = match principal.claims.get(claim) {
                Some(Value::String(s)) => s == expected,
                Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(expected)),
                Some(Value::Bool(b)) => b.to_string() == *expected,
                Some(Value::Number(n)) => n.to_string() == *expected,
                _ => false,
            };
            if !matches {
                return Err(Shortfall::Other(format!("claim {claim:?} does not match")));
            }
        }
        Ok(())
    }
}

impl Policy for Authorize {
    fn name(&self) -> &'static str {
        "authz"
    }

    fn stage(&self) -> Stage {
        Stage::Authorize
    }

    fn on_request<'a>(
        &'a self,
        _req: &'a mut http::request::Parts,
        cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<Flow, GatewayError>> {
        let result = match &cx.principal {
            // The pipeline runs authentication first; no principal here is a configuration bug,
            // and the safe answer is a refusal.
            None => Err(GatewayError::Forbidden(Shortfall::Other(
                "no principal".into(),
            ))),
            Some(principal) => self
                .check(principal)
                .map(|()| Flow::Continue)
                .map_err(GatewayError::Forbidden),
        };
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests;
