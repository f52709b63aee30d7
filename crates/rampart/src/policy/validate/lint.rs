//! Spec lints for `rampart check`: where an OpenAPI contract leaves the positive security model
//! open.
//!
//! Threat: validation enforces only what the contract says. A string without `maxLength`, an
//! array without `maxItems` or an integer without bounds lets a client send a value the upstream
//! never planned for (a megabyte name, a million-element batch, a negative quantity);
//! `additionalProperties: true` lets it set members the upstream binds blindly (mass
//! assignment); an operation without a security requirement is public, perhaps by mistake; a
//! `pattern` with lookaround or a back-reference runs on a backtracking regex engine, whose cost
//! per string is bounded only by its step limit (the others run in linear time).
//!
//! Invariants: the document is read, never changed; every schema reachable from `components`
//! and from `paths` (parameters, request bodies, responses, headers, callbacks) and `webhooks`
//! is visited exactly once, keyed by its JSON pointer, so a recursive `$ref` ends; only local
//! references (`#/...`) are followed; the walk uses a work list, not recursion, so a deeply
//! nested document cannot exhaust the stack. Each lint names a stable rule id, the pointer of
//! the schema or operation, and what to add. The result is sorted by pointer, then rule.

use std::collections::HashSet;

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use crate::policy::validate::spec::needs_backtracking;
use crate::policy::validate::violation::escape_token;

/// One finding: a stable rule id, where (a JSON pointer into the document) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    pub rule: &'static str,
    pub pointer: String,
    pub message: String,
}

/// Rule ids, stable: operators filter and suppress by them.
pub const STRING_WITHOUT_MAX_LENGTH: &str = "string-without-max-length";
pub const ARRAY_WITHOUT_MAX_ITEMS: &str = "array-without-max-items";
pub const ADDITIONAL_PROPERTIES_TRUE: &str = "additional-properties-true";
pub const INTEGER_WITHOUT_BOUNDS: &str = "integer-without-bounds";
pub const OPERATION_WITHOUT_SECURITY: &str = "operation-without-security";
pub const PATTERN_BACKTRACKING: &str = "pattern-backtracking";

/// String formats whose valid values have a short maximum length, which validation checks.
/// `binary` is exempt too: it describes a file upload, which the body size limit bounds.
const BOUNDED_FORMATS: [&str; 9] = [
    "uuid",
    "date-time",
    "date",
    "time",
    "email",
    "ipv4",
    "ipv6",
    "hostname",
    "binary",
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Lints an OpenAPI 3.0 or 3.1 document (parsed and bundled: references are local).
pub fn lint(doc: &Value) -> Vec<Lint> {
    let mut walk = Walk {
        doc,
        visited: HashSet::new(),
        queue: Vec::new(),
        lints: Vec::new(),
    };
    walk.enqueue_roots();
    walk.run();
    let mut lints = walk.lints;
    lints.sort_by(|a, b| (&a.pointer, a.rule).cmp(&(&b.pointer, b.rule)));
    lints
}

/// What a node of the document is, which says where its schemas are.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Schema,
    Parameter,
    RequestBody,
    Response,
    Header,
    /// A path item; `served` when it is one of the API's own paths (not a callback or a
    /// webhook, which the API calls rather than serves), whose operations need security.
    PathItem {
        served: bool,
    },
}

struct Walk<'d> {
    doc: &'d Value,
    /// Pointers already queued: each node is visited once.
    visited: HashSet<String>,
    queue: Vec<(Kind, String, &'d Value)>,
    lints: Vec<Lint>,
}

/// Appends an escaped reference token to a pointer.
fn child(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", escape_token(token))
}

impl<'d> Walk<'d> {
    fn enqueue_roots(&mut self) {
        let components: [(&str, Kind); 5] = [
            ("schemas", Kind::Schema),
            ("parameters", Kind::Parameter),
            ("requestBodies", Kind::RequestBody),
            ("responses", Kind::Response),
            ("headers", Kind::Header),
        ];
        for (section, kind) in components {
            let pointer = format!("/components/{section}");
            self.enqueue_members(kind, &pointer, self.doc.pointer(&pointer));
        }
        let doc = self.doc;
        self.enqueue_members(Kind::PathItem { served: true }, "/paths", doc.get("paths"));
        self.enqueue_members(
            Kind::PathItem { served: false },
            "/webhooks",
            doc.get("webhooks"),
        );
    }

    /// Queues every member of a map of nodes (`components/schemas`, `paths`, `content`...).
    fn enqueue_members(&mut self, kind: Kind, pointer: &str, map: Option<&'d Value>) {
        for (name, node) in map.and_then(Value::as_object).into_iter().flatten() {
            self.enqueue(kind, child(pointer, name), node);
        }
    }

    /// Queues every element of a list of nodes (`allOf`, `parameters`...).
    fn enqueue_elements(&mut self, kind: Kind, pointer: &str, list: Option<&'d Value>) {
        for (index, node) in list
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            self.enqueue(kind, format!("{pointer}/{index}"), node);
        }
    }

    fn enqueue(&mut self, kind: Kind, pointer: String, node: &'d Value) {
        if self.visited.insert(pointer.clone()) {
            self.queue.push((kind, pointer, node));
        }
    }

    fn run(&mut self) {
        while let Some((kind, pointer, node)) = self.queue.pop() {
            let Value::Object(keywords) = node else {
                continue; // a boolean schema, or a malformed node the loader reports
            };
            self.follow_ref(kind, keywords);
            match kind {
                Kind::Schema => {
                    self.check_schema(&pointer, keywords);
                    self.enqueue_subschemas(&pointer, keywords);
                }
                Kind::Parameter | Kind::Header => {
                    self.enqueue_schema(&pointer, keywords, "schema");
                    self.enqueue_content(&pointer, keywords);
                }
                Kind::RequestBody => self.enqueue_content(&pointer, keywords),
                Kind::Response => {
                    self.enqueue_content(&pointer, keywords);
                    self.enqueue_members(
                        Kind::Header,
                        &child(&pointer, "headers"),
                        keywords.get("headers"),
                    );
                }
                Kind::PathItem { served } => self.walk_path_item(&pointer, keywords, served),
            }
        }
    }

    /// A local `$ref` is walked where it points (once, whoever refers to it).
    fn follow_ref(&mut self, kind: Kind, keywords: &'d Map<String, Value>) {
        let Some(reference) = keywords.get("$ref").and_then(Value::as_str) else {
            return;
        };
        let Some(fragment) = reference.strip_prefix('#') else {
            return;
        };
        let Ok(pointer) = percent_decode_str(fragment).decode_utf8() else {
            return;
        };
        if let Some(target) = self.doc.pointer(&pointer) {
            self.enqueue(kind, pointer.into_owned(), target);
        }
    }

    fn enqueue_schema(&mut self, pointer: &str, keywords: &'d Map<String, Value>, key: &str) {
        if let Some(schema) = keywords.get(key) {
            self.enqueue(Kind::Schema, child(pointer, key), schema);
        }
    }

    /// `content`: a map from media type to a media type object with a `schema`.
    fn enqueue_content(&mut self, pointer: &str, keywords: &'d Map<String, Value>) {
        let content = child(pointer, "content");
        for (media, object) in keywords
            .get("content")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if let Some(schema) = object.get("schema") {
                let at = child(&child(&content, media), "schema");
                self.enqueue(Kind::Schema, at, schema);
            }
        }
    }

    fn enqueue_subschemas(&mut self, pointer: &str, keywords: &'d Map<String, Value>) {
        for key in [
            "properties",
            "patternProperties",
            "$defs",
            "definitions",
            "dependentSchemas",
        ] {
            self.enqueue_members(Kind::Schema, &child(pointer, key), keywords.get(key));
        }
        for key in ["allOf", "anyOf", "oneOf", "prefixItems"] {
            self.enqueue_elements(Kind::Schema, &child(pointer, key), keywords.get(key));
        }
        for key in [
            "additionalProperties",
            "unevaluatedProperties",
            "additionalItems",
            "unevaluatedItems",
            "contains",
            "propertyNames",
            "not",
            "if",
            "then",
            "else",
        ] {
            self.enqueue_schema(pointer, keywords, key);
        }
        match keywords.get("items") {
            // Draft 2019 and earlier (and some 3.0 documents): positional `items`.
            Some(Value::Array(_)) => {
                self.enqueue_elements(
                    Kind::Schema,
                    &child(pointer, "items"),
                    keywords.get("items"),
                );
            }
            Some(_) => self.enqueue_schema(pointer, keywords, "items"),
            None => {}
        }
    }

    fn walk_path_item(&mut self, pointer: &str, item: &'d Map<String, Value>, served: bool) {
        self.enqueue_elements(
            Kind::Parameter,
            &child(pointer, "parameters"),
            item.get("parameters"),
        );
        for method in METHODS {
            let Some(Value::Object(operation)) = item.get(method) else {
                continue;
            };
            let at = child(pointer, method);
            if served {
                self.check_security(&at, operation);
            }
            self.enqueue_elements(
                Kind::Parameter,
                &child(&at, "parameters"),
                operation.get("parameters"),
            );
            if let Some(body) = operation.get("requestBody") {
                self.enqueue(Kind::RequestBody, child(&at, "requestBody"), body);
            }
            self.enqueue_members(
                Kind::Response,
                &child(&at, "responses"),
                operation.get("responses"),
            );
            // Callbacks: a map of expressions to path items, per callback name.
            for (name, callback) in operation
                .get("callbacks")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let callback_at = child(&child(&at, "callbacks"), name);
                self.enqueue_members(
                    Kind::PathItem { served: false },
                    &callback_at,
                    Some(callback),
                );
            }
        }
    }

    fn report(&mut self, rule: &'static str, pointer: String, message: impl Into<String>) {
        self.lints.push(Lint {
            rule,
            pointer,
            message: message.into(),
        });
    }

    fn check_security(&mut self, pointer: &str, operation: &Map<String, Value>) {
        let (requirements, at) = match operation.get("security") {
            Some(own) => (Some(own), child(pointer, "security")),
            None => (self.doc.get("security"), pointer.to_owned()),
        };
        match requirements.and_then(Value::as_array) {
            Some(list) if list.is_empty() && operation.contains_key("security") => self.report(
                OPERATION_WITHOUT_SECURITY,
                at,
                "the operation is explicitly public (`security: []`): add a security requirement \
                 unless it must be reachable without credentials",
            ),
            Some(list) if list.iter().any(is_anonymous) => self.report(
                OPERATION_WITHOUT_SECURITY,
                at,
                "the operation allows anonymous access (an empty `{}` requirement): remove it \
                 unless credentials are truly optional",
            ),
            Some(list) if !list.is_empty() => {}
            _ => self.report(
                OPERATION_WITHOUT_SECURITY,
                pointer.to_owned(),
                "the operation has no security requirement: add `security` to it or to the \
                 document",
            ),
        }
    }

    fn check_schema(&mut self, pointer: &str, schema: &Map<String, Value>) {
        self.check_patterns(pointer, schema);
        let enumerated = schema.contains_key("enum") || schema.contains_key("const");
        if has_type(schema, "string") && !enumerated && !schema.contains_key("maxLength") {
            let bounded_format = schema
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|format| BOUNDED_FORMATS.contains(&format));
            if !bounded_format {
                self.report(
                    STRING_WITHOUT_MAX_LENGTH,
                    pointer.to_owned(),
                    "a string without a maximum length: add `maxLength` (or an `enum`, or a \
                     bounded `format` such as `uuid` or `date-time`)",
                );
            }
        }
        if has_type(schema, "array") && !enumerated && !schema.contains_key("maxItems") {
            let closed_tuple = schema.contains_key("prefixItems")
                && schema.get("items") == Some(&Value::Bool(false));
            if !closed_tuple {
                self.report(
                    ARRAY_WITHOUT_MAX_ITEMS,
                    pointer.to_owned(),
                    "an array without a maximum size: add `maxItems`",
                );
            }
        }
        if let Some(additional) = schema.get("additionalProperties")
            && accepts_anything(additional)
        {
            self.report(
                ADDITIONAL_PROPERTIES_TRUE,
                child(pointer, "additionalProperties"),
                "`additionalProperties` accepts any member: declare the properties and set it \
                 to `false`, or give it a schema",
            );
        }
        if has_type(schema, "integer") && !enumerated {
            let has_maximum = schema.contains_key("maximum")
                || schema.get("exclusiveMaximum").is_some_and(Value::is_number);
            let has_minimum = schema.contains_key("minimum")
                || schema.get("exclusiveMinimum").is_some_and(Value::is_number);
            let missing = match (has_minimum, has_maximum) {
                (true, true) => None,
                (true, false) => Some("`maximum`"),
                (false, true) => Some("`minimum`"),
                (false, false) => Some("`minimum` and `maximum`"),
            };
            if let Some(missing) = missing {
                self.report(
                    INTEGER_WITHOUT_BOUNDS,
                    pointer.to_owned(),
                    format!(
                        "an integer without bounds (a 64-bit format is no bound): add {missing}"
                    ),
                );
            }
        }
    }
}

impl Walk<'_> {
    /// `pattern` and `patternProperties` names that need the backtracking regex engine.
    fn check_patterns(&mut self, pointer: &str, schema: &Map<String, Value>) {
        const ADVICE: &str = "lookaround or a back-reference needs a backtracking regex \
                              engine (bounded per match, but far slower than the linear one every \
                              other pattern runs on): rewrite it without them if you can";
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && needs_backtracking(pattern)
        {
            self.report(PATTERN_BACKTRACKING, child(pointer, "pattern"), ADVICE);
        }
        let names = schema.get("patternProperties").and_then(Value::as_object);
        for name in names.into_iter().flat_map(|m| m.keys()) {
            if needs_backtracking(name) {
                let at = child(&child(pointer, "patternProperties"), name);
                self.report(PATTERN_BACKTRACKING, at, ADVICE);
            }
        }
    }
}

/// Whether the schema's `type` (a name, or a list of names in 3.1) includes `name`.
fn has_type(schema: &Map<String, Value>, name: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(single)) => single == name,
        Some(Value::Array(names)) => names.iter().any(|n| n.as_str() == Some(name)),
        _ => false,
    }
}

/// `true` or `{}`: a schema that every value satisfies.
fn accepts_anything(schema: &Value) -> bool {
    match schema {
        Value::Bool(accepts) => *accepts,
        Value::Object(keywords) => keywords.is_empty(),
        _ => false,
    }
}

/// A security requirement that names no scheme: credentials are optional.
fn is_anonymous(requirement: &Value) -> bool {
    requirement.as_object().is_some_and(Map::is_empty)
}

#[cfg(test)]
mod tests;
