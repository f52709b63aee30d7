//! The OpenAPI contract: compiled once at load into what each request is checked against.
//!
//! Threat: requests the API does not declare (an undeclared method or path, a parameter of the
//! wrong type or an extra one, a body member the client must not set) reaching an upstream
//! written for well-formed input; and a hostile or careless contract (remote `$ref`s, files
//! outside its directory, gigabytes of YAML) turning the gateway itself into the victim.
//! Invariants: a contract is OpenAPI 3.0.x or 3.1.x, read from bounded local files only and
//! never fetched from anywhere; every schema is compiled at load (nothing is compiled or
//! resolved per request) and a contract with any issue does not load, every issue reported
//! with its file, pointer and line; request schemas are closed (undeclared members refused)
//! and refuse `readOnly` members; violations name a pointer and a reason of Rampart's, never the
//! value, and are capped. A `Spec` is immutable and shared by every request.

mod body;
mod build;
mod coerce;
mod compile;
mod convert;
mod describe;
mod fields;
mod issues;
mod keywords;
mod load;
mod locate;
mod matcher;
mod params;
pub(crate) mod pointer;
mod reason;
mod refs;

#[cfg(test)]
mod tests;

use std::path::Path;

use http::Method;

pub use body::{MediaKind, MediaSpec, MultipartField, RequestBodySpec, ResponseSpec, media_kind};
pub use issues::SpecIssue;
pub(crate) use keywords::needs_backtracking;
pub use params::{MAX_QUERY_PAIRS, PathParams};
pub use reason::MAX_VIOLATIONS;

use crate::policy::validate::violation::Violation;

/// What to do with a query parameter the operation does not declare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownQuery {
    /// Refuse the request ("is not declared"): the default.
    #[default]
    Refuse,
    /// Pass it on unchecked.
    Allow,
}

/// How a contract is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// Close request object schemas that declare `properties` without saying whether others
    /// are allowed (mass assignment). Default true.
    pub strict_properties: bool,
    /// Undeclared query parameters, unless an operation says otherwise with
    /// `x-rampart-unknown-query: allow|refuse`. Default refuse.
    pub unknown_query: UnknownQuery,
    /// The path prefix the contract's paths are relative to. `None`: the path of the first
    /// `servers[].url` (server variables at their defaults), or none.
    pub base_path: Option<String>,
    /// Bytes of contract text, all files together. Default 64 MiB.
    pub max_spec_bytes: usize,
    /// `$ref`s in the contract, all files together. Default 100 000.
    pub max_refs: usize,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            strict_properties: true,
            unknown_query: UnknownQuery::Refuse,
            base_path: None,
            max_spec_bytes: 64 * 1024 * 1024,
            max_refs: 100_000,
        }
    }
}

/// A compiled contract.
#[derive(Debug)]
pub struct Spec {
    matcher: matcher::Matcher,
    operation_count: usize,
}

/// The result of matching a request to the contract.
#[derive(Debug)]
pub enum Found<'a> {
    Operation(&'a Operation, PathParams),
    /// The path is declared, the method is not; the value is the `Allow` header.
    MethodNotAllowed(http::HeaderValue),
    NotFound,
}

/// One weak spot of a contract (`super::lint`), with its line in the contract's main file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedLint {
    pub lint: super::lint::Lint,
    pub line: Option<usize>,
}

/// The files the contract at `path` is made of: itself and every file its `$ref`s reach (read
/// and bundled, not compiled), for watching. Empty when the contract cannot be read.
pub fn contract_files(path: &Path) -> Vec<std::path::PathBuf> {
    let options = CompileOptions::default();
    let mut budget = load::Budget {
        remaining: options.max_spec_bytes,
    };
    let Ok(text) = load::read(path, &mut budget) else {
        return Vec::new();
    };
    let Ok(main) = load::parse(&text, path) else {
        return vec![path.to_path_buf()];
    };
    let mut issues = issues::Issues::default();
    let bundle = refs::bundle(main, text, path, &mut budget, options.max_refs, &mut issues);
    bundle.files.into_iter().map(|f| f.path).collect()
}

/// Lints the main document of the contract at `path` (for `rampart check`); `Err` when it cannot
/// be read (the build reports that with its own message).
pub fn lint_file(path: &Path) -> Result<Vec<LocatedLint>, String> {
    let mut budget = load::Budget {
        remaining: CompileOptions::default().max_spec_bytes,
    };
    let text = load::read(path, &mut budget).map_err(|e| e.message)?;
    let doc = load::parse(&text, path).map_err(|e| e.message)?;
    let lints = super::lint::lint(&doc);
    let pointers: Vec<&str> = lints.iter().map(|l| l.pointer.as_str()).collect();
    let lines = locate::lines(&text, &pointers);
    Ok(lints
        .into_iter()
        .zip(lines)
        .map(|(lint, line)| LocatedLint { lint, line })
        .collect())
}

impl Spec {
    /// Compiles the contract at `path` (and the files it references beside it).
    pub fn compile_file(path: &Path, options: &CompileOptions) -> Result<Spec, Vec<SpecIssue>> {
        let mut budget = load::Budget {
            remaining: options.max_spec_bytes,
        };
        match load::read(path, &mut budget) {
            Ok(text) => compile::compile(text, path, budget, options),
            Err(e) => Err(vec![SpecIssue {
                file: path.to_path_buf(),
                pointer: String::new(),
                line: None,
                message: e.message,
            }]),
        }
    }

    /// Compiles contract text as if read from `origin` (relative references resolve beside
    /// it).
    pub fn compile_str(
        text: &str,
        origin: &Path,
        options: &CompileOptions,
    ) -> Result<Spec, Vec<SpecIssue>> {
        let mut budget = load::Budget {
            remaining: options.max_spec_bytes,
        };
        if let Err(e) = load::charge(&mut budget, text.len()) {
            return Err(vec![SpecIssue {
                file: origin.to_path_buf(),
                pointer: String::new(),
                line: None,
                message: e.message,
            }]);
        }
        compile::compile(text.to_owned(), origin, budget, options)
    }

    /// The operation for `method` on `path` (percent-normalized, as the client sent it,
    /// including the base path). `HEAD` falls back to a declared `GET`.
    pub fn find(&self, method: &Method, path: &str) -> Found<'_> {
        self.matcher.find(method, path)
    }

    pub fn operation_count(&self) -> usize {
        self.operation_count
    }

    /// The base path requests are matched under (`""` for none).
    pub fn base_path(&self) -> &str {
        self.matcher.base_path()
    }

    /// The operation with this key (`Operation::key`).
    pub fn operation(&self, key: usize) -> Option<&Operation> {
        self.matcher.operation(key)
    }

    /// Every operation, in key order.
    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.matcher.operations()
    }
}

/// One declared operation (a method on a path template).
#[derive(Debug)]
pub struct Operation {
    id: String,
    /// The id, shared with every request's context and audit record without a copy.
    shared_id: std::sync::Arc<str>,
    /// Its place in `Spec::operations`, set when the contract is complete.
    key: usize,
    method: Method,
    template: String,
    params: params::Params,
    request_body: Option<RequestBodySpec>,
    responses: body::Responses,
    security_declared: bool,
}

impl Operation {
    /// The `operationId`, or `METHOD /template` when there is none.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id as a shared string (for the request's context and audit record).
    pub fn shared_id(&self) -> &std::sync::Arc<str> {
        &self.shared_id
    }

    /// A key that finds this operation again in its contract (`Spec::operation`), so that the
    /// later stages of a request never match it again.
    pub fn key(&self) -> usize {
        self.key
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path template as declared (`/orders/{id}`), without the base path.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// Whether `security` is declared for the operation (on it or at the top of the contract),
    /// an empty list included.
    pub fn security_declared(&self) -> bool {
        self.security_declared
    }

    /// Violations of the request's path, query, header and cookie parameters (at most
    /// `MAX_VIOLATIONS`).
    pub fn check_head(&self, parts: &http::request::Parts, params: &PathParams) -> Vec<Violation> {
        self.params.check(parts, params)
    }

    pub fn request_body(&self) -> Option<&RequestBodySpec> {
        self.request_body.as_ref()
    }

    /// The declared response for a status and content type: the exact code, else its `2XX`
    /// range, else `default`; then the media type as for requests.
    pub fn response(&self, status: u16, content_type: &str) -> Option<&ResponseSpec> {
        self.responses.for_status(status)?.get(content_type)
    }

    /// Whether the status is declared at all (exactly, by range, or by `default`).
    pub fn response_declared(&self, status: u16) -> bool {
        self.responses.for_status(status).is_some()
    }

    /// Whether a body of this content type is declared for the status: `None` when the status
    /// is not declared at all; `Some(false)` when it is but not with this media type (a response
    /// declared without `content` declares no body of any type).
    pub fn response_content_declared(&self, status: u16, content_type: &str) -> Option<bool> {
        Some(
            self.responses
                .for_status(status)?
                .get(content_type)
                .is_some(),
        )
    }
}
