//! Path, query, header and cookie parameters: decoded by their declared style, typed by their
//! schema, checked by one compiled validator per operation.
//!
//! Threat: injection through a parameter the upstream trusts to be a number (`?limit=1 OR
//! 1=1`), parameter pollution (`?role=user&role=admin`, where the gateway and the upstream may
//! pick different occurrences), and undeclared parameters that reach debug switches or ORM
//! filters. Invariants: required parameters are present; a parameter that is not an array
//! appears once; query parameters that the operation does not declare are refused unless the
//! contract or the config allows them; values are checked after percent-decoding, as the
//! upstream will see them; at most `MAX_QUERY_PAIRS` query pairs are looked at.

use std::collections::BTreeMap;

use http::request::Parts;
use jsonschema::Validator;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use super::UnknownQuery;
use super::coerce::Shape;
use super::reason::Collector;
use crate::policy::validate::violation::{Violation, escape_token};

/// More query pairs than this is refused outright: no API declares that many, and each pair
/// costs work.
pub const MAX_QUERY_PAIRS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum In {
    Path,
    Query,
    Header,
    Cookie,
}

impl In {
    pub(super) fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "path" => Self::Path,
            "query" => Self::Query,
            "header" => Self::Header,
            "cookie" => Self::Cookie,
            _ => return None,
        })
    }

    /// The member of the checked instance, and the first token of a violation's pointer.
    pub(super) fn key(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Header => "header",
            Self::Cookie => "cookie",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    Form,
    Simple,
    Label,
    Matrix,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
}

impl Style {
    /// The style named in the contract, if it is allowed for the location (OpenAPI 3.x,
    /// "Style Values").
    pub(super) fn parse(text: &str, location: In) -> Option<Self> {
        let style = match text {
            "form" => Self::Form,
            "simple" => Self::Simple,
            "label" => Self::Label,
            "matrix" => Self::Matrix,
            "spaceDelimited" => Self::SpaceDelimited,
            "pipeDelimited" => Self::PipeDelimited,
            "deepObject" => Self::DeepObject,
            _ => return None,
        };
        let allowed = match location {
            In::Path => matches!(style, Self::Simple | Self::Label | Self::Matrix),
            In::Query => matches!(
                style,
                Self::Form | Self::SpaceDelimited | Self::PipeDelimited | Self::DeepObject
            ),
            In::Header => style == Self::Simple,
            In::Cookie => style == Self::Form,
        };
        allowed.then_some(style)
    }

    pub(super) fn default_for(location: In) -> Self {
        match location {
            In::Path | In::Header => Self::Simple,
            In::Query | In::Cookie => Self::Form,
        }
    }
}

/// One declared parameter.
#[derive(Debug)]
pub(super) struct ParamSpec {
    pub(super) name: String,
    pub(super) location: In,
    pub(super) required: bool,
    pub(super) style: Style,
    pub(super) explode: bool,
    pub(super) shape: Shape,
    /// Declared with `content: application/json` instead of a schema: the value is JSON text.
    pub(super) json: bool,
}

impl ParamSpec {
    fn pointer(&self) -> String {
        format!("/{}/{}", self.location.key(), escape_token(&self.name))
    }

    /// Decoded wire values (one per occurrence) as the JSON value the schema is checked on.
    fn value(&self, occurrences: &[String]) -> Result<Value, &'static str> {
        if self.json {
            let [text] = occurrences else {
                return Err("must appear once");
            };
            return serde_json::from_str(text).map_err(|_| "must be JSON");
        }
        match &self.shape {
            Shape::Array(_) => {
                let items: Vec<&str> = if self.explode && self.location != In::Header {
                    occurrences.iter().map(String::as_str).collect()
                } else {
                    let [text] = occurrences else {
                        return Err("must appear once");
                    };
                    split(text, self.delimiter())
                };
                // Header lists allow space around their commas (RFC 9110 section 5.6.1).
                let trim = self.location == In::Header;
                Ok(Value::Array(
                    items
                        .iter()
                        .map(|i| self.shape.coerce_one(if trim { i.trim() } else { i }))
                        .collect(),
                ))
            }
            Shape::Object { .. } => {
                let [text] = occurrences else {
                    return Err("must appear once");
                };
                Ok(self.object(text))
            }
            Shape::Scalar(_) => {
                let [text] = occurrences else {
                    return Err("must appear once");
                };
                Ok(self.shape.coerce_one(text))
            }
        }
    }

    fn delimiter(&self) -> char {
        match self.style {
            Style::SpaceDelimited => ' ',
            Style::PipeDelimited => '|',
            Style::Label if self.explode => '.',
            _ => ',',
        }
    }

    /// An object in one value: `k,v,k,v`, or `k=v,k=v` when exploded (simple style).
    fn object(&self, text: &str) -> Value {
        let mut object = Map::new();
        let parts = split(text, ',');
        if self.explode {
            for part in parts {
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                object.insert(k.to_owned(), self.shape.member(k).coerce_one(v));
            }
        } else {
            if !parts.len().is_multiple_of(2) {
                return Value::String(text.to_owned());
            }
            for pair in parts.chunks(2) {
                if let [k, v] = pair {
                    object.insert((*k).to_owned(), self.shape.member(k).coerce_one(v));
                }
            }
        }
        Value::Object(object)
    }
}

fn split(text: &str, delimiter: char) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split(delimiter).collect()
}

/// Raw path parameter values of a matched request, by name, as they appear in the path
/// (still percent-encoded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams {
    pub(super) values: Vec<(String, String)>,
}

impl PathParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// An operation's parameters and their compiled validator.
#[derive(Debug, Default)]
pub(super) struct Params {
    pub(super) list: Vec<ParamSpec>,
    pub(super) validator: Option<Validator>,
    pub(super) unknown_query: UnknownQuery,
}

impl Params {
    pub(super) fn check(&self, parts: &Parts, path: &PathParams) -> Vec<Violation> {
        let mut out = Collector::default();
        let mut instance: BTreeMap<&'static str, Map<String, Value>> = BTreeMap::new();
        let mut put = |param: &ParamSpec, value: Value| {
            instance
                .entry(param.location.key())
                .or_default()
                .insert(param.name.clone(), value);
        };
        let mut query = query_pairs(parts.uri.query(), &mut out);
        let cookies = cookies(parts);
        for param in &self.list {
            let occurrences = match param.location {
                In::Path => path_value(param, path),
                In::Query => query_value(param, &mut query),
                In::Header => header_values(param, parts),
                In::Cookie => Ok(cookies
                    .get(param.name.as_str())
                    .cloned()
                    .unwrap_or_default()),
            };
            match occurrences {
                Ok(Occurrences::Member(value)) => put(param, value),
                Ok(Occurrences::Texts(texts)) if texts.is_empty() => {
                    if param.required {
                        out.push(param.pointer(), "is required");
                    }
                }
                Ok(Occurrences::Texts(texts)) => match param.value(&texts) {
                    Ok(value) => put(param, value),
                    Err(reason) => out.push(param.pointer(), reason),
                },
                Err(reason) => out.push(param.pointer(), reason),
            }
        }
        if self.unknown_query == UnknownQuery::Refuse {
            for name in query.keys() {
                out.push(format!("/query/{}", escape_token(name)), "is not declared");
            }
        }
        if let Some(validator) = &self.validator {
            let instance = Value::Object(
                instance
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Value::Object(v)))
                    .collect(),
            );
            if !validator.is_valid(&instance) {
                out.schema_errors("", validator.iter_errors(&instance));
            }
        }
        out.finish()
    }
}

/// What a request carries for one parameter: its wire texts, or a value already built from
/// several pairs (`deepObject`, exploded form objects).
#[derive(Clone)]
enum Occurrences {
    Texts(Vec<String>),
    Member(Value),
}

impl Default for Occurrences {
    fn default() -> Self {
        Self::Texts(Vec::new())
    }
}

fn decode(raw: &str, plus_is_space: bool) -> Result<String, &'static str> {
    let spaced;
    let raw = if plus_is_space && raw.contains('+') {
        spaced = raw.replace('+', " ");
        spaced.as_str()
    } else {
        raw
    };
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "must be UTF-8 text")
}

/// Query pairs grouped by decoded name, values decoded, in order of appearance. A value that
/// does not decode to UTF-8 is reported under its parameter's name and left out.
fn query_pairs(query: Option<&str>, out: &mut Collector) -> BTreeMap<String, Vec<String>> {
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let pairs = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty());
    for (count, pair) in pairs.enumerate() {
        if count >= MAX_QUERY_PAIRS {
            out.push("/query".to_owned(), "has more parameters than allowed");
            return BTreeMap::new();
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Ok(name) = decode(name, true) else {
            out.push(
                "/query".to_owned(),
                "has a parameter name that is not UTF-8 text",
            );
            continue;
        };
        match decode(value, true) {
            Ok(value) => grouped.entry(name).or_default().push(value),
            Err(reason) => out.push(format!("/query/{}", escape_token(&name)), reason),
        }
    }
    grouped
}

fn query_value(
    param: &ParamSpec,
    query: &mut BTreeMap<String, Vec<String>>,
) -> Result<Occurrences, &'static str> {
    let members_as_pairs = param.style == Style::DeepObject
        || (param.explode && param.style == Style::Form && !param.json);
    if let (true, Shape::Object { properties, .. }) = (members_as_pairs, &param.shape) {
        let names: Vec<String> = if param.style == Style::DeepObject {
            let prefix = format!("{}[", param.name);
            query
                .keys()
                .filter(|k| k.starts_with(&prefix) && k.ends_with(']'))
                .cloned()
                .collect()
        } else {
            query
                .keys()
                .filter(|k| properties.contains_key(k.as_str()))
                .cloned()
                .collect()
        };
        if names.is_empty() {
            return Ok(Occurrences::default());
        }
        let mut object = Map::new();
        for key in names {
            let values = query.remove(&key).unwrap_or_default();
            let member = if param.style == Style::DeepObject {
                key[param.name.len() + 1..key.len() - 1].to_owned()
            } else {
                key
            };
            let [value] = values.as_slice() else {
                return Err("must appear once");
            };
            let coerced = param.shape.member(&member).coerce_one(value);
            object.insert(member, coerced);
        }
        return Ok(Occurrences::Member(Value::Object(object)));
    }
    Ok(Occurrences::Texts(
        query.remove(&param.name).unwrap_or_default(),
    ))
}

fn path_value(param: &ParamSpec, path: &PathParams) -> Result<Occurrences, &'static str> {
    let Some(raw) = path.get(&param.name) else {
        return Ok(Occurrences::default());
    };
    // A template may use a name twice (`/a/{id}/b/{id}`); only the first place is checked
    // below, so every other place must carry the same text, or it would reach the upstream
    // unchecked.
    if path
        .values
        .iter()
        .any(|(name, value)| *name == param.name && value != raw)
    {
        return Err("must have the same value at each place in the path");
    }
    let is_array = matches!(param.shape, Shape::Array(_));
    // Split before decoding: an encoded delimiter (`%2C`) is part of an item.
    let pieces: Vec<&str> = match param.style {
        Style::Label => split(
            raw.strip_prefix('.').ok_or("must start with `.`")?,
            param.delimiter(),
        ),
        Style::Matrix => {
            let prefix = format!("{}=", param.name);
            let values = raw
                .strip_prefix(';')
                .ok_or("must start with `;`")?
                .split(';')
                .map(|piece| piece.strip_prefix(prefix.as_str()))
                .collect::<Option<Vec<&str>>>()
                .ok_or("must name the parameter in each item")?;
            match values.as_slice() {
                [single] if !(is_array && param.explode) => split(single, ','),
                _ if is_array && param.explode => values,
                _ => return Err("must appear once"),
            }
        }
        _ => split(raw, ','),
    };
    if is_array {
        let items = pieces
            .into_iter()
            .map(|item| decode(item, false).map(|text| param.shape.coerce_one(&text)))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Occurrences::Member(Value::Array(items)));
    }
    // A scalar or an object: the whole value, decoded.
    let whole = match param.style {
        Style::Simple => raw.to_owned(),
        _ => pieces.join(","),
    };
    Ok(Occurrences::Texts(vec![decode(&whole, false)?]))
}

fn header_values(param: &ParamSpec, parts: &Parts) -> Result<Occurrences, &'static str> {
    let mut texts = Vec::new();
    for value in parts.headers.get_all(param.name.as_str()) {
        let text = std::str::from_utf8(value.as_bytes()).map_err(|_| "must be UTF-8 text")?;
        texts.push(text.trim().to_owned());
    }
    // Several lines of a list-valued header are one list (RFC 9110 section 5.3).
    if texts.len() > 1 && matches!(param.shape, Shape::Array(_)) {
        texts = vec![texts.join(",")];
    }
    Ok(Occurrences::Texts(texts))
}

/// Cookies by name, every occurrence kept (a repeated cookie is a repeated parameter).
fn cookies(parts: &Parts) -> BTreeMap<&str, Occurrences> {
    let mut out: BTreeMap<&str, Occurrences> = BTreeMap::new();
    for header in parts.headers.get_all(http::header::COOKIE) {
        let Ok(text) = std::str::from_utf8(header.as_bytes()) else {
            continue;
        };
        for pair in text.split(';') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            if let Occurrences::Texts(values) = out.entry(name).or_default() {
                values.push(value.trim().to_owned());
            }
        }
    }
    out
}
