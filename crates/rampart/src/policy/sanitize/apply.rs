//! Applying the sanitizer to the marked fields of a JSON body.
//!
//! Invariants: only strings at the configured paths are touched; a missing member, an index out
//! of range or a value that is not a string is left alone (the schema, not this, decides what
//! must be there). With `reject`, the first field from which markup would be removed refuses the
//! request at its concrete pointer (`/body/comments/3/text`), never with its content. The count
//! returned is of fields from which markup was removed, for the audit; a re-spelled field (see
//! [`Cleaned`](super::html::Cleaned)) is rewritten but not counted.

use std::borrow::Cow;

use serde_json::Value;

use super::config::OnUnsafe;
use super::field_path::{FieldPath, Step};
use super::html::HtmlSanitizer;
use crate::policy::validate::violation::{Violation, escape_token};

/// What [`apply`] did to a body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Fields from which markup was removed (what the audit counts).
    pub removed: usize,
    /// Fields whose string was replaced by the sanitizer's output, removed or only re-spelled.
    /// Whenever this is not zero the body must be re-serialized: the detector of removals can
    /// miss one (an unterminated tag at the end of a string is dropped by ammonia, and by the
    /// tokenizer that summarizes the input), so "nothing removed" never means "send the raw
    /// bytes".
    pub rewritten: usize,
}

/// Sanitizes the strings at `fields` in place; says how many had markup removed and how many were
/// rewritten.
pub fn apply<'f>(
    value: &mut Value,
    fields: impl IntoIterator<Item = (&'f FieldPath, OnUnsafe)>,
    sanitizer: &HtmlSanitizer,
) -> Result<Applied, Violation> {
    let mut removed = 0;
    let mut rewritten = 0;
    let mut budget = MAX_VISITS;
    for (path, on_unsafe) in fields {
        let mut pointer = String::from("/body");
        visit(
            value,
            &path.0,
            &mut pointer,
            &mut budget,
            &mut |text, pointer| {
                let cleaned = sanitizer.sanitize(text);
                if cleaned.removed_markup {
                    if on_unsafe == OnUnsafe::Reject {
                        return Err(Violation::new(
                            pointer,
                            "contains markup that is not allowed",
                        ));
                    }
                    removed += 1;
                }
                if let Cow::Owned(html) = cleaned.html {
                    *text = html;
                    rewritten += 1;
                }
                Ok(())
            },
        )?;
    }
    Ok(Applied { removed, rewritten })
}

/// Visits in one body, over every marked field: far above what any real body needs.
const MAX_VISITS: usize = 100_000;

/// Calls `on_string` for every string `steps` lead to from `value`, with its concrete pointer.
/// The recursion is as deep as the configured path, or for a `Repeat` step as deep as the body
/// (each repetition descends one member or element, and the body's depth is bounded).
fn visit(
    value: &mut Value,
    steps: &[Step],
    pointer: &mut String,
    budget: &mut usize,
    on_string: &mut impl FnMut(&mut String, &str) -> Result<(), Violation>,
) -> Result<(), Violation> {
    // Overlapping repeats (a schema whose recursion can be taken in one step or two) could
    // visit a deep body along exponentially many routes: past the budget the body is refused
    // rather than passed on partly cleaned.
    *budget = budget
        .checked_sub(1)
        .ok_or_else(|| Violation::new("/body", "is too deeply nested to sanitize"))?;
    let Some((step, rest)) = steps.split_first() else {
        if let Value::String(text) = value {
            on_string(text, pointer)?;
        }
        return Ok(());
    };
    let parent = pointer.len();
    match (step, value) {
        (Step::Key(key), Value::Object(members)) => {
            if let Some(child) = members.get_mut(key) {
                pointer.push('/');
                pointer.push_str(&escape_token(key));
                visit(child, rest, pointer, budget, on_string)?;
            }
        }
        // RFC 6901: a token applied to an array is an index.
        (Step::Key(key), Value::Array(items)) => {
            if let Some(child) = array_index(key).and_then(|i| items.get_mut(i)) {
                pointer.push('/');
                pointer.push_str(key);
                visit(child, rest, pointer, budget, on_string)?;
            }
        }
        (Step::Repeat(cycles), value) => {
            // Zero repetitions, then one more of each cycle followed by this step again.
            visit(value, rest, pointer, budget, on_string)?;
            for cycle in cycles {
                let again: Vec<Step> = cycle
                    .iter()
                    .chain(std::iter::once(step))
                    .chain(rest)
                    .cloned()
                    .collect();
                visit(value, &again, pointer, budget, on_string)?;
            }
        }
        (Step::AnyIndex, Value::Array(items)) => {
            for (index, child) in items.iter_mut().enumerate() {
                pointer.truncate(parent);
                pointer.push('/');
                pointer.push_str(&index.to_string());
                visit(child, rest, pointer, budget, on_string)?;
            }
        }
        _ => {}
    }
    pointer.truncate(parent);
    Ok(())
}

/// `0`, `17`, but not `01` or `+1` (RFC 6901 array-index).
fn array_index(token: &str) -> Option<usize> {
    let canonical = token == "0" || (!token.starts_with('0') && !token.is_empty());
    if canonical && token.bytes().all(|b| b.is_ascii_digit()) {
        token.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(pointer: &str) -> FieldPath {
        FieldPath::parse(pointer).unwrap_or_default()
    }

    fn run(mut body: Value, fields: &[(&str, OnUnsafe)]) -> (Value, Result<usize, Violation>) {
        let fields: Vec<_> = fields.iter().map(|(p, o)| (path(p), *o)).collect();
        let result = apply(
            &mut body,
            fields.iter().map(|(p, o)| (p, *o)),
            &HtmlSanitizer::default(),
        )
        .map(|a| a.removed);
        (body, result)
    }

    #[test]
    fn every_element_of_a_wildcard_path_is_sanitized_and_counted() {
        let body = json!({"comments": [
            {"text": "<b>fine</b>"},
            {"text": "hi<script>alert(1)</script>"},
            {"text": "<img src=x onerror=alert(1)>ok"},
            {"author": "no text here"},
            {"text": 42},
        ]});
        let (body, result) = run(body, &[("/comments/*/text", OnUnsafe::Sanitize)]);
        assert_eq!(result, Ok(2));
        assert_eq!(
            body,
            json!({"comments": [
                {"text": "<b>fine</b>"},
                {"text": "hi"},
                {"text": "ok"},
                {"author": "no text here"},
                {"text": 42},
            ]})
        );
    }

    #[test]
    fn reject_mode_points_to_the_concrete_index_and_never_the_content() {
        let body = json!({"comments": [
            {"text": "a"}, {"text": "b"}, {"text": "c"},
            {"text": "<a href=\"javascript:alert('secret')\">x</a>"},
        ]});
        let (_, result) = run(body, &[("/comments/*/text", OnUnsafe::Reject)]);
        assert_eq!(
            result,
            Err(Violation::new(
                "/body/comments/3/text",
                "contains markup that is not allowed"
            ))
        );
    }

    #[test]
    fn reject_mode_passes_plain_text_and_allowed_markup() {
        let body =
            json!({"bio": "Tom & Jerry <3 <b>bold</b> <a href=\"https://example.com\">site</a>"});
        let (body, result) = run(body, &[("/bio", OnUnsafe::Reject)]);
        assert_eq!(result, Ok(0));
        // Re-spelled by the sanitizer (escaped, rel added), not refused.
        assert_eq!(
            body["bio"],
            "Tom &amp; Jerry &lt;3 <b>bold</b> <a href=\"https://example.com\" rel=\"noopener noreferrer\">site</a>"
        );
    }

    #[test]
    fn an_unterminated_tag_at_the_end_is_rewritten_even_when_no_removal_is_detected() {
        // The tokenizer drops a tag cut by the end of the string, so the removal detector sees
        // none; the field must still be replaced by the sanitizer's output, and say so.
        let mut body = json!({"note": "hello<img src=x onerror=alert(1) "});
        let fields = [(path("/note"), OnUnsafe::Sanitize)];
        let applied = apply(
            &mut body,
            fields.iter().map(|(p, o)| (p, *o)),
            &HtmlSanitizer::default(),
        )
        .unwrap_or_default();
        assert_eq!(applied.rewritten, 1, "{body}");
        assert!(
            !body["note"].as_str().unwrap_or_default().contains('<'),
            "{body}"
        );
    }

    #[test]
    fn plain_text_is_left_byte_for_byte() {
        let body = json!({"name": "Tom & Jerry > \"friends\" 'forever'"});
        let (after, result) = run(body.clone(), &[("/name", OnUnsafe::Sanitize)]);
        assert_eq!((after, result), (body, Ok(0)));
    }

    #[test]
    fn missing_members_and_other_types_are_left_alone() {
        let body = json!({"a": {"b": [1, null, {"c": "<i>x</i>"}]}, "s": ["<script>x</script>"]});
        let (after, result) = run(
            body.clone(),
            &[
                ("/missing/*/x", OnUnsafe::Reject),
                ("/a/b/*", OnUnsafe::Reject),
                ("/a/*", OnUnsafe::Reject),
                ("/s/x", OnUnsafe::Reject),
            ],
        );
        assert_eq!((after, result), (body, Ok(0)));
    }

    #[test]
    fn an_index_token_selects_one_array_element() {
        let body = json!({"s": ["<script>x</script>a", "<script>y</script>b"]});
        let (after, result) = run(body, &[("/s/1", OnUnsafe::Sanitize)]);
        assert_eq!(result, Ok(1));
        assert_eq!(after, json!({"s": ["<script>x</script>a", "b"]}));
        assert_eq!(array_index("01"), None);
        assert_eq!(array_index("+1"), None);
        assert_eq!(array_index("0"), Some(0));
    }

    #[test]
    fn the_empty_path_sanitizes_a_body_that_is_one_string() {
        let (after, result) = run(
            json!("<iframe src=x></iframe>hi"),
            &[("", OnUnsafe::Sanitize)],
        );
        assert_eq!((after, result), (json!("hi"), Ok(1)));
        let (_, result) = run(json!("<iframe></iframe>"), &[("", OnUnsafe::Reject)]);
        assert_eq!(result.map_err(|v| v.pointer), Err("/body".to_owned()));
    }

    #[test]
    fn pointer_tokens_are_escaped_in_a_refusal() {
        let body = json!({"a/b": {"~c": "<script>x</script>"}});
        let (_, result) = run(body, &[("/a~1b/~0c", OnUnsafe::Reject)]);
        assert_eq!(
            result.map_err(|v| v.pointer),
            Err("/body/a~1b/~0c".to_owned())
        );
    }

    #[test]
    fn overlapping_repeats_on_a_deep_body_are_refused_within_the_budget_not_walked_forever() {
        let overlapping = FieldPath(vec![
            Step::Repeat(vec![
                vec![Step::AnyIndex],
                vec![Step::AnyIndex, Step::AnyIndex],
            ]),
            Step::Key("text".into()),
        ]);
        let mut body = json!({"text": "<script>x</script>"});
        for _ in 0..40 {
            body = json!([body]);
        }
        let started = std::time::Instant::now();
        let result = apply(
            &mut body,
            [(&overlapping, OnUnsafe::Sanitize)],
            &HtmlSanitizer::default(),
        );
        assert!(result.is_err(), "past the budget the body is refused");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
