//! `[validation]`: the gateway-wide threat limits that apply to every route's bodies.

use schemars::JsonSchema;
use serde::Deserialize;

use super::json_limits::JsonLimits;

/// `[validation]`: limits on every body, with or without a contract.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationSettings {
    /// Limits on every JSON body (`application/json`, `+json`).
    #[serde(default)]
    pub json: JsonLimits,
}
