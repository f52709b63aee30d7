//! Schema preparation: OpenAPI's schema dialects turned into JSON Schema 2020-12, and the
//! contract's promises made enforceable in request schemas.
//!
//! Threat: mass assignment (a client sets `isAdmin` or `price` because the object schema did
//! not say "no other members"), a client writing a `readOnly` field (an `id`, an owner), a
//! 32-bit integer that overflows the upstream's column. Invariants, request schemas only:
//! an object schema that declares `properties` and says nothing about other members refuses
//! them (`additionalProperties: false`, or `unevaluatedProperties: false` where the object is
//! composed with `allOf`/`anyOf`/`oneOf`/`$ref`, so that each branch stays open and the
//! composition as a whole is closed); a `readOnly` property present in a request is refused
//! and is not required there. Response schemas are validated as declared (only `writeOnly`
//! properties stop being required). Which schemas are closed depends on where they are used:
//! the schema of a parameter, a body, a property or an array item is a whole value and is
//! closed; a branch of a composition or the target of a `$ref` is a part and stays open (the
//! `$ref` site is closed instead), so one component serves both uses.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::keywords::{INT_KEYWORD, READ_ONLY_KEYWORD};
use super::load::MAX_DEPTH;
use super::pointer;

/// The OpenAPI version, which decides the schema dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// 3.0: an extended subset of draft 4 (`nullable`, boolean `exclusiveMinimum`, `$ref`
    /// siblings ignored).
    V30,
    /// 3.1: JSON Schema 2020-12.
    V31,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Request { strict: bool },
    Response,
}

/// Where a schema sits: a whole value, or a part combined with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Position {
    Whole,
    Part,
}

/// What is known about the target of a `$ref`, from the document as written.
#[derive(Debug, Clone, Copy, Default)]
struct Facts {
    closable: bool,
    read_only: bool,
    write_only: bool,
}

/// Keywords whose value is one subschema, and how that subschema is used.
const ONE: &[(&str, Position)] = &[
    ("additionalProperties", Position::Whole),
    ("items", Position::Whole),
    ("contains", Position::Whole),
    ("unevaluatedItems", Position::Whole),
    ("unevaluatedProperties", Position::Whole),
    ("additionalItems", Position::Whole),
    ("propertyNames", Position::Whole),
    ("not", Position::Part),
    ("if", Position::Part),
    ("then", Position::Part),
    ("else", Position::Part),
    ("contentSchema", Position::Part),
];
/// Keywords whose value is a list of subschemas.
const LISTS: &[(&str, Position)] = &[
    ("prefixItems", Position::Whole),
    ("allOf", Position::Part),
    ("anyOf", Position::Part),
    ("oneOf", Position::Part),
];
/// Keywords whose value maps names to subschemas.
const MAPS: &[(&str, Position)] = &[
    ("properties", Position::Whole),
    ("patternProperties", Position::Whole),
    ("dependentSchemas", Position::Part),
    ("$defs", Position::Part),
    ("definitions", Position::Part),
];
/// Keywords that compose an object from branches (so closing uses `unevaluatedProperties`).
const COMPOSING: &[&str] = &["$ref", "allOf", "anyOf", "oneOf", "if", "dependentSchemas"];

/// Every subschema of `schema`: (keyword, member or index, position).
fn subschemas(schema: &Map<String, Value>) -> Vec<(String, Option<String>, Position)> {
    let mut out = Vec::new();
    for (keyword, position) in ONE {
        if schema.get(*keyword).is_some_and(|v| v.is_object()) {
            out.push(((*keyword).to_owned(), None, *position));
        }
    }
    for (keyword, position) in LISTS {
        if let Some(Value::Array(items)) = schema.get(*keyword) {
            out.extend(
                (0..items.len()).map(|i| ((*keyword).to_owned(), Some(i.to_string()), *position)),
            );
        }
    }
    for (keyword, position) in MAPS {
        if let Some(Value::Object(members)) = schema.get(*keyword) {
            out.extend(
                members
                    .keys()
                    .map(|k| ((*keyword).to_owned(), Some(k.clone()), *position)),
            );
        }
    }
    out
}

fn subschema_mut<'a>(
    schema: &'a mut Map<String, Value>,
    keyword: &str,
    member: Option<&str>,
) -> Option<&'a mut Value> {
    let value = schema.get_mut(keyword)?;
    match (member, value) {
        (None, value) => Some(value),
        (Some(i), Value::Array(items)) => items.get_mut(i.parse::<usize>().ok()?),
        (Some(k), Value::Object(members)) => members.get_mut(k),
        _ => None,
    }
}

fn subschema<'a>(
    schema: &'a Map<String, Value>,
    keyword: &str,
    member: Option<&str>,
) -> Option<&'a Value> {
    let value = schema.get(keyword)?;
    match (member, value) {
        (None, value) => Some(value),
        (Some(i), Value::Array(items)) => items.get(i.parse::<usize>().ok()?),
        (Some(k), Value::Object(members)) => members.get(k),
        _ => None,
    }
}

/// The pointer a local `$ref` names, if it is one.
pub(super) fn ref_target(schema: &Map<String, Value>) -> Option<String> {
    let reference = schema.get("$ref")?.as_str()?;
    pointer::from_fragment(reference.strip_prefix('#')?)
}

/// Prepares, in place, every schema used at `sites` (and every schema they reference) for
/// `mode`. Returns issues as (pointer in the document, message).
pub(super) fn prepare(
    doc: &mut Value,
    sites: &[String],
    mode: Mode,
    dialect: Dialect,
) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    let targets = discover(doc, sites, &mut issues);
    let mut facts = HashMap::new();
    for target in &targets {
        let mut visiting = HashSet::new();
        target_facts(doc, target, &mut facts, &mut visiting);
    }
    let mut roots: Vec<(&String, Position)> = sites
        .iter()
        .map(|s| (s, Position::Whole))
        .chain(targets.iter().map(|t| (t, Position::Part)))
        .collect();
    roots.sort();
    roots.dedup_by(|a, b| a.0 == b.0);
    let mut kept: HashSet<&str> = HashSet::new();
    let mut ctx = Ctx {
        mode,
        dialect,
        facts: &facts,
        issues: &mut issues,
    };
    for (root, position) in roots {
        if has_kept_ancestor(root, &kept) {
            continue;
        }
        kept.insert(root);
        let Some(slot) = doc.pointer_mut(root) else {
            continue;
        };
        let mut schema = std::mem::take(slot);
        transform(&mut schema, root, position, 0, &mut ctx);
        if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
            let at = format!("{root}{}", e.instance_path().as_str());
            ctx.issues.push((at, format!("is not a valid schema: {e}")));
        }
        if let Some(slot) = doc.pointer_mut(root) {
            *slot = schema;
        }
    }
    issues
}

fn has_kept_ancestor(root: &str, kept: &HashSet<&str>) -> bool {
    let mut prefix = String::new();
    let tokens = pointer::tokens(root);
    for token in tokens.iter().take(tokens.len().saturating_sub(1)) {
        prefix = pointer::child(&prefix, token);
        if kept.contains(prefix.as_str()) {
            return true;
        }
    }
    kept.contains("")
}

/// Every `$ref` target reachable from the sites, each checked to exist.
fn discover(doc: &Value, sites: &[String], issues: &mut Vec<(String, String)>) -> BTreeSet<String> {
    let mut targets = BTreeSet::new();
    let mut queue: Vec<String> = sites.to_vec();
    while let Some(at) = queue.pop() {
        let Some(schema) = doc.pointer(&at) else {
            continue;
        };
        let mut found = Vec::new();
        collect_refs(schema, &at, 0, &mut found, issues);
        for (site, target) in found {
            if doc.pointer(&target).is_none() {
                issues.push((site, "points to nothing in the contract".to_owned()));
            } else if targets.insert(target.clone()) {
                queue.push(target);
            }
        }
    }
    targets
}

fn collect_refs(
    schema: &Value,
    at: &str,
    depth: usize,
    found: &mut Vec<(String, String)>,
    issues: &mut Vec<(String, String)>,
) {
    let Value::Object(members) = schema else {
        return;
    };
    if depth > MAX_DEPTH {
        issues.push((at.to_owned(), "is nested too deeply".to_owned()));
        return;
    }
    if let Some(target) = ref_target(members) {
        found.push((pointer::child(at, "$ref"), target));
    }
    for (keyword, member, _) in subschemas(members) {
        if let Some(child) = subschema(members, &keyword, member.as_deref()) {
            let mut p = pointer::child(at, &keyword);
            if let Some(m) = &member {
                p = pointer::child(&p, m);
            }
            collect_refs(child, &p, depth + 1, found, issues);
        }
    }
}

fn target_facts(
    doc: &Value,
    target: &str,
    memo: &mut HashMap<String, Facts>,
    visiting: &mut HashSet<String>,
) -> Facts {
    if let Some(facts) = memo.get(target) {
        return *facts;
    }
    if !visiting.insert(target.to_owned()) {
        return Facts::default();
    }
    let facts = match doc.pointer(target) {
        Some(Value::Object(schema)) => {
            let inherited = ref_target(schema)
                .map(|t| target_facts(doc, &t, memo, visiting))
                .unwrap_or_default();
            Facts {
                closable: closable(schema, doc, memo, visiting, 0),
                read_only: flag(schema, "readOnly") || inherited.read_only,
                write_only: flag(schema, "writeOnly") || inherited.write_only,
            }
        }
        _ => Facts::default(),
    };
    visiting.remove(target);
    memo.insert(target.to_owned(), facts);
    facts
}

/// Whether the schema (with its branches) declares properties, so closing it means something:
/// a free-form `type: object` stays free.
fn closable(
    schema: &Map<String, Value>,
    doc: &Value,
    memo: &mut HashMap<String, Facts>,
    visiting: &mut HashSet<String>,
    depth: usize,
) -> bool {
    if schema.contains_key("properties") {
        return true;
    }
    if depth > MAX_DEPTH {
        return false;
    }
    if let Some(target) = ref_target(schema)
        && target_facts(doc, &target, memo, visiting).closable
    {
        return true;
    }
    ["allOf", "anyOf", "oneOf"].iter().any(|k| {
        schema
            .get(*k)
            .and_then(Value::as_array)
            .is_some_and(|branches| {
                branches
                    .iter()
                    .filter_map(Value::as_object)
                    .any(|b| closable(b, doc, memo, visiting, depth + 1))
            })
    })
}

fn flag(schema: &Map<String, Value>, keyword: &str) -> bool {
    schema.get(keyword) == Some(&Value::Bool(true))
}

struct Ctx<'a> {
    mode: Mode,
    dialect: Dialect,
    facts: &'a HashMap<String, Facts>,
    issues: &'a mut Vec<(String, String)>,
}

impl Ctx<'_> {
    /// Closability of an inline schema, with `$ref`s answered from the facts gathered before
    /// any schema was changed.
    fn closable(&self, schema: &Map<String, Value>, depth: usize) -> bool {
        if schema.contains_key("properties") {
            return true;
        }
        if depth > MAX_DEPTH {
            return false;
        }
        if ref_target(schema).is_some_and(|t| self.facts.get(&t).is_some_and(|f| f.closable)) {
            return true;
        }
        ["allOf", "anyOf", "oneOf"].iter().any(|k| {
            schema
                .get(*k)
                .and_then(Value::as_array)
                .is_some_and(|branches| {
                    branches
                        .iter()
                        .filter_map(Value::as_object)
                        .any(|b| self.closable(b, depth + 1))
                })
        })
    }

    /// Whether a property schema (inline or behind a `$ref`) carries `keyword: true`.
    fn property_flag(&self, property: &Value, keyword: &str) -> bool {
        let Value::Object(schema) = property else {
            return false;
        };
        if flag(schema, keyword) {
            return true;
        }
        ref_target(schema)
            .and_then(|t| self.facts.get(&t))
            .is_some_and(|f| match keyword {
                "readOnly" => f.read_only,
                _ => f.write_only,
            })
    }
}

fn transform(schema: &mut Value, at: &str, position: Position, depth: usize, ctx: &mut Ctx<'_>) {
    let Value::Object(members) = schema else {
        return;
    };
    if depth > MAX_DEPTH {
        ctx.issues
            .push((at.to_owned(), "is nested too deeply".to_owned()));
        return;
    }
    if ctx.dialect == Dialect::V30 {
        from_openapi_30(members);
    }
    for unsupported in ["$dynamicRef", "$recursiveRef"] {
        if members.contains_key(unsupported) {
            ctx.issues.push((
                pointer::child(at, unsupported),
                "is not supported by Rampart".to_owned(),
            ));
        }
    }
    // Identifiers would change the base against which the (already rewritten) references are
    // resolved; annotations Rampart has no use for go too.
    for dropped in [
        "$id",
        "$schema",
        "$anchor",
        "$dynamicAnchor",
        "discriminator",
        "xml",
        "externalDocs",
    ] {
        members.remove(dropped);
    }
    mark_integer_width(members);
    if let Some(Value::String(pattern)) = members.get_mut("pattern") {
        *pattern = escape_literal_braces(pattern);
    }
    match ctx.mode {
        Mode::Request { strict } => {
            if flag(members, "readOnly") {
                members.insert(READ_ONLY_KEYWORD.to_owned(), Value::Bool(true));
            }
            drop_required(members, ctx, "readOnly");
            if strict && position == Position::Whole {
                close(members, ctx);
            }
        }
        // A `writeOnly` member is never in a response: it stops being required here, and
        // response stripping removes it (`strip.rs`, which reads the keyword kept in place).
        Mode::Response => drop_required(members, ctx, "writeOnly"),
    }
    for (keyword, member, child_position) in subschemas(members) {
        let mut p = pointer::child(at, &keyword);
        if let Some(m) = &member {
            p = pointer::child(&p, m);
        }
        if let Some(child) = subschema_mut(members, &keyword, member.as_deref()) {
            transform(child, &p, child_position, depth + 1, ctx);
        }
    }
}

/// OpenAPI 3.0 to 2020-12: siblings of `$ref` are ignored by 3.0, `nullable` widens `type`,
/// boolean `exclusiveMinimum`/`exclusiveMaximum` become numbers.
fn from_openapi_30(members: &mut Map<String, Value>) {
    if members.contains_key("$ref") {
        // `readOnly`/`writeOnly` beside a `$ref` are kept although 3.0 says to ignore them:
        // honoring them refuses more in requests, and in responses relaxes `required` for a
        // member that response stripping (`strip.rs`) then removes.
        members.retain(|k, _| {
            matches!(k.as_str(), "$ref" | "readOnly" | "writeOnly") || k.starts_with("x-")
        });
        return;
    }
    if members.remove("nullable") == Some(Value::Bool(true))
        && let Some(Value::String(single)) = members.get("type").cloned()
    {
        members.insert("type".to_owned(), json!([single, "null"]));
        if let Some(Value::Array(options)) = members.get_mut("enum")
            && !options.contains(&Value::Null)
        {
            options.push(Value::Null);
        }
    }
    for (exclusive, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(Value::Bool(is_exclusive)) = members.get(exclusive).cloned() {
            members.remove(exclusive);
            if is_exclusive && let Some(limit) = members.remove(bound) {
                members.insert(exclusive.to_owned(), limit);
            }
        }
    }
}

/// `format: int32|int64` is checked as a range by Rampart's own keyword (a format only
/// applies to strings in JSON Schema).
fn mark_integer_width(members: &mut Map<String, Value>) {
    let bits = match members.get("format").and_then(Value::as_str) {
        Some("int32") => 32,
        Some("int64") => 64,
        _ => return,
    };
    members.insert(INT_KEYWORD.to_owned(), Value::from(bits));
}

/// A property marked `keyword` (readOnly in requests, writeOnly in responses) is not required
/// in that direction (OpenAPI 3.x, "readOnly": "SHOULD NOT be sent as part of the request").
fn drop_required(members: &mut Map<String, Value>, ctx: &Ctx<'_>, keyword: &str) {
    let Some(Value::Object(properties)) = members.get("properties") else {
        return;
    };
    let marked: Vec<String> = properties
        .iter()
        .filter(|(_, schema)| ctx.property_flag(schema, keyword))
        .map(|(name, _)| name.clone())
        .collect();
    if marked.is_empty() {
        return;
    }
    if let Some(Value::Array(required)) = members.get_mut("required") {
        required.retain(|name| !name.as_str().is_some_and(|n| marked.iter().any(|m| m == n)));
    }
}

/// Closes an object schema used as a whole value, unless it speaks for itself.
fn close(members: &mut Map<String, Value>, ctx: &Ctx<'_>) {
    if members.contains_key("additionalProperties")
        || members.contains_key("unevaluatedProperties")
        || !ctx.closable(members, 0)
    {
        return;
    }
    let composed = COMPOSING.iter().any(|k| members.contains_key(*k))
        || members.contains_key("patternProperties");
    let keyword = if composed {
        "unevaluatedProperties"
    } else {
        "additionalProperties"
    };
    members.insert(keyword.to_owned(), Value::Bool(false));
}

/// ECMA-262 (which JSON Schema's `pattern` follows) reads a `{` or `}` that is not part of a
/// quantifier (`{2}`, `{2,}`, `{2,5}`) as a literal character (Annex B); the Rust regex engines
/// refuse it. Such braces are escaped so that the pattern means what its author wrote. Braces
/// after a backslash (`\{`, `\p{L}`, `\u{41}`) and inside a character class are left alone.
pub(super) fn escape_literal_braces(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len());
    let mut in_class = false;
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            '\\' => {
                out.push(c);
                if let Some(&next) = chars.get(i + 1) {
                    out.push(next);
                    i += 1;
                    // `\p{..}`, `\P{..}`, `\u{..}`, `\x{..}`: the braces belong to the escape.
                    if matches!(next, 'p' | 'P' | 'u' | 'x') && chars.get(i + 1) == Some(&'{') {
                        while let Some(&inner) = chars.get(i + 1) {
                            out.push(inner);
                            i += 1;
                            if inner == '}' {
                                break;
                            }
                        }
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '{' if !in_class => match quantifier_len(&chars[i..]) {
                Some(len) => {
                    out.extend(&chars[i..i + len]);
                    i += len - 1;
                }
                None => out.push_str("\\{"),
            },
            '}' if !in_class => out.push_str("\\}"),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// The length of the quantifier (`{n}`, `{n,}`, `{n,m}`) that `chars` starts with, if any.
fn quantifier_len(chars: &[char]) -> Option<usize> {
    let close = chars.iter().position(|&c| c == '}')?;
    let inner: String = chars.get(1..close)?.iter().collect();
    let (low, high) = inner.split_once(',').unwrap_or((inner.as_str(), "0"));
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    (digits(low) && (high.is_empty() || digits(high))).then_some(close + 1)
}
