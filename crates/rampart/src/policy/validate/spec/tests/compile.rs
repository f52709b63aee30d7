//! Loading: versions, formats, references and the bounds on a hostile contract.

use std::time::Instant;

use super::*;

#[test]
fn an_openapi_3_0_yaml_contract_with_a_sibling_file_compiles() {
    let spec = orders();
    assert_eq!(spec.operation_count(), 9);
    assert_eq!(spec.base_path(), "/v1");
}

#[test]
fn an_openapi_3_1_json_contract_compiles() {
    let spec = compile("widgets-3.1.json");
    assert_eq!(spec.operation_count(), 1);
    assert_eq!(spec.base_path(), "/api");
}

#[test]
fn a_schema_in_a_sibling_file_is_enforced_with_its_own_references() {
    let spec = orders();
    let (op, _) = operation(&spec, &Method::POST, "/v1/orders");
    let media = op.request_body().and_then(|b| b.media("application/json"));
    let media = media.unwrap();
    let bad_currency = serde_json::json!({"item": "pen", "quantity": 1, "price": {"amount": 2, "currency": "euro"}});
    assert_eq!(
        pairs(&media.check(&bad_currency)),
        one("/body/price/currency", "must match the allowed pattern")
    );
    let good = serde_json::json!({"item": "pen", "quantity": 1, "price": {"amount": 2, "currency": "EUR"}});
    assert!(media.check(&good).is_empty());
}

#[test]
fn a_remote_reference_is_refused_with_its_pointer_and_line_and_never_fetched() {
    let issues = Spec::compile_file(&fixture("remote-ref.yaml"), &CompileOptions::default())
        .err()
        .unwrap_or_default();
    assert_eq!(issues.len(), 1, "{issues:#?}");
    let issue = &issues[0];
    assert_eq!(
        issue.pointer,
        "/paths/~1things/post/requestBody/content/application~1json/schema/$ref"
    );
    assert_eq!(issue.line, Some(12));
    assert!(issue.message.contains("remote"), "{}", issue.message);
    assert!(issue.file.ends_with("remote-ref.yaml"));
}

#[test]
fn every_scheme_and_network_path_reference_is_remote() {
    for reference in [
        "http://a/b.json",
        "file:///etc/passwd",
        "//evil.example/x.yaml",
        "ftp:x",
        "C:/spec.yaml",
    ] {
        let text = format!(
            "openapi: 3.1.0\ninfo: {{title: t, version: '1'}}\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema:\n              $ref: '{reference}'\n"
        );
        let issues = issues_of(&text);
        assert_eq!(issues.len(), 1, "{reference}: {issues:#?}");
        assert!(
            issues[0].message.contains("remote"),
            "{reference}: {}",
            issues[0].message
        );
        assert_eq!(issues[0].line, Some(10));
    }
}

#[test]
fn a_reference_that_climbs_out_of_the_contract_directory_is_refused() {
    let issues = Spec::compile_file(
        &fixture("escape/escape-ref.yaml"),
        &CompileOptions::default(),
    )
    .err()
    .unwrap_or_default();
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert!(
        issues[0]
            .message
            .contains("outside the contract's directory"),
        "{}",
        issues[0].message
    );
    assert_eq!(issues[0].line, Some(12));
}

#[test]
fn an_absolute_file_reference_is_refused() {
    let text = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      parameters:\n        - $ref: '/etc/passwd#/x'\n      responses: {'200': {description: ok}}\n";
    let issues = issues_of(text);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert!(issues[0].message.contains("absolute"));
    assert_eq!(issues[0].pointer, "/paths/~1a/get/parameters/0/$ref");
}

#[test]
fn a_dangling_local_reference_is_an_issue_with_its_line() {
    let text = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema:\n              $ref: '#/components/schemas/Missing'\n";
    let issues = issues_of(text);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!(issues[0].message, "points to nothing in the contract");
    assert_eq!(issues[0].line, Some(10));
}

#[test]
fn every_issue_is_reported_not_only_the_first() {
    let text = r#"{
  "openapi": "3.1.0",
  "info": {"title": "t", "version": "1"},
  "paths": {
    "/a/{id}": {
      "get": {
        "parameters": [{"name": "q", "in": "query", "style": "matrix", "schema": {"type": "string"}}],
        "responses": {"20O": {"description": "typo"}}
      }
    },
    "/b": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": "integr"}}}}}}
  }
}"#;
    let issues = issues_of(text);
    let at: Vec<(&str, Option<usize>)> = issues
        .iter()
        .map(|i| (i.pointer.as_str(), i.line))
        .collect();
    assert!(
        at.contains(&("/paths/~1a~1{id}/get/parameters/0/style", Some(7))),
        "{issues:#?}"
    );
    assert!(
        at.contains(&("/paths/~1a~1{id}/get/responses/20O", Some(8))),
        "{issues:#?}"
    );
    assert!(
        at.contains(&("/paths/~1a~1{id}", Some(5))),
        "template parameter undeclared: {issues:#?}"
    );
    assert!(
        at.iter()
            .any(|(p, line)| p.starts_with("/paths/~1b/post/requestBody") && *line == Some(11)),
        "{issues:#?}"
    );
}

#[test]
fn a_syntax_error_names_its_line() {
    let issues = issues_of("openapi: 3.0.3\ninfo: {title: t\npaths: {}\n");
    assert_eq!(issues.len(), 1);
    assert!(issues[0].line.is_some_and(|l| l >= 2), "{issues:#?}");
    let json = Spec::compile_str(
        "{\n\"openapi\": \"3.1.0\",\n,}",
        &fixture("x.json"),
        &CompileOptions::default(),
    )
    .err()
    .unwrap_or_default();
    assert_eq!(json[0].line, Some(3));
}

#[test]
fn swagger_2_and_unknown_versions_are_refused() {
    assert!(
        issues_of("swagger: '2.0'\ninfo: {title: t, version: '1'}\npaths: {}\n")[0]
            .message
            .contains("Swagger 2.0")
    );
    let issues = issues_of("openapi: 4.0.0\ninfo: {title: t, version: '1'}\npaths: {}\n");
    assert_eq!(
        (issues[0].pointer.as_str(), issues[0].line),
        ("/openapi", Some(1))
    );
}

#[test]
fn a_contract_larger_than_the_byte_budget_is_refused() {
    let options = CompileOptions {
        max_spec_bytes: 64,
        ..CompileOptions::default()
    };
    let text =
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n# padding padding padding\n";
    let issues = compile_text(text, &options).err().unwrap_or_default();
    assert!(issues[0].message.contains("size limit"), "{issues:#?}");
}

#[test]
fn a_billion_laughs_yaml_is_refused_by_the_alias_limit() {
    let mut text = String::from(
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..10 {
        let prev = i - 1;
        text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
    }
    let issues = issues_of(&text);
    assert_eq!(issues.len(), 1, "{issues:#?}");
}

#[test]
fn a_contract_with_2000_operations_compiles_quickly() {
    let mut paths = serde_json::Map::new();
    for i in 0..1000 {
        paths.insert(
            format!("/resource{i}/{{id}}"),
            serde_json::json!({
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "get": {"parameters": [{"$ref": "#/components/parameters/Limit"}],
                        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}}},
                "put": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}},
                        "responses": {"204": {"description": "ok"}}}
            }),
        );
    }
    let doc = serde_json::json!({
        "openapi": "3.1.0", "info": {"title": "big", "version": "1"}, "paths": paths,
        "components": {
            "parameters": {"Limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}}},
            "schemas": {"Item": {"type": "object", "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}}}
        }
    });
    let started = Instant::now();
    let spec = Spec::compile_str(
        &doc.to_string(),
        &fixture("big.json"),
        &CompileOptions::default(),
    );
    let elapsed = started.elapsed();
    println!("2000 operations compiled in {elapsed:?}");
    assert_eq!(spec.map(|s| s.operation_count()).unwrap_or_default(), 2000);
}
