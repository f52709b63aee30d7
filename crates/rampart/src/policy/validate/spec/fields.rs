//! What a request body schema says about individual fields, gathered at compile time: the
//! fields to sanitize (`x-rampart-sanitize: html`) and the parts of a multipart body.
//!
//! Invariant: walks follow `$ref`s and compositions to a bounded depth and a bounded number of
//! paths; a recursion found on the way (a tree of comments) adds a `Repeat` step to the paths
//! through it, which the sanitizer follows as deep as the body goes. A mark reached only through
//! two different recursions nested deeper than the depth bound is not collected (a known limit).

use std::collections::{BTreeSet, HashSet};

use serde_json::{Map, Value};

use super::body::MultipartField;
use super::coerce::branches;
use super::convert::ref_target;
use crate::policy::sanitize::field_path::{FieldPath, Step};

/// Levels of schema nesting (`$ref`s, properties, items, compositions) a sanitize mark is
/// looked for at: bounds the walk of a schema whose references branch (each level can double
/// the paths). Recursion beyond it is covered by the repeats.
const MAX_SANITIZE_DEPTH: usize = 12;
/// Sanitized fields per media type.
const MAX_SANITIZE_FIELDS: usize = 512;

pub(super) const SANITIZE_KEYWORD: &str = "x-rampart-sanitize";

/// Every field path under a schema carrying `x-rampart-sanitize: html`, and the pointers (in the
/// document) of marks with another value.
pub(super) fn sanitize_fields(doc: &Value, site: &str) -> (Vec<FieldPath>, Vec<String>) {
    let mut walk = SanitizeWalk {
        doc,
        found: Vec::new(),
        seen: HashSet::new(),
        bad_marks: Vec::new(),
        refs: Vec::new(),
        cycles: Vec::new(),
    };
    if let Some(Value::Object(schema)) = doc.pointer(site) {
        walk.visit(schema, &mut FieldPath::default(), site.to_owned(), 0);
    }
    let found = with_repeats(walk.found, &walk.cycles);
    (found, walk.bad_marks)
}

struct SanitizeWalk<'a> {
    doc: &'a Value,
    found: Vec<FieldPath>,
    seen: HashSet<FieldPath>,
    bad_marks: Vec<String>,
    /// The `$ref` targets on the current path, with the field path's length where each began.
    refs: Vec<(String, usize)>,
    /// Recursions found: the field path to the recursive schema, and the steps of one turn.
    cycles: Vec<(Vec<Step>, Vec<Step>)>,
}

/// Each found path that runs through a recursive schema gets a `Repeat` of that schema's turns
/// where the recursion starts (`/replies/*` in `/(/replies/*)*/text`), so the mark applies at
/// every depth.
fn with_repeats(found: Vec<FieldPath>, cycles: &[(Vec<Step>, Vec<Step>)]) -> Vec<FieldPath> {
    if cycles.is_empty() {
        return found;
    }
    let mut starts: Vec<(&[Step], Vec<Vec<Step>>)> = Vec::new();
    for (prefix, turn) in cycles {
        match starts.iter_mut().find(|(p, _)| *p == prefix.as_slice()) {
            Some((_, turns)) if !turns.contains(turn) => turns.push(turn.clone()),
            Some(_) => {}
            None => starts.push((prefix, vec![turn.clone()])),
        }
    }
    // The deepest start first, so that an outer repeat is inserted before an inner one and the
    // inner one's position is still right.
    starts.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    found
        .into_iter()
        .map(|mut path| {
            for (prefix, turns) in &starts {
                if path.0.starts_with(prefix) {
                    path.0.insert(prefix.len(), Step::Repeat(turns.clone()));
                }
            }
            path
        })
        .collect()
}

impl SanitizeWalk<'_> {
    fn mark(&mut self, path: &FieldPath) {
        if self.seen.insert(path.clone()) {
            self.found.push(path.clone());
        }
    }

    fn visit(
        &mut self,
        schema: &Map<String, Value>,
        path: &mut FieldPath,
        at: String,
        depth: usize,
    ) {
        if depth > MAX_SANITIZE_DEPTH || self.found.len() >= MAX_SANITIZE_FIELDS {
            return;
        }
        match schema.get(SANITIZE_KEYWORD) {
            Some(Value::String(mark)) if mark == "html" => {
                self.mark(path);
            }
            Some(_) => self
                .bad_marks
                .push(super::pointer::child(&at, SANITIZE_KEYWORD)),
            None => {}
        }
        if let Some(target) = ref_target(schema)
            && let Some(Value::Object(next)) = self.doc.pointer(&target)
        {
            let mut entries = self.refs.iter().filter(|(t, _)| *t == target);
            if let (Some((_, start)), None) = (entries.next(), entries.next()) {
                // Back at a schema this path is in once: one turn of a recursion (later turns,
                // walked on below, are not recorded again: overlapping turns would make the
                // sanitizer's walk of a deep body exponential).
                let turn = path.0[*start..].to_vec();
                if !turn.is_empty() {
                    self.cycles.push((path.0[..*start].to_vec(), turn));
                }
            }
            // Walked on through a recursion too (to the depth bound), so that marks reached
            // through one recursion inside another (a comment's author's friends' comments) have
            // explicit paths; the repeats then carry each path to any depth of its own recursion.
            self.refs.push((target.clone(), path.0.len()));
            self.visit(next, path, target, depth + 1);
            self.refs.pop();
        }
        for keyword in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(items)) = schema.get(keyword) {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Object(item) = item {
                        let p = format!("{at}/{keyword}/{i}");
                        self.visit(item, path, p, depth + 1);
                    }
                }
            }
        }
        if let Some(Value::Object(properties)) = schema.get("properties") {
            for (name, property) in properties {
                if let Value::Object(property) = property {
                    let p = super::pointer::child(&format!("{at}/properties"), name);
                    path.push(Step::Key(name.clone()));
                    self.visit(property, path, p, depth + 1);
                    path.0.pop();
                }
            }
        }
        if let Some(Value::Object(items)) = schema.get("items") {
            path.push(Step::AnyIndex);
            self.visit(items, path, format!("{at}/items"), depth + 1);
            path.0.pop();
        }
    }
}

/// The parts a multipart schema declares, with the media type's `encoding`.
pub(super) fn multipart_fields(
    doc: &Value,
    site: &str,
    encoding: Option<&Map<String, Value>>,
) -> Vec<MultipartField> {
    let Some(Value::Object(schema)) = doc.pointer(site) else {
        return Vec::new();
    };
    let mut properties = Vec::new();
    let mut required = BTreeSet::new();
    gather(doc, schema, &mut properties, &mut required, 0);
    let mut seen = BTreeSet::new();
    properties
        .into_iter()
        .filter(|(name, _)| seen.insert(name.clone()))
        .map(|(name, property)| {
            let property = resolve(doc, property);
            let items = property
                .get("items")
                .and_then(Value::as_object)
                .map(|i| resolve(doc, i));
            let repeated = is_type(property, "array");
            let file = if repeated {
                items.is_some_and(is_file)
            } else {
                is_file(property)
            };
            let content_type = encoding
                .and_then(|e| e.get(&name))
                .and_then(|e| e.get("contentType"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            MultipartField {
                required: required.contains(&name),
                name,
                file,
                repeated,
                content_type,
            }
        })
        .collect()
}

fn gather<'a>(
    doc: &'a Value,
    schema: &'a Map<String, Value>,
    properties: &mut Vec<(String, &'a Map<String, Value>)>,
    required: &mut BTreeSet<String>,
    depth: usize,
) {
    if depth > MAX_SANITIZE_DEPTH {
        return;
    }
    if let Some(Value::Object(declared)) = schema.get("properties") {
        for (name, property) in declared {
            if let Value::Object(property) = property {
                properties.push((name.clone(), property));
            }
        }
    }
    if let Some(Value::Array(names)) = schema.get("required") {
        required.extend(names.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    for branch in branches(doc, schema) {
        gather(doc, branch, properties, required, depth + 1);
    }
}

/// The schema behind a chain of `$ref`s (bounded).
fn resolve<'a>(doc: &'a Value, mut schema: &'a Map<String, Value>) -> &'a Map<String, Value> {
    for _ in 0..16 {
        match ref_target(schema).and_then(|t| doc.pointer(&t)) {
            Some(Value::Object(next)) => schema = next,
            _ => break,
        }
    }
    schema
}

fn is_type(schema: &Map<String, Value>, name: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == name,
        Some(Value::Array(types)) => types.iter().any(|t| t == name),
        _ => false,
    }
}

/// A file part: 3.0's `format: binary`, or 3.1's `contentMediaType` without `contentEncoding`.
fn is_file(schema: &Map<String, Value>) -> bool {
    schema.get("format").and_then(Value::as_str) == Some("binary")
        || (schema.contains_key("contentMediaType") && !schema.contains_key("contentEncoding"))
}
