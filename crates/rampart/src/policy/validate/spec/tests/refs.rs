//! References across files: cycles, symlinks, issues placed in the file that has them.

use std::fs;

use super::*;

const HEAD: &str = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&path, text).unwrap();
    path
}

fn body_post(schema_ref: &str) -> String {
    format!(
        "{HEAD}paths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema:\n              $ref: '{schema_ref}'\n"
    )
}

#[test]
fn a_cycle_between_two_files_compiles_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        "Folder:\n  type: object\n  properties:\n    name: {type: string}\n    files:\n      type: array\n      items: {$ref: 'b.yaml#/File'}\n",
    );
    write(
        dir.path(),
        "b.yaml",
        "File:\n  type: object\n  properties:\n    size: {type: integer}\n    parent: {$ref: 'a.yaml#/Folder'}\n",
    );
    let main = write(dir.path(), "main.yaml", &body_post("a.yaml#/Folder"));
    let spec = Spec::compile_file(&main, &CompileOptions::default()).unwrap();
    let (op, _) = operation(&spec, &Method::POST, "/a");
    let media = op
        .request_body()
        .and_then(|b| b.media("application/json"))
        .unwrap();
    let good =
        serde_json::json!({"name": "root", "files": [{"size": 1, "parent": {"name": "up"}}]});
    assert_eq!(pairs(&media.check(&good)), vec![]);
    let bad = serde_json::json!({"files": [{"size": "big", "parent": {"owner": "x"}}]});
    assert_eq!(
        pairs(&media.check(&bad)),
        vec![
            (
                "/body/files/0/parent/owner".to_owned(),
                "is not declared".to_owned()
            ),
            (
                "/body/files/0/size".to_owned(),
                "must be an integer".to_owned()
            ),
        ]
    );
}

#[test]
fn a_file_in_a_subdirectory_resolves_its_own_relative_references() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "schemas/pet.yaml",
        "type: object\nproperties:\n  kind: {$ref: 'kinds.yaml#/Kind'}\n",
    );
    write(
        dir.path(),
        "schemas/kinds.yaml",
        "Kind: {type: string, enum: [cat, dog]}\n",
    );
    let main = write(dir.path(), "main.yaml", &body_post("schemas/pet.yaml"));
    let spec = Spec::compile_file(&main, &CompileOptions::default()).unwrap();
    let (op, _) = operation(&spec, &Method::POST, "/a");
    let media = op
        .request_body()
        .and_then(|b| b.media("application/json"))
        .unwrap();
    assert_eq!(
        pairs(&media.check(&serde_json::json!({"kind": "cow"}))),
        one("/body/kind", "must be one of the allowed values")
    );
}

#[test]
fn a_symlink_pointing_out_of_the_directory_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let secret = write(outside.path(), "secret.yaml", "Secret: {type: string}\n");
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&secret, dir.path().join("link.yaml")).unwrap();
    let main = write(dir.path(), "main.yaml", &body_post("link.yaml#/Secret"));
    let issues = Spec::compile_file(&main, &CompileOptions::default())
        .err()
        .unwrap_or_default();
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert!(
        issues[0]
            .message
            .contains("outside the contract's directory")
    );
}

#[test]
fn an_issue_in_a_referenced_file_names_that_file_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let shared = write(
        dir.path(),
        "shared.yaml",
        "Thing:\n  type: object\n  properties:\n    remote:\n      $ref: 'https://example.com/x.json'\n    size:\n      type: integr\n",
    );
    let main = write(dir.path(), "main.yaml", &body_post("shared.yaml#/Thing"));
    let issues = Spec::compile_file(&main, &CompileOptions::default())
        .err()
        .unwrap_or_default();
    let expected_file = fs::canonicalize(&shared).unwrap();
    let placed: Vec<(&Path, &str, Option<usize>)> = issues
        .iter()
        .map(|i| (i.file.as_path(), i.pointer.as_str(), i.line))
        .collect();
    assert!(
        placed.contains(&(
            expected_file.as_path(),
            "/Thing/properties/remote/$ref",
            Some(5)
        )),
        "{issues:#?}"
    );
    assert!(
        placed.iter().any(|(f, p, line)| *f == expected_file
            && p.starts_with("/Thing/properties/size")
            && *line == Some(7)),
        "{issues:#?}"
    );
}

#[test]
fn a_referenced_file_that_does_not_parse_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "broken.yaml", "Thing:\n  type: [object\n");
    let main = write(dir.path(), "main.yaml", &body_post("broken.yaml#/Thing"));
    let issues = Spec::compile_file(&main, &CompileOptions::default())
        .err()
        .unwrap_or_default();
    assert!(
        issues
            .iter()
            .any(|i| i.file.ends_with("broken.yaml") && i.line.is_some()),
        "{issues:#?}"
    );
}

#[test]
fn a_missing_referenced_file_is_an_issue_at_the_reference() {
    let issues = issues_of(&body_post("nowhere.yaml#/X"));
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert!(issues[0].message.contains("cannot be read"));
    assert_eq!(issues[0].line, Some(10));
}

#[test]
fn an_anchor_fragment_is_refused() {
    let issues = issues_of(&body_post("#thing"));
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert!(issues[0].message.contains("JSON pointer"));
}

#[test]
fn an_invalid_pattern_is_a_compile_issue_at_its_schema() {
    let text = format!(
        "{HEAD}paths:\n  /a:\n    get:\n      parameters:\n        - name: q\n          in: query\n          schema: {{type: string, pattern: '(unclosed'}}\n"
    );
    let issues = issues_of(&text);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!(issues[0].pointer, "/paths/~1a/get/parameters/0/schema");
    assert_eq!(issues[0].line, Some(9));
}

#[test]
fn a_compiled_spec_is_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Spec>();
}
