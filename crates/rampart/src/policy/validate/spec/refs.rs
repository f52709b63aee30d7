//! `$ref` bundling: the contract and the files it references become one JSON document whose
//! references are all local pointers.
//!
//! Threat: a reference used to make the gateway fetch a URL (SSRF), read a file outside the
//! contract's directory (`../../etc/passwd`, a symlink pointing out), or load without end.
//! Invariants: nothing is ever fetched; a reference with a scheme or an authority (`http:`,
//! `file:`, `//host`) is an issue; a file reference is resolved against the referring file's
//! directory, canonicalized, and must stay inside the contract's directory; each file is loaded
//! once (so cycles between files terminate) and charged to the contract's byte budget; the
//! number of files and of references is bounded. A referenced file's content is copied under
//! `/x-rampart-bundle/N` and its references rewritten to point there; recursive schemas stay
//! `$ref`s, never inlined.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use super::issues::{Issues, SourceFile};
use super::load::{self, Budget};
use super::pointer;

/// Where referenced files sit in the bundled document.
pub(super) const BUNDLE_KEY: &str = "x-rampart-bundle";

/// How many files a contract may span.
const MAX_FILES: usize = 256;

/// Members whose children are named by the author, not keywords: a child called `default` or
/// `example` there is a name (a response, a property), not data to skip.
const NAME_MAPS: &[&str] = &[
    "paths",
    "webhooks",
    "schemas",
    "responses",
    "parameters",
    "requestBodies",
    "headers",
    "securitySchemes",
    "links",
    "callbacks",
    "pathItems",
    "content",
    "encoding",
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// Members that hold data, not contract: a `$ref` inside an example is text, not a reference.
fn is_data(key: &str) -> bool {
    matches!(key, "example" | "examples" | "enum" | "const" | "default") || key.starts_with("x-")
}

pub(super) struct Bundle {
    pub(super) doc: Value,
    pub(super) files: Vec<SourceFile>,
}

struct Bundler<'a> {
    root_dir: Option<PathBuf>,
    files: Vec<SourceFile>,
    by_path: HashMap<PathBuf, usize>,
    loaded: Vec<(usize, Value)>,
    budget: &'a mut Budget,
    refs_left: usize,
    refs_exhausted: bool,
    issues: &'a mut Issues,
}

/// Bundles `main` (the parsed text of the file at `origin`) with every file it references.
pub(super) fn bundle(
    main: Value,
    text: String,
    origin: &Path,
    budget: &mut Budget,
    max_refs: usize,
    issues: &mut Issues,
) -> Bundle {
    let canonical = std::fs::canonicalize(origin).ok();
    let root_dir = canonical
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .or_else(|| {
            let parent = origin.parent()?;
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            std::fs::canonicalize(parent).ok()
        });
    let mut bundler = Bundler {
        root_dir,
        files: vec![SourceFile {
            path: origin.to_path_buf(),
            text,
            prefix: String::new(),
        }],
        by_path: HashMap::new(),
        loaded: Vec::new(),
        budget,
        refs_left: max_refs,
        refs_exhausted: false,
        issues,
    };
    if let Some(path) = canonical {
        bundler.by_path.insert(path, 0);
    }
    let mut main = main;
    if main.get(BUNDLE_KEY).is_some() {
        bundler.issues.in_file(
            0,
            pointer::child("", BUNDLE_KEY),
            None,
            "is a name reserved by Rampart",
        );
    }
    bundler.walk(&mut main, 0, &mut Vec::new(), false);
    let mut bundled = Map::new();
    // Files found while walking a file are walked in turn; `loaded` grows as they are found.
    while let Some((index, mut value)) = bundler.loaded.pop() {
        bundler.walk(&mut value, index, &mut Vec::new(), false);
        bundled.insert(index.to_string(), value);
    }
    if !bundled.is_empty()
        && let Value::Object(members) = &mut main
    {
        members.insert(BUNDLE_KEY.to_owned(), Value::Object(bundled));
    }
    Bundle {
        doc: main,
        files: bundler.files,
    }
}

impl Bundler<'_> {
    fn walk(&mut self, value: &mut Value, file: usize, path: &mut Vec<String>, in_name_map: bool) {
        match value {
            Value::Object(members) => {
                if !in_name_map && let Some(Value::String(reference)) = members.get_mut("$ref") {
                    path.push("$ref".to_owned());
                    self.rewrite(reference, file, path);
                    path.pop();
                }
                for (key, child) in members.iter_mut() {
                    if key == "$ref" && !in_name_map {
                        continue;
                    }
                    if !in_name_map && is_data(key) {
                        continue;
                    }
                    let names = !in_name_map && NAME_MAPS.contains(&key.as_str());
                    path.push(key.clone());
                    self.walk(child, file, path, names);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(i.to_string());
                    self.walk(item, file, path, false);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn here(path: &[String]) -> String {
        path.iter()
            .fold(String::new(), |p, t| pointer::child(&p, t))
    }

    /// Rewrites one reference to a local pointer into the bundled document, or reports why it
    /// cannot be.
    fn rewrite(&mut self, reference: &mut String, file: usize, path: &[String]) {
        if self.refs_left == 0 {
            if !self.refs_exhausted {
                self.refs_exhausted = true;
                self.issues.in_file(
                    file,
                    Self::here(path),
                    None,
                    "the contract has more references than the limit",
                );
            }
            return;
        }
        self.refs_left -= 1;
        match self.target(reference, file) {
            Ok(rewritten) => *reference = rewritten,
            Err(message) => self.issues.in_file(file, Self::here(path), None, message),
        }
    }

    fn target(&mut self, reference: &str, file: usize) -> Result<String, String> {
        let (location, fragment) = match reference.split_once('#') {
            Some((location, fragment)) => (location, fragment),
            None => (reference, ""),
        };
        let Some(fragment) = pointer::from_fragment(fragment) else {
            return Err(
                "has a fragment that is not a JSON pointer (`#/...`); anchors are not \
                        supported"
                    .to_owned(),
            );
        };
        let index = if location.is_empty() {
            file
        } else {
            self.file_index(location, file)?
        };
        let prefix = self.files.get(index).map_or("", |f| f.prefix.as_str());
        Ok(pointer::reference("", &format!("{prefix}{fragment}")))
    }

    /// The file a relative reference names, loaded on first use.
    fn file_index(&mut self, location: &str, from: usize) -> Result<usize, String> {
        if has_scheme(location) || location.starts_with("//") {
            return Err(
                "refers to a remote document; Rampart never fetches one (copy it beside \
                        the contract and refer to it by a relative path)"
                    .to_owned(),
            );
        }
        let decoded = percent_decode_str(location)
            .decode_utf8()
            .map_err(|_| "has a path that is not UTF-8".to_owned())?;
        let relative = Path::new(decoded.as_ref());
        if relative.is_absolute() || decoded.starts_with('\\') {
            return Err("is an absolute path; a reference is relative to the contract".to_owned());
        }
        let Some(root) = self.root_dir.clone() else {
            return Err("refers to a file, but the contract's directory is unknown".to_owned());
        };
        // The main file's directory is the root; every other file's path is canonical already.
        let base = match self.files.get(from) {
            Some(f) if from != 0 => f
                .path
                .parent()
                .map_or_else(|| root.clone(), Path::to_path_buf),
            _ => root.clone(),
        };
        let joined = base.join(relative);
        let canonical = std::fs::canonicalize(&joined)
            .map_err(|e| format!("refers to a file that cannot be read: {}", e.kind()))?;
        if !canonical.starts_with(&root) {
            return Err("refers to a file outside the contract's directory".to_owned());
        }
        if let Some(&index) = self.by_path.get(&canonical) {
            return Ok(index);
        }
        if self.files.len() >= MAX_FILES {
            return Err("makes the contract span more files than the limit".to_owned());
        }
        let text = load::read(&canonical, self.budget)
            .map_err(|e| format!("refers to a file that {}", e.message))?;
        let index = self.files.len();
        let value = match load::parse(&text, &canonical) {
            Ok(value) => Some(value),
            Err(e) => {
                self.issues.in_file(index, "", e.line, e.message);
                None
            }
        };
        self.files.push(SourceFile {
            path: canonical.clone(),
            text,
            prefix: format!("/{BUNDLE_KEY}/{index}"),
        });
        self.by_path.insert(canonical, index);
        if let Some(value) = value {
            self.loaded.push((index, value));
        }
        Ok(index)
    }
}

/// `scheme:` per RFC 3986 section 3.1 (a Windows drive `C:` counts, and is refused too).
fn has_scheme(location: &str) -> bool {
    let Some((scheme, _)) = location.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}
