//! Reading the operations out of the bundled document: parameters, bodies and responses as
//! pointers to their schemas, each object reached through any chain of `$ref`s (bounded), and
//! every malformed piece reported where it is.

use std::collections::HashMap;

use http::Method;
use serde_json::{Map, Value};

use super::body::{MediaKind, essence, media_kind};
use super::convert::ref_target;
use super::issues::{Issues, SourceFile};
use super::matcher::{self, METHODS};
use super::params::{In, Style};
use super::pointer::child;
use super::{CompileOptions, UnknownQuery};

/// Longest chain of `$ref`s to a parameter, body or response object.
const MAX_HOPS: usize = 32;
/// Headers that are never parameters (OpenAPI 3.x, "Parameter Object": such a definition
/// "SHALL be ignored").
const RESERVED_HEADERS: &[&str] = &["accept", "content-type", "authorization"];

pub(super) struct RawParam {
    pub(super) name: String,
    pub(super) location: In,
    pub(super) required: bool,
    pub(super) style: Style,
    pub(super) explode: bool,
    pub(super) json: bool,
    pub(super) site: Option<String>,
}

pub(super) struct RawMedia {
    pub(super) key: String,
    pub(super) site: Option<String>,
    pub(super) encoding: Option<String>,
}

pub(super) struct RawBody {
    pub(super) required: bool,
    pub(super) media: Vec<RawMedia>,
}

pub(super) enum StatusKey {
    Exact(u16),
    Range(usize),
    Default,
}

pub(super) struct RawOperation {
    pub(super) method: Method,
    pub(super) id: String,
    pub(super) params: Vec<RawParam>,
    pub(super) body: Option<RawBody>,
    pub(super) responses: Vec<(StatusKey, Vec<RawMedia>)>,
    pub(super) unknown_query: UnknownQuery,
    pub(super) security: bool,
}

pub(super) struct RawPath {
    pub(super) template: String,
    pub(super) at: String,
    pub(super) operations: Vec<RawOperation>,
}

/// Reads the operations out of the bundled document, reporting what is malformed.
pub(super) struct Describer<'a> {
    pub(super) doc: &'a Value,
    pub(super) files: &'a [SourceFile],
    pub(super) issues: &'a mut Issues,
    pub(super) options: &'a CompileOptions,
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
        self.issue(
            &at,
            "has a chain of references that is too long or circular",
        );
        None
    }

    pub(super) fn paths(&mut self) -> Vec<RawPath> {
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
            let Some((item_at, item)) = self.resolve(&at) else {
                continue;
            };
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
                    self.issue(
                        &child(&op_at, "operationId"),
                        "repeats another operation's operationId",
                    );
                }
                operations.push(op);
            }
            self.check_template(template, &at, &operations);
            out.push(RawPath {
                template: template.clone(),
                at,
                operations,
            });
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
                if !op
                    .params
                    .iter()
                    .any(|p| p.location == In::Path && &p.name == name)
                {
                    self.issue(
                        at,
                        format!(
                            "has the template parameter `{name}`, which {} does not declare",
                            op.id
                        ),
                    );
                }
            }
            for p in op.params.iter().filter(|p| p.location == In::Path) {
                if !names.contains(&p.name) {
                    self.issue(
                        at,
                        format!(
                            "has no template parameter for the path parameter `{}` of {}",
                            p.name, op.id
                        ),
                    );
                }
            }
        }
    }

    fn operation(
        &mut self,
        template: &str,
        method: &Method,
        at: &str,
        op: &'a Map<String, Value>,
        shared: &[RawParam],
    ) -> RawOperation {
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
            .filter(|s| {
                !own.iter()
                    .any(|o| o.name == s.name && o.location == s.location)
            })
            .map(|s| RawParam {
                name: s.name.clone(),
                site: s.site.clone(),
                ..*s
            })
            .collect();
        params.extend(own);
        let body = op
            .get("requestBody")
            .and_then(|_| self.request_body(&child(at, "requestBody")));
        let responses = self.responses(op.get("responses"), &child(at, "responses"));
        let unknown_query = match op.get("x-rampart-unknown-query") {
            None => self.options.unknown_query,
            Some(Value::String(s)) if s == "allow" => UnknownQuery::Allow,
            Some(Value::String(s)) if s == "refuse" => UnknownQuery::Refuse,
            Some(_) => {
                self.issue(
                    &child(at, "x-rampart-unknown-query"),
                    "must be `allow` or `refuse`",
                );
                self.options.unknown_query
            }
        };
        let security = op.contains_key("security") || self.doc.get("security").is_some();
        RawOperation {
            method: method.clone(),
            id,
            params,
            body,
            responses,
            unknown_query,
            security,
        }
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
            let Some(param) = self.parameter(&child(at, &i.to_string())) else {
                continue;
            };
            if out
                .iter()
                .any(|p| p.name == param.name && p.location == param.location)
            {
                self.issue(
                    &child(at, &i.to_string()),
                    "repeats a parameter of the same name and location",
                );
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
        if location == In::Header && RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str())
        {
            return None;
        }
        if location == In::Header && http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            self.issue(&child(&at, "name"), "is not a valid header name");
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
        let explode = param
            .get("explode")
            .and_then(Value::as_bool)
            .unwrap_or(style == Style::Form);
        let (site, json) = if param.contains_key("schema") {
            (Some(child(&at, "schema")), false)
        } else if let Some(Value::Object(content)) = param.get("content") {
            match content.iter().next() {
                Some((key, media)) if content.len() == 1 => {
                    let json = media_kind(key) == MediaKind::Json;
                    let site = media
                        .get("schema")
                        .map(|_| child(&child(&child(&at, "content"), key), "schema"));
                    (site, json)
                }
                _ => {
                    self.issue(
                        &child(&at, "content"),
                        "must declare exactly one media type",
                    );
                    (None, false)
                }
            }
        } else {
            self.issue(&at, "must have a `schema` or a `content`");
            (None, false)
        };
        Some(RawParam {
            name: name.clone(),
            location,
            required,
            style,
            explode,
            json,
            site,
        })
    }

    fn content(&mut self, content: Option<&Value>, at: &str) -> Vec<RawMedia> {
        let Some(content) = content else {
            return Vec::new();
        };
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
                key: normalized.into_owned(),
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

    fn responses(
        &mut self,
        responses: Option<&Value>,
        at: &str,
    ) -> Vec<(StatusKey, Vec<RawMedia>)> {
        let Some(responses) = responses else {
            return Vec::new();
        };
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
                self.issue(
                    &response_at,
                    "is not a status code, a range such as 2XX, or default",
                );
                continue;
            };
            let Some((resolved, response)) = self.resolve(&response_at) else {
                continue;
            };
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
