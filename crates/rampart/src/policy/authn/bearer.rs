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
    // Read as bytes, the token (most of the header) in one pass through a table: this runs
    // on every authenticated request. Every byte of an accepted value is then visible ASCII, so
    // only a refused one is checked again, to be refused as not ASCII first, as before.
    match read_authorization(value.as_bytes()) {
        Authorization::Token(scheme, token) => Ok(Some((scheme, token))),
        _ if value.to_str().is_err() => {
            Err(AuthFailure::invalid_request("Authorization is not ASCII"))
        }
        Authorization::NoScheme => Err(AuthFailure::invalid_request(
            "Authorization without a scheme",
        )),
        // Another scheme (Basic, ...) is not an access token; other methods may accept it.
        Authorization::OtherScheme => Ok(None),
        Authorization::Malformed => Err(AuthFailure::invalid_request("malformed access token")),
    }
}

/// What an `Authorization` value holds, for the access-token reader.
enum Authorization<'a> {
    Token(TokenScheme, &'a str),
    NoScheme,
    OtherScheme,
    Malformed,
}

fn read_authorization(value: &[u8]) -> Authorization<'_> {
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return Authorization::NoScheme;
    };
    let (scheme, token) = (&value[..space], &value[space + 1..]);
    let scheme = if scheme.eq_ignore_ascii_case(b"bearer") {
        TokenScheme::Bearer
    } else if scheme.eq_ignore_ascii_case(b"dpop") {
        TokenScheme::Dpop
    } else {
        return Authorization::OtherScheme;
    };
    let token = trim_spaces(token);
    if token.is_empty() || !token.iter().all(|&b| TOKEN68[usize::from(b)]) {
        return Authorization::Malformed;
    }
    // Token68 bytes are ASCII: this cannot fail, and is a word-at-a-time check.
    match std::str::from_utf8(token) {
        Ok(token) => Authorization::Token(scheme, token),
        Err(_) => Authorization::Malformed,
    }
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

/// `token` without the spaces around it (spaces only, as the header's grammar has them).
fn trim_spaces(token: &[u8]) -> &[u8] {
    let start = token.iter().position(|&b| b != b' ').unwrap_or(token.len());
    let end = token
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |last| last + 1);
    &token[start..end]
}

/// RFC 6750 `b64token` characters.
const fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// [`is_token68`] by byte value.
const TOKEN68: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_token68(b as u8);
        b += 1;
    }
    table
};

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

    /// The reader before it read bytes: `to_str`, `split_once`, `trim_matches`, per-byte check.
    fn access_token_as_text(value: &HeaderValue) -> Result<Option<(TokenScheme, &str)>, String> {
        let text = value.to_str().map_err(|_| "Authorization is not ASCII")?;
        let (scheme, token) = text
            .split_once(' ')
            .ok_or("Authorization without a scheme")?;
        let scheme = if scheme.eq_ignore_ascii_case("bearer") {
            TokenScheme::Bearer
        } else if scheme.eq_ignore_ascii_case("dpop") {
            TokenScheme::Dpop
        } else {
            return Ok(None);
        };
        let token = token.trim_matches(' ');
        if token.is_empty() || !token.bytes().all(is_token68) {
            return Err("malformed access token".into());
        }
        Ok(Some((scheme, token)))
    }

    #[test]
    fn the_byte_reader_agrees_with_the_text_reader_on_every_kind_of_value() {
        let schemes: [&[u8]; 7] = [
            b"Bearer",
            b"bEaReR",
            b"DPoP",
            b"Basic",
            b"",
            b"Bear\xc3\xa9r",
            b"Bearer\t",
        ];
        let tokens: [&[u8]; 12] = [
            b"abc.def-ghi_jkl~+/=",
            b"",
            b"  ",
            b"  padded  ",
            b"a b",
            b"tab\there",
            b"caf\xc3\xa9",
            b"\xff\xfe",
            b"del\x7f",
            b"quote\"",
            b"semi;colon",
            b"AZaz09",
        ];
        let mut checked = 0;
        for scheme in schemes {
            for separator in [&b" "[..], b"  ", b""] {
                for token in tokens {
                    let bytes = [scheme, separator, token].concat();
                    let Ok(value) = HeaderValue::from_bytes(&bytes) else {
                        continue;
                    };
                    let mut h = HeaderMap::new();
                    h.insert(AUTHORIZATION, value.clone());
                    let by_bytes = access_token(&h).map_err(|e| e.reason.into_owned());
                    assert_eq!(by_bytes, access_token_as_text(&value), "{bytes:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 200, "{checked}");
        for b in 0..=255u8 {
            assert_eq!(TOKEN68[usize::from(b)], is_token68(b), "{b}");
        }
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
