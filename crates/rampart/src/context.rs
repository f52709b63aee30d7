//! `RequestCtx`: what the pipeline knows about one request, as one typed struct (not a type map).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

/// The longest incoming request id we keep; longer ones are replaced by a generated id.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A request id that is safe to echo and log: either generated (UUIDv7) or an incoming value made
/// only of `[A-Za-z0-9._-]` and at most `MAX_REQUEST_ID_LEN` bytes.
#[derive(Clone, Debug)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Keeps a valid incoming id, otherwise generates one.
    pub fn from_incoming(incoming: Option<&HeaderValue>) -> Self {
        match incoming {
            Some(value) if is_valid_request_id(value.as_bytes()) => Self(value.clone()),
            _ => Self::generate(),
        }
    }

    /// A fresh time-ordered id: a UUIDv7 (RFC 9562) of this millisecond and 74 random bits.
    /// Built from its parts rather than by `Uuid::now_v7`, which orders the ids of one
    /// millisecond behind a process-wide lock that every worker would take on every request
    /// (and keeps them from going back when the clock is set back); ids here are ordered by
    /// their millisecond only, which nothing relies on (the audit log orders by `seq`).
    pub fn generate() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let millis = since_epoch
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(since_epoch.subsec_millis()));
        let mut random = [0; 10];
        // `fill_bytes`, not `rand::random::<[u8; 10]>()`, which draws a whole word for every byte.
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut random);
        let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
        let mut buf = uuid::Uuid::encode_buffer();
        let text = id.hyphenated().encode_lower(&mut buf);
        Self(HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("unknown")))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII ever gets in (validated or generated).
        self.0.to_str().unwrap_or("invalid")
    }

    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl serde::Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The method as an audit label: the standard methods without allocating.
pub fn method_label(method: &http::Method) -> std::borrow::Cow<'static, str> {
    use http::Method;
    const STANDARD: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    match STANDARD.iter().find(|(m, _)| m == method) {
        Some((_, label)) => std::borrow::Cow::Borrowed(label),
        None => std::borrow::Cow::Owned(method.as_str().to_owned()),
    }
}

fn is_valid_request_id(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether the client connection carried TLS, and what the listener is called.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub listener: Arc<str>,
    pub peer: SocketAddr,
    /// The peer's address as a header value (`X-Forwarded-For`), formatted once per connection.
    pub peer_ip_header: HeaderValue,
    pub tls: bool,
    /// The negotiated TLS version (`TLSv1.3`), for the audit log.
    pub tls_version: Option<&'static str>,
    /// The verified client certificate (mTLS listeners).
    pub client_cert: Option<Arc<crate::tls::ClientCert>>,
}

impl ConnInfo {
    /// A plain or TLS connection from `peer` on `listener`, without a client certificate.
    pub fn new(listener: Arc<str>, peer: SocketAddr, tls: bool) -> Self {
        let ip = peer.ip().to_string();
        Self {
            listener,
            peer,
            // An address's text is always a valid header value.
            peer_ip_header: HeaderValue::from_str(&ip)
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            tls,
            tls_version: None,
            client_cert: None,
        }
    }
}

/// The outcome class recorded in the audit log and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Proxied to the upstream (whatever it answered), or answered by a policy (preflight).
    Allow,
    /// Refused by the gateway: a client or policy error.
    Deny,
    /// The gateway or the upstream failed.
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Error => "error",
        }
    }
}

/// Per-request state shared by the stages of the pipeline.
#[derive(Debug)]
pub struct RequestCtx {
    pub request_id: RequestId,
    pub conn: ConnInfo,
    /// The client address after trusted-proxy resolution (see `proxy::client_ip`).
    pub client_ip: IpAddr,
    pub started: Instant,
    /// The route that matched, once routing has run.
    pub route: Option<Arc<str>>,
    /// The normalized path without the query string (what the audit log shows).
    pub path: String,
    /// The upstream target that served the request and how long it took to answer.
    pub upstream: Option<(Arc<str>, Duration)>,
    /// The upstream's own status, before any masking.
    pub upstream_status: Option<u16>,
    /// The internal reason for a denial or failure, for the audit log only.
    pub reason: Option<String>,
    /// The request's place in a W3C trace.
    pub trace: crate::trace::TraceContext,
    /// The stage running (`refused_by` when it fails).
    pub stage: crate::stage::Stage,
    /// When each stage began, for a sampled request's spans.
    pub clock: Option<Box<crate::trace::StageClock>>,
    /// The stage that refused the request or failed (`Stage::name`).
    pub refused_by: Option<&'static str>,
    /// The public code of a denial or failure (what the detectors read).
    pub code: Option<&'static str>,
    /// The user name of failed Basic credentials, for the detectors (never verified).
    pub claimed_user: Option<Arc<String>>,
    pub decision: Decision,
    /// The request's `Origin`, kept for the CORS response stage.
    pub origin: Option<HeaderValue>,
    /// Request body bytes forwarded.
    pub bytes_in: u64,
    /// Who is calling, once authentication has run.
    pub principal: Option<Arc<Principal>>,
    /// Rate-limit headers for a successful response (`headers_on_success`).
    pub rate_limit_headers: Option<crate::error::RateLimitHeaders>,
    /// The route's concurrency slot, released when the response body has been sent.
    pub in_flight: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The peer is a configured trusted proxy: its `X-Forwarded-*` headers describe the client.
    pub from_trusted_proxy: bool,
    /// The request carries a body: a length above zero, chunked, or (HTTP/2, where neither is
    /// required) DATA frames after a HEADERS frame without END_STREAM. Body policies decide by
    /// this, never by the headers alone.
    pub body_present: bool,
    /// What validation found, for the later validation stages and the audit record.
    pub validation: Validation,
}

/// What the validation stages learned about one request: the operation of the contract it
/// matched, and what was refused, reported, sanitized or stripped (pointers and counts only,
/// never values).
#[derive(Debug, Default, serde::Serialize)]
pub struct Validation {
    /// The matched operation's id (`operationId`, or `METHOD /template`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<Arc<str>>,
    /// Its index in the route's compiled contract, for the body and response stages.
    #[serde(skip)]
    pub operation_index: Option<usize>,
    /// Pointers of the request's violations (refused, or only reported in `report` mode).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
    /// Fields changed by sanitization.
    #[serde(skip_serializing_if = "is_zero")]
    pub sanitized: u32,
    /// Response members removed because the contract does not declare them, grouped by schema
    /// path (`/items/*/secret` for every element's `secret`), at most `MAX_VIOLATIONS`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stripped: Vec<String>,
    /// How many response members were removed in all (`stripped` may list fewer).
    #[serde(skip_serializing_if = "is_zero")]
    pub stripped_total: u32,
    /// Pointers of the response's violations, reported or refused, at most `MAX_VIOLATIONS`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_violations: Vec<String>,
    /// How many response violations were found in all (`response_violations` may list fewer).
    #[serde(skip_serializing_if = "is_zero")]
    pub response_violations_total: u32,
    /// The leak the response scan found (`stack-trace`, `sql-error`, `private-key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak: Option<&'static str>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Validation {
    /// Whether there is anything for the audit record.
    pub fn is_empty(&self) -> bool {
        self.operation.is_none()
            && self.violations.is_empty()
            && self.sanitized == 0
            && self.stripped.is_empty()
            && self.stripped_total == 0
            && self.response_violations.is_empty()
            && self.response_violations_total == 0
            && self.leak.is_none()
    }
}

/// How a principal was authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A JWT from the named issuer.
    Jwt(Arc<str>),
    /// An API key, by key id.
    ApiKey(Arc<str>),
    /// An opaque token checked by the named introspection server.
    Introspection(Arc<str>),
    /// A verified TLS client certificate.
    ClientCert,
    /// HTTP Basic with a configured user.
    Basic,
}

impl AuthMethod {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Jwt(_) => "jwt",
            Self::ApiKey(_) => "api_key",
            Self::Introspection(_) => "introspection",
            Self::ClientCert => "mtls",
            Self::Basic => "basic",
        }
    }

    /// The API key's id, for an API key.
    pub fn key_id(&self) -> Option<Arc<str>> {
        match self {
            Self::ApiKey(id) => Some(id.clone()),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub subject: String,
    pub method: AuthMethod,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub client_id: Option<String>,
    /// Seconds since the epoch when the credential expires.
    pub expires_at: Option<u64>,
    /// All claims, for claim-based authorization.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl RequestCtx {
    /// Notes that `stage` is running (and when, for a sampled request's spans).
    pub fn enter(&mut self, stage: crate::stage::Stage) {
        if self.stage != stage {
            self.stage = stage;
            if let Some(clock) = &mut self.clock {
                clock.mark(stage);
            }
        }
    }

    pub fn new(conn: ConnInfo, request_id: RequestId, client_ip: IpAddr) -> Self {
        Self {
            request_id,
            client_ip,
            conn,
            started: Instant::now(),
            route: None,
            path: String::new(),
            upstream: None,
            upstream_status: None,
            reason: None,
            trace: crate::trace::TraceContext::unset(),
            stage: crate::stage::Stage::RequestId,
            clock: None,
            refused_by: None,
            code: None,
            claimed_user: None,
            decision: Decision::Allow,
            origin: None,
            bytes_in: 0,
            principal: None,
            rate_limit_headers: None,
            in_flight: None,
            from_trusted_proxy: false,
            body_present: false,
            validation: Validation::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_request_id_with_injection_characters_is_replaced() {
        let hostile = HeaderValue::from_static("abc\"}{\"admin\":true");
        let id = RequestId::from_incoming(Some(&hostile));
        assert_ne!(id.as_str(), hostile.to_str().unwrap_or_default());
        assert_eq!(id.as_str().len(), 36);
    }

    #[test]
    fn valid_incoming_request_id_is_kept() {
        let good = HeaderValue::from_static("trace-1234.abc_DEF");
        assert_eq!(
            RequestId::from_incoming(Some(&good)).as_str(),
            "trace-1234.abc_DEF"
        );
    }

    #[test]
    fn a_generated_request_id_is_a_uuid_v7_of_this_millisecond_and_unique() {
        let millis = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        };
        let before = millis();
        let ids: Vec<RequestId> = (0..1000).map(|_| RequestId::generate()).collect();
        let after = millis();
        let mut seen = std::collections::HashSet::new();
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id.as_str()).unwrap_or_default();
            assert_eq!(uuid.get_version_num(), 7, "{}", id.as_str());
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = uuid
                .get_timestamp()
                .map(|t| t.to_unix())
                .unwrap_or_default();
            let stamped = u128::from(secs) * 1000 + u128::from(nanos / 1_000_000);
            assert!(
                (before..=after).contains(&stamped),
                "{stamped} not in {before}..={after}"
            );
            assert!(
                seen.insert(id.as_str().to_owned()),
                "repeated {}",
                id.as_str()
            );
        }
    }

    #[test]
    fn oversized_request_id_is_replaced() {
        let long = HeaderValue::from_str(&"a".repeat(MAX_REQUEST_ID_LEN + 1))
            .unwrap_or(HeaderValue::from_static("x"));
        assert_eq!(RequestId::from_incoming(Some(&long)).as_str().len(), 36);
    }
}
