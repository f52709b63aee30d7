//! Authorization settings: per-route requirements and the RBAC role table.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// What an authenticated caller must have to use a route. Every listed condition must hold.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeConfig {
    /// All of these scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// At least one of these scopes.
    #[serde(default)]
    pub any_scopes: Vec<String>,
    /// All of these roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// At least one of these roles.
    #[serde(default)]
    pub any_roles: Vec<String>,
    /// All of these permissions, granted through `[rbac.roles]`.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Claims with required values (a string claim equal to the value, or an array claim
    /// containing it).
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
}

/// Roles and the permissions they grant.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RbacConfig {
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
}
