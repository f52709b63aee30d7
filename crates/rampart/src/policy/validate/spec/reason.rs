//! Schema errors as client-facing reasons: where and why, in Rampart's words.
//!
//! Threat: an error message that reflects the offending value back (XSS in a page that shows
//! it, a secret echoed into a log) or a library's wording that tells an attacker which
//! validator runs. Invariants: a reason is built only from the error's kind and from the
//! contract (limits, format names); never from the instance; at most `MAX_VIOLATIONS`
//! violations per check, one per pointer; a pointer longer than `MAX_POINTER` (a client can
//! send a very long member name) is cut, and says so with a trailing `~…`.

use std::borrow::Cow;
use std::collections::HashSet;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError};

use super::keywords::{
    INT_KEYWORD, INT32_REASON, INT64_REASON, READ_ONLY_KEYWORD, READ_ONLY_REASON,
};
use crate::policy::validate::violation::{Violation, escape_token};

/// The most violations one request (head or body) reports: enough to fix a form, too few to
/// make the refusal a cost amplifier.
pub const MAX_VIOLATIONS: usize = 20;

/// Longest pointer reported, in bytes.
const MAX_POINTER: usize = 256;

/// Violations as they are found: capped, one per pointer.
#[derive(Debug, Default)]
pub(super) struct Collector {
    violations: Vec<Violation>,
    seen: HashSet<String>,
}

impl Collector {
    pub(super) fn full(&self) -> bool {
        self.violations.len() >= MAX_VIOLATIONS
    }

    pub(super) fn push(&mut self, pointer: String, reason: impl Into<Cow<'static, str>>) {
        if self.full() {
            return;
        }
        let pointer = bounded(pointer);
        if self.seen.insert(pointer.clone()) {
            self.violations.push(Violation::new(pointer, reason));
        }
    }

    /// Adds the reasons of schema errors, their instance paths under `prefix` (`/body`).
    pub(super) fn schema_errors<'i>(
        &mut self,
        prefix: &str,
        errors: impl Iterator<Item = ValidationError<'i>>,
    ) {
        for error in errors {
            if self.full() {
                return;
            }
            self.schema_error(prefix, &error);
        }
    }

    fn schema_error(&mut self, prefix: &str, error: &ValidationError<'_>) {
        let at = format!("{prefix}{}", error.instance_path().as_str());
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                for key in unexpected {
                    self.push(format!("{at}/{}", escape_token(key)), "is not declared");
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                self.push(format!("{at}/{}", escape_token(name)), "is required");
            }
            kind => self.push(at, reason(kind)),
        }
    }

    pub(super) fn finish(self) -> Vec<Violation> {
        self.violations
    }
}

fn bounded(pointer: String) -> String {
    if pointer.len() <= MAX_POINTER {
        return pointer;
    }
    let mut end = MAX_POINTER;
    while !pointer.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}~…", &pointer[..end])
}

/// The reason for one error kind. Limits and format names come from the contract, never from
/// the value.
pub(super) fn reason(kind: &ValidationErrorKind) -> Cow<'static, str> {
    use ValidationErrorKind as K;
    match kind {
        K::Type { kind } => type_reason(kind).into(),
        K::MaxLength { limit } => format!("must be at most {limit} characters").into(),
        K::MinLength { limit } => format!("must be at least {limit} characters").into(),
        K::Maximum { limit } => format!("must be at most {limit}").into(),
        K::Minimum { limit } => format!("must be at least {limit}").into(),
        K::ExclusiveMaximum { limit } => format!("must be less than {limit}").into(),
        K::ExclusiveMinimum { limit } => format!("must be greater than {limit}").into(),
        K::MultipleOf { multiple_of } => format!("must be a multiple of {multiple_of}").into(),
        K::MaxItems { limit } => format!("must have at most {limit} items").into(),
        K::MinItems { limit } => format!("must have at least {limit} items").into(),
        K::MaxProperties { limit } => format!("must have at most {limit} members").into(),
        K::MinProperties { limit } => format!("must have at least {limit} members").into(),
        K::UniqueItems => "must not contain duplicate items".into(),
        K::Contains => "must contain an item of the declared kind".into(),
        K::Pattern { .. } | K::BacktrackLimitExceeded { .. } | K::RegexEngineFailure { .. } => {
            "must match the allowed pattern".into()
        }
        K::Format { format } => format_reason(format),
        K::Enum { .. } => "must be one of the allowed values".into(),
        K::Constant { .. } => "must be the allowed value".into(),
        K::AnyOf { .. } | K::OneOfNotValid { .. } => {
            "must match one of the declared schemas".into()
        }
        K::OneOfMultipleValid { .. } => "must match exactly one of the declared schemas".into(),
        K::Not { .. } | K::FalseSchema => "is not allowed".into(),
        K::PropertyNames { .. } => "has a member name that is not allowed".into(),
        K::AdditionalItems { .. } | K::UnevaluatedItems { .. } => {
            "has more items than declared".into()
        }
        K::AdditionalProperties { .. } | K::UnevaluatedProperties { .. } => {
            "has members that are not declared".into()
        }
        K::Required { .. } => "is missing a required member".into(),
        K::Custom { keyword, .. } => custom_reason(keyword, kind).into(),
        K::ContentEncoding { .. } | K::ContentMediaType { .. } | K::FromUtf8 { .. } => {
            "is not valid content".into()
        }
        K::Referencing(_) => "could not be checked".into(),
    }
}

fn custom_reason(keyword: &str, kind: &ValidationErrorKind) -> &'static str {
    let ValidationErrorKind::Custom { message, .. } = kind else {
        return "is not valid";
    };
    // The message is one of ours: map it back to the static text rather than echo a string.
    match (keyword, message.as_str()) {
        (READ_ONLY_KEYWORD, _) => READ_ONLY_REASON,
        (INT_KEYWORD, INT32_REASON) => INT32_REASON,
        (INT_KEYWORD, _) => INT64_REASON,
        _ => "is not valid",
    }
}

fn type_reason(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => format!("must be {}", type_name(*t)),
        TypeKind::Multiple(set) => {
            // "a string or null" reads better than "null or a string".
            let mut names: Vec<&str> = set.iter().map(type_name).collect();
            names.sort_by_key(|name| *name == "null");
            format!("must be {}", names.join(" or "))
        }
    }
}

fn type_name(t: JsonType) -> &'static str {
    match t {
        JsonType::Array => "an array",
        JsonType::Boolean => "a boolean",
        JsonType::Integer => "an integer",
        JsonType::Null => "null",
        JsonType::Number => "a number",
        JsonType::Object => "an object",
        JsonType::String => "a string",
    }
}

/// "is not a valid date-time". The name is the contract's; an odd one is not repeated.
fn format_reason(format: &str) -> Cow<'static, str> {
    let plain = !format.is_empty()
        && format.len() <= 32
        && format
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        format!("is not a valid {format}").into()
    } else {
        "is not in the declared format".into()
    }
}
