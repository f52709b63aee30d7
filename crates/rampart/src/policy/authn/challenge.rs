//! `WWW-Authenticate` challenges that name what the route accepts (RFC 9110 section 11.6.1).
//!
//! A challenge tells a client how to authenticate; one for a scheme the route does not accept
//! misleads it (a `Bearer` challenge on a route that only takes API keys sends clients looking for
//! an OAuth server). Invariants:
//! - only schemes the route accepts are challenged: `Bearer` (tokens, unless DPoP is required),
//!   `DPoP` with the accepted proof algorithms in `algs` (RFC 9449 section 7.1), `ApiKey` naming
//!   the header the key goes in (as Kong and Tyk do), `Basic` (RFC 7617);
//! - an error code is attached to the scheme the client used: a token sent with the `DPoP` scheme
//!   that is not bound (no `cnf.jkt`) gets `DPoP error="invalid_token"`, not a `Bearer` challenge;
//! - a route accepting none of these (mTLS only) falls back to the plain `Bearer` challenge made in
//!   `error`, so every 401 carries one (RFC 9110 requires it);
//! - challenges hold only config values and fixed strings, never request input.

use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use super::{Authenticate, FailureKind};

/// The authentication schemes a challenge can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
    ApiKey,
    Basic,
}

impl Authenticate {
    /// The `WWW-Authenticate` values for a failure of this kind on this request: one per accepted
    /// scheme when credentials are missing, else the one for the scheme the error belongs to.
    pub(super) fn challenges(&self, headers: &HeaderMap, kind: FailureKind) -> Vec<HeaderValue> {
        let error = match kind {
            FailureKind::Missing => None,
            FailureKind::Unavailable => return Vec::new(),
            FailureKind::InvalidRequest => Some("invalid_request"),
            FailureKind::InvalidToken => Some("invalid_token"),
            FailureKind::InvalidDpopProof => Some("invalid_dpop_proof"),
            FailureKind::UseDpopNonce => Some("use_dpop_nonce"),
        };
        let accepted = self.accepted_schemes();
        let target = match kind {
            FailureKind::InvalidDpopProof | FailureKind::UseDpopNonce => Some(Scheme::Dpop),
            _ => self.presented(headers),
        }
        .filter(|scheme| accepted.contains(scheme));
        accepted
            .into_iter()
            .filter(|scheme| error.is_none() || target.is_none_or(|t| t == *scheme))
            .filter_map(|scheme| HeaderValue::from_str(&self.challenge(scheme, error)).ok())
            .collect()
    }

    fn accepted_schemes(&self) -> Vec<Scheme> {
        let tokens = !self.issuers.is_empty() || !self.introspectors.is_empty();
        [
            (Scheme::Bearer, tokens && !self.require_dpop),
            (Scheme::Dpop, tokens && self.dpop.is_some()),
            (Scheme::ApiKey, self.api_keys.is_some()),
            (Scheme::Basic, self.basic.is_some()),
        ]
        .into_iter()
        .filter_map(|(scheme, on)| on.then_some(scheme))
        .collect()
    }

    /// The scheme of the credential the request carries, in the order `credential_principal`
    /// reads them (an API key header first).
    fn presented(&self, headers: &HeaderMap) -> Option<Scheme> {
        if let Some(keys) = &self.api_keys
            && headers.contains_key(&keys.header)
        {
            return Some(Scheme::ApiKey);
        }
        let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
        let scheme = value.split(' ').next()?;
        [
            ("bearer", Scheme::Bearer),
            ("dpop", Scheme::Dpop),
            ("basic", Scheme::Basic),
        ]
        .into_iter()
        .find_map(|(name, s)| scheme.eq_ignore_ascii_case(name).then_some(s))
    }

    /// Counts a failure in `rampart_auth_failures_total{method, reason}`. Both labels come from
    /// fixed lists (the scheme of the credential presented, the failure's kind), never from the
    /// request, so a client cannot grow the metric.
    pub(super) fn count_failure(&self, headers: &HeaderMap, kind: FailureKind) {
        let method = match self.presented(headers) {
            Some(Scheme::Bearer) => "bearer",
            Some(Scheme::Dpop) => "dpop",
            Some(Scheme::ApiKey) => "api_key",
            Some(Scheme::Basic) => "basic",
            None => "none",
        };
        let reason = match kind {
            FailureKind::Missing => "missing",
            FailureKind::InvalidRequest => "invalid_request",
            FailureKind::InvalidToken => "invalid_token",
            FailureKind::Unavailable => "unavailable",
            FailureKind::InvalidDpopProof => "invalid_dpop_proof",
            FailureKind::UseDpopNonce => "use_dpop_nonce",
        };
        metrics::counter!("rampart_auth_failures_total", "method" => method, "reason" => reason)
            .increment(1);
    }

    fn challenge(&self, scheme: Scheme, error: Option<&str>) -> String {
        let error = error.map(|e| format!(r#"error="{e}""#));
        let params: Vec<String> = match scheme {
            Scheme::Bearer => vec![Some(r#"realm="rampart""#.to_owned()), error],
            Scheme::Dpop => vec![error, self.dpop_algs()],
            Scheme::ApiKey => vec![
                Some(r#"realm="rampart""#.to_owned()),
                self.api_keys
                    .as_ref()
                    .map(|k| format!(r#"header="{}""#, k.header)),
                error,
            ],
            // RFC 7617 defines no error parameter.
            Scheme::Basic => vec![Some(r#"realm="rampart", charset="UTF-8""#.to_owned())],
        }
        .into_iter()
        .flatten()
        .collect();
        let name = match scheme {
            Scheme::Bearer => "Bearer",
            Scheme::Dpop => "DPoP",
            Scheme::ApiKey => "ApiKey",
            Scheme::Basic => "Basic",
        };
        match params.is_empty() {
            true => name.to_owned(),
            false => format!("{name} {}", params.join(", ")),
        }
    }

    fn dpop_algs(&self) -> Option<String> {
        let verifier = self.dpop.as_ref()?;
        Some(format!(
            r#"algs="{}""#,
            verifier.algorithm_names().join(" ")
        ))
    }
}
