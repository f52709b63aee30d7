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

/// Longest member or parameter name a problem document repeats.
const MAX_SHOWN_TOKEN: usize = 64;

impl Violation {
    /// The violation as the client is shown it. A pointer token can be a name the client chose
    /// (an undeclared member or query parameter, a key of a map): a token that is not a plain
    /// name (`A-Z a-z 0-9 _ . -`, RFC 6901 escapes, at most 64 bytes) is not repeated; the
    /// pointer stops at its parent and the reason says a member there is at fault. So a problem
    /// document never reflects markup, quotes or control characters the client sent.
    pub fn shown(&self) -> Self {
        let mut end = 0;
        for token in self.pointer.split('/').skip(1) {
            if !is_plain_token(token) {
                return Self {
                    pointer: self.pointer[..end].to_owned(),
                    reason: Cow::Owned(format!("has a member that {}", self.reason)),
                };
            }
            end += 1 + token.len();
        }
        self.clone()
    }
}

fn is_plain_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_SHOWN_TOKEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~'))
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

    #[test]
    fn a_client_chosen_name_with_markup_is_never_reflected() {
        let hostile = Violation::new("/body/<script>alert(1)<~1script>", "is not declared");
        let shown = hostile.shown();
        assert_eq!(shown.pointer, "/body");
        assert_eq!(shown.reason, "has a member that is not declared");
        let deep = Violation::new("/body/tags/0/x\"y/name", "must be a string");
        assert_eq!(deep.shown().pointer, "/body/tags/0");
        let long = Violation::new(format!("/query/{}", "a".repeat(65)), "is not declared");
        assert_eq!(long.shown().pointer, "/query");
    }

    #[test]
    fn plain_names_are_shown_as_they_are() {
        let plain = Violation::new("/body/is_admin", "is not declared");
        assert_eq!(plain.shown(), plain);
        let escaped = Violation::new("/body/a~1b/x-y.z", "must be a string");
        assert_eq!(escaped.shown(), escaped);
    }
}
