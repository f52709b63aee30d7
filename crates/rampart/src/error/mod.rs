//! `GatewayError` and the only place where an error becomes a response.
//!
//! Every response Rampart makes itself is an RFC 9457 `application/problem+json` document with a
//! stable `code` and the request id. The public part (status, code, title) is one `match` each next
//! to the type; the internal detail (`GatewayError::detail`) goes to the audit log only, never to the
//! client: no library messages, versions or upstream bodies.

use http::header::{ALLOW, CONNECTION, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, StatusCode};

pub mod denial;
mod response;
pub mod violation;

pub use denial::{AuthFailure, FailureKind, RateLimitHeaders, Shortfall};
pub use response::{into_raw_http1, into_response, problem_body};

/// Why the gateway refused or failed a request. The variant is the public decision; the payload is
/// internal detail for the audit log.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// HTTP/1 framing that two parsers could read differently (RFC 9112 section 6.3), or bytes that
    /// are not HTTP. The connection is closed after the response.
    #[error("malformed request: {0}")]
    MalformedRequest(&'static str),
    /// The path is not a valid origin-form path after normalization (encoded slash, bad
    /// percent-encoding, NUL, backslash...).
    #[error("invalid path: {0}")]
    InvalidPath(&'static str),
    #[error("request target longer than {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("request headers exceed {0}")]
    HeadersTooLarge(&'static str),
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("no route for host and path")]
    RouteNotFound,
    #[error("method not allowed on route")]
    MethodNotAllowed { allow: HeaderValue },
    /// A method in `proxy.refuse_methods`; `allow` lists what the matching route allows (empty
    /// when no route matches: RFC 9110 section 10.2.1, no method is allowed there).
    #[error("method {method} refused by configuration")]
    MethodRefused {
        method: http::Method,
        allow: Option<HeaderValue>,
    },
    #[error("CORS preflight refused: {0}")]
    CorsRejected(&'static str),
    /// Missing or invalid credentials (RFC 6750).
    #[error("authentication failed: {0}")]
    Unauthenticated(AuthFailure),
    /// Authenticated, but not allowed on this route.
    #[error("not authorized: {0}")]
    Forbidden(Shortfall),
    /// Too many failed authentications from this client address.
    #[error("client blocked after repeated authentication failures")]
    ClientBlocked { retry_after_s: u64 },
    /// The client address, its network or the authenticated caller is blocked by a detector or
    /// an operator (`policy::detect`); the detector's name is for the audit log.
    #[error("blocked by `{by}`")]
    Blocked {
        by: std::sync::Arc<str>,
        retry_after_s: u64,
    },
    /// Over a rate limit (the limit's name is for the audit log).
    #[error("rate limit `{limit}` exceeded")]
    RateLimited {
        limit: std::sync::Arc<str>,
        retry_after_s: u64,
        headers: Box<RateLimitHeaders>,
    },
    /// A rate limit or quota that fails closed cannot be counted (its shared counter is
    /// unreachable): refused, never let through uncounted.
    #[error("rate limit `{limit}` cannot be counted (fail closed): {cause}")]
    RateLimitUnavailable {
        limit: std::sync::Arc<str>,
        cause: &'static str,
    },
    /// Too many requests in flight or waiting: shed at once.
    #[error("overloaded: {reason}")]
    Overloaded { reason: &'static str },
    #[error("no healthy upstream target")]
    UpstreamUnavailable,
    /// Still in flight at the drain deadline of a graceful shutdown: answered rather than cut.
    #[error("in flight at the drain deadline")]
    ShuttingDown,
    #[error("upstream did not answer within {timeout_ms} ms")]
    UpstreamTimeout { timeout_ms: u64 },
    #[error("upstream request failed: {0}")]
    UpstreamFailed(String),
    /// The upstream answered with a 5xx whose body is masked by the route's policy.
    #[error("upstream answered {0}")]
    UpstreamStatusMasked(StatusCode),
    #[error("the client request body failed: {0}")]
    ClientBody(String),
    /// The client sent its body too slowly (below the minimum rate); its fault, not the upstream's.
    #[error("the client request body timed out: {0}")]
    ClientBodyTimeout(String),
    /// The request head was not complete within `limits.header_read_timeout_ms` (slowloris).
    #[error("the request head was not complete in time")]
    HeadTimeout,
    /// An admin API resource (a key id) that does not exist.
    #[error("not found: {0}")]
    ResourceNotFound(String),
    /// An admin API request body or parameter that is not acceptable.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A dependency (the store) is not configured or not reachable.
    #[error("service unavailable: {0}")]
    ServiceUnavailable(String),
    /// A bug: a panic in a policy or the proxy, caught at the edge.
    #[error("internal error: {0}")]
    Internal(String),
    /// The request does not conform to the route's contract (or to the JSON/XML limits). The
    /// client gets the pointers and reasons, never the values.
    #[error("request refused by validation{}", .0.summary())]
    RequestInvalid(Box<Invalid>),
    /// A body the route cannot read: a content type the operation does not declare, a
    /// content-coded body, a non-JSON body where JSON fields must be sanitized. The reason is
    /// the gateway's own text, for the audit log.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(&'static str),
    /// A path the contract does not declare (the route exists, the operation does not).
    #[error("operation not declared by the contract")]
    OperationNotDeclared,
    /// The upstream's response was refused (response contract, leak scan, size): masked as 502.
    #[error("upstream response refused: {0}")]
    UpstreamResponseRefused(String),
}

/// What a validation refusal carries: the status (400, or 422 where configured), the operation and
/// the violations.
#[derive(Debug)]
pub struct Invalid {
    pub status: StatusCode,
    pub operation: Option<std::sync::Arc<str>>,
    pub violations: Vec<violation::Violation>,
}

impl Invalid {
    /// The operation and failing pointers, for the audit log's reason (never the values).
    fn summary(&self) -> String {
        let pointers: Vec<&str> = self.violations.iter().map(|v| v.pointer.as_str()).collect();
        match &self.operation {
            Some(op) => format!(" ({op}): {}", pointers.join(", ")),
            None => format!(": {}", pointers.join(", ")),
        }
    }
}

impl GatewayError {
    /// The HTTP status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedRequest(_) | Self::InvalidPath(_) | Self::ClientBody(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::ClientBodyTimeout(_) | Self::HeadTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } | Self::MethodRefused { .. } => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            Self::CorsRejected(_) | Self::Forbidden(_) | Self::Blocked { .. } => {
                StatusCode::FORBIDDEN
            }
            Self::ClientBlocked { .. } | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded { .. } | Self::RateLimitUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Unauthenticated(f) => match f.kind {
                FailureKind::InvalidRequest => StatusCode::BAD_REQUEST,
                FailureKind::Missing
                | FailureKind::InvalidToken
                | FailureKind::InvalidDpopProof
                | FailureKind::UseDpopNonce => StatusCode::UNAUTHORIZED,
                FailureKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            },
            Self::UpstreamUnavailable | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamStatusMasked(status) => *status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ResourceNotFound(_) => StatusCode::NOT_FOUND,
            Self::InvalidInput(_) => StatusCode::BAD_REQUEST,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::RequestInvalid(invalid) => invalid.status,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::OperationNotDeclared => StatusCode::NOT_FOUND,
            Self::UpstreamResponseRefused(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The stable machine-readable code, documented in `docs/errors.md`.
    pub fn public_code(&self) -> &'static str {
        match self {
            Self::MalformedRequest(_) => "malformed_request",
            Self::InvalidPath(_) => "invalid_path",
            Self::UriTooLong { .. } => "uri_too_long",
            Self::HeadersTooLarge(_) => "headers_too_large",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed { .. } | Self::MethodRefused { .. } => "method_not_allowed",
            Self::CorsRejected(_) => "cors_rejected",
            Self::Forbidden(Shortfall::Scope(_)) => "insufficient_scope",
            Self::Forbidden(Shortfall::Other(_)) => "forbidden",
            Self::ClientBlocked { .. } => "too_many_failures",
            Self::Blocked { .. } => "blocked",
            Self::RateLimited { .. } => "rate_limited",
            Self::RateLimitUnavailable { .. } => "rate_limit_unavailable",
            Self::Overloaded { .. } => "overloaded",
            Self::Unauthenticated(f) => match f.kind {
                FailureKind::Missing => "unauthenticated",
                FailureKind::InvalidRequest => "invalid_request",
                FailureKind::InvalidToken => "invalid_token",
                FailureKind::Unavailable => "auth_unavailable",
                FailureKind::InvalidDpopProof => "invalid_dpop_proof",
                FailureKind::UseDpopNonce => "use_dpop_nonce",
            },
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::ShuttingDown => "shutting_down",
            Self::UpstreamTimeout { .. } => "upstream_timeout",
            Self::UpstreamFailed(_)
            | Self::UpstreamStatusMasked(_)
            | Self::UpstreamResponseRefused(_) => "upstream_error",
            Self::ClientBody(_) => "bad_request_body",
            Self::ClientBodyTimeout(_) | Self::HeadTimeout => "request_timeout",
            Self::Internal(_) => "internal_error",
            Self::ResourceNotFound(_) => "not_found",
            Self::InvalidInput(_) => "invalid_input",
            Self::ServiceUnavailable(_) => "service_unavailable",
            Self::RequestInvalid(_) => "validation_failed",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::OperationNotDeclared => "operation_not_declared",
        }
    }

    /// A short human title; fixed per code so it never carries input or internals.
    pub fn title(&self) -> &'static str {
        match self {
            Self::MalformedRequest(_) => "The request is not well-formed HTTP",
            Self::InvalidPath(_) => "The request path is not allowed",
            Self::UriTooLong { .. } => "The request target is too long",
            Self::HeadersTooLarge(_) => "The request headers are too large",
            Self::BodyTooLarge { .. } => "The request body is too large",
            Self::RouteNotFound => "No route matches this request",
            Self::MethodNotAllowed { .. } | Self::MethodRefused { .. } => {
                "This method is not allowed here"
            }
            Self::CorsRejected(_) => "This cross-origin request is not allowed",
            Self::Forbidden(Shortfall::Scope(_)) => "The credentials lack a required scope",
            Self::Forbidden(Shortfall::Other(_)) => "The caller may not do this",
            Self::ClientBlocked { .. } => "Too many failed authentications; try again later",
            Self::Blocked { .. } => {
                "Requests from this client are blocked for a while: retry after the number of seconds in Retry-After"
            }
            Self::RateLimited { .. } => {
                "Too many requests: slow down and retry after the number of seconds in Retry-After"
            }
            Self::RateLimitUnavailable { .. } => {
                "Rate limits cannot be checked right now: retry after the number of seconds in Retry-After"
            }
            Self::Overloaded { .. } => {
                "The service is busy: retry after the number of seconds in Retry-After"
            }
            Self::Unauthenticated(f) => match f.kind {
                FailureKind::Missing => "Authentication is required",
                FailureKind::InvalidRequest => "The credentials are malformed",
                FailureKind::InvalidToken => "The credentials are not valid",
                FailureKind::Unavailable => "The credentials cannot be checked right now",
                FailureKind::InvalidDpopProof => "The proof of possession is not valid",
                FailureKind::UseDpopNonce => "A fresh DPoP nonce is required",
            },
            Self::UpstreamUnavailable => "The service is temporarily unavailable",
            Self::ShuttingDown => "The gateway is shutting down: retry",
            Self::UpstreamTimeout { .. } => "The service did not answer in time",
            Self::UpstreamFailed(_)
            | Self::UpstreamStatusMasked(_)
            | Self::UpstreamResponseRefused(_) => "The service failed",
            Self::ClientBody(_) => "The request body could not be read",
            Self::ClientBodyTimeout(_) => "The request body was not received in time",
            Self::HeadTimeout => "The request was not received in time",
            Self::Internal(_) => "Internal error",
            Self::ResourceNotFound(_) => "No such resource",
            Self::InvalidInput(_) => "The request is not valid",
            Self::ServiceUnavailable(_) => "A required service is unavailable",
            Self::RequestInvalid(_) => "The request does not match the API contract",
            Self::UnsupportedMediaType(_) => "This content type is not accepted here",
            Self::OperationNotDeclared => "No such operation",
        }
    }

    /// The violations a validation refusal shows the client (pointers and reasons only).
    pub fn violations(&self) -> Option<&[violation::Violation]> {
        match self {
            Self::RequestInvalid(invalid) => Some(&invalid.violations),
            _ => None,
        }
    }

    /// Whether the connection must be closed after the response (framing is no longer trusted).
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Self::MalformedRequest(_)
                | Self::ClientBody(_)
                | Self::ClientBodyTimeout(_)
                | Self::HeadTimeout
                | Self::ShuttingDown
        )
    }

    /// The internal reason for the audit log: the error's full text.
    pub fn detail(&self) -> String {
        self.to_string()
    }

    fn extra_headers(&self, headers: &mut HeaderMap) {
        match self {
            Self::MethodNotAllowed { allow } => {
                headers.insert(ALLOW, allow.clone());
            }
            Self::MethodRefused { allow, .. } => {
                let allow = allow.clone().unwrap_or(HeaderValue::from_static(""));
                headers.insert(ALLOW, allow);
            }
            Self::UpstreamUnavailable => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Self::Forbidden(Shortfall::Scope(scopes)) => {
                let challenge = format!(
                    r#"Bearer realm="rampart", error="insufficient_scope", scope="{scopes}""#
                );
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(WWW_AUTHENTICATE, value);
                }
            }
            Self::ClientBlocked { retry_after_s } | Self::Blocked { retry_after_s, .. } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_s));
            }
            Self::RateLimited {
                retry_after_s,
                headers: limits,
                ..
            } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_s));
                limits.apply(headers);
            }
            Self::Overloaded { .. } | Self::ShuttingDown => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::RateLimitUnavailable { .. } => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }

            Self::Unauthenticated(f) if !f.challenges.is_empty() => {
                // The authentication stage named the schemes the route accepts (authn::challenge).
                if let Some(nonce) = f
                    .dpop_nonce
                    .as_ref()
                    .filter(|_| f.kind == FailureKind::UseDpopNonce)
                {
                    headers.insert("dpop-nonce", nonce.clone());
                }
                for challenge in &f.challenges {
                    headers.append(WWW_AUTHENTICATE, challenge.clone());
                }
            }
            Self::Unauthenticated(f) => {
                let challenge = match f.kind {
                    FailureKind::Missing => r#"Bearer realm="rampart""#,
                    FailureKind::InvalidRequest => {
                        r#"Bearer realm="rampart", error="invalid_request""#
                    }
                    FailureKind::InvalidToken => r#"Bearer realm="rampart", error="invalid_token""#,
                    FailureKind::InvalidDpopProof => r#"DPoP error="invalid_dpop_proof""#,
                    FailureKind::UseDpopNonce => {
                        if let Some(nonce) = &f.dpop_nonce {
                            headers.insert("dpop-nonce", nonce.clone());
                        }
                        r#"DPoP error="use_dpop_nonce""#
                    }
                    FailureKind::Unavailable => {
                        headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
                        return;
                    }
                };
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            _ => {}
        }
        if self.closes_connection() {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// The problem document: only fixed strings and the request id, which is validated or generated by
/// us (see `context::RequestId`), so it needs no escaping beyond what serde_json does.
#[derive(serde::Serialize)]
pub(super) struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    code: &'a str,
    request_id: &'a str,
    /// `{pointer, reason}` of each violation, for validation refusals.
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<violation::Violation>>,
}

/// One instance of every variant, for documentation checks. The exhaustive match below makes a new
/// variant a compile error until it is listed here too.
pub fn catalogue() -> Vec<GatewayError> {
    let all = vec![
        GatewayError::MalformedRequest(""),
        GatewayError::InvalidPath(""),
        GatewayError::UriTooLong { limit: 0 },
        GatewayError::HeadersTooLarge(""),
        GatewayError::BodyTooLarge { limit: 0 },
        GatewayError::RouteNotFound,
        GatewayError::MethodNotAllowed {
            allow: HeaderValue::from_static("GET"),
        },
        GatewayError::MethodRefused {
            method: http::Method::TRACE,
            allow: None,
        },
        GatewayError::CorsRejected(""),
        GatewayError::Unauthenticated(AuthFailure::missing("")),
        GatewayError::Unauthenticated(AuthFailure::invalid_request("")),
        GatewayError::Unauthenticated(AuthFailure::invalid_token("")),
        GatewayError::Unauthenticated(AuthFailure::unavailable("")),
        GatewayError::Unauthenticated(AuthFailure::invalid_dpop_proof("")),
        GatewayError::Unauthenticated(AuthFailure::use_dpop_nonce("")),
        GatewayError::Forbidden(Shortfall::Scope(String::new())),
        GatewayError::Forbidden(Shortfall::Other(String::new())),
        GatewayError::ClientBlocked { retry_after_s: 1 },
        GatewayError::Blocked {
            by: std::sync::Arc::from("scanning"),
            retry_after_s: 1,
        },
        GatewayError::RateLimited {
            limit: "l".into(),
            retry_after_s: 1,
            headers: Box::new(RateLimitHeaders {
                policy: HeaderValue::from_static(""),
                state: HeaderValue::from_static(""),
            }),
        },
        GatewayError::RateLimitUnavailable {
            limit: "l".into(),
            cause: "",
        },
        GatewayError::Overloaded { reason: "" },
        GatewayError::UpstreamUnavailable,
        GatewayError::UpstreamTimeout { timeout_ms: 0 },
        GatewayError::UpstreamFailed(String::new()),
        GatewayError::UpstreamStatusMasked(StatusCode::INTERNAL_SERVER_ERROR),
        GatewayError::ClientBody(String::new()),
        GatewayError::ClientBodyTimeout(String::new()),
        GatewayError::HeadTimeout,
        GatewayError::ShuttingDown,
        GatewayError::Internal(String::new()),
        GatewayError::ResourceNotFound(String::new()),
        GatewayError::InvalidInput(String::new()),
        GatewayError::ServiceUnavailable(String::new()),
        GatewayError::RequestInvalid(Box::new(Invalid {
            status: StatusCode::BAD_REQUEST,
            operation: None,
            violations: Vec::new(),
        })),
        GatewayError::UnsupportedMediaType(""),
        GatewayError::OperationNotDeclared,
        GatewayError::UpstreamResponseRefused(String::new()),
    ];
    for e in &all {
        match e {
            GatewayError::MalformedRequest(_)
            | GatewayError::InvalidPath(_)
            | GatewayError::UriTooLong { .. }
            | GatewayError::HeadersTooLarge(_)
            | GatewayError::BodyTooLarge { .. }
            | GatewayError::RouteNotFound
            | GatewayError::MethodNotAllowed { .. }
            | GatewayError::MethodRefused { .. }
            | GatewayError::CorsRejected(_)
            | GatewayError::Unauthenticated(_)
            | GatewayError::Forbidden(_)
            | GatewayError::ClientBlocked { .. }
            | GatewayError::Blocked { .. }
            | GatewayError::RateLimited { .. }
            | GatewayError::RateLimitUnavailable { .. }
            | GatewayError::Overloaded { .. }
            | GatewayError::UpstreamUnavailable
            | GatewayError::UpstreamTimeout { .. }
            | GatewayError::UpstreamFailed(_)
            | GatewayError::UpstreamStatusMasked(_)
            | GatewayError::ClientBody(_)
            | GatewayError::ClientBodyTimeout(_)
            | GatewayError::HeadTimeout
            | GatewayError::ShuttingDown
            | GatewayError::Internal(_)
            | GatewayError::ResourceNotFound(_)
            | GatewayError::InvalidInput(_)
            | GatewayError::ServiceUnavailable(_)
            | GatewayError::RequestInvalid(_)
            | GatewayError::UnsupportedMediaType(_)
            | GatewayError::OperationNotDeclared
            | GatewayError::UpstreamResponseRefused(_) => {}
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_catalogue_matches_docs() {
        let docs = include_str!("../../../../docs/errors.md");
        let rows: Vec<(String, String)> = docs
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((code.to_owned(), (*cells.get(2)?).to_owned()))
            })
            .collect();
        for err in catalogue() {
            let code = err.public_code();
            let row = rows.iter().find(|(c, _)| c == code);
            let Some((_, status)) = row else {
                panic!("{code} is missing from docs/errors.md")
            };
            assert!(
                status.contains(err.status().as_str()),
                "{code}: docs say {status}, code says {}",
                err.status()
            );
        }
        for (code, _) in &rows {
            assert!(
                catalogue().iter().any(|e| e.public_code() == code),
                "docs/errors.md lists unknown code {code}"
            );
        }
    }

    #[test]
    fn problem_never_contains_internal_detail() {
        let err = GatewayError::UpstreamFailed(
            "tcp connect error: Connection refused (os error 111) hyper 1.0".into(),
        );
        let body = problem_body(&err, "req-1");
        let text = std::str::from_utf8(&body).unwrap_or_default();
        assert!(!text.contains("refused"), "{text}");
        assert!(!text.contains("hyper"), "{text}");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(json["status"], 502);
        assert_eq!(json["code"], "upstream_error");
        assert_eq!(json["request_id"], "req-1");
        assert_eq!(json["type"], "urn:rampart:problem:upstream_error");
    }

    #[test]
    fn raw_response_is_parseable_http() {
        let raw = into_raw_http1(
            &GatewayError::MalformedRequest("cl+te"),
            "abc",
            &HeaderMap::new(),
        );
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut rsp = httparse::Response::new(&mut headers);
        let status = rsp.parse(&raw);
        assert!(matches!(status, Ok(httparse::Status::Complete(_))));
        assert_eq!(rsp.code, Some(400));
    }
}
