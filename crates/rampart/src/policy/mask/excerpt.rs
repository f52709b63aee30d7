//! The log excerpt of a masked upstream body: bounded, redacted, one line.
//!
//! Threat: an upstream error page carrying the caller's bearer token, a session cookie or a
//! database password (debug pages echo the request and the environment) copied into the gateway's
//! log, where more people can read it than could read the upstream's. Invariants:
//! - at most `MASKED_BODY_LOG_BYTES` of the body are read, and the body is dropped after that: a
//!   1 GiB error page costs 1 KiB; the read happens off the request path, with a deadline;
//! - JWT-shaped strings, Rampart API keys, long opaque strings (32+ token characters), the word
//!   after `Bearer`/`Basic`/`DPoP`, and the value after a secret-looking name (`password=`,
//!   `"token": "`, `Authorization:`, `api_key=`, `secret`, `cookie`, ...) become `[redacted]`;
//! - control characters are escaped, so the excerpt cannot forge log lines.
//!
//! Redaction works on words, so a password with spaces after `password=` keeps all but its first
//! word: the bound on length is the backstop.

use std::time::Duration;

use bytes::Buf;
use http_body_util::BodyExt;

/// The most of a masked upstream body that is read and logged.
pub const MASKED_BODY_LOG_BYTES: usize = 1024;

/// How long the logging task waits for the body.
const READ_DEADLINE: Duration = Duration::from_secs(2);

/// What replaces a secret in the excerpt.
const REDACTED: &str = "[redacted]";

/// Opaque strings at least this long are treated as secrets (keys, session ids, hashes).
const OPAQUE_SECRET_CHARS: usize = 32;

/// Parts of names whose value is a secret (compared in lower case).
const SECRET_NAMES: [&str; 14] = [
    "pass",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "authorization",
    "cookie",
    "session",
    "credential",
    "private",
    "signature",
    "key",
];

/// Authorization schemes whose next word is a credential.
const SCHEMES: [&str; 3] = ["bearer", "basic", "dpop"];

/// Reads at most `MASKED_BODY_LOG_BYTES` of the body (then drops it), within the deadline.
pub(super) async fn read_prefix<B>(mut body: B) -> Result<(Vec<u8>, bool), &'static str>
where
    B: http_body::Body + Unpin,
{
    let mut prefix = Vec::with_capacity(MASKED_BODY_LOG_BYTES);
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| "(body failed)")?;
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            let room = MASKED_BODY_LOG_BYTES - prefix.len();
            let available = data.remaining();
            let take = available.min(room);
            prefix.extend_from_slice(&data.copy_to_bytes(take));
            if available >= room {
                return Ok(true);
            }
        }
        Ok(false)
    };
    match tokio::time::timeout(READ_DEADLINE, read).await {
        Ok(Ok(truncated)) => Ok((prefix, truncated)),
        Ok(Err(why)) => Err(why),
        Err(_) => Err("(body not received in time)"),
    }
}

/// The log text for a body prefix: bounded, secrets redacted, control characters escaped.
pub(super) fn excerpt(prefix: &[u8], truncated: bool) -> String {
    let bounded = &prefix[..prefix.len().min(MASKED_BODY_LOG_BYTES)];
    let text = String::from_utf8_lossy(bounded);
    let mut out = redact(&text).escape_debug().to_string();
    if truncated || prefix.len() > MASKED_BODY_LOG_BYTES {
        out.push_str(" ...(truncated)");
    }
    out
}

/// Characters of a word (base64url, base64, JWT dots, key prefixes); `=` separates.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '+' | '/' | '-')
}

/// Replaces secret-looking words, judging each by itself and by the word before it.
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous: Option<&str> = None;
    let mut gap = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let len = match is_word_char(c) {
            true => rest.find(|c| !is_word_char(c)).unwrap_or(rest.len()),
            false => c.len_utf8(),
        };
        let (piece, tail) = rest.split_at(len);
        rest = tail;
        if !is_word_char(c) {
            out.push_str(piece);
            gap.push_str(piece);
            continue;
        }
        // A scheme name after `Authorization:` is kept: the credential is the word after it.
        let scheme = SCHEMES.iter().any(|s| piece.eq_ignore_ascii_case(s));
        let secret = looks_secret(piece)
            || (!scheme && previous.is_some_and(|p| introduces_secret(p, &gap)));
        out.push_str(if secret { REDACTED } else { piece });
        previous = Some(piece);
        gap.clear();
    }
    out
}

/// A word that is a secret by its shape.
fn looks_secret(word: &str) -> bool {
    let jwt_shaped = word.starts_with("eyJ") && word.contains('.');
    jwt_shaped || word.starts_with("rmp_") || word.chars().count() >= OPAQUE_SECRET_CHARS
}

/// Whether the word after `previous`, separated by `gap`, is a secret value.
fn introduces_secret(previous: &str, gap: &str) -> bool {
    let name = previous.to_ascii_lowercase();
    let scheme = SCHEMES.contains(&name.as_str()) && gap.chars().all(|c| c == ' ' || c == '\t');
    let assignment = gap.len() <= 4
        && gap.chars().any(|c| c == '=' || c == ':')
        && gap
            .chars()
            .all(|c| matches!(c, '=' | ':' | '"' | '\'' | ' ' | '\t'));
    scheme || (assignment && SECRET_NAMES.iter().any(|n| name.contains(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJlLWJ5dGVz";

    #[test]
    fn masked_5xx_body_of_1_mib_with_a_jwt_is_logged_bounded_and_redacted() {
        let mut body = format!(
            "Traceback: request had Authorization: Bearer {JWT}\nconnect(password=hunter2, \
             \"api_key\": \"k-123\") token={JWT} user=alice\r\n"
        )
        .into_bytes();
        body.resize(1 << 20, b'x');
        let line = excerpt(&body[..MASKED_BODY_LOG_BYTES], true);
        assert!(line.len() < MASKED_BODY_LOG_BYTES + 64, "{}", line.len());
        for secret in ["eyJ", "hunter2", "k-123", "c2lnbmF0"] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
        assert!(line.contains("Bearer [redacted]"), "{line}");
        assert!(line.contains("password=[redacted]"), "{line}");
        assert!(line.contains("user=alice"), "ordinary text is kept: {line}");
        assert!(!line.contains('\n') && !line.contains('\r'), "one log line");
        assert!(line.ends_with("...(truncated)"));
    }

    #[tokio::test]
    async fn only_the_first_kibibyte_of_a_huge_body_is_read() {
        let mut body = format!("oops {JWT} ").into_bytes();
        body.resize(1 << 20, b'x');
        let full = http_body_util::Full::new(bytes::Bytes::from(body));
        let read = read_prefix(full).await;
        let Ok((prefix, truncated)) = read else {
            panic!("read failed: {read:?}");
        };
        assert_eq!(prefix.len(), MASKED_BODY_LOG_BYTES);
        assert!(truncated);
        assert!(!excerpt(&prefix, truncated).contains("eyJ"));
    }

    #[test]
    fn short_bodies_and_plain_words_are_kept() {
        assert_eq!(
            excerpt(b"database is down (db.internal:5432)", false),
            "database is down (db.internal:5432)"
        );
        assert_eq!(excerpt(b"Basic dXNlcjpwYXNz", false), "Basic [redacted]");
        assert_eq!(excerpt(b"key: rmp_abc", false), "key: [redacted]");
    }
}
