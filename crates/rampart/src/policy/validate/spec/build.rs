//! Compiling the described operations against the prepared documents: one validator per
//! operation's parameters, per request media type and per response media type. A schema is
//! compiled on its own with its references made absolute (`urn:rampart:request#/...`), so
//! operations that share a schema share one compiled validator.

use std::collections::HashMap;
use std::sync::Arc;

use jsonschema::{ValidationOptions, Validator};
use serde_json::{Map, Value, json};

use super::body::{
    MediaKind, MediaMap, MediaSpec, RequestBodySpec, ResponseSpec, Responses, media_kind,
};
use super::coerce::Shape;
use super::describe::{RawMedia, RawOperation, RawParam, StatusKey};
use super::fields;
use super::issues::{Issues, SourceFile};
use super::load;
use super::params::{ParamSpec, Params};
use super::{Operation, UnknownQuery};
use crate::policy::validate::strip::{Patterns, ResponseContract, ResponseSchema};

pub(super) const REQUEST_URI: &str = "urn:rampart:request";
pub(super) const RESPONSE_URI: &str = "urn:rampart:response";

/// Compiles the described operations against the prepared documents.
pub(super) struct Builder<'a, 'r> {
    /// Validators by the text of their (absolute-referenced) schema: operations that share a
    /// schema share its compiled validator.
    pub(super) cache: HashMap<String, Validator>,
    pub(super) request_doc: &'a Value,
    pub(super) response_doc: &'a Arc<Value>,
    /// The response document's `patternProperties`, compiled once for response stripping.
    pub(super) response_patterns: Arc<Patterns>,
    /// Patterns on the linear engine: every schema whose patterns it reads.
    pub(super) validator_options: ValidationOptions<'r>,
    /// Patterns on the bounded backtracking engine: a schema with a pattern the linear engine
    /// cannot read (lookaround, back-references).
    pub(super) backtracking_options: ValidationOptions<'r>,
    pub(super) files: &'a [SourceFile],
    pub(super) issues: &'a mut Issues,
}

impl Builder<'_, '_> {
    /// The validator of `schema` (its `$ref`s absolute), built once per distinct schema.
    fn validator(&mut self, schema: &Value, at: &str) -> Option<Validator> {
        let key = schema.to_string();
        if let Some(validator) = self.cache.get(&key) {
            return Some(validator.clone());
        }
        match self.build(schema) {
            Ok(validator) => {
                self.cache.insert(key, validator.clone());
                Some(validator)
            }
            Err(e) => {
                self.issues
                    .at(self.files, at, format!("does not compile: {e}"));
                None
            }
        }
    }

    /// Compiles a schema on the linear regex engine, or, when one of its patterns needs it, on
    /// the backtracking one (whose error, if it fails too, is the one worth reporting).
    fn build(&self, schema: &Value) -> Result<Validator, jsonschema::ValidationError<'static>> {
        self.validator_options
            .build(schema)
            .or_else(|_| self.backtracking_options.build(schema))
    }

    /// The schema at `site` in the document named `uri`, with its references made absolute so
    /// that it can be compiled on its own.
    fn site_schema(&self, uri: &str, site: &str) -> Value {
        let doc = if uri == REQUEST_URI {
            self.request_doc
        } else {
            &**self.response_doc
        };
        let mut schema = doc.pointer(site).cloned().unwrap_or(Value::Bool(true));
        absolute_refs(&mut schema, uri, 0, false);
        schema
    }

    pub(super) fn operation(&mut self, template: &str, raw: RawOperation) -> Operation {
        let params = self.params(&raw.params, raw.unknown_query);
        let request_body = raw.body.map(|body| RequestBodySpec {
            required: body.required,
            media: MediaMap {
                entries: body
                    .media
                    .into_iter()
                    .map(|m| (m.key.clone(), self.media(m)))
                    .collect(),
            },
        });
        let mut responses = Responses::default();
        for (key, media) in raw.responses {
            let map = MediaMap {
                entries: media
                    .into_iter()
                    .map(|m| (m.key.clone(), self.response(m)))
                    .collect(),
            };
            match key {
                StatusKey::Exact(code) => responses.exact.push((code, map)),
                StatusKey::Range(class) => {
                    if let Some(slot) = responses.ranges.get_mut(class) {
                        *slot = Some(map);
                    }
                }
                StatusKey::Default => responses.default = Some(map),
            }
        }
        Operation {
            shared_id: std::sync::Arc::from(raw.id.as_str()),
            id: raw.id,
            key: 0,
            method: raw.method,
            template: template.to_owned(),
            params,
            request_body,
            responses,
            security_declared: raw.security,
        }
    }

    /// One validator for all the parameters: the instance is `{"query": {"limit": 5}, ...}`, so
    /// error paths are the violation pointers.
    fn params(&mut self, raw: &[RawParam], unknown_query: UnknownQuery) -> Params {
        let mut by_location: Map<String, Value> = Map::new();
        for p in raw {
            if let Some(site) = &p.site {
                let group = by_location
                    .entry(p.location.key())
                    .or_insert_with(|| json!({"type": "object", "properties": {}}));
                let schema = self.site_schema(REQUEST_URI, site);
                if let Some(Value::Object(properties)) = group.get_mut("properties") {
                    properties.insert(p.name.clone(), schema);
                }
            }
        }
        let validator = if by_location.is_empty() {
            None
        } else {
            let schema = json!({"type": "object", "properties": by_location});
            let key = schema.to_string();
            match self.cache.get(&key) {
                Some(validator) => Some(validator.clone()),
                None => match self.build(&schema) {
                    Ok(validator) => {
                        self.cache.insert(key, validator.clone());
                        Some(validator)
                    }
                    Err(_) => {
                        // Find the culprit, so the issue points at its schema.
                        for site in raw.iter().filter_map(|p| p.site.as_deref()) {
                            let schema = self.site_schema(REQUEST_URI, site);
                            self.validator(&schema, site);
                        }
                        None
                    }
                },
            }
        };
        let list = raw
            .iter()
            .map(|p| ParamSpec {
                name: p.name.clone(),
                location: p.location,
                required: p.required,
                style: p.style,
                explode: p.explode,
                json: p.json,
                shape: p
                    .site
                    .as_deref()
                    .map(|s| Shape::of(self.request_doc, s, 1))
                    .unwrap_or_default(),
            })
            .collect();
        Params {
            list,
            validator,
            unknown_query,
        }
    }

    fn media(&mut self, raw: RawMedia) -> MediaSpec {
        let kind = media_kind(&raw.key);
        let mut spec = MediaSpec {
            media_type: raw.key,
            kind,
            validator: None,
            shape: Shape::default(),
            sanitize: Vec::new(),
            multipart: Vec::new(),
        };
        let Some(site) = raw.site else { return spec };
        let schema = self.site_schema(REQUEST_URI, &site);
        spec.validator = self.validator(&schema, &site);
        let (sanitize, bad_marks) = fields::sanitize_fields(self.request_doc, &site);
        for at in bad_marks {
            self.issues.at(self.files, &at, "must be `html`");
        }
        spec.sanitize = sanitize;
        if matches!(kind, MediaKind::Form | MediaKind::Multipart) {
            spec.shape = Shape::of(self.request_doc, &site, 1);
        }
        if kind == MediaKind::Multipart {
            let encoding = raw
                .encoding
                .as_deref()
                .and_then(|e| self.request_doc.pointer(e))
                .and_then(Value::as_object);
            spec.multipart = fields::multipart_fields(self.request_doc, &site, encoding);
        }
        spec
    }

    fn response(&mut self, raw: RawMedia) -> ResponseSpec {
        let validator = raw.site.as_deref().and_then(|site| {
            let schema = self.site_schema(RESPONSE_URI, site);
            self.validator(&schema, site)
        });
        let schema = raw
            .site
            .as_deref()
            .and_then(|site| super::pointer::lookup(self.response_doc, site))
            .cloned()
            .unwrap_or(Value::Bool(true));
        ResponseSpec {
            validator,
            declared: ResponseContract::build(ResponseSchema {
                schema,
                root: Arc::clone(self.response_doc),
                patterns: Arc::clone(&self.response_patterns),
            }),
        }
    }
}

/// Prefixes every local `$ref` (`#/...`) with the document's URI. Data keywords are left alone
/// (a `$ref` member inside an `enum` or `default` is a value, not a reference), except where a
/// member is named by the author (`properties: {enum: ...}`).
fn absolute_refs(schema: &mut Value, uri: &str, depth: usize, names: bool) {
    if depth > load::MAX_DEPTH * 2 {
        return;
    }
    match schema {
        Value::Object(members) => {
            for (key, value) in members.iter_mut() {
                if names {
                    absolute_refs(value, uri, depth + 1, false);
                    continue;
                }
                match value {
                    Value::String(reference) if key == "$ref" && reference.starts_with('#') => {
                        *reference = format!("{uri}{reference}");
                    }
                    _ if matches!(
                        key.as_str(),
                        "enum" | "const" | "default" | "example" | "examples"
                    ) => {}
                    _ => {
                        let named = matches!(
                            key.as_str(),
                            "properties"
                                | "patternProperties"
                                | "$defs"
                                | "definitions"
                                | "dependentSchemas"
                        );
                        absolute_refs(value, uri, depth + 1, named);
                    }
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| absolute_refs(item, uri, depth + 1, false)),
        _ => {}
    }
}
