//! Reading a bearer token from a request (RFC 6750 section 2.1), and refusing every other place.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::AuthFailure;

/// The query parameters that carry tokens (RFC 6750 section 2.3, and common API-key names): a
/// request carrying one is refused, because URLs end up in logs, histories and `Referer`.
const QUERY_CREDENTIALS: [&str; 5] = ["access_token", "token", "api_key", "apikey", "key"];

/// How an access token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenScheme {
    Bearer,
    /// RFC 9449: the token comes with a proof of possession in the `DPoP` header.
    Dpop,
}

/// The access token of a request with exactly one `Authorization: Bearer` or `DPoP` header.
pub(crate) fn access_token(
    headers: &HeaderMap,
) -> Result<Option<(TokenScheme, &str)>, AuthFailure> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthFailure::invalid_request(
            "more than one Authorization header",
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| AuthFailure::invalid_request("Authorization is not ASCII"))?;
    let Some((scheme, token)) = text.split_once(' ') else {
        return Err(AuthFailure::invalid_request(
            "Authorization without a scheme",
        ));
    };
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        TokenScheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        TokenScheme::Dpop
    } else {
        // Another scheme (Basic, ...) is not an access token; other methods may accept it.
        return Ok(None);
    };
    let token = token.trim_matches(' ');
    if token.is_empty() || !token.bytes().all(is_token68) {
        return Err(AuthFailure::invalid_request("malformed access token"));
    }
    Ok(Some((scheme, token)))
}

/// The base64 credentials of a single `Authorization: Basic` header.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, credentials) = value.to_str().ok()?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("basic").then_some(credentials)
}

/// RFC 6750 `b64token` characters.
fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// Whether the query string carries a credential parameter.
pub(crate) fn query_has_credential(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            QUERY_CREDENTIALS
                .iter()
                .any(|c| name.eq_ignore_ascii_case(c))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthFailure> {
        Ok(access_token(headers)?
            .filter(|(scheme, _)| *scheme == TokenScheme::Bearer)
            .map(|(_, token)| token))
    }

    #[test]
    fn dpop_scheme_is_recognised() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("DPoP abc.def.ghi"));
        assert_eq!(
            access_token(&h).ok().flatten(),
            Some((TokenScheme::Dpop, "abc.def.ghi"))
        );
    }

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(
            bearer_token(&headers(&["bearer abc.def.ghi"]))
                .ok()
                .flatten(),
            Some("abc.def.ghi")
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer abc"])).ok().flatten(),
            Some("abc")
        );
    }

    #[test]
    fn two_authorization_headers_are_refused() {
        assert!(bearer_token(&headers(&["Bearer a", "Bearer b"])).is_err());
    }

    #[test]
    fn other_schemes_are_not_bearer_tokens() {
        assert_eq!(
            bearer_token(&headers(&["Basic Zm9vOmJhcg=="]))
                .ok()
                .flatten(),
            None
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert!(bearer_token(&headers(&["Bearer a b"])).is_err());
        assert!(bearer_token(&headers(&["Bearer "])).is_err());
    }

    #[test]
    fn credentials_in_the_query_are_detected() {
        assert!(query_has_credential(Some("a=1&access_token=x")));
        assert!(query_has_credential(Some("API_KEY=x")));
        assert!(!query_has_credential(Some("keyboard=1&page=2")));
        assert!(!query_has_credential(None));
    }
}
