//! Tests of the contract compiler and request checker, named after the property or the attack
//! they prove. Fixtures: `crates/rampart/tests/fixtures/openapi/`.

use std::path::{Path, PathBuf};

use http::{Method, Request};

use super::{CompileOptions, Found, Operation, PathParams, Spec, SpecIssue};
use crate::policy::validate::violation::Violation;

mod body;
mod compile;
mod formats;
mod matching;
mod params;
mod refs;

pub(super) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi")
        .join(name)
}

pub(super) fn compile(name: &str) -> Spec {
    Spec::compile_file(&fixture(name), &CompileOptions::default())
        .unwrap_or_else(|issues| panic!("{name} does not compile: {issues:#?}"))
}

pub(super) fn orders() -> Spec {
    compile("orders-3.0.yaml")
}

/// Compiles text as if it were a file beside the fixtures.
pub(super) fn compile_text(text: &str, options: &CompileOptions) -> Result<Spec, Vec<SpecIssue>> {
    Spec::compile_str(text, &fixture("inline.yaml"), options)
}

pub(super) fn issues_of(text: &str) -> Vec<SpecIssue> {
    match compile_text(text, &CompileOptions::default()) {
        Ok(_) => Vec::new(),
        Err(issues) => issues,
    }
}

pub(super) fn operation<'a>(
    spec: &'a Spec,
    method: &Method,
    path: &str,
) -> (&'a Operation, PathParams) {
    match spec.find(method, path) {
        Found::Operation(op, params) => (op, params),
        other => panic!("{method} {path} does not match an operation: {other:?}"),
    }
}

/// The head violations of a request: `uri` includes the base path and the query.
pub(super) fn head(
    spec: &Spec,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut builder = Request::builder().method(method.clone()).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    let (op, params) = operation(spec, &method, parts.uri.path());
    pairs(&op.check_head(&parts, &params))
}

pub(super) fn pairs(violations: &[Violation]) -> Vec<(String, String)> {
    violations
        .iter()
        .map(|v| (v.pointer.clone(), v.reason.to_string()))
        .collect()
}

pub(super) fn one(pointer: &str, reason: &str) -> Vec<(String, String)> {
    vec![(pointer.to_owned(), reason.to_owned())]
}

/// The standard headers a request to `GET /v1/orders` must carry.
pub(super) const REQUEST_ID: (&str, &str) =
    ("x-request-id", "0b7c6a3e-5d1f-4f7e-9a55-0c2b1f3d4e5a");
