//! Reading and parsing one contract file: bounded in bytes, JSON or YAML, into a JSON value.
//!
//! Threat: a contract (or a file it references) large or nested enough to exhaust memory or the
//! stack while it is loaded. Invariants: every file is read through one byte budget shared by
//! the whole contract; YAML aliases are expanded under the parser's repetition limit and merge
//! keys are applied; nesting is bounded; YAML that has no JSON meaning (tags, non-scalar keys,
//! `.nan`) is refused with its line rather than guessed at.

use std::io::Read;
use std::path::Path;

use serde_json::{Map, Number, Value};

/// The deepest nesting a contract file may have. Real contracts stay far below; the bound keeps
/// every recursive walk of the compiler off the end of the stack.
pub(super) const MAX_DEPTH: usize = 120;

/// Bytes of contract text still allowed (the main file and every referenced file together).
#[derive(Debug)]
pub(super) struct Budget {
    pub(super) remaining: usize,
}

/// Why a file could not be turned into a value: a message and, for syntax errors, the line.
#[derive(Debug)]
pub(super) struct LoadError {
    pub(super) line: Option<usize>,
    pub(super) message: String,
}

impl LoadError {
    fn new(line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

/// Reads `path` as UTF-8 text, charging its size to `budget`.
pub(super) fn read(path: &Path, budget: &mut Budget) -> Result<String, LoadError> {
    let file = std::fs::File::open(path)
        .map_err(|e| LoadError::new(None, format!("cannot be read: {}", e.kind())))?;
    let mut bytes = Vec::new();
    // One byte past the budget tells "exactly at the limit" from "over it".
    let limit = u64::try_from(budget.remaining).unwrap_or(u64::MAX);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| LoadError::new(None, format!("cannot be read: {}", e.kind())))?;
    charge(budget, bytes.len())?;
    String::from_utf8(bytes).map_err(|_| LoadError::new(None, "is not UTF-8 text"))
}

/// Charges `len` bytes to the budget.
pub(super) fn charge(budget: &mut Budget, len: usize) -> Result<(), LoadError> {
    if len > budget.remaining {
        return Err(LoadError::new(
            None,
            "makes the contract larger than the size limit (all files together)",
        ));
    }
    budget.remaining -= len;
    Ok(())
}

/// Parses contract text. JSON when the file says so by its name or its first character,
/// YAML otherwise.
pub(super) fn parse(text: &str, path: &Path) -> Result<Value, LoadError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let looks_json = match extension.as_deref() {
        Some("json") => true,
        Some("yaml" | "yml") => false,
        _ => text.trim_start().starts_with('{'),
    };
    let value = if looks_json {
        serde_json::from_str::<Value>(text)
            .map_err(|e| LoadError::new(Some(e.line()), format!("is not valid JSON: {e}")))?
    } else {
        parse_yaml(text)?
    };
    if depth(&value, 0) > MAX_DEPTH {
        return Err(LoadError::new(None, "is nested too deeply"));
    }
    Ok(value)
}

fn parse_yaml(text: &str) -> Result<Value, LoadError> {
    let line = |e: &yaml_serde::Error| e.location().map(|l| l.line());
    let mut yaml: yaml_serde::Value = yaml_serde::from_str(text)
        .map_err(|e| LoadError::new(line(&e), format!("is not valid YAML: {e}")))?;
    yaml.apply_merge()
        .map_err(|e| LoadError::new(line(&e), format!("has an invalid YAML merge key: {e}")))?;
    to_json(yaml, 0)
}

/// YAML to JSON, refusing what JSON cannot say.
fn to_json(yaml: yaml_serde::Value, level: usize) -> Result<Value, LoadError> {
    if level > MAX_DEPTH {
        return Err(LoadError::new(None, "is nested too deeply"));
    }
    Ok(match yaml {
        yaml_serde::Value::Null => Value::Null,
        yaml_serde::Value::Bool(b) => Value::Bool(b),
        yaml_serde::Value::Number(n) => Value::Number(number(&n)?),
        yaml_serde::Value::String(s) => Value::String(s),
        yaml_serde::Value::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(|item| to_json(item, level + 1))
                .collect::<Result<_, _>>()?,
        ),
        yaml_serde::Value::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                object.insert(key_text(key)?, to_json(value, level + 1)?);
            }
            Value::Object(object)
        }
        yaml_serde::Value::Tagged(_) => {
            return Err(LoadError::new(
                None,
                "uses a YAML tag, which has no JSON meaning",
            ));
        }
    })
}

fn number(n: &yaml_serde::Number) -> Result<Number, LoadError> {
    if let Some(i) = n.as_i64() {
        return Ok(Number::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Ok(Number::from(u));
    }
    n.as_f64()
        .and_then(Number::from_f64)
        .ok_or_else(|| LoadError::new(None, "has a number that JSON cannot hold (.inf or .nan)"))
}

/// Mapping keys become strings: `200:` in a YAML `responses` map is the integer 200.
fn key_text(key: yaml_serde::Value) -> Result<String, LoadError> {
    match key {
        yaml_serde::Value::String(s) => Ok(s),
        yaml_serde::Value::Number(n) => Ok(n.to_string()),
        yaml_serde::Value::Bool(b) => Ok(b.to_string()),
        yaml_serde::Value::Null => Ok("null".to_owned()),
        _ => Err(LoadError::new(
            None,
            "has a mapping key that is not a scalar, which has no JSON meaning",
        )),
    }
}

/// Nesting depth, computed without recursion so that a deep value cannot overflow the stack
/// before it is refused.
fn depth(value: &Value, start: usize) -> usize {
    let mut deepest = start;
    let mut stack = vec![(value, start)];
    while let Some((value, level)) = stack.pop() {
        deepest = deepest.max(level);
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, level + 1))),
            Value::Object(members) => stack.extend(members.values().map(|v| (v, level + 1))),
            _ => {}
        }
    }
    deepest
}
