//! Config errors with their path and line: TOML spans are looked up by the JSON pointer of the
//! offending value.

use std::fmt;

use jsonschema::error::ValidationErrorKind;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{ConfigSource, Issue};

/// An issue with its place in the file.
#[derive(Debug, Clone)]
pub struct Located {
    /// Dotted path such as `routes[2].cors.allow_origins[0]`; empty for the whole file.
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every error found in one configuration source.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub origin: String,
    pub errors: Vec<Located>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let path = if e.path.is_empty() { "(file)" } else { &e.path };
            write!(
                f,
                "{}:{}:{}: {path}: {}",
                self.origin, e.line, e.column, e.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

pub(super) type Document<'a> = Spanned<DeTable<'a>>;

/// Pass 1: syntax, with recovery so that every syntax error is reported.
pub(super) fn parse_document(source: &ConfigSource) -> Result<Document<'_>, ConfigErrors> {
    let (document, errors) = DeTable::parse_recoverable(&source.text);
    if errors.is_empty() {
        return Ok(document);
    }
    let errors = errors
        .iter()
        .map(|e| {
            let (line, column) = line_col(&source.text, e.span().map_or(0, |s| s.start));
            Located {
                path: String::new(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })
        .collect();
    Err(ConfigErrors {
        origin: source.origin.clone(),
        errors,
    })
}

/// Pass 2: the generated JSON Schema, which reports all structural errors at once.
pub(super) fn schema_issues(document: &Document<'_>) -> Vec<Issue> {
    let instance = table_to_json(document.get_ref());
    let Some(validator) = validator() else {
        return vec![Issue::new(
            "",
            "internal error: the config schema does not compile",
        )];
    };
    let mut issues = Vec::new();
    for error in validator.iter_errors(&instance) {
        collect(&error, &mut issues);
    }
    issues
}

fn validator() -> Option<&'static jsonschema::Validator> {
    static VALIDATOR: std::sync::OnceLock<Option<jsonschema::Validator>> =
        std::sync::OnceLock::new();
    VALIDATOR
        .get_or_init(|| {
            super::formats::register(jsonschema::options())
                .build(super::json_schema())
                .ok()
        })
        .as_ref()
}

fn collect(error: &jsonschema::ValidationError<'_>, issues: &mut Vec<Issue>) {
    let pointer = error.instance_path().as_str().to_owned();
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for key in unexpected {
                issues.push(Issue::new(
                    format!("{pointer}/{key}"),
                    format!("unknown key `{key}`"),
                ));
            }
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // Report the nested reasons rather than "not valid under any schema".
            let before = issues.len();
            for branch in context {
                for inner in branch {
                    collect(inner, issues);
                }
            }
            if issues.len() == before {
                issues.push(Issue::new(pointer, without_value(error)));
            }
        }
        ValidationErrorKind::Format { format } => {
            let message = super::formats::message(format, error.instance())
                .unwrap_or_else(|| without_value(error));
            issues.push(Issue::new(pointer, message));
        }
        _ => issues.push(Issue::new(pointer, without_value(error))),
    }
}

/// The schema's message without the offending value: a secret written inline by mistake
/// (`hmac_secret = "..."` instead of `{ file = ... }`) must not be echoed to the terminal, the
/// admin API or the audit log. The path and line say where; the message says what was expected.
fn without_value(error: &jsonschema::ValidationError<'_>) -> String {
    let text = error.to_string();
    let shown = error.instance().to_string();
    match text.strip_prefix(shown.as_str()) {
        Some(rest) if !shown.is_empty() => format!("the value{rest}"),
        _ => text,
    }
}

/// Pass 3: serde's own error (rare once the schema passed), with its span.
pub(super) fn serde_error(source: &ConfigSource, error: &toml::de::Error) -> ConfigErrors {
    let (line, column) = line_col(&source.text, error.span().map_or(0, |s| s.start));
    ConfigErrors {
        origin: source.origin.clone(),
        errors: vec![Located {
            path: String::new(),
            line,
            column,
            message: error.message().trim().to_owned(),
        }],
    }
}

/// Attaches a line to each issue by following its pointer into the spanned document.
pub(super) fn locate(source: &ConfigSource, issues: Vec<Issue>) -> ConfigErrors {
    let document = DeTable::parse_recoverable(&source.text).0;
    let mut errors: Vec<Located> = issues
        .into_iter()
        .map(|issue| {
            let offset = span_of(&document, &issue.pointer);
            let (line, column) = line_col(&source.text, offset);
            Located {
                path: dotted(&issue.pointer),
                line,
                column,
                message: issue.message,
            }
        })
        .collect();
    errors.sort_by_key(|e| (e.line, e.column));
    // Same place and text twice (from several schema branches) is one error; several values on
    // one line (an inline table) are several.
    errors.dedup_by(|a, b| a.line == b.line && a.path == b.path && a.message == b.message);
    ConfigErrors {
        origin: source.origin.clone(),
        errors,
    }
}

/// The byte offset of the deepest existing value (or key) along `pointer`.
fn span_of(document: &Document<'_>, pointer: &str) -> usize {
    let mut offset = 0;
    let mut current: Option<&DeValue<'_>> = None;
    let mut table: Option<&DeTable<'_>> = Some(document.get_ref());
    for segment in pointer.split('/').skip(1) {
        let next = match (table, current) {
            (Some(t), _) => t
                .iter()
                .find(|(k, _)| k.get_ref() == segment)
                .map(|(k, v)| {
                    offset = k.span().start;
                    v
                }),
            (None, Some(DeValue::Array(items))) => segment
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .inspect(|v| offset = v.span().start),
            _ => None,
        };
        let Some(value) = next else { break };
        current = Some(value.get_ref());
        table = match value.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    offset
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// `/routes/2/cors` becomes `routes[2].cors`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        if segment.parse::<usize>().is_ok() {
            out.push('[');
            out.push_str(segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

fn table_to_json(table: &DeTable<'_>) -> serde_json::Value {
    serde_json::Value::Object(
        table
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), value_to_json(v.get_ref())))
            .collect(),
    )
}

fn value_to_json(value: &DeValue<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(J::from)
            .unwrap_or_else(|_| J::String(i.to_string())),
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(J::Null, J::Number),
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(items) => {
            J::Array(items.iter().map(|v| value_to_json(v.get_ref())).collect())
        }
        DeValue::Table(t) => table_to_json(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_read_like_toml() {
        assert_eq!(
            dotted("/routes/2/cors/allow_origins/0"),
            "routes[2].cors.allow_origins[0]"
        );
        assert_eq!(dotted(""), "");
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_col("a\nbc\n", 3), (2, 2));
        assert_eq!(line_col("abc", 0), (1, 1));
    }
}
