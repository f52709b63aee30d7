//! Request path and method to a declared operation.
//!
//! Invariants: a path outside the base path matches nothing; literal segments win over
//! templated ones (`/orders/mine` before `/orders/{id}`, matchit's static priority); `HEAD`
//! is answered by a declared `GET`; the `Allow` header of each path is computed at compile
//! time. Template parameters are renamed positionally (`{p0}`) for the router, so that any
//! name the contract uses is fine.

use http::{HeaderValue, Method};

use super::params::PathParams;
use super::{Found, Operation};

/// Methods in the order an `Allow` header lists them.
pub(super) const METHODS: &[(&str, Method)] = &[
    ("get", Method::GET),
    ("head", Method::HEAD),
    ("post", Method::POST),
    ("put", Method::PUT),
    ("patch", Method::PATCH),
    ("delete", Method::DELETE),
    ("options", Method::OPTIONS),
    ("trace", Method::TRACE),
];

#[derive(Debug)]
struct PathEntry {
    names: Vec<String>,
    operations: Vec<Operation>,
    allow: HeaderValue,
}

#[derive(Debug)]
pub(super) struct Matcher {
    base: String,
    router: matchit::Router<usize>,
    paths: Vec<PathEntry>,
    /// Operation key to (path, operation) indices.
    keys: Vec<(usize, usize)>,
}

impl Matcher {
    pub(super) fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            router: matchit::Router::new(),
            paths: Vec::new(),
            keys: Vec::new(),
        }
    }

    pub(super) fn base_path(&self) -> &str {
        &self.base
    }

    /// Adds a path template with its operations. The error says why the template cannot be
    /// routed.
    pub(super) fn insert(
        &mut self,
        template: &str,
        mut operations: Vec<Operation>,
    ) -> Result<(), String> {
        let (route, names) = route(template)?;
        self.router
            .insert(route, self.paths.len())
            .map_err(|e| format!("cannot be routed: {e}"))?;
        let mut allowed: Vec<&str> = METHODS
            .iter()
            .filter(|(_, m)| {
                operations.iter().any(|o| o.method == *m)
                    || (*m == Method::HEAD && operations.iter().any(|o| o.method == Method::GET))
            })
            .map(|(_, m)| m.as_str())
            .collect();
        allowed.dedup();
        for (index, operation) in operations.iter_mut().enumerate() {
            operation.key = self.keys.len();
            self.keys.push((self.paths.len(), index));
        }
        let allow =
            HeaderValue::from_str(&allowed.join(", ")).unwrap_or(HeaderValue::from_static(""));
        self.paths.push(PathEntry {
            names,
            operations,
            allow,
        });
        Ok(())
    }

    pub(super) fn operation(&self, key: usize) -> Option<&Operation> {
        let (path, index) = *self.keys.get(key)?;
        self.paths.get(path)?.operations.get(index)
    }

    pub(super) fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.paths.iter().flat_map(|p| p.operations.iter())
    }

    pub(super) fn find(&self, method: &Method, path: &str) -> Found<'_> {
        let Some(relative) = self.relative(path) else {
            return Found::NotFound;
        };
        let Ok(matched) = self.router.at(relative) else {
            return Found::NotFound;
        };
        let Some(entry) = self.paths.get(*matched.value) else {
            return Found::NotFound;
        };
        let operation = entry
            .operations
            .iter()
            .find(|o| o.method == *method)
            .or_else(|| {
                (*method == Method::HEAD)
                    .then(|| entry.operations.iter().find(|o| o.method == Method::GET))
                    .flatten()
            });
        let Some(operation) = operation else {
            return Found::MethodNotAllowed(entry.allow.clone());
        };
        let values = entry
            .names
            .iter()
            .zip(matched.params.iter())
            .map(|(name, (_, value))| (name.clone(), value.to_owned()))
            .collect();
        Found::Operation(operation, PathParams { values })
    }

    fn relative<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.base.is_empty() {
            return Some(path);
        }
        let rest = path.strip_prefix(self.base.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

/// The router's form of a template (`/orders/{id}` to `/orders/{p0}`) and the parameter names
/// in order.
pub(super) fn route(template: &str) -> Result<(String, Vec<String>), String> {
    if !template.starts_with('/') {
        return Err("must start with `/`".to_owned());
    }
    let mut route = String::with_capacity(template.len());
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        route.push_str(&rest[..open]);
        if rest[open..].starts_with('}') {
            return Err("has a `}` without its `{`".to_owned());
        }
        let Some(close) = rest[open..].find('}') else {
            return Err("has a `{` without its `}`".to_owned());
        };
        let name = &rest[open + 1..open + close];
        if name.is_empty() || name.contains(['{', '/']) {
            return Err("has a template parameter without a valid name".to_owned());
        }
        route.push_str(&format!("{{p{}}}", names.len()));
        names.push(name.to_owned());
        rest = &rest[open + close + 1..];
    }
    route.push_str(rest);
    Ok((route, names))
}
