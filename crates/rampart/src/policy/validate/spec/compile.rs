//! Compilation: from contract text to a `Spec`, every issue collected on the way.
//!
//! Steps: parse; check the OpenAPI version; bundle the files and references (refs.rs);
//! describe every operation (parameters, bodies, responses) as pointers into the bundled
//! document (describe.rs); prepare the schemas twice, for requests and for responses
//! (convert.rs); compile the validators over a registry holding both documents (build.rs);
//! route the paths (matcher.rs). A contract with any issue yields all of them and no `Spec`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use jsonschema::{Draft, Registry};
use serde_json::Value;

use super::build::{Builder, REQUEST_URI, RESPONSE_URI};
use super::convert::{self, Dialect, Mode};
use super::describe::{Describer, RawPath};
use super::issues::{Issues, SourceFile};
use super::keywords::PatternEngine;
use super::load::{self, Budget};
use super::matcher::Matcher;
use super::refs;
use super::{CompileOptions, Operation, Spec, SpecIssue};
use crate::policy::validate::strip::Patterns;

pub(super) fn compile(
    text: String,
    origin: &Path,
    mut budget: Budget,
    options: &CompileOptions,
) -> Result<Spec, Vec<SpecIssue>> {
    let mut issues = Issues::default();
    let main = match load::parse(&text, origin) {
        Ok(value) => value,
        Err(e) => {
            issues.in_file(0, "", e.line, e.message);
            return Err(issues.finish(&[SourceFile {
                path: origin.to_path_buf(),
                text,
                prefix: String::new(),
            }]));
        }
    };
    let dialect = match dialect(&main) {
        Ok(dialect) => dialect,
        Err((at, message)) => {
            issues.in_file(0, at, None, message);
            return Err(issues.finish(&[SourceFile {
                path: origin.to_path_buf(),
                text,
                prefix: String::new(),
            }]));
        }
    };
    let bundle = refs::bundle(
        main,
        text,
        origin,
        &mut budget,
        options.max_refs,
        &mut issues,
    );
    let (doc, files) = (bundle.doc, bundle.files);
    let mut describer = Describer {
        doc: &doc,
        files: &files,
        issues: &mut issues,
        options,
    };
    let paths = describer.paths();
    let (request_sites, response_sites) = sites(&paths);
    let mut request_doc = doc.clone();
    let strict = options.strict_properties;
    let found = convert::prepare(
        &mut request_doc,
        &request_sites,
        Mode::Request { strict },
        dialect,
    );
    let mut response_doc = doc;
    let found = found.into_iter().chain(convert::prepare(
        &mut response_doc,
        &response_sites,
        Mode::Response,
        dialect,
    ));
    for (at, message) in found {
        issues.at(&files, &at, message);
    }
    if !issues.is_empty() {
        return Err(issues.finish(&files));
    }
    let base = options
        .base_path
        .clone()
        .unwrap_or_else(|| base_path(&request_doc));
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
        response_patterns: Arc::new(Patterns::collect(&response_doc)),
        validator_options: super::keywords::options(&registry, PatternEngine::Linear),
        backtracking_options: super::keywords::options(&registry, PatternEngine::Backtracking),
        files: &files,
        issues: &mut issues,
    };
    let mut matcher = Matcher::new(&base);
    let mut operation_count = 0;
    for path in paths {
        let operations: Vec<Operation> = path
            .operations
            .into_iter()
            .map(|op| builder.operation(&path.template, op))
            .collect();
        operation_count += operations.len();
        if let Err(message) = matcher.insert(&path.template, operations) {
            builder.issues.at(&files, &path.at, message);
        }
    }
    if !issues.is_empty() {
        return Err(issues.finish(&files));
    }
    Ok(Spec {
        matcher,
        operation_count,
    })
}

fn dialect(doc: &Value) -> Result<Dialect, (String, String)> {
    if doc.get("swagger").is_some() {
        return Err((
            "/swagger".to_owned(),
            "Swagger 2.0 is not supported: convert the contract to OpenAPI 3".to_owned(),
        ));
    }
    match doc.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.0.") || v == "3.0" => Ok(Dialect::V30),
        Some(v) if v.starts_with("3.1.") || v == "3.1" => Ok(Dialect::V31),
        Some(_) => Err((
            "/openapi".to_owned(),
            "must be an OpenAPI version 3.0.x or 3.1.x".to_owned(),
        )),
        None => Err((
            String::new(),
            "is not an OpenAPI contract: the `openapi` version is missing".to_owned(),
        )),
    }
}

/// The path of the first server URL, server variables at their defaults.
fn base_path(doc: &Value) -> String {
    let Some(server) = doc.pointer("/servers/0") else {
        return String::new();
    };
    let Some(template) = server.get("url").and_then(Value::as_str) else {
        return String::new();
    };
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
        url::Url::parse(&url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default()
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
