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
mod tests {
    use super::*;
    use crate::context::AuthMethod;

    fn principal(scopes: &[&str], roles: &[&str], claims: Value) -> Principal {
        Principal {
            subject: "u".into(),
            method: AuthMethod::Jwt("i".into()),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            roles: roles.iter().map(|s| (*s).to_owned()).collect(),
            client_id: None,
            expires_at: None,
            claims: claims.as_object().cloned().unwrap_or_default(),
        }
    }

    fn authorize(toml_text: &str) -> Authorize {
        let config: AuthorizeConfig = toml::from_str(toml_text).unwrap_or_default();
        let mut rbac = BTreeMap::new();
        rbac.insert(
            "writer".to_owned(),
            vec!["orders.read".to_owned(), "orders.write".to_owned()],
        );
        rbac.insert("reader".to_owned(), vec!["orders.read".to_owned()]);
        Authorize::new(&config, Arc::new(rbac))
    }

    #[test]
    fn all_listed_scopes_are_required() {
        let a = authorize("scopes = [\"orders:read\", \"orders:write\"]");
        assert!(
            a.check(&principal(
                &["orders:read", "orders:write", "x"],
                &[],
                Value::Null
            ))
            .is_ok()
        );
        assert!(
            matches!(a.check(&principal(&["orders:read"], &[], Value::Null)), Err(Shortfall::Scope(s)) if s == "orders:read orders:write")
        );
    }

    #[test]
    fn any_scopes_needs_one() {
        let a = authorize("any_scopes = [\"a\", \"b\"]");
        assert!(a.check(&principal(&["b"], &[], Value::Null)).is_ok());
        assert!(a.check(&principal(&["c"], &[], Value::Null)).is_err());
    }

    #[test]
    fn permissions_come_only_from_the_rbac_table() {
        let a = authorize("permissions = [\"orders.write\"]");
        assert!(a.check(&principal(&[], &["writer"], Value::Null)).is_ok());
        assert!(a.check(&principal(&[], &["reader"], Value::Null)).is_err());
        assert!(
            a.check(&principal(&[], &["orders.write"], Value::Null))
                .is_err(),
            "a role named like a permission grants nothing"
        );
    }

    #[test]
    fn claims_must_match_exactly() {
        let a = authorize("claims = { tenant = \"acme\", groups = \"ops\" }");
        let ok = serde_json::json!({"tenant": "acme", "groups": ["dev", "ops"]});
        assert!(a.check(&principal(&[], &[], ok)).is_ok());
        let other = serde_json::json!({"tenant": "acme-evil", "groups": ["ops"]});
        assert!(a.check(&principal(&[], &[], other)).is_err());
        assert!(
            a.check(&principal(&[], &[], serde_json::json!({"groups": ["ops"]})))
                .is_err()
        );
    }
}
