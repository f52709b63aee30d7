//! Authentication settings: JWT issuers (global `[[auth.jwt]]`) and what each route accepts.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::secret::SecretSource;

pub const DEFAULT_LEEWAY_S: u64 = 30;
/// RFC 8725 practice: clocks may disagree a little, not a lot.
pub const MAX_LEEWAY_S: u64 = 60;
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
pub const DEFAULT_JWKS_MIN_TTL_S: u64 = 60;
pub const DEFAULT_JWKS_MAX_TTL_S: u64 = 86_400;
pub const DEFAULT_JWKS_REFETCH_COOLDOWN_S: u64 = 30;
pub const DEFAULT_TOKEN_CACHE_ENTRIES: u64 = 100_000;
/// HMAC secrets shorter than this are refused (RFC 7518 section 3.2 asks for the hash size).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// Global authentication settings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Trusted JWT issuers, referenced by name from routes.
    #[serde(default)]
    pub jwt: Vec<JwtIssuerConfig>,
    /// Authorization servers that introspect opaque tokens (RFC 7662).
    #[serde(default)]
    pub introspection: Vec<super::introspect::IntrospectionConfig>,
    /// Users for HTTP Basic (routes opt in with `basic = true`).
    #[serde(default)]
    pub basic: super::basic::BasicAuthConfig,
    /// How DPoP proofs (RFC 9449) are checked for DPoP-bound tokens.
    #[serde(default)]
    pub dpop: super::dpop::DpopConfig,
}

/// The algorithms a JWT issuer may use. `none` does not exist here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum JwtAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl JwtAlgorithm {
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    pub(crate) fn to_jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Self::RS256 => A::RS256,
            Self::RS384 => A::RS384,
            Self::RS512 => A::RS512,
            Self::PS256 => A::PS256,
            Self::PS384 => A::PS384,
            Self::PS512 => A::PS512,
            Self::ES256 => A::ES256,
            Self::ES384 => A::ES384,
            Self::EdDSA => A::EdDSA,
            Self::HS256 => A::HS256,
            Self::HS384 => A::HS384,
            Self::HS512 => A::HS512,
        }
    }

    /// The name used in the `alg` header.
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
        }
    }
}

/// One trusted issuer of JWT access tokens.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuerConfig {
    /// Name used by routes (`auth = { jwt = ["corp"] }`).
    pub name: String,
    /// The exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// Accepted algorithms. The token's `alg` header only selects among these.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Where the keys come from: exactly one of `jwks_url`, `discovery`, `keys_file`, `hmac_secret`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Find `jwks_uri` at `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery: bool,
    /// A JWKS or JWK JSON file, or a PEM public key.
    #[serde(default)]
    pub keys_file: Option<PathBuf>,
    /// Shared secret for HS256/384/512, at least 32 bytes, from a file or an environment variable.
    #[serde(default)]
    pub hmac_secret: Option<SecretSource>,
    /// Allowed clock skew for `exp`, `nbf` and `iat`, at most 60 seconds.
    #[serde(default = "default_leeway")]
    #[schemars(range(max = crate::config::bounds::MAX_SECONDS))]
    pub leeway_s: u64,
    /// Refuse tokens whose `exp - iat` is longer than this.
    #[serde(default)]
    #[schemars(range(max = crate::config::bounds::MAX_SECONDS))]
    pub max_lifetime_s: Option<u64>,
    /// RFC 9068 access tokens: `typ` must be `at+jwt`, and `sub`, `client_id`, `iat`, `jti` are
    /// required.
    #[serde(default)]
    pub rfc9068: bool,
    /// Accepted JOSE `typ` header values (e.g. `["at+jwt"]`), without the rest of RFC 9068: a token
    /// with another or no `typ` is refused. Compared case-insensitively, with or without the
    /// `application/` prefix (RFC 7515 section 4.1.9). Empty: `typ` is not checked (unless
    /// `rfc9068`, which requires `at+jwt`).
    #[serde(default)]
    pub typ: Vec<String>,
    #[serde(default = "default_max_token_bytes")]
    #[schemars(range(max = crate::config::bounds::MAX_ITEM_BYTES))]
    pub max_token_bytes: usize,
    /// Bounds on how long fetched keys are kept (the response's Cache-Control is clamped to them),
    /// and the least time between two fetches caused by unknown `kid`s.
    #[serde(default)]
    pub jwks_cache: JwksCacheConfig,
    /// Allow `http://` JWKS and discovery URLs (tests only; `check` flags it).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// The claim holding scopes (space-separated string or array).
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
    /// The claim holding roles (array or space-separated string).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwksCacheConfig {
    #[serde(default = "default_min_ttl")]
    #[schemars(range(max = crate::config::bounds::MAX_SECONDS))]
    pub min_ttl_s: u64,
    #[serde(default = "default_max_ttl")]
    #[schemars(range(max = crate::config::bounds::MAX_SECONDS))]
    pub max_ttl_s: u64,
    #[serde(default = "default_cooldown")]
    #[schemars(range(max = crate::config::bounds::MAX_SECONDS))]
    pub refetch_cooldown_s: u64,
}

impl Default for JwksCacheConfig {
    fn default() -> Self {
        Self {
            min_ttl_s: DEFAULT_JWKS_MIN_TTL_S,
            max_ttl_s: DEFAULT_JWKS_MAX_TTL_S,
            refetch_cooldown_s: DEFAULT_JWKS_REFETCH_COOLDOWN_S,
        }
    }
}

/// What a route requires of its callers. A route has either `auth` or `public = true`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteAuthConfig {
    /// JWT issuers (by name) whose bearer tokens are accepted.
    #[serde(default)]
    pub jwt: Vec<String>,
    /// Introspection servers (by name) that check opaque bearer tokens.
    #[serde(default)]
    pub introspection: Vec<String>,
    /// Accept API keys (from the `[api_keys]` header).
    #[serde(default)]
    pub api_key: bool,
    /// Accept a verified TLS client certificate (the listener needs `tls.client_auth`).
    #[serde(default)]
    pub mtls: bool,
    /// Accept HTTP Basic credentials of `[auth.basic]` users (TLS connections only).
    #[serde(default)]
    pub basic: bool,
    /// Accept only DPoP-bound tokens with a valid proof (RFC 9449); plain bearer tokens are refused.
    /// Without it, DPoP-bound tokens still need their proof and unbound bearer tokens pass.
    #[serde(default)]
    pub require_dpop: bool,
}

/// Default grace window of a rotated key: one day.
pub const DEFAULT_ROTATION_GRACE_S: u64 = 86_400;

/// API keys issued by Rampart (stored in `[store]`).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// The server secret keying the stored hashes (at least 32 bytes). Losing it invalidates every
    /// key; leaking it lets a database dump be tested against guesses.
    pub hmac_secret: SecretSource,
    /// The request header carrying the key.
    #[serde(default = "default_key_header")]
    pub header: String,
    /// How long a rotated key keeps working by default.
    #[serde(default = "default_grace")]
    #[schemars(range(max = crate::config::bounds::MAX_SECONDS))]
    pub rotation_grace_s: u64,
    /// While the store cannot be reached, a key verified within this many seconds keeps working
    /// (with the scopes and roles it had then); others get 503 `auth_unavailable`. 0 turns it off.
    #[serde(default = "default_outage_grace")]
    #[schemars(range(max = MAX_OUTAGE_GRACE_S))]
    pub outage_grace_s: u64,
}

/// Default of `api_keys.outage_grace_s`: five minutes.
pub const DEFAULT_OUTAGE_GRACE_S: u64 = 300;
/// Largest `api_keys.outage_grace_s`: one day (a revoked key may work this long during an outage).
pub const MAX_OUTAGE_GRACE_S: u64 = 86_400;

fn default_outage_grace() -> u64 {
    DEFAULT_OUTAGE_GRACE_S
}

fn default_key_header() -> String {
    "x-api-key".to_owned()
}
fn default_grace() -> u64 {
    DEFAULT_ROTATION_GRACE_S
}

fn default_leeway() -> u64 {
    DEFAULT_LEEWAY_S
}
fn default_max_token_bytes() -> usize {
    DEFAULT_MAX_TOKEN_BYTES
}
fn default_min_ttl() -> u64 {
    DEFAULT_JWKS_MIN_TTL_S
}
fn default_max_ttl() -> u64 {
    DEFAULT_JWKS_MAX_TTL_S
}
fn default_cooldown() -> u64 {
    DEFAULT_JWKS_REFETCH_COOLDOWN_S
}
fn default_scope_claim() -> String {
    "scope".to_owned()
}
fn default_roles_claim() -> String {
    "roles".to_owned()
}
