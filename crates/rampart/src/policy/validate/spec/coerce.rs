//! Wire text to typed JSON: a parameter or a form field is a string on the wire and is checked
//! against its schema as the value the upstream will parse it into.
//!
//! Invariant: coercion never refuses and never guesses beyond the schema: text that is not a
//! valid literal of any declared type stays a string, so that the schema refuses it with its
//! own reason ("must be an integer"). Number literals follow JSON's grammar (no `+`, `NaN`,
//! `inf`, hex or surrounding space), so `1 OR 1=1` or `0x10` is never a number.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::convert::ref_target;
use super::load::MAX_DEPTH;

/// The JSON types a schema allows; empty means any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Types(u8);

impl Types {
    const INTEGER: u8 = 1;
    const NUMBER: u8 = 2;
    const BOOLEAN: u8 = 4;
    const STRING: u8 = 8;
    const NULL: u8 = 16;
    const OBJECT: u8 = 32;
    const ARRAY: u8 = 64;

    fn from_name(name: &str) -> u8 {
        match name {
            "integer" => Self::INTEGER,
            "number" => Self::NUMBER,
            "boolean" => Self::BOOLEAN,
            "string" => Self::STRING,
            "null" => Self::NULL,
            "object" => Self::OBJECT,
            "array" => Self::ARRAY,
            _ => 0,
        }
    }

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    pub(super) fn is_array(self) -> bool {
        self.has(Self::ARRAY)
    }

    pub(super) fn is_object(self) -> bool {
        self.has(Self::OBJECT) && !self.has(Self::ARRAY)
    }
}

/// How wire text maps onto a schema: one value, a list of values, or named members.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Shape {
    Scalar(Types),
    Array(Types),
    Object {
        properties: BTreeMap<String, Shape>,
        other: Types,
    },
}

impl Default for Shape {
    fn default() -> Self {
        Self::Scalar(Types::default())
    }
}

impl Shape {
    /// Whether the value may repeat (a repeated query parameter or form field is a list).
    pub(super) fn is_array(&self) -> bool {
        matches!(self, Self::Array(_))
    }

    /// The shape of the schema at `pointer` in `doc`, with `$ref`, `allOf`, `anyOf` and `oneOf`
    /// followed; `levels` says how many levels of object members are described.
    pub(super) fn of(doc: &Value, pointer: &str, levels: usize) -> Self {
        match doc.pointer(pointer) {
            Some(Value::Object(schema)) => shape(doc, schema, levels, 0),
            _ => Self::default(),
        }
    }

    /// Member `name` of an object shape (undeclared members take `other`).
    pub(super) fn member(&self, name: &str) -> Shape {
        match self {
            Self::Object { properties, other } => properties
                .get(name)
                .cloned()
                .unwrap_or(Shape::Scalar(*other)),
            _ => Shape::default(),
        }
    }

    /// One wire value as JSON.
    pub(super) fn coerce_one(&self, text: &str) -> Value {
        match self {
            Self::Scalar(types) | Self::Array(types) => scalar(text, *types),
            Self::Object { .. } => Value::String(text.to_owned()),
        }
    }
}

fn shape(doc: &Value, schema: &Map<String, Value>, levels: usize, depth: usize) -> Shape {
    let declared = types(doc, schema, depth);
    if declared.is_array() {
        let items = schema
            .get("items")
            .and_then(Value::as_object)
            .map(|items| types(doc, items, depth + 1))
            .unwrap_or_default();
        return Shape::Array(items);
    }
    if declared.is_object() && levels > 0 {
        let mut properties = BTreeMap::new();
        let mut other = Types::default();
        collect_members(doc, schema, levels, depth, &mut properties, &mut other);
        return Shape::Object { properties, other };
    }
    Shape::Scalar(declared)
}

/// Members declared by the schema and by every schema it is composed of.
fn collect_members(
    doc: &Value,
    schema: &Map<String, Value>,
    levels: usize,
    depth: usize,
    properties: &mut BTreeMap<String, Shape>,
    other: &mut Types,
) {
    if depth > MAX_DEPTH {
        return;
    }
    if let Some(Value::Object(declared)) = schema.get("properties") {
        for (name, member) in declared {
            if let Value::Object(member) = member {
                properties
                    .entry(name.clone())
                    .or_insert_with(|| shape(doc, member, levels - 1, depth + 1));
            }
        }
    }
    if let Some(Value::Object(additional)) = schema.get("additionalProperties") {
        *other = types(doc, additional, depth + 1);
    }
    for branch in branches(doc, schema) {
        collect_members(doc, branch, levels, depth + 1, properties, other);
    }
}

/// The schemas this one is composed of: its `$ref` target and its `allOf`/`anyOf`/`oneOf`
/// branches.
pub(super) fn branches<'a>(
    doc: &'a Value,
    schema: &'a Map<String, Value>,
) -> Vec<&'a Map<String, Value>> {
    let mut out = Vec::new();
    if let Some(Value::Object(target)) = ref_target(schema).and_then(|t| doc.pointer(&t)) {
        out.push(target);
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(items)) = schema.get(keyword) {
            out.extend(items.iter().filter_map(Value::as_object));
        }
    }
    out
}

/// The declared types; when the schema declares none, the union of its branches' types.
fn types(doc: &Value, schema: &Map<String, Value>, depth: usize) -> Types {
    let bits = match schema.get("type") {
        Some(Value::String(name)) => Types::from_name(name),
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .fold(0, |bits, name| bits | Types::from_name(name)),
        _ if depth <= MAX_DEPTH => branches(doc, schema)
            .into_iter()
            .fold(0, |bits, branch| bits | types(doc, branch, depth + 1).0),
        _ => 0,
    };
    Types(bits)
}

/// One wire string as the first declared type it is a valid literal of.
pub(super) fn scalar(text: &str, types: Types) -> Value {
    let numeric = (types.has(Types::INTEGER) && is_integer_literal(text))
        || (types.has(Types::NUMBER) && is_number_literal(text));
    if numeric && let Some(n) = number(text) {
        return Value::Number(n);
    }
    if types.has(Types::BOOLEAN) {
        match text {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    Value::String(text.to_owned())
}

fn number(text: &str) -> Option<serde_json::Number> {
    serde_json::from_str::<serde_json::Number>(text).ok()
}

fn is_integer_literal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// JSON's number grammar (RFC 8259 section 6), checked before parsing so that nothing the
/// parser might tolerate slips through.
fn is_number_literal(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = usize::from(bytes.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == bytes.len()
}
