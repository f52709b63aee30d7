//! What a refusal says about itself, as plain data: the RFC 6750 class of an authentication
//! failure, what an authorization lacked, the rate-limit headers of a 429. Policies fill these in;
//! `GatewayError` carries them; the response mapping reads them. A leaf: it imports no policy.

use std::borrow::Cow;

use http::HeaderValue;

/// The RFC 6750 class of an authentication failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No credentials at all: `WWW-Authenticate: Bearer realm=...` without an error code.
    Missing,
    /// Malformed request (400, `invalid_request`).
    InvalidRequest,
    /// Expired, revoked, malformed or forged token (401, `invalid_token`).
    InvalidToken,
    /// The credential could not be checked (introspection server down): refused, 503.
    Unavailable,
    /// A missing or invalid DPoP proof for a DPoP-bound token (401, `invalid_dpop_proof`).
    InvalidDpopProof,
    /// The proof lacks a fresh server nonce (401, `use_dpop_nonce`, with `DPoP-Nonce`).
    UseDpopNonce,
}

/// Why authentication failed: the kind is public, the reason is for the audit log only.
#[derive(Debug, Clone)]
pub struct AuthFailure {
    pub kind: FailureKind,
    pub reason: Cow<'static, str>,
    /// A fresh nonce to send back in `DPoP-Nonce` (with `UseDpopNonce`).
    pub dpop_nonce: Option<http::HeaderValue>,
    /// The `WWW-Authenticate` values for the route (see `challenge`); empty: the default `Bearer`.
    pub challenges: Vec<http::HeaderValue>,
    /// The user name the failed credentials claimed (HTTP Basic), bounded, for the detectors.
    /// (`Arc<String>`, a thin pointer: this struct is inside every `GatewayError`.)
    pub claimed_user: Option<std::sync::Arc<String>>,
}

impl AuthFailure {
    pub(crate) fn new(kind: FailureKind, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            dpop_nonce: None,
            challenges: Vec::new(),
            claimed_user: None,
        }
    }
    pub fn invalid_dpop_proof(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(FailureKind::InvalidDpopProof, reason)
    }
    pub fn use_dpop_nonce(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(FailureKind::UseDpopNonce, reason)
    }
    pub fn missing(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(FailureKind::Missing, reason)
    }
    pub fn invalid_request(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(FailureKind::InvalidRequest, reason)
    }
    pub fn invalid_token(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(FailureKind::InvalidToken, reason)
    }
    pub fn unavailable(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(FailureKind::Unavailable, reason)
    }
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Why a principal is not allowed.
#[derive(Debug, Clone)]
pub enum Shortfall {
    /// Missing scopes; the value lists the scopes that would satisfy the route.
    Scope(String),
    /// A role, permission or claim requirement failed (the text is for the audit log).
    Other(String),
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Scope(scopes) => write!(f, "missing scope (requires {scopes})"),
            Self::Other(why) => f.write_str(why),
        }
    }
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
#[derive(Debug, Clone)]
pub struct RateLimitHeaders {
    pub policy: HeaderValue,
    pub state: HeaderValue,
}

impl RateLimitHeaders {
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        headers.insert("ratelimit-policy", self.policy.clone());
        headers.insert("ratelimit", self.state.clone());
    }
}
