//! Route path syntax, checked before the router sees it.
//!
//! The router (matchit) reports a malformed template such as `/v1/{id` as a conflict with another
//! route and accepts `/v1/{id}/{id}`, whose second value silently wins. Here each path is checked
//! on its own, with a message that says what is wrong:
//! - only RFC 3986 path characters (`pchar` and `/`), percent-escapes complete;
//! - no `.` or `..` segment (requests are normalized, so such a route could never match);
//! - in a template (`path`), a parameter is a whole segment `{name}`, or `{*name}` as the last
//!   segment; names are identifiers and distinct;
//! - a `path_prefix` is literal: no braces.

use std::collections::HashSet;

/// The problems of a route `path` (a template allowed) or `path_prefix` (literal).
pub(super) fn problems(path: &str, template: bool) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(c) = path.chars().find(|c| !is_path_char(*c)) {
        found.push(format!("`{}` is not allowed in a path", c.escape_debug()));
    }
    if !percent_escapes_complete(path) {
        found.push("`%` must be followed by two hex digits".to_owned());
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        found.push("`.` and `..` segments never match a normalized request path".to_owned());
    }
    if !template {
        if path.contains(['{', '}']) {
            found.push("a `path_prefix` is literal: `{` and `}` are not allowed".to_owned());
        }
        return found;
    }
    let mut names = HashSet::new();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if let Some(problem) = parameter_problem(segment, last, &mut names) {
            found.push(problem);
        }
    }
    found
}

/// Checks one segment of a template; `names` collects the parameter names seen so far.
fn parameter_problem<'a>(
    segment: &'a str,
    last: bool,
    names: &mut HashSet<&'a str>,
) -> Option<String> {
    if !segment.contains(['{', '}']) {
        return None;
    }
    let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
        return Some(format!(
            "`{segment}`: a parameter is a whole segment `{{name}}`, with balanced braces"
        ));
    };
    let (name, catch_all) = match inner.strip_prefix('*') {
        Some(rest) => (rest, true),
        None => (inner, false),
    };
    if catch_all && !last {
        return Some(format!("`{segment}`: `{{*name}}` must be the last segment"));
    }
    if !is_identifier(name) {
        return Some(format!(
            "`{segment}`: a parameter name is letters, digits and `_`, not starting with a digit"
        ));
    }
    (!names.insert(name)).then(|| format!("parameter `{name}` appears twice"))
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// RFC 3986 `pchar` and `/`, plus the braces of templates (checked separately).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%{}".contains(c)
}

fn percent_escapes_complete(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod tests {
    use super::problems;

    #[test]
    fn well_formed_paths_pass() {
        for path in [
            "/",
            "/v1/orders",
            "/v1/{id}",
            "/v1/{id}/items/{item}",
            "/files/{*rest}",
            "/a%20b",
        ] {
            assert!(
                problems(path, true).is_empty(),
                "{path}: {:?}",
                problems(path, true)
            );
        }
        assert!(problems("/api/items", false).is_empty());
    }

    #[test]
    fn malformed_templates_are_named() {
        for (path, expected) in [
            ("/v1/{id", "balanced braces"),
            ("/v1/id}", "balanced braces"),
            ("/v1/x{id}", "whole segment"),
            ("/v1/{}", "parameter name"),
            ("/v1/{1a}", "parameter name"),
            ("/v1/{id}/{id}", "appears twice"),
            ("/v1/{*rest}/x", "last segment"),
            ("/v1/a b", "not allowed"),
            ("/v1/é", "not allowed"),
            ("/v1/a?b", "not allowed"),
            ("/v1/%zz", "two hex digits"),
            ("/v1/../admin", "normalized"),
        ] {
            let found = problems(path, true);
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "{path}: {found:?}"
            );
        }
        assert!(
            !problems("/api/{id}", false).is_empty(),
            "prefixes are literal"
        );
    }
}
