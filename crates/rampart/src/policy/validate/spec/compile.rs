//! Compilation: from contract text to a `Spec`, every issue collected on the way.
//!
//! Steps: parse; check the OpenAPI version; bundle the files and references (refs.rs);
//! describe every operation (parameters, bodies, responses) as pointers into the bundled
//! document; prepare the schemas twice, for requests and for responses (convert.rs); compile
//! one validator per operation's parameters, per request media type and per response media
//! type, over a registry holding both documents; route the paths (matcher.rs). A contract with
//! any issue yields all of them and no `Spec`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use http::Method;
use jsonschema::{Draft, Registry, ValidationOptions, Validator};
use serde_json::{Map, Value, json};

use super::body::{MediaKind, MediaMap, MediaSpec, RequestBodySpec, ResponseSpec, Responses, essence, media_kind};
use super::coerce::Shape;
use super::convert::{self, Dialect, Mode, ref_target};
use super::fields;
use super::issues::{Issues, SourceFile};
use super::load::{self, Budget};
use super::matcher::{self, METHODS, Matcher};
use super::params::{In, ParamSpec, Params, Style};
use super::pointer::child;
use super::refs;
use super::{CompileOptions, Operation, Spec, SpecIssue, UnknownQuery};

const REQUEST_URI: &str = "urn:rampart:request";
const RESPONSE_URI: &str = "urn:rampart:response";
/// Longest chain of `$ref`s to a parameter, body or response object.
const MAX_HOPS: usize = 32;
/// Headers that are never parameters (OpenAPI 3.x, "Parameter Object": such a definition
/// "SHALL be ignored").
const RESERVED_HEADERS: &[&str] = &["accept", "content-type", "authorization"];

struct RawParam {
    name: String,
    location: In,
    required: bool,
    style: Style,
    explode: bool,
    json: bool,
    site: Option<String>,
}

struct RawMedia {
    key: String,
    site: Option<String>,
    encoding: Option<String>,
}

struct RawBody {
    required: bool,
    media: Vec<RawMedia>,
}

enum StatusKey {
    Exact(u16),
    Range(usize),
    Default,
}

struct RawOperation {
    method: Method,
    id: String,
    params: Vec<RawParam>,
    body: Option<RawBody>,
    responses: Vec<(StatusKey, Vec<RawMedia>)>,
    unknown_query: UnknownQuery,
    security: bool,
}

struct RawPath {
    template: String,
    at: String,
    operations: Vec<RawOperation>,
}

pub(super) fn compile(text: String, origin: &Path, mut budget: Budget, options: &CompileOptions) -> Result<Spec, Vec<SpecIssue>> {
    let mut issues = Issues::default();
    let main = match load::parse(&text, origin) {
        Ok(value) => value,
        Err(e) => {
            issues.in_file(0, "", e.line, e.message);
            return Err(issues.finish(&[SourceFile { path: origin.to_path_buf(), text, prefix: String::new() }]));
        }
    };
    let dialect = match dialect(&main) {
        Ok(dialect) => dialect,
        Err((at, message)) => {
            issues.in_file(0, at, None, message);
            return Err(issues.finish(&[SourceFile { path: origin.to_path_buf(), text, prefix: String::new() }]));
        }
    };
    let bundle = refs::bundle(main, text, origin, &mut budget, options.max_refs, &mut issues);
    let (doc, files) = (bundle.doc, bundle.files);
    let mut describer = Describer { doc: &doc, files: &files, issues: &mut issues, options };
    let paths = describer.paths();
    let (request_sites, response_sites) = sites(&paths);
    let mut request_doc = doc.clone();
    let strict = options.strict_properties;
    let found = convert::prepare(&mut request_doc, &request_sites, Mode::Request { strict }, dialect);
    let mut response_doc = doc;
    let found = found.into_iter().chain(convert::prepare(&mut response_doc, &response_sites, Mode::Response, dialect));
    for (at, message) in found {
        issues.at(&files, &at, message);
    }
    if !issues.is_empty() {
        return Err(issues.finish(&files));
    }
    let base = options.base_path.clone().unwrap_or_else(|| base_path(&request_doc));
    let response_doc = Arc::new(response_doc);
    let registry = Registry::new()
        .draft(Draft::Draft202012)
        .add(REQUEST_URI, &request_doc)
        .and_then(|r| r.add(RESPONSE_URI, &*response_doc))
        .and_then(|r| r.prepare());
    let registry = match registry {
        Ok(registry) => registry,
        Err(e) => {
            issues.in_file(0, "", None, format!("the schemas cannot be indexed: {e}"));
            return Err(issues.finish(&files));
        }
    };
    let mut builder = Builder {
        cache: HashMap::new(),
        request_doc: &request_doc,
        response_doc: &response_doc,
        validator_options: super::keywords::options(&registry),
        files: &files,
        issues: &mut issues,
    };
    let mut matcher = Matcher::new(&base);
    let mut operation_count = 0;
    for path in paths {
        let operations: Vec<Operation> = path.operations.into_iter().map(|op| builder.operation(&path.template, op)).collect();
        operation_count += operations.len();
        if let Err(message) = matcher.insert(&path.template, operations) {
            builder.issues.at(&files, &path.at, message);
        }
    }
    if !issues.is_empty() {
        return Err(issues.finish(&files));
    }
    Ok(Spec { matcher, operation_count })
}

fn dialect(doc: &Value) -> Result<Dialect, (String, String)> {
    if doc.get("swagger").is_some() {
        return Err(("/swagger".to_owned(), "Swagger 2.0 is not supported: convert the contract to OpenAPI 3".to_owned()));
    }
    match doc.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.0.") || v == "3.0" => Ok(Dialect::V30),
        Some(v) if v.starts_with("3.1.") || v == "3.1" => Ok(Dialect::V31),
        Some(_) => Err(("/openapi".to_owned(), "must be an OpenAPI version 3.0.x or 3.1.x".to_owned())),
        None => Err((String::new(), "is not an OpenAPI contract: the `openapi` version is missing".to_owned())),
    }
}

/// The path of the first server URL, server variables at their defaults.
fn base_path(doc: &Value) -> String {
    let Some(server) = doc.pointer("/servers/0") else { return String::new() };
    let Some(template) = server.get("url").and_then(Value::as_str) else { return String::new() };
    let mut url = template.to_owned();
    if let Some(Value::Object(variables)) = server.get("variables") {
        for (name, variable) in variables {
            if let Some(default) = variable.get("default").and_then(Value::as_str) {
                url = url.replace(&format!("{{{name}}}"), default);
            }
        }
    }
    let path = if url.starts_with('/') && !url.starts_with("//") {
        url.split(['?', '#']).next().unwrap_or_default().to_owned()
    } else {
        url::Url::parse(&url).map(|u| u.path().to_owned()).unwrap_or_default()
    };
    path.trim_end_matches('/').to_owned()
}

fn sites(paths: &[RawPath]) -> (Vec<String>, Vec<String>) {
    let mut request = Vec::new();
    let mut response = Vec::new();
    for op in paths.iter().flat_map(|p| &p.operations) {
        request.extend(op.params.iter().filter_map(|p| p.site.clone()));
        if let Some(body) = &op.body {
            request.extend(body.media.iter().filter_map(|m| m.site.clone()));
        }
        for (_, media) in &op.responses {
            response.extend(media.iter().filter_map(|m| m.site.clone()));
        }
    }
    for list in [&mut request, &mut response] {
        list.sort();
        list.dedup();
    }
    (request, response)
}

/// Reads the operations out of the bundled document, reporting what is malformed.
struct Describer<'a> {
    doc: &'a Value,
    files: &'a [SourceFile],
    issues: &'a mut Issues,
    options: &'a CompileOptions,
}

impl<'a> Describer<'a> {
    fn issue(&mut self, at: &str, message: impl Into<String>) {
        self.issues.at(self.files, at, message);
    }

    /// The object at `at`, through any chain of `$ref`s.
    fn resolve(&mut self, at: &str) -> Option<(String, &'a Map<String, Value>)> {
        let mut at = at.to_owned();
        for _ in 0..MAX_HOPS {
            let Some(Value::Object(object)) = self.doc.pointer(&at) else {
                self.issue(&at, "must be an object");
                return None;
            };
            match object.get("$ref") {
                None => return Some((at, object)),
                Some(Value::String(_)) => {
                    // A reference the bundler refused stays non-local; it is reported already.
                    let target = ref_target(object)?;
                    if self.doc.pointer(&target).is_none() {
                        self.issue(&child(&at, "$ref"), "points to nothing in the contract");
                        return None;
                    }
                    at = target;
                }
                Some(_) => {
                    self.issue(&child(&at, "$ref"), "must be a string");
                    return None;
                }
            }
        }
        self.issue(&at, "has a chain of references that is too long or circular");
        None
    }

    fn paths(&mut self) -> Vec<RawPath> {
        let Some(Value::Object(paths)) = self.doc.get("paths") else {
            if self.doc.get("paths").is_some() {
                self.issue("/paths", "must be an object");
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut ids: HashMap<String, String> = HashMap::new();
        for (template, _) in paths {
            let at = child("/paths", template);
            if template.starts_with("x-") {
                continue;
            }
            let Some((item_at, item)) = self.resolve(&at) else { continue };
            let shared = self.parameters(item.get("parameters"), &child(&item_at, "parameters"));
            let mut operations = Vec::new();
            for (key, method) in METHODS {
                let op_at = child(&item_at, key);
                if item.get(*key).is_none() {
                    continue;
                }
                let Some(Value::Object(op)) = item.get(*key) else {
                    self.issue(&op_at, "must be an object");
                    continue;
                };
                let op = self.operation(template, method, &op_at, op, &shared);
                if ids.insert(op.id.clone(), op_at.clone()).is_some() {
                    self.issue(&child(&op_at, "operationId"), "repeats another operation's operationId");
                }
                operations.push(op);
            }
            self.check_template(template, &at, &operations);
            out.push(RawPath { template: template.clone(), at, operations });
        }
        out
    }

    /// Every `{name}` in the template is a declared path parameter, and every declared path
    /// parameter is in the template.
    fn check_template(&mut self, template: &str, at: &str, operations: &[RawOperation]) {
        let names = match matcher::route(template) {
            Ok((_, names)) => names,
            Err(message) => {
                self.issue(at, message);
                return;
            }
        };
        for op in operations {
            for name in &names {
                if !op.params.iter().any(|p| p.location == In::Path && &p.name == name) {
                    self.issue(at, format!("has the template parameter `{name}`, which {} does not declare", op.id));
                }
            }
            for p in op.params.iter().filter(|p| p.location == In::Path) {
                if !names.contains(&p.name) {
                    self.issue(at, format!("has no template parameter for the path parameter `{}` of {}", p.name, op.id));
                }
            }
        }
    }

    fn operation(&mut self, template: &str, method: &Method, at: &str, op: &'a Map<String, Value>, shared: &[RawParam]) -> RawOperation {
        let id = match op.get("operationId") {
            Some(Value::String(id)) => id.clone(),
            Some(_) => {
                self.issue(&child(at, "operationId"), "must be a string");
                String::new()
            }
            None => format!("{method} {template}"),
        };
        let own = self.parameters(op.get("parameters"), &child(at, "parameters"));
        let mut params: Vec<RawParam> = shared
            .iter()
            .filter(|s| !own.iter().any(|o| o.name == s.name && o.location == s.location))
            .map(|s| RawParam { name: s.name.clone(), site: s.site.clone(), ..*s })
            .collect();
        params.extend(own);
        let body = op.get("requestBody").and_then(|_| self.request_body(&child(at, "requestBody")));
        let responses = self.responses(op.get("responses"), &child(at, "responses"));
        let unknown_query = match op.get("x-rampart-unknown-query") {
            None => self.options.unknown_query,
            Some(Value::String(s)) if s == "allow" => UnknownQuery::Allow,
            Some(Value::String(s)) if s == "refuse" => UnknownQuery::Refuse,
            Some(_) => {
                self.issue(&child(at, "x-rampart-unknown-query"), "must be `allow` or `refuse`");
                self.options.unknown_query
            }
        };
        let security = op.contains_key("security") || self.doc.get("security").is_some();
        RawOperation { method: method.clone(), id, params, body, responses, unknown_query, security }
    }

    fn parameters(&mut self, list: Option<&Value>, at: &str) -> Vec<RawParam> {
        let items = match list {
            None => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.issue(at, "must be a list");
                return Vec::new();
            }
        };
        let mut out: Vec<RawParam> = Vec::new();
        for i in 0..items.len() {
            let Some(param) = self.parameter(&child(at, &i.to_string())) else { continue };
            if out.iter().any(|p| p.name == param.name && p.location == param.location) {
                self.issue(&child(at, &i.to_string()), "repeats a parameter of the same name and location");
                continue;
            }
            out.push(param);
        }
        out
    }

    fn parameter(&mut self, at: &str) -> Option<RawParam> {
        let (at, param) = self.resolve(at)?;
        let Some(Value::String(name)) = param.get("name") else {
            self.issue(&at, "must have a `name`");
            return None;
        };
        let Some(location) = param.get("in").and_then(Value::as_str).and_then(In::parse) else {
            self.issue(&child(&at, "in"), "must be path, query, header or cookie");
            return None;
        };
        if location == In::Header && RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return None;
        }
        let required = param.get("required") == Some(&Value::Bool(true));
        if location == In::Path && !required {
            self.issue(&at, "is a path parameter and must be `required: true`");
        }
        let style = match param.get("style") {
            None => Style::default_for(location),
            Some(style) => match style.as_str().and_then(|s| Style::parse(s, location)) {
                Some(style) => style,
                None => {
                    self.issue(&child(&at, "style"), "is not a style this location allows");
                    Style::default_for(location)
                }
            },
        };
        let explode = param.get("explode").and_then(Value::as_bool).unwrap_or(style == Style::Form);
        let (site, json) = if param.contains_key("schema") {
            (Some(child(&at, "schema")), false)
        } else if let Some(Value::Object(content)) = param.get("content") {
            match content.iter().next() {
                Some((key, media)) if content.len() == 1 => {
                    let json = media_kind(key) == MediaKind::Json;
                    let site = media.get("schema").map(|_| child(&child(&child(&at, "content"), key), "schema"));
                    (site, json)
                }
                _ => {
                    self.issue(&child(&at, "content"), "must declare exactly one media type");
                    (None, false)
                }
            }
        } else {
            self.issue(&at, "must have a `schema` or a `content`");
            (None, false)
        };
        Some(RawParam { name: name.clone(), location, required, style, explode, json, site })
    }

    fn content(&mut self, content: Option<&Value>, at: &str) -> Vec<RawMedia> {
        let Some(content) = content else { return Vec::new() };
        let Value::Object(content) = content else {
            self.issue(at, "must be an object");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, media) in content {
            let media_at = child(at, key);
            let normalized = essence(key);
            if !normalized.contains('/') {
                self.issue(&media_at, "is not a media type (`type/subtype`)");
                continue;
            }
            out.push(RawMedia {
                key: normalized,
                site: media.get("schema").map(|_| child(&media_at, "schema")),
                encoding: media.get("encoding").map(|_| child(&media_at, "encoding")),
            });
        }
        out
    }

    fn request_body(&mut self, at: &str) -> Option<RawBody> {
        let (at, body) = self.resolve(at)?;
        let required = body.get("required") == Some(&Value::Bool(true));
        let media = self.content(body.get("content"), &child(&at, "content"));
        Some(RawBody { required, media })
    }

    fn responses(&mut self, responses: Option<&Value>, at: &str) -> Vec<(StatusKey, Vec<RawMedia>)> {
        let Some(responses) = responses else { return Vec::new() };
        let Value::Object(responses) = responses else {
            self.issue(at, "must be an object");
            return Vec::new();
        };
        let mut out = Vec::new();
        for code in responses.keys() {
            let response_at = child(at, code);
            if code.starts_with("x-") {
                continue;
            }
            let Some(key) = status_key(code) else {
                self.issue(&response_at, "is not a status code, a range such as 2XX, or default");
                continue;
            };
            let Some((resolved, response)) = self.resolve(&response_at) else { continue };
            let media = self.content(response.get("content"), &child(&resolved, "content"));
            out.push((key, media));
        }
        out
    }
}

fn status_key(code: &str) -> Option<StatusKey> {
    if code == "default" {
        return Some(StatusKey::Default);
    }
    let bytes = code.as_bytes();
    if let [class @ b'1'..=b'5', x, y] = bytes
        && x.eq_ignore_ascii_case(&b'x')
        && y.eq_ignore_ascii_case(&b'x')
    {
        return Some(StatusKey::Range(usize::from(class - b'1')));
    }
    match code.parse::<u16>() {
        Ok(n) if code.len() == 3 && (100..=599).contains(&n) => Some(StatusKey::Exact(n)),
        _ => None,
    }
}

/// Compiles the described operations against the prepared documents.
struct Builder<'a, 'r> {
    /// Validators by the text of their (absolute-referenced) schema: operations that share a
    /// schema share its compiled validator.
    cache: HashMap<String, Validator>,
    request_doc: &'a Value,
    response_doc: &'a Arc<Value>,
    validator_options: ValidationOptions<'r>,
    files: &'a [SourceFile],
    issues: &'a mut Issues,
}

impl Builder<'_, '_> {
    /// The validator of `schema` (its `$ref`s absolute), built once per distinct schema.
    fn validator(&mut self, schema: &Value, at: &str) -> Option<Validator> {
        let key = schema.to_string();
        if let Some(validator) = self.cache.get(&key) {
            return Some(validator.clone());
        }
        match self.validator_options.build(schema) {
            Ok(validator) => {
                self.cache.insert(key, validator.clone());
                Some(validator)
            }
            Err(e) => {
                self.issues.at(self.files, at, format!("does not compile: {e}"));
                None
            }
        }
    }

    /// The schema at `site` in the document named `uri`, with its references made absolute so
    /// that it can be compiled on its own.
    fn site_schema(&self, uri: &str, site: &str) -> Value {
        let doc = if uri == REQUEST_URI { self.request_doc } else { &**self.response_doc };
        let mut schema = doc.pointer(site).cloned().unwrap_or(Value::Bool(true));
        absolute_refs(&mut schema, uri, 0, false);
        schema
    }

    fn operation(&mut self, template: &str, raw: RawOperation) -> Operation {
        let params = self.params(&raw.params, raw.unknown_query);
        let request_body = raw.body.map(|body| RequestBodySpec {
            required: body.required,
            media: MediaMap { entries: body.media.into_iter().map(|m| (m.key.clone(), self.media(m))).collect() },
        });
        let mut responses = Responses::default();
        for (key, media) in raw.responses {
            let map = MediaMap { entries: media.into_iter().map(|m| (m.key.clone(), self.response(m))).collect() };
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
            id: raw.id,
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
                None => match self.validator_options.build(&schema) {
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
                shape: p.site.as_deref().map(|s| Shape::of(self.request_doc, s, 1)).unwrap_or_default(),
            })
            .collect();
        Params { list, validator, unknown_query }
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
            let encoding = raw.encoding.as_deref().and_then(|e| self.request_doc.pointer(e)).and_then(Value::as_object);
            spec.multipart = fields::multipart_fields(self.request_doc, &site, encoding);
        }
        spec
    }

    fn response(&mut self, raw: RawMedia) -> ResponseSpec {
        let validator = raw.site.as_deref().and_then(|site| {
            let schema = self.site_schema(RESPONSE_URI, site);
            self.validator(&schema, site)
        });
        ResponseSpec {
            validator,
            root: Arc::clone(self.response_doc),
            pointer: raw.site,
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
                    _ if matches!(key.as_str(), "enum" | "const" | "default" | "example" | "examples") => {}
                    _ => {
                        let named = matches!(
                            key.as_str(),
                            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas"
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
