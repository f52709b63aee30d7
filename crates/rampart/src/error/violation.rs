//! What a refusal by validation tells the client: where (a JSON pointer into the request) and why
//! (our own words). Never the offending value (no reflected input) and never a library's message.

use std::borrow::Cow;

use serde::Serialize;

/// One reason a request (or response) does not conform to its contract.
///
/// `pointer` locates the value in the request: `/path/id`, `/query/limit`, `/header/x-trace`,
/// `/cookie/session`, `/body` (the body as a whole), `/body/items/0/name` (RFC 6901 escaping of
/// each token). `reason` says what was expected ("must be an integer", "must be at most 64
/// characters", "is not declared") and never repeats the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub pointer: String,
    pub reason: Cow<'static, str>,
}

impl Violation {
    pub fn new(pointer: impl Into<String>, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            pointer: pointer.into(),
            reason: reason.into(),
        }
    }
}

/// Escapes one reference token of a JSON pointer (RFC 6901 section 3: `~` and `/`).
pub fn escape_token(token: &str) -> Cow<'_, str> {
    if token.contains(['~', '/']) {
        Cow::Owned(token.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_escape_tilde_before_slash() {
        assert_eq!(escape_token("a/b~c"), "a~1b~0c");
        assert_eq!(escape_token("plain"), "plain");
    }
}
