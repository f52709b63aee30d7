//! `[validation]`: the gateway-wide threat limits that apply to every route's bodies.

use schemars::JsonSchema;
use serde::Deserialize;

use super::json_limits::JsonLimits;
use crate::policy::sanitize::config::HtmlPolicyConfig;

/// `[validation]`: limits on every body, with or without a contract, and the HTML allow-list of
/// sanitized fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationSettings {
    /// Limits on every JSON body (`application/json`, `+json`).
    #[serde(default)]
    pub json: JsonLimits,
    /// What markup survives in sanitized fields (`x-rampart-sanitize: html` in a contract, or a
    /// route's `sanitize`). The default keeps basic text formatting and links, nothing else.
    #[serde(default)]
    pub html: HtmlPolicyConfig,
    /// Limits on XML bodies an operation declares (no DTD is ever accepted, whatever these say).
    #[serde(default)]
    pub xml: super::xml::XmlLimits,
    /// Limits on multipart bodies an operation declares.
    #[serde(default)]
    pub multipart: super::multipart::MultipartLimits,
}

/// `openapi = { spec_file = "...", mode = "enforce" }` on a route or an upstream: the contract the
/// route's requests (and responses) must follow. A route's own contract replaces its upstream's.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenApiConfig {
    /// An OpenAPI 3.0 or 3.1 document, JSON or YAML (relative to the config file). `$ref`s may
    /// point into it or to files beside it, never outside its directory and never to a URL.
    pub spec_file: std::path::PathBuf,
    /// `enforce` refuses what the contract does not declare; `report` lets it through and logs,
    /// counts and audits each violation (to roll a contract out safely).
    #[serde(default)]
    pub mode: Mode,
    /// Where the spec's paths start in the request path; by default the path of its first
    /// `servers` URL (`/v1` for `https://api.example.com/v1`), else `/`.
    #[serde(default)]
    pub base_path: Option<String>,
    /// The status of a refusal: 400 (default) or 422. Nothing else: a 401, 407 or 413 would tell
    /// clients something other than "this request does not match the contract".
    #[serde(default = "default_refusal_status")]
    #[schemars(range(min = 400, max = 422), extend("enum" = [400, 422]))]
    pub refusal_status: u16,
    /// Query parameters the operation does not declare: refused by default; `allow` lets them
    /// through (an operation can also say `x-rampart-unknown-query: allow`).
    #[serde(default)]
    pub unknown_query: UnknownQuery,
    /// What happens to a response that does not match its declared schema: `strip` removes the
    /// undeclared properties (default), `enforce` replaces the response by a masked 502, `report`
    /// only logs and counts, `off` does not read responses.
    #[serde(default)]
    pub responses: ResponseMode,
    /// Responses read for checking are bounded: a larger one is a masked 502 (`enforce`, `strip`)
    /// or passes unread (`report`).
    #[serde(default = "default_max_response_bytes")]
    #[schemars(range(min = 1, max = crate::config::bounds::MAX_BODY_BYTES))]
    pub max_response_bytes: u64,
}

fn default_refusal_status() -> u16 {
    400
}

fn default_max_response_bytes() -> u64 {
    1024 * 1024
}

/// Whether violations are refused or only reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Enforce,
    Report,
}

/// Undeclared query parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownQuery {
    #[default]
    Refuse,
    Allow,
}

/// What response checking does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseMode {
    #[default]
    Strip,
    Enforce,
    Report,
    Off,
}
