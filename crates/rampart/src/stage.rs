//! `Stage`: every step of the request and response paths, named once. A leaf (it imports
//! nothing of the crate), so that the request context and the audit record can name the stage
//! that refused a request; `pipeline::order` lists the stages in order.

/// Every step of the request and response paths. The derive order is the pipeline order, and
/// `pipeline::order::REQUEST_ORDER` / `RESPONSE_ORDER` list it as data (tested against
/// `docs/pipeline.md`). Policies run at the stages of `pipeline::order::POLICY_STAGES`; the others are the
/// service's own steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// A valid incoming `X-Request-Id` is kept, otherwise one is generated.
    RequestId,
    /// The audit body records the final status, bytes and latency when the response ends.
    Audit,
    /// `error::into_response` is the one place an error becomes a response; panics become 500s.
    ErrorMapping,
    /// A client address or network blocked by a detector or an operator (`policy::detect`) is
    /// refused (403 `blocked`, `Retry-After`) before anything else runs.
    Blocklist,
    /// Refused methods, URI length, header count, path normalization (after the HTTP/1 framing
    /// guard, which runs before hyper).
    Hygiene,
    /// Host, normalized path and method; no route is a 404, never a proxied request.
    Routing,
    /// CORS preflights are answered here, without credentials.
    Cors,
    /// Request validation of the head: the declared operation (404/405), its path, query, header
    /// and cookie parameters, the declared content type (415). Cheap, before any cryptography.
    Validate,
    /// Rate limits keyed by address, route or header: before any cryptography.
    RateLimitByAddress,
    /// Sets the principal (JWT, introspection, API key, mTLS, Basic; DPoP, binding, revocation);
    /// a blocked caller is refused here.
    Authenticate,
    /// Rate limits keyed by principal, key, client or claim; quotas.
    RateLimitByPrincipal,
    /// Scopes, roles, RBAC permissions, claims.
    Authorize,
    /// The body limit on the declared length and on the stream, before the upstream is used. A
    /// body some policy reads (`Policy::reads_body`) is read whole here; others stream.
    Body,
    /// Request validation of the body, read whole and bounded: JSON/XML threat limits, the
    /// contract's body schema, sanitization of marked fields (which may replace the body).
    ValidateBody,
    /// Concurrency limit, hop-by-hop headers, `X-Forwarded-*`, credentials stripped, identity
    /// headers set.
    UpstreamRequest,
    /// The pooled upstream request.
    Proxy,
    /// Response: the contract's response schema (strip, enforce or report undeclared data).
    ValidateResponse,
    /// Response: upstream header scrubbing, 5xx masking, the leak scan (stack traces, SQL errors,
    /// private keys).
    MaskUpstream,
    /// Response: security headers on every response, the gateway's own included.
    SecurityHeaders,
    /// Response: CORS headers for allowed origins.
    CorsHeaders,
    /// Response: the audit record is written when the body ends.
    AuditRecord,
}

impl Stage {
    /// The stage's name in audit records (`refused_by`) and span names.
    pub fn name(self) -> &'static str {
        match self {
            Self::RequestId => "request_id",
            Self::Audit => "audit",
            Self::ErrorMapping => "error_mapping",
            Self::Blocklist => "blocklist",
            Self::Hygiene => "hygiene",
            Self::Routing => "routing",
            Self::Cors => "cors",
            Self::Validate => "validate",
            Self::RateLimitByAddress => "rate_limit_by_address",
            Self::Authenticate => "authenticate",
            Self::RateLimitByPrincipal => "rate_limit_by_principal",
            Self::Authorize => "authorize",
            Self::Body => "body",
            Self::ValidateBody => "validate_body",
            Self::UpstreamRequest => "upstream_request",
            Self::Proxy => "proxy",
            Self::ValidateResponse => "validate_response",
            Self::MaskUpstream => "mask_upstream",
            Self::SecurityHeaders => "security_headers",
            Self::CorsHeaders => "cors_headers",
            Self::AuditRecord => "audit_record",
        }
    }
}
