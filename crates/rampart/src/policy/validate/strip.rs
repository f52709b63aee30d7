//! Response stripping: a response carries only the members its contract declares.
//!
//! Threat (OWASP API3, excessive data exposure): an upstream serializes whole records (a
//! `password_hash`, an `is_admin` flag, internal notes) and relies on the client to show only
//! some fields. The gateway removes from a JSON response every object member that the response
//! schema does not declare, and reports where (JSON pointers, never the values) for the audit.
//!
//! Semantics (JSON Schema 2020-12, the OpenAPI 3.1 dialect; 3.0 schemas arrive converted):
//! - `properties` and `patternProperties` declare members (a member declared `false` is removed);
//!   a member they do not declare is kept only when `additionalProperties` (or, without it,
//!   `unevaluatedProperties`) is `true` or a schema (the member is then checked against that
//!   schema); `false` or absent removes it.
//! - A schema that says nothing about members (`true`, `{}`, `{"type": "object"}`) is free-form:
//!   the object is kept whole.
//! - `allOf` (and `$ref` beside other keywords, and `if`/`then`/`else`, `dependentSchemas`):
//!   the declared members are the union of the branches'; undeclared members are removed if any
//!   branch says `false`, else kept if any branch allows them.
//! - `oneOf`/`anyOf`: lenient, the union of the branches' declared members (finding the branch
//!   the value validates against would cost a validation per branch per object). A branch that
//!   declares no members (only `required`, as in "one of these two must be present", or a
//!   free-form `{}`) adds none: it refines the other branches rather than opening the object.
//! - `items` recurses into array elements, `prefixItems` position by position.
//! - `$ref` is a local pointer into `root` (`#/components/schemas/X`, `#/$defs/X`), percent- and
//!   RFC 6901-decoded. A reference that does not resolve there (another document, an anchor)
//!   leaves the value untouched: the gateway does not guess a contract it cannot read.
//! - A schema whose `type` excludes the value's type leaves the value untouched (validation, not
//!   stripping, is what reports a mistyped value).
//! - A member whose schema is `writeOnly: true` (on the property, behind its `$ref` or in one of
//!   its `allOf` branches) is a value the client may send but never read back (a `password` in a
//!   shared `User` schema): it is treated as undeclared and removed.
//!
//! Invariants: schemas are expanded lazily, one value level at a time, so a recursive schema
//! costs only as much as the value is deep; a reference cycle within one level contributes
//! nothing; each level's expansion is bounded ([`MAX_REF_DEPTH`] nested references, [`MAX_STEPS`]
//! schema nodes) and one that exceeds a bound leaves its value untouched; values deeper than
//! [`MAX_VALUE_DEPTH`] are left untouched (a parsed body is never that deep).
//!
//! Cost: `patternProperties` regexes are compiled once, when the contract loads ([`Patterns`]);
//! the shape of each schema node is expanded once, on the first response that needs it, and kept
//! with the contract for every later one ([`ResponseContract`]; an expansion depends only on the
//! node and the document, both immutable, and there are as many as the document has nodes);
//! within one response, a schema merged from several branches is expanded once and reused for
//! every object and array it applies to (a 10 000-element list of `Line`s expands `Line` once). The
//! pointers reported for the audit ([`strip_response`]) are grouped by schema path (`/items/*/x`
//! for every element's `x`) and capped; the count of removed members is exact.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use percent_encoding::percent_decode_str;
use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

use crate::policy::validate::violation::escape_token;

/// How many references may be followed in a chain while expanding one schema level.
pub const MAX_REF_DEPTH: usize = 64;

/// How many schema nodes one level's expansion may visit (a schema built to fan out, such as
/// `allOf: [{$ref: A}, {$ref: A}]` nested, would otherwise grow exponentially).
pub const MAX_STEPS: usize = 10_000;

/// Values nested deeper than this are left as they are.
pub const MAX_VALUE_DEPTH: usize = 256;

/// Upper bound on a compiled `patternProperties` regex, which comes from the contract.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Every `patternProperties` regex of a contract document, compiled once when it loads; `None`
/// for a pattern the regex crate does not read (ECMA-262 lookaround, back-references).
#[derive(Debug, Default)]
pub struct Patterns {
    compiled: HashMap<String, Option<Regex>>,
}

impl Patterns {
    /// Compiles the member names of every `patternProperties` object found in `root` (a value
    /// that merely looks like one, inside an `example`, costs a compile and nothing else).
    pub fn collect(root: &Value) -> Self {
        let mut compiled = HashMap::new();
        let mut pending = vec![root];
        while let Some(value) = pending.pop() {
            match value {
                Value::Object(members) => {
                    if let Some(Value::Object(patterns)) = members.get("patternProperties") {
                        for pattern in patterns.keys() {
                            compiled
                                .entry(pattern.clone())
                                .or_insert_with(|| compile_pattern(pattern));
                        }
                    }
                    pending.extend(members.values());
                }
                Value::Array(items) => pending.extend(items),
                _ => {}
            }
        }
        Self { compiled }
    }
}

fn compile_pattern(pattern: &str) -> Option<Regex> {
    RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .ok()
}

/// What [`strip_response`] removed: pointers grouped by schema path, at most the limit given,
/// and how many members were removed in all.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stripped {
    pub pointers: Vec<String>,
    pub total: usize,
}

/// Removes from `value` every object member that `schema` does not declare, and returns the
/// JSON pointers (relative to `value`, RFC 6901 escaped) of the members removed, in the order
/// they were removed. `root` is the document that `$ref`s point into.
pub fn strip_undeclared<'s>(value: &mut Value, schema: &'s Value, root: &'s Value) -> Vec<String> {
    let patterns = Patterns::default();
    let nodes = NodeShapes::default();
    let removed = Removed::new(Grouping::Exact, usize::MAX);
    let mut walk = Walk::new(root, &patterns, &nodes, removed);
    let mut pointer = String::new();
    walk.strip(value, &Sub::One(schema), &mut pointer, 0);
    walk.removed.pointers
}

/// As [`strip_undeclared`], for the audit: array indices are `*` (`/items/*/secret` once for
/// every element's `secret`), each pointer is listed once, at most `limit` of them; `total`
/// counts every member removed. `patterns` are `root`'s, compiled at load. Nothing is kept
/// for the next response: [`ResponseContract::strip`] is the same, with the shapes kept.
pub fn strip_response<'s>(
    value: &mut Value,
    schema: &'s Value,
    root: &'s Value,
    patterns: &Patterns,
    limit: usize,
) -> Stripped {
    strip_with(value, schema, root, patterns, &NodeShapes::default(), limit)
}

fn strip_with<'s>(
    value: &mut Value,
    schema: &'s Value,
    root: &'s Value,
    patterns: &Patterns,
    nodes: &NodeShapes<'s>,
    limit: usize,
) -> Stripped {
    let removed = Removed::new(Grouping::BySchemaPath, limit);
    let mut walk = Walk::new(root, patterns, nodes, removed);
    let mut pointer = String::new();
    walk.strip(value, &Sub::One(schema), &mut pointer, 0);
    Stripped {
        pointers: walk.removed.pointers,
        total: walk.removed.total,
    }
}

/// A response's schema, the document its `$ref`s point into, and the document's compiled
/// patterns: what [`ResponseContract::strip`] needs, owned, so that the shapes expanded from it
/// can be kept beside it.
#[derive(Debug)]
pub struct ResponseSchema {
    /// The schema as `root` declares it, copied out at load: looking it up by pointer on every
    /// response cost more than the strip walk itself.
    pub schema: Value,
    pub root: Arc<Value>,
    pub patterns: Arc<Patterns>,
}

// Why a self-referential cell: a shape borrows the schema nodes it names (member names, member
// schemas) from the document, and keeping those shapes across responses means keeping them
// beside the document they borrow from. Owning copies instead would copy the schemas.
self_cell::self_cell!(
    /// A response schema with the shapes of its nodes, expanded on first use and kept for every
    /// later response (the contract's lifetime: a reload builds a new one).
    pub struct ResponseContract {
        owner: ResponseSchema,
        #[not_covariant]
        dependent: NodeShapes,
    }
    impl {Debug}
);

impl ResponseContract {
    pub fn build(schema: ResponseSchema) -> Self {
        Self::new(schema, |_| NodeShapes::default())
    }

    /// The schema and the document its references point into.
    pub fn schema(&self) -> &ResponseSchema {
        self.borrow_owner()
    }

    /// As [`strip_response`], with the shapes expanded by earlier responses reused and the new
    /// ones kept.
    pub fn strip(&self, value: &mut Value, limit: usize) -> Stripped {
        self.with_dependent(|owner, nodes| {
            strip_with(
                value,
                &owner.schema,
                &owner.root,
                &owner.patterns,
                nodes,
                limit,
            )
        })
    }
}

/// How removed members are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grouping {
    /// Each member's own pointer, every one.
    Exact,
    /// Array indices as `*`, each pointer once.
    BySchemaPath,
}

/// The record of removed members.
struct Removed {
    grouping: Grouping,
    limit: usize,
    pointers: Vec<String>,
    seen: HashSet<String>,
    total: usize,
}

impl Removed {
    fn new(grouping: Grouping, limit: usize) -> Self {
        Self {
            grouping,
            limit,
            pointers: Vec::new(),
            seen: HashSet::new(),
            total: 0,
        }
    }

    fn push(&mut self, pointer: &str) {
        self.total += 1;
        if self.pointers.len() >= self.limit {
            return;
        }
        if self.grouping == Grouping::BySchemaPath {
            // Checked before inserting: the same grouped pointer repeats for every element.
            if self.seen.contains(pointer) {
                return;
            }
            self.seen.insert(pointer.to_owned());
        }
        self.pointers.push(pointer.to_owned());
    }
}

/// A schema to apply, possibly made of several found while merging branches.
#[derive(Debug, Clone)]
enum Sub<'s> {
    /// Any value (an `additionalProperties: true`).
    True,
    One(&'s Value),
    /// Every one applies (the same member declared by several `allOf` branches).
    All(Vec<Sub<'s>>),
    /// One of them applies (the same member declared by several `oneOf` branches).
    Any(Vec<Sub<'s>>),
    /// A `writeOnly` member: never part of a response.
    WriteOnly,
}

impl Sub<'_> {
    /// Whether a member with this schema is removed whatever else declares it: `false`, or
    /// `writeOnly` in any branch.
    fn forbids(&self) -> bool {
        matches!(self, Sub::One(Value::Bool(false))) || self.has_write_only()
    }

    fn has_write_only(&self) -> bool {
        match self {
            Sub::WriteOnly => true,
            Sub::True | Sub::One(_) => false,
            Sub::All(subs) | Sub::Any(subs) => subs.iter().any(Sub::has_write_only),
        }
    }

    /// Identifies the schema by the addresses of the schema nodes it is made of (all borrowed
    /// from one document for the whole walk), so that its expansion can be reused.
    fn key(&self, out: &mut Vec<usize>) {
        match self {
            Sub::True => out.push(0),
            Sub::One(schema) => {
                out.push(1);
                out.push(std::ptr::from_ref::<Value>(schema).addr());
            }
            Sub::All(subs) | Sub::Any(subs) => {
                out.push(if matches!(self, Sub::All(_)) { 2 } else { 3 });
                out.push(subs.len());
                for sub in subs {
                    sub.key(out);
                }
            }
            Sub::WriteOnly => out.push(4),
        }
    }
}

/// What a schema says about an object's members.
#[derive(Debug)]
enum Shape<'s> {
    /// Does not apply to an object (its `type` excludes it, or a reference cycle): neutral in
    /// both `allOf` and `oneOf`.
    NotApplicable,
    /// Applies, says nothing about members: the object is kept whole; neutral when merged.
    Silent,
    /// Cannot be read (a non-local reference, a bound exceeded): the object is left untouched.
    Unknown,
    Members(Members<'s>),
}

#[derive(Debug)]
struct Members<'s> {
    properties: HashMap<&'s str, Sub<'s>>,
    patterns: Vec<(&'s str, Sub<'s>)>,
    extra: Extra<'s>,
}

/// What happens to a member neither `properties` nor `patternProperties` declares.
#[derive(Debug)]
enum Extra<'s> {
    /// `additionalProperties` absent: removed.
    Absent,
    /// `additionalProperties: false`: removed, whatever other `allOf` branches say.
    Forbidden,
    /// `additionalProperties: true` or a schema: kept, checked against the schema.
    Allowed(Sub<'s>),
}

/// What a schema says about an array's elements.
#[derive(Debug)]
enum ArrayShape<'s> {
    NotApplicable,
    Unknown,
    /// Applies, says nothing about elements: they are kept as they are; neutral when merged.
    Silent,
    Elements {
        prefix: Vec<Element<'s>>,
        rest: Element<'s>,
    },
}

#[derive(Debug, Clone)]
enum Element<'s> {
    /// Nothing said: the element is kept as it is.
    Free,
    Schema(Sub<'s>),
}

impl<'s> Members<'s> {
    /// Merges another `allOf` branch: a member both declare must satisfy both.
    fn and(&mut self, other: Members<'s>) {
        for (name, sub) in other.properties {
            merge_member(&mut self.properties, name, sub, Sub::All);
        }
        self.patterns.extend(other.patterns);
        let extra = std::mem::replace(&mut self.extra, Extra::Absent);
        self.extra = match (extra, other.extra) {
            (Extra::Forbidden, _) | (_, Extra::Forbidden) => Extra::Forbidden,
            (Extra::Allowed(a), Extra::Allowed(b)) => Extra::Allowed(Sub::All(vec![a, b])),
            (Extra::Allowed(a), Extra::Absent) | (Extra::Absent, Extra::Allowed(a)) => {
                Extra::Allowed(a)
            }
            (Extra::Absent, Extra::Absent) => Extra::Absent,
        };
    }

    /// Merges another `oneOf`/`anyOf` branch: a member either declares is kept.
    fn or(&mut self, other: Members<'s>) {
        for (name, sub) in other.properties {
            merge_member(&mut self.properties, name, sub, Sub::Any);
        }
        self.patterns.extend(other.patterns);
        let extra = std::mem::replace(&mut self.extra, Extra::Absent);
        self.extra = match (extra, other.extra) {
            (Extra::Allowed(a), Extra::Allowed(b)) => Extra::Allowed(Sub::Any(vec![a, b])),
            (Extra::Allowed(a), _) | (_, Extra::Allowed(a)) => Extra::Allowed(a),
            (Extra::Forbidden, Extra::Forbidden) => Extra::Forbidden,
            _ => Extra::Absent,
        };
    }
}

fn merge_member<'s>(
    properties: &mut HashMap<&'s str, Sub<'s>>,
    name: &'s str,
    sub: Sub<'s>,
    combine: fn(Vec<Sub<'s>>) -> Sub<'s>,
) {
    match properties.remove(name) {
        Some(existing) => properties.insert(name, combine(vec![existing, sub])),
        None => properties.insert(name, sub),
    };
}

/// `allOf`: members merge; an unreadable part makes the whole unreadable.
fn all_of(parts: Vec<Shape<'_>>) -> Shape<'_> {
    let mut merged: Option<Members<'_>> = None;
    for part in parts {
        let members = match part {
            Shape::Unknown => return Shape::Unknown,
            Shape::NotApplicable | Shape::Silent => continue,
            Shape::Members(members) => members,
        };
        match merged.as_mut() {
            Some(acc) => acc.and(members),
            None => merged = Some(members),
        }
    }
    merged.map_or(Shape::Silent, Shape::Members)
}

/// `oneOf`/`anyOf`: the union of the members the branches declare.
fn any_of(branches: Vec<Shape<'_>>) -> Shape<'_> {
    let mut merged: Option<Members<'_>> = None;
    let mut applies = false;
    for branch in branches {
        match branch {
            Shape::Unknown => return Shape::Unknown,
            Shape::NotApplicable => {}
            Shape::Silent => applies = true,
            Shape::Members(members) => match merged.as_mut() {
                Some(acc) => acc.or(members),
                None => merged = Some(members),
            },
        }
    }
    match merged {
        Some(members) => Shape::Members(members),
        None if applies => Shape::Silent,
        None => Shape::NotApplicable,
    }
}

fn elements_and<'s>(a: Element<'s>, b: Element<'s>) -> Element<'s> {
    match (a, b) {
        (Element::Free, other) | (other, Element::Free) => other,
        (Element::Schema(a), Element::Schema(b)) => Element::Schema(Sub::All(vec![a, b])),
    }
}

fn elements_or<'s>(a: Element<'s>, b: Element<'s>) -> Element<'s> {
    match (a, b) {
        (Element::Schema(a), Element::Schema(b)) => Element::Schema(Sub::Any(vec![a, b])),
        _ => Element::Free,
    }
}

/// Merges array shapes position by position (`combine` is `elements_and` or `elements_or`).
fn merge_arrays<'s>(
    parts: Vec<ArrayShape<'s>>,
    combine: fn(Element<'s>, Element<'s>) -> Element<'s>,
) -> ArrayShape<'s> {
    let mut merged: Option<(Vec<Element<'s>>, Element<'s>)> = None;
    let mut applies = false;
    for part in parts {
        let (prefix, rest) = match part {
            ArrayShape::Unknown => return ArrayShape::Unknown,
            ArrayShape::NotApplicable => continue,
            ArrayShape::Silent => {
                applies = true;
                continue;
            }
            ArrayShape::Elements { prefix, rest } => (prefix, rest),
        };
        merged = Some(match merged {
            None => (prefix, rest),
            Some((acc_prefix, acc_rest)) => {
                let len = acc_prefix.len().max(prefix.len());
                let at = |list: &[Element<'s>], rest: &Element<'s>, i: usize| {
                    list.get(i).unwrap_or(rest).clone()
                };
                let merged_prefix = (0..len)
                    .map(|i| combine(at(&acc_prefix, &acc_rest, i), at(&prefix, &rest, i)))
                    .collect();
                (merged_prefix, combine(acc_rest, rest))
            }
        });
    }
    match merged {
        Some((prefix, rest)) => ArrayShape::Elements { prefix, rest },
        None if applies => ArrayShape::Silent,
        None => ArrayShape::NotApplicable,
    }
}

/// Bounds one level's expansion: references being followed (to spot cycles) and nodes visited.
struct Budget<'s> {
    steps: usize,
    refs: Vec<&'s str>,
}

impl<'s> Budget<'s> {
    fn new() -> Self {
        Budget {
            steps: 0,
            refs: Vec::new(),
        }
    }

    fn step(&mut self) -> bool {
        self.steps += 1;
        self.steps <= MAX_STEPS
    }
}

/// The object and array shapes of single schema nodes, by the node's address (every node
/// borrowed from one immutable document for as long as this lives, so an address names one
/// node). Bounded by the document's size: keys are its nodes, never values from a response.
#[derive(Debug, Default)]
pub struct NodeShapes<'s> {
    objects: Memo<Shape<'s>>,
    arrays: Memo<ArrayShape<'s>>,
}

#[derive(Debug)]
struct Memo<T>(RwLock<HashMap<usize, Arc<T>>>);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(RwLock::new(HashMap::new()))
    }
}

impl<T> Memo<T> {
    fn get_or_expand(&self, node: &Value, expand: impl FnOnce() -> T) -> Arc<T> {
        let key = std::ptr::from_ref(node).addr();
        // A poisoned lock still holds complete entries: each is inserted whole.
        let known = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(shape) = known.get(&key) {
            return Arc::clone(shape);
        }
        drop(known);
        // Expanded outside the lock (it may visit thousands of nodes); two responses racing on
        // a new node both expand it, and the first one kept wins.
        let expanded = Arc::new(expand());
        let mut known = self.0.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(known.entry(key).or_insert(expanded))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Where a `$ref` leads.
enum Target<'s> {
    Schema(&'s str, &'s Value),
    /// Already being followed: a cycle, which adds nothing new.
    Cycle,
    /// Not a local pointer, not found, or too deep.
    Unreadable,
}

/// Reads schemas: expansion of one level into a shape, and reference resolution.
struct Schemas<'s> {
    root: &'s Value,
}

impl<'s> Schemas<'s> {
    fn follow(&self, reference: &'s Value, budget: &Budget<'s>) -> Target<'s> {
        let Some(reference) = reference.as_str() else {
            return Target::Unreadable;
        };
        if budget.refs.contains(&reference) {
            return Target::Cycle;
        }
        if budget.refs.len() >= MAX_REF_DEPTH {
            return Target::Unreadable;
        }
        match self.resolve(reference) {
            Some(schema) => Target::Schema(reference, schema),
            None => Target::Unreadable,
        }
    }

    /// Resolves a local reference (`#` or `#/json/pointer`, percent-encoded as a URI fragment).
    fn resolve(&self, reference: &str) -> Option<&'s Value> {
        let fragment = reference.strip_prefix('#')?;
        let pointer = percent_decode_str(fragment).decode_utf8().ok()?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        if !pointer.starts_with('/') {
            return None; // a plain-name anchor (`#node`), which bundled contracts do not use
        }
        super::spec::pointer::lookup(self.root, &pointer)
    }

    fn object_shape(&self, sub: &Sub<'s>, budget: &mut Budget<'s>) -> Shape<'s> {
        if !budget.step() {
            return Shape::Unknown;
        }
        match sub {
            Sub::True => Shape::Silent,
            Sub::WriteOnly => Shape::NotApplicable,
            Sub::One(schema) => self.schema_object_shape(schema, budget),
            Sub::All(subs) => all_of(subs.iter().map(|s| self.object_shape(s, budget)).collect()),
            Sub::Any(subs) => any_of(subs.iter().map(|s| self.object_shape(s, budget)).collect()),
        }
    }

    fn schema_object_shape(&self, schema: &'s Value, budget: &mut Budget<'s>) -> Shape<'s> {
        if !budget.step() {
            return Shape::Unknown;
        }
        let keywords = match schema {
            Value::Object(keywords) => keywords,
            Value::Bool(true) => return Shape::Silent,
            Value::Bool(false) => return Shape::NotApplicable,
            _ => return Shape::Unknown,
        };
        if !type_allows(keywords, "object") {
            return Shape::NotApplicable;
        }
        let mut parts = Vec::new();
        if let Some(mut own) = own_members(keywords) {
            // A budget of its own: looking behind each property's `$ref` must not use up the
            // level's expansion (a wide schema would become unreadable, and be left unstripped).
            self.mark_write_only(&mut own, &mut Budget::new());
            parts.push(Shape::Members(own));
        }
        if let Some(reference) = keywords.get("$ref") {
            parts.push(match self.follow(reference, budget) {
                Target::Schema(reference, target) => {
                    budget.refs.push(reference);
                    let shape = self.schema_object_shape(target, budget);
                    budget.refs.pop();
                    shape
                }
                Target::Cycle => Shape::NotApplicable,
                Target::Unreadable => Shape::Unknown,
            });
        }
        for branch in conjuncts(keywords) {
            parts.push(self.schema_object_shape(branch, budget));
        }
        for union in ["oneOf", "anyOf"] {
            if let Some(Value::Array(branches)) = keywords.get(union) {
                let shapes = branches
                    .iter()
                    .map(|b| self.schema_object_shape(b, budget))
                    .collect();
                parts.push(any_of(shapes));
            }
        }
        all_of(parts)
    }

    /// Replaces the schema of each member declared `writeOnly` by `Sub::WriteOnly`.
    fn mark_write_only(&self, members: &mut Members<'s>, budget: &mut Budget<'s>) {
        let declared = members
            .properties
            .values_mut()
            .chain(members.patterns.iter_mut().map(|(_, sub)| sub));
        for sub in declared {
            if let Sub::One(schema) = sub
                && self.write_only(schema, budget)
            {
                *sub = Sub::WriteOnly;
            }
        }
    }

    /// Whether the schema says `writeOnly: true`, itself, behind its `$ref`, or in an `allOf`
    /// branch. Once the budget is spent ([`MAX_STEPS`] nodes for one object's properties) the
    /// answer is no: the member is then kept as declared.
    fn write_only(&self, schema: &'s Value, budget: &mut Budget<'s>) -> bool {
        if !budget.step() {
            return false;
        }
        let Value::Object(keywords) = schema else {
            return false;
        };
        if keywords.get("writeOnly") == Some(&Value::Bool(true)) {
            return true;
        }
        if let Some(reference) = keywords.get("$ref")
            && let Target::Schema(reference, target) = self.follow(reference, budget)
        {
            budget.refs.push(reference);
            let behind = self.write_only(target, budget);
            budget.refs.pop();
            if behind {
                return true;
            }
        }
        keywords
            .get("allOf")
            .and_then(Value::as_array)
            .is_some_and(|branches| branches.iter().any(|b| self.write_only(b, budget)))
    }

    fn array_shape(&self, sub: &Sub<'s>, budget: &mut Budget<'s>) -> ArrayShape<'s> {
        if !budget.step() {
            return ArrayShape::Unknown;
        }
        match sub {
            Sub::True => ArrayShape::Silent,
            Sub::WriteOnly => ArrayShape::NotApplicable,
            Sub::One(schema) => self.schema_array_shape(schema, budget),
            Sub::All(subs) => merge_arrays(
                subs.iter().map(|s| self.array_shape(s, budget)).collect(),
                elements_and,
            ),
            Sub::Any(subs) => merge_arrays(
                subs.iter().map(|s| self.array_shape(s, budget)).collect(),
                elements_or,
            ),
        }
    }

    fn schema_array_shape(&self, schema: &'s Value, budget: &mut Budget<'s>) -> ArrayShape<'s> {
        if !budget.step() {
            return ArrayShape::Unknown;
        }
        let keywords = match schema {
            Value::Object(keywords) => keywords,
            Value::Bool(true) => return ArrayShape::Silent,
            Value::Bool(false) => return ArrayShape::NotApplicable,
            _ => return ArrayShape::Unknown,
        };
        if !type_allows(keywords, "array") {
            return ArrayShape::NotApplicable;
        }
        let mut parts = vec![own_elements(keywords)];
        if let Some(reference) = keywords.get("$ref") {
            parts.push(match self.follow(reference, budget) {
                Target::Schema(reference, target) => {
                    budget.refs.push(reference);
                    let shape = self.schema_array_shape(target, budget);
                    budget.refs.pop();
                    shape
                }
                Target::Cycle => ArrayShape::NotApplicable,
                Target::Unreadable => ArrayShape::Unknown,
            });
        }
        for branch in conjuncts(keywords) {
            parts.push(self.schema_array_shape(branch, budget));
        }
        for union in ["oneOf", "anyOf"] {
            if let Some(Value::Array(branches)) = keywords.get(union) {
                let shapes = branches
                    .iter()
                    .map(|b| self.schema_array_shape(b, budget))
                    .collect();
                parts.push(merge_arrays(shapes, elements_or));
            }
        }
        merge_arrays(parts, elements_and)
    }
}

/// Whether the schema's `type` (a name or a list of names; absent means any) admits `name`.
fn type_allows(keywords: &Map<String, Value>, name: &str) -> bool {
    match keywords.get("type") {
        Some(Value::String(single)) => single == name,
        Some(Value::Array(names)) => names.iter().any(|n| n.as_str() == Some(name)),
        _ => true,
    }
}

/// The branches that apply together with the schema: `allOf`, `if`/`then`/`else` (both
/// outcomes, leniently) and `dependentSchemas`.
fn conjuncts(keywords: &Map<String, Value>) -> impl Iterator<Item = &Value> {
    let all_of = keywords
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let conditional = ["if", "then", "else"]
        .into_iter()
        .filter_map(|k| keywords.get(k));
    let dependent = keywords
        .get("dependentSchemas")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values());
    all_of.chain(conditional).chain(dependent)
}

/// What the schema's own keywords declare, if it has any keyword about members.
fn own_members(keywords: &Map<String, Value>) -> Option<Members<'_>> {
    let properties = keywords.get("properties").and_then(Value::as_object);
    let patterns = keywords.get("patternProperties").and_then(Value::as_object);
    let additional = keywords
        .get("additionalProperties")
        .or_else(|| keywords.get("unevaluatedProperties"));
    if properties.is_none() && patterns.is_none() && additional.is_none() {
        return None;
    }
    let extra = match additional {
        None => Extra::Absent,
        Some(Value::Bool(false)) => Extra::Forbidden,
        Some(Value::Bool(true)) => Extra::Allowed(Sub::True),
        Some(schema) => Extra::Allowed(Sub::One(schema)),
    };
    Some(Members {
        properties: properties
            .into_iter()
            .flatten()
            .map(|(name, schema)| (name.as_str(), Sub::One(schema)))
            .collect(),
        patterns: patterns
            .into_iter()
            .flatten()
            .map(|(pattern, schema)| (pattern.as_str(), Sub::One(schema)))
            .collect(),
        extra,
    })
}

/// What the schema's own `prefixItems` and `items` say about elements.
fn own_elements(keywords: &Map<String, Value>) -> ArrayShape<'_> {
    fn schema_list(list: &[Value]) -> Vec<Element<'_>> {
        list.iter().map(|s| Element::Schema(Sub::One(s))).collect()
    }
    if !keywords.contains_key("prefixItems") && !keywords.contains_key("items") {
        return ArrayShape::Silent;
    }
    let (prefix, items) = match (keywords.get("prefixItems"), keywords.get("items")) {
        (Some(Value::Array(prefix)), items) => (schema_list(prefix), items),
        // Draft 2019 and earlier: `items` as a list is positional.
        (_, Some(Value::Array(positional))) => (schema_list(positional), None),
        (_, items) => (Vec::new(), items),
    };
    let rest = match items {
        // `items: false` forbids more elements: validation's concern, not ours.
        None | Some(Value::Bool(_)) => Element::Free,
        Some(schema) => Element::Schema(Sub::One(schema)),
    };
    ArrayShape::Elements { prefix, rest }
}

/// One stripping pass over a response value.
struct Walk<'s, 'p> {
    schemas: Schemas<'s>,
    /// The contract's `patternProperties`, compiled at load.
    patterns: &'p Patterns,
    /// Patterns the contract's set does not hold (a schema given directly), compiled once per
    /// pass.
    extra_patterns: HashMap<&'s str, Option<Regex>>,
    /// The shapes of single schema nodes, kept across passes.
    nodes: &'p NodeShapes<'s>,
    /// The shapes of schemas merged from several branches in this pass, by `Sub::key`: which
    /// merges arise depends on the response's member names, so they are not kept beyond it.
    merged_objects: HashMap<Vec<usize>, Arc<Shape<'s>>>,
    merged_arrays: HashMap<Vec<usize>, Arc<ArrayShape<'s>>>,
    removed: Removed,
}

impl<'s, 'p> Walk<'s, 'p> {
    fn new(
        root: &'s Value,
        patterns: &'p Patterns,
        nodes: &'p NodeShapes<'s>,
        removed: Removed,
    ) -> Self {
        Walk {
            schemas: Schemas { root },
            patterns,
            extra_patterns: HashMap::new(),
            nodes,
            merged_objects: HashMap::new(),
            merged_arrays: HashMap::new(),
            removed,
        }
    }

    fn strip(&mut self, value: &mut Value, sub: &Sub<'s>, pointer: &mut String, depth: usize) {
        if depth > MAX_VALUE_DEPTH {
            return;
        }
        match value {
            Value::Object(members) => self.strip_object(members, sub, pointer, depth),
            Value::Array(elements) => self.strip_array(elements, sub, pointer, depth),
            _ => {}
        }
    }

    fn object_shape(&mut self, sub: &Sub<'s>) -> Arc<Shape<'s>> {
        let schemas = &self.schemas;
        let expand = || schemas.object_shape(sub, &mut Budget::new());
        if let Sub::One(node) = sub {
            return self.nodes.objects.get_or_expand(node, expand);
        }
        let mut key = Vec::new();
        sub.key(&mut key);
        Arc::clone(
            self.merged_objects
                .entry(key)
                .or_insert_with(|| Arc::new(expand())),
        )
    }

    fn array_shape(&mut self, sub: &Sub<'s>) -> Arc<ArrayShape<'s>> {
        let schemas = &self.schemas;
        let expand = || schemas.array_shape(sub, &mut Budget::new());
        if let Sub::One(node) = sub {
            return self.nodes.arrays.get_or_expand(node, expand);
        }
        let mut key = Vec::new();
        sub.key(&mut key);
        Arc::clone(
            self.merged_arrays
                .entry(key)
                .or_insert_with(|| Arc::new(expand())),
        )
    }

    fn strip_object(
        &mut self,
        object: &mut Map<String, Value>,
        sub: &Sub<'s>,
        pointer: &mut String,
        depth: usize,
    ) {
        let shape = self.object_shape(sub);
        let Shape::Members(members) = &*shape else {
            return;
        };
        object.retain(|name, member| {
            let parent = pointer.len();
            pointer.push('/');
            pointer.push_str(&escape_token(name));
            let keep = match self.member_schema(members, name) {
                Some(schema) => {
                    self.strip(member, &schema, pointer, depth + 1);
                    true
                }
                None => {
                    self.removed.push(pointer);
                    false
                }
            };
            pointer.truncate(parent);
            keep
        });
    }

    fn strip_array(
        &mut self,
        elements: &mut [Value],
        sub: &Sub<'s>,
        pointer: &mut String,
        depth: usize,
    ) {
        let shape = self.array_shape(sub);
        let ArrayShape::Elements { prefix, rest } = &*shape else {
            return;
        };
        for (index, element) in elements.iter_mut().enumerate() {
            let Element::Schema(schema) = prefix.get(index).unwrap_or(rest) else {
                continue;
            };
            let parent = pointer.len();
            pointer.push('/');
            match self.removed.grouping {
                Grouping::Exact => pointer.push_str(&index.to_string()),
                Grouping::BySchemaPath => pointer.push('*'),
            }
            self.strip(element, schema, pointer, depth + 1);
            pointer.truncate(parent);
        }
    }

    /// The schema a member must satisfy, or `None` when nothing declares it.
    fn member_schema<'m>(
        &mut self,
        members: &'m Members<'s>,
        name: &str,
    ) -> Option<Cow<'m, Sub<'s>>> {
        let declared = members.properties.get(name);
        if members.patterns.is_empty() {
            // The common case, one lookup and nothing built: as below with no pattern matching.
            return match declared {
                Some(sub) if sub.forbids() => None,
                Some(sub) => Some(Cow::Borrowed(sub)),
                None => extra_schema(members).map(Cow::Borrowed),
            };
        }
        let mut found: Vec<Sub<'s>> = declared.cloned().into_iter().collect();
        for (pattern, schema) in &members.patterns {
            match self.pattern(pattern) {
                Some(regex) if regex.is_match(name) => found.push(schema.clone()),
                Some(_) => {}
                // A pattern we cannot read might declare the member: keep it rather than strip
                // what the contract may allow.
                None => found.push(Sub::True),
            }
        }
        // `"name": false` declares a member only to forbid it; a `writeOnly` one is never read.
        if found.iter().any(Sub::forbids) {
            return None;
        }
        match found.len() {
            0 => extra_schema(members).map(|schema| Cow::Owned(schema.clone())),
            1 => found.pop().map(Cow::Owned),
            _ => Some(Cow::Owned(Sub::All(found))),
        }
    }

    fn pattern(&mut self, pattern: &'s str) -> Option<&Regex> {
        if let Some(compiled) = self.patterns.compiled.get(pattern) {
            return compiled.as_ref();
        }
        self.extra_patterns
            .entry(pattern)
            .or_insert_with(|| compile_pattern(pattern))
            .as_ref()
    }
}

/// The schema of a member neither `properties` nor `patternProperties` declares, if it is kept.
fn extra_schema<'m, 's>(members: &'m Members<'s>) -> Option<&'m Sub<'s>> {
    match &members.extra {
        Extra::Allowed(schema) => Some(schema),
        Extra::Absent | Extra::Forbidden => None,
    }
}

#[cfg(test)]
mod tests;
