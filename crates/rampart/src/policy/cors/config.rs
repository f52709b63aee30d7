//! CORS settings for one route.

use schemars::JsonSchema;
use serde::Deserialize;

pub const DEFAULT_CORS_MAX_AGE_S: u32 = 600;

/// An allow-list of origins. `https://*.example.com` allows subdomains of example.com (not
/// example.com itself). `*` allows any origin but never together with credentials; `null` is never
/// allowed.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    pub allow_origins: Vec<String>,
    /// Methods allowed cross-origin; defaults to the route's methods.
    #[serde(default)]
    pub allow_methods: Option<Vec<String>>,
    /// Request headers a cross-origin request may send (case-insensitive).
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may expose to the calling script.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer.
    #[serde(default = "default_max_age")]
    #[schemars(range(max = crate::config::bounds::MAX_SECONDS))]
    pub max_age_s: u32,
}

fn default_max_age() -> u32 {
    DEFAULT_CORS_MAX_AGE_S
}
