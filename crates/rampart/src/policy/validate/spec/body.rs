//! Request and response bodies: which media types an operation declares, and each one's schema,
//! compiled.
//!
//! Invariants: a media type is matched on its essence (`type/subtype`, case-insensitive,
//! parameters ignored), exact before `type/*` before `*/*`; a body is checked against the
//! request schema (closed, read-only members refused) and a response against the schema as
//! declared; form fields are typed by the same coercion as query parameters, and a field that
//! repeats without being declared as an array is refused (parameter pollution).

use std::collections::BTreeMap;

use jsonschema::Validator;
use serde_json::{Map, Value};

use super::coerce::Shape;
use super::reason::Collector;
use crate::policy::sanitize::field_path::FieldPath;
use crate::policy::validate::strip::{ResponseContract, Stripped};
use crate::policy::validate::violation::{Violation, escape_token};

/// How a body of this media type is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// `application/json` and every `+json` type (`application/problem+json`).
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `multipart/form-data` (and other `multipart/*`).
    Multipart,
    /// `application/xml`, `text/xml` and every `+xml` type.
    Xml,
    Other,
}

/// The kind of a content type (parameters ignored).
pub fn media_kind(content_type: &str) -> MediaKind {
    let essence = essence(content_type);
    let (kind, subtype) = essence.split_once('/').unwrap_or((&essence, ""));
    if crate::policy::validate::media::is_json(&essence) {
        return MediaKind::Json;
    }
    if crate::policy::validate::media::is_xml(&essence) {
        return MediaKind::Xml;
    }
    match (kind, subtype) {
        ("application", "x-www-form-urlencoded") => MediaKind::Form,
        ("multipart", _) => MediaKind::Multipart,
        _ => MediaKind::Other,
    }
}

pub(super) use crate::policy::validate::media::essence_of as essence;

/// Declared media types, each matched by essence, then `type/*`, then `*/*`.
#[derive(Debug, Default)]
pub(super) struct MediaMap<T> {
    pub(super) entries: Vec<(String, T)>,
}

impl<T> MediaMap<T> {
    pub(super) fn get(&self, content_type: &str) -> Option<&T> {
        let wanted = essence(content_type);
        let exact = || self.entries.iter().find(|(k, _)| *k == *wanted);
        // Only when no essence matches exactly (rare), and by byte: `split_once` with a `char`
        // costs ~170 instructions a call, and this runs several times per request.
        let range = || {
            let slash = memchr::memchr(b'/', wanted.as_bytes())?;
            let kind = wanted.get(..slash)?;
            self.entries
                .iter()
                .find(|(k, _)| k.strip_suffix("/*") == Some(kind))
        };
        let any = || self.entries.iter().find(|(k, _)| k == "*/*");
        exact().or_else(range).or_else(any).map(|(_, value)| value)
    }
}

/// An operation's request body.
#[derive(Debug)]
pub struct RequestBodySpec {
    pub(super) required: bool,
    pub(super) media: MediaMap<MediaSpec>,
}

impl RequestBodySpec {
    /// Whether the operation requires a body (OpenAPI's default is no).
    pub fn required(&self) -> bool {
        self.required
    }

    /// The declared media type a request's `Content-Type` falls under, if any.
    pub fn media(&self, content_type: &str) -> Option<&MediaSpec> {
        self.media.get(content_type)
    }

    /// The declared media types (essences or ranges), in contract order.
    pub fn media_types(&self) -> impl Iterator<Item = &str> {
        self.media.entries.iter().map(|(k, _)| k.as_str())
    }
}

/// One part of a `multipart/form-data` body as the contract declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartField {
    pub name: String,
    /// A file (`format: binary`, or `contentMediaType` without `contentEncoding` in 3.1)
    /// rather than a value.
    pub file: bool,
    /// The part may repeat (`type: array`).
    pub repeated: bool,
    pub required: bool,
    /// `encoding.{name}.contentType`, when the contract says.
    pub content_type: Option<String>,
}

/// One declared media type of a request body.
#[derive(Debug)]
pub struct MediaSpec {
    pub(super) media_type: String,
    pub(super) kind: MediaKind,
    pub(super) validator: Option<Validator>,
    pub(super) shape: Shape,
    pub(super) sanitize: Vec<FieldPath>,
    pub(super) multipart: Vec<MultipartField>,
}

impl MediaSpec {
    /// The declared media type (essence or range, lower-case).
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// Whether a schema was declared (without one, any body of this type conforms).
    pub fn has_schema(&self) -> bool {
        self.validator.is_some()
    }

    /// The body's violations, pointers under `/body`, at most `MAX_VIOLATIONS`.
    pub fn check(&self, body: &Value) -> Vec<Violation> {
        let Some(validator) = &self.validator else {
            return Vec::new();
        };
        // The fast path for a conforming body (the common case): no error is built.
        if validator.is_valid(body) {
            return Vec::new();
        }
        let mut out = Collector::default();
        out.schema_errors("/body", validator.iter_errors(body));
        out.finish()
    }

    /// Form fields (already percent-decoded, in order) as an object typed by the schema. A
    /// field that repeats is a list when its schema is an array and refused otherwise.
    /// Multipart value parts use it too (a file part as its file name or `""`).
    pub fn coerce_form(&self, pairs: &[(String, String)]) -> Result<Value, Vec<Violation>> {
        let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, value) in pairs {
            grouped
                .entry(name.as_str())
                .or_default()
                .push(value.as_str());
        }
        let mut out = Collector::default();
        let mut object = Map::new();
        for (name, values) in grouped {
            let member = self.shape.member(name);
            if member.is_array() {
                let items = values.iter().map(|v| member.coerce_one(v)).collect();
                object.insert(name.to_owned(), Value::Array(items));
            } else if let [single] = values.as_slice() {
                object.insert(name.to_owned(), member.coerce_one(single));
            } else {
                out.push(format!("/body/{}", escape_token(name)), "must appear once");
            }
        }
        let violations = out.finish();
        if violations.is_empty() {
            Ok(Value::Object(object))
        } else {
            Err(violations)
        }
    }

    /// Every field marked `x-rampart-sanitize: html`, found through `$ref`, `allOf`/`anyOf`/
    /// `oneOf`, `properties` and `items` (depth-capped for recursive schemas).
    pub fn sanitize_fields(&self) -> &[FieldPath] {
        &self.sanitize
    }

    /// The parts a `multipart/*` body declares (empty for other kinds).
    pub fn multipart_fields(&self) -> &[MultipartField] {
        &self.multipart
    }
}

/// One declared response body (a status code or range, and a media type).
#[derive(Debug)]
pub struct ResponseSpec {
    pub(super) validator: Option<Validator>,
    /// The schema as declared (its `$ref`s point into the contract's response document), with
    /// the shapes the strip walk expands from it kept across responses.
    pub(super) declared: ResponseContract,
}

impl ResponseSpec {
    /// The response body's violations against the schema as declared, pointers under `/body`.
    pub fn check(&self, body: &Value) -> Vec<Violation> {
        let Some(validator) = &self.validator else {
            return Vec::new();
        };
        // The fast path for a conforming body (the common case): no error is built.
        if validator.is_valid(body) {
            return Vec::new();
        }
        let mut out = Collector::default();
        out.schema_errors("/body", validator.iter_errors(body));
        out.finish()
    }

    /// The schema (2020-12, references as local `#/...` pointers) and the document to resolve
    /// them in. An absent schema is `true` (anything).
    pub fn schema(&self) -> (&Value, &Value) {
        let declared = self.declared.schema();
        (&declared.schema, &declared.root)
    }

    /// Removes the members the schema does not declare (`writeOnly` ones included); the pointers
    /// removed are grouped by schema path and at most `limit`, the count exact.
    pub fn strip(&self, body: &mut Value, limit: usize) -> Stripped {
        self.declared.strip(body, limit)
    }

    /// The schema a `$ref` found in `schema()` points to. Its fragment is a URI fragment: it is
    /// percent-decoded before it is used as a JSON pointer (`#/paths/~1a~1%7Bid%7D/...`).
    pub fn resolve_ref(&self, reference: &str) -> Option<&Value> {
        let pointer = super::pointer::from_fragment(reference.strip_prefix('#')?)?;
        super::pointer::lookup(&self.declared.schema().root, &pointer)
    }
}

/// Responses of an operation by status: exact code, then `2XX` range, then `default`.
#[derive(Debug, Default)]
pub(super) struct Responses {
    pub(super) exact: Vec<(u16, MediaMap<ResponseSpec>)>,
    pub(super) ranges: [Option<MediaMap<ResponseSpec>>; 5],
    pub(super) default: Option<MediaMap<ResponseSpec>>,
}

impl Responses {
    pub(super) fn for_status(&self, status: u16) -> Option<&MediaMap<ResponseSpec>> {
        if let Some((_, media)) = self.exact.iter().find(|(code, _)| *code == status) {
            return Some(media);
        }
        let class = usize::from(status / 100);
        if let Some(Some(media)) = class.checked_sub(1).and_then(|i| self.ranges.get(i)) {
            return Some(media);
        }
        self.default.as_ref()
    }
}

#[cfg(test)]
mod media_map_tests {
    use super::MediaMap;

    fn map(types: &[&str]) -> MediaMap<usize> {
        MediaMap {
            entries: types
                .iter()
                .enumerate()
                .map(|(i, t)| ((*t).to_owned(), i))
                .collect(),
        }
    }

    #[test]
    fn a_content_type_falls_under_its_range_only_when_no_essence_matches() {
        let declared = map(&["*/*", "text/*", "application/json", "text/plain"]);
        assert_eq!(declared.get("application/json; charset=utf-8"), Some(&2));
        assert_eq!(declared.get("Text/Plain"), Some(&3));
        assert_eq!(declared.get("text/csv"), Some(&1));
        assert_eq!(declared.get("image/png"), Some(&0));
        assert_eq!(map(&["text/*"]).get("image/png"), None);
        // No `/`: no range applies, only `*/*`.
        assert_eq!(map(&["text/*"]).get("text"), None);
        assert_eq!(map(&["text/*", "*/*"]).get("text"), Some(&1));
    }
}
