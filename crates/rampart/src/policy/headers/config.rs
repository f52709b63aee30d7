//! Security response headers. Each field is the header's value; an empty string means the gateway
//! does not set that header and leaves whatever the upstream sends (`check` flags it). Unset
//! fields in a route inherit the global `[security_headers]` table, which defaults to the values
//! below.

use schemars::JsonSchema;
use serde::Deserialize;

pub const DEFAULT_HSTS: &str = "max-age=31536000; includeSubDomains";
pub const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
pub const DEFAULT_X_FRAME_OPTIONS: &str = "DENY";
pub const DEFAULT_X_CONTENT_TYPE_OPTIONS: &str = "nosniff";
pub const DEFAULT_REFERRER_POLICY: &str = "no-referrer";

#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityHeadersConfig {
    /// `Strict-Transport-Security`, sent on TLS listeners only.
    #[serde(default)]
    pub strict_transport_security: Option<String>,
    #[serde(default)]
    pub content_security_policy: Option<String>,
    #[serde(default)]
    pub x_frame_options: Option<String>,
    #[serde(default)]
    pub x_content_type_options: Option<String>,
    #[serde(default)]
    pub referrer_policy: Option<String>,
}
