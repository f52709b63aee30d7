//! Authentication: who is calling. Sets `RequestCtx::principal` or refuses the request.
//!
//! Threat: callers without valid credentials reaching the upstream; credentials leaking through
//! URLs. Invariants: a route accepts only the methods it names (today: JWT bearer tokens from named
//! issuers); a request without credentials, with a credential in the query string, or with an
//! invalid one never reaches the upstream; the client learns only the RFC 6750 error code
//! (`invalid_request`, `invalid_token`), while the precise reason goes to the audit log.

pub mod api_key;
pub mod basic;
mod bearer;
pub mod brute_force;
mod challenge;
pub mod config;
mod doorkeeper;
pub mod dpop;
pub mod introspect;
pub mod jwks;
pub mod jwt;
pub mod mtls;
pub mod revocation;
mod strict_json;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

pub use api_key::ApiKeys;
pub use dpop::{DpopConfig, DpopVerifier, ReplayCache};

use bearer::TokenScheme;
pub use config::{AuthConfig, JwtIssuerConfig, RouteAuthConfig};
use dpop::ProofTarget;
pub use introspect::{IntrospectionConfig, Introspector};
pub use jwt::JwtIssuer;

use crate::config::Issue;
use crate::context::{Principal, RequestCtx};
use crate::error::GatewayError;
use crate::pipeline::{Flow, Policy, Stage};

pub use crate::error::denial::{AuthFailure, FailureKind};

/// API keys as a route accepts them: the service and the header they come in.
#[derive(Clone)]
pub struct KeyAuth {
    pub keys: Arc<ApiKeys>,
    pub header: http::HeaderName,
}

/// The authentication stage of one route.
pub struct Authenticate {
    issuers: Vec<Arc<JwtIssuer>>,
    introspectors: Vec<Arc<Introspector>>,
    api_keys: Option<KeyAuth>,
    mtls: bool,
    dpop: Option<Arc<DpopVerifier>>,
    require_dpop: bool,
    basic: Option<Arc<basic::BasicAuth>>,
    revocations: Option<Arc<revocation::Revocations>>,
    guard: Option<Arc<brute_force::BruteForceGuard>>,
    blocks: Option<Arc<crate::policy::detect::blocks::BlockList>>,
}

impl Authenticate {
    pub fn new(
        issuers: Vec<Arc<JwtIssuer>>,
        api_keys: Option<KeyAuth>,
        guard: Option<Arc<brute_force::BruteForceGuard>>,
    ) -> Self {
        Self {
            issuers,
            introspectors: Vec::new(),
            api_keys,
            mtls: false,
            dpop: None,
            require_dpop: false,
            basic: None,
            revocations: None,
            guard,
            blocks: None,
        }
    }

    /// Refuse callers on this block list (raised by a detector or an operator).
    pub fn with_blocks(mut self, blocks: Arc<crate::policy::detect::blocks::BlockList>) -> Self {
        self.blocks = Some(blocks);
        self
    }

    /// Also accept opaque tokens checked by these introspection servers.
    pub fn with_introspection(mut self, introspectors: Vec<Arc<Introspector>>) -> Self {
        self.introspectors = introspectors;
        self
    }

    /// Also accept a verified TLS client certificate as the credential.
    pub fn with_mtls(mut self, mtls: bool) -> Self {
        self.mtls = mtls;
        self
    }

    /// Check DPoP proofs for DPoP-bound tokens with this verifier; with `required`, refuse plain
    /// bearer tokens too.
    pub fn with_dpop(mut self, verifier: Arc<DpopVerifier>, required: bool) -> Self {
        self.dpop = Some(verifier);
        self.require_dpop = required;
        self
    }

    /// Also accept HTTP Basic credentials of these users.
    pub fn with_basic(mut self, users: Arc<basic::BasicAuth>) -> Self {
        self.basic = Some(users);
        self
    }

    /// Refuse tokens on this revocation list.
    pub fn with_revocations(mut self, revocations: Arc<revocation::Revocations>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Authentication with brute-force accounting around it.
    async fn guarded(
        &self,
        req: &http::request::Parts,
        cx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        if let Some(guard) = &self.guard
            && let Some(retry_after_s) = guard.blocked_for(cx.client_ip).await
        {
            return Err(GatewayError::ClientBlocked { retry_after_s });
        }
        let Err(mut failure) = self.authenticate(req, cx).await else {
            return self.caller_not_blocked(cx);
        };
        if let Some(guard) = &self.guard
            && matches!(
                failure.kind,
                FailureKind::InvalidRequest | FailureKind::InvalidToken
            )
            && guard.record_failure(cx.client_ip).await
        {
            failure.reason = format!("{} (client now blocked)", failure.reason).into();
        }
        self.count_failure(&req.headers, failure.kind);
        failure.challenges = self.challenges(&req.headers, failure.kind);
        Err(GatewayError::Unauthenticated(failure))
    }

    /// An authenticated caller blocked by a detector (a shared key) or an operator is refused.
    fn caller_not_blocked(&self, cx: &RequestCtx) -> Result<(), GatewayError> {
        let (Some(blocks), Some(principal)) = (&self.blocks, &cx.principal) else {
            return Ok(());
        };
        let key_id = principal.method.key_id();
        match blocks.caller_blocked(key_id.as_deref(), &principal.subject) {
            Some(blocked) => Err(GatewayError::Blocked {
                by: blocked.by,
                retry_after_s: blocked.retry_after_s,
            }),
            None => Ok(()),
        }
    }

    /// Finds the caller, then holds a certificate-bound token to its certificate.
    async fn authenticate(
        &self,
        req: &http::request::Parts,
        cx: &mut RequestCtx,
    ) -> Result<(), AuthFailure> {
        let principal = self.credential_principal(req, cx).await?;
        mtls::check_certificate_binding(&principal, cx.conn.client_cert.as_deref())?;
        cx.principal = Some(principal);
        Ok(())
    }

    /// The principal of the first credential the route accepts: an API key, a bearer token, or
    /// else the client certificate.
    async fn credential_principal(
        &self,
        req: &http::request::Parts,
        cx: &RequestCtx,
    ) -> Result<Arc<Principal>, AuthFailure> {
        if bearer::query_has_credential(req.uri.query()) {
            return Err(AuthFailure::invalid_request(
                "credential in the query string",
            ));
        }
        if let Some(key_auth) = &self.api_keys {
            let mut values = req.headers.get_all(&key_auth.header).iter();
            if let Some(value) = values.next() {
                if values.next().is_some() {
                    return Err(AuthFailure::invalid_request("more than one API key header"));
                }
                let key = value
                    .to_str()
                    .map_err(|_| AuthFailure::invalid_token("malformed API key"))?;
                return key_auth.keys.authenticate(key).await.map(Arc::new);
            }
        }
        if let Some(users) = &self.basic
            && let Some(credentials) = bearer::basic_credentials(&req.headers)
        {
            return users.authenticate(credentials, cx.conn.tls).await;
        }
        let accepts_tokens = !self.issuers.is_empty() || !self.introspectors.is_empty();
        let token = if accepts_tokens {
            bearer::access_token(&req.headers)?
        } else {
            None
        };
        let Some((scheme, token)) = token else {
            return match (&cx.conn.client_cert, self.mtls) {
                (Some(cert), true) => Ok(Arc::new(mtls::certificate_principal(cert))),
                _ => Err(AuthFailure::missing("no credentials")),
            };
        };
        let looks_like_jws = memchr::memchr_iter(b'.', token.as_bytes()).count() == 2;
        let principal = match self.introspectors.first() {
            Some(introspector) if !looks_like_jws || self.issuers.is_empty() => {
                introspector.verify(token).await?
            }
            _ => self.issuer_for(token)?.verify(token).await?,
        };
        if let Some(revocations) = &self.revocations {
            revocations.check(&principal, token)?;
        }
        self.check_possession(req, cx, scheme, token, &principal)
            .await?;
        Ok(principal)
    }

    /// RFC 9449 section 7: a DPoP-bound token needs the `DPoP` scheme and a valid proof; an unbound
    /// token may not pretend to be bound; a route requiring DPoP takes no plain bearer tokens.
    async fn check_possession(
        &self,
        req: &http::request::Parts,
        cx: &RequestCtx,
        scheme: TokenScheme,
        token: &str,
        principal: &Principal,
    ) -> Result<(), AuthFailure> {
        let bound = dpop::bound_key(&principal.claims);
        match (scheme, bound, &self.dpop) {
            (TokenScheme::Bearer, None, _) if !self.require_dpop => Ok(()),
            (TokenScheme::Bearer, None, _) => Err(AuthFailure::invalid_dpop_proof(
                "this route requires DPoP-bound tokens",
            )),
            (TokenScheme::Bearer, Some(_), _) => Err(AuthFailure::invalid_dpop_proof(
                "DPoP-bound token presented as Bearer (downgrade)",
            )),
            (TokenScheme::Dpop, None, _) => Err(AuthFailure::invalid_token(
                "DPoP scheme with a token that is not DPoP-bound",
            )),
            (TokenScheme::Dpop, Some(_), None) => Err(AuthFailure::invalid_token(
                "DPoP is not accepted on this route",
            )),
            (TokenScheme::Dpop, Some(jkt), Some(verifier)) => {
                let target = ProofTarget {
                    method: req.method.as_str(),
                    uri: request_uri(req, cx),
                };
                verifier.verify(&req.headers, &target, token, jkt).await
            }
        }
    }

    /// Picks the issuer by the token's (unverified) `iss`; the chosen issuer then verifies it all.
    fn issuer_for(&self, token: &str) -> Result<&Arc<JwtIssuer>, AuthFailure> {
        if let [only] = self.issuers.as_slice() {
            return Ok(only);
        }
        let iss = unverified_issuer(token)
            .ok_or_else(|| AuthFailure::invalid_token("no readable iss"))?;
        self.issuers
            .iter()
            .find(|i| i.issuer() == iss)
            .ok_or_else(|| AuthFailure::invalid_token("issuer not accepted on this route"))
    }
}

/// `scheme://authority/path` as the client addressed this request (for DPoP `htu`). Behind a
/// trusted proxy that terminates TLS, its `X-Forwarded-Proto` and `X-Forwarded-Host` say how the
/// client addressed it (the last value: the one the nearest proxy set).
fn request_uri(req: &http::request::Parts, cx: &RequestCtx) -> String {
    let forwarded = |name: &str| {
        cx.from_trusted_proxy
            .then(|| req.headers.get_all(name).iter().next_back()?.to_str().ok())
            .flatten()
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let scheme = match forwarded("x-forwarded-proto") {
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        Some(proto) if proto.eq_ignore_ascii_case("http") => "http",
        _ if cx.conn.tls => "https",
        _ => "http",
    };
    let authority = forwarded("x-forwarded-host")
        .or_else(|| req.uri.authority().map(http::uri::Authority::as_str))
        .or_else(|| {
            req.headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("");
    // Only a well-formed authority: `Host: example.com/a?` must not move the path of the URI.
    let authority = authority
        .parse::<http::uri::Authority>()
        .ok()
        .filter(|a| a.as_str() == authority && !authority.contains('@'))
        .map_or_else(String::new, |a| a.as_str().to_owned());
    format!("{scheme}://{authority}{}", req.uri.path())
}

fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

impl Policy for Authenticate {
    fn name(&self) -> &'static str {
        "authn"
    }

    fn stage(&self) -> Stage {
        Stage::Authenticate
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut http::request::Parts,
        cx: &'a mut RequestCtx,
    ) -> BoxFuture<'a, Result<Flow, GatewayError>> {
        Box::pin(async move {
            self.guarded(req, cx).await?;
            Ok(Flow::Continue)
        })
    }
}

/// Checks the `[auth]` table.
pub fn validate(config: &AuthConfig, issues: &mut Vec<Issue>) {
    let mut names = std::collections::HashSet::new();
    for (i, issuer) in config.jwt.iter().enumerate() {
        let ptr = format!("/auth/jwt/{i}");
        if !names.insert(issuer.name.as_str()) {
            issues.push(Issue::new(
                format!("{ptr}/name"),
                format!("duplicate issuer name `{}`", issuer.name),
            ));
        }
        validate_issuer(issuer, &ptr, issues);
    }
    let mut names = std::collections::HashSet::new();
    for (i, server) in config.introspection.iter().enumerate() {
        let ptr = format!("/auth/introspection/{i}");
        if !names.insert(server.name.as_str()) {
            issues.push(Issue::new(
                format!("{ptr}/name"),
                format!("duplicate name `{}`", server.name),
            ));
        }
        introspect::validate(server, &ptr, issues);
    }
    dpop::validate(&config.dpop, issues);
    basic::validate(&config.basic, issues);
}

fn validate_issuer(c: &JwtIssuerConfig, ptr: &str, issues: &mut Vec<Issue>) {
    jwt::validate_typ(c, ptr, issues);
    let sources = [
        c.jwks_url.is_some(),
        c.discovery,
        c.keys_file.is_some(),
        c.hmac_secret.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        issues.push(Issue::new(
            ptr,
            "set exactly one of `jwks_url`, `discovery`, `keys_file`, `hmac_secret`",
        ));
    }
    if c.audiences.is_empty() || c.audiences.iter().any(String::is_empty) {
        issues.push(Issue::new(
            format!("{ptr}/audiences"),
            "at least one non-empty audience is required",
        ));
    }
    if c.issuer.is_empty() {
        issues.push(Issue::new(format!("{ptr}/issuer"), "must not be empty"));
    }
    if c.algorithms.is_empty() {
        issues.push(Issue::new(
            format!("{ptr}/algorithms"),
            "list the accepted algorithms",
        ));
    }
    let hmac = c.algorithms.iter().any(|a| a.is_hmac());
    let asymmetric = c.algorithms.iter().any(|a| !a.is_hmac());
    if hmac && c.hmac_secret.is_none() {
        issues.push(Issue::new(
            format!("{ptr}/algorithms"),
            "HS256/384/512 need an explicit `hmac_secret`",
        ));
    }
    if c.hmac_secret.is_some() && asymmetric {
        issues.push(Issue::new(
            format!("{ptr}/algorithms"),
            "an HMAC issuer accepts HMAC algorithms only",
        ));
    }
    if c.leeway_s > config::MAX_LEEWAY_S {
        issues.push(Issue::new(
            format!("{ptr}/leeway_s"),
            format!("at most {}", config::MAX_LEEWAY_S),
        ));
    }
    for (field, url) in [
        ("jwks_url", c.jwks_url.as_deref()),
        ("issuer", c.discovery.then_some(c.issuer.as_str())),
    ] {
        if let Some(url) = url
            && !url.starts_with("https://")
            && !(c.allow_insecure_http && url.starts_with("http://"))
        {
            issues.push(Issue::new(
                format!("{ptr}/{field}"),
                "must be https:// (or set allow_insecure_http for tests)",
            ));
        }
    }
    if c.jwks_cache.min_ttl_s > c.jwks_cache.max_ttl_s {
        issues.push(Issue::new(
            format!("{ptr}/jwks_cache"),
            "min_ttl_s is above max_ttl_s",
        ));
    }
    if c.max_token_bytes < 256 || c.max_token_bytes > 65_536 {
        issues.push(Issue::new(
            format!("{ptr}/max_token_bytes"),
            "must be between 256 and 65536",
        ));
    }
}

/// Builds every introspection client.
pub fn build_introspectors(
    config: &AuthConfig,
) -> Result<HashMap<String, Arc<Introspector>>, Vec<Issue>> {
    let mut built = HashMap::new();
    let mut issues = Vec::new();
    for (i, c) in config.introspection.iter().enumerate() {
        match Introspector::build(c) {
            Ok(x) => {
                built.insert(c.name.clone(), Arc::new(x));
            }
            Err(why) => issues.push(Issue::new(format!("/auth/introspection/{i}"), why)),
        }
    }
    if issues.is_empty() {
        Ok(built)
    } else {
        Err(issues)
    }
}

/// Builds every issuer; errors point at the issuer's config.
pub fn build_issuers(config: &AuthConfig) -> Result<HashMap<String, Arc<JwtIssuer>>, Vec<Issue>> {
    let mut issuers = HashMap::new();
    let mut issues = Vec::new();
    for (i, issuer) in config.jwt.iter().enumerate() {
        match JwtIssuer::build(issuer) {
            Ok(built) => {
                issuers.insert(issuer.name.clone(), Arc::new(built));
            }
            Err(why) => issues.push(Issue::new(format!("/auth/jwt/{i}"), why)),
        }
    }
    if issues.is_empty() {
        Ok(issuers)
    } else {
        Err(issues)
    }
}
