//! Matching a request to its operation: base path, literal before template, methods.

use super::*;

#[test]
fn a_literal_segment_wins_over_a_template() {
    let spec = orders();
    assert_eq!(
        operation(&spec, &Method::GET, "/v1/orders/mine").0.id(),
        "myOrders"
    );
    let (op, params) = operation(&spec, &Method::GET, "/v1/orders/42");
    assert_eq!(op.id(), "getOrder");
    assert_eq!(params.get("id"), Some("42"));
}

#[test]
fn an_undeclared_method_is_refused_with_the_allow_list() {
    let spec = orders();
    match spec.find(&Method::PATCH, "/v1/orders/42") {
        Found::MethodNotAllowed(allow) => assert_eq!(allow, "GET, HEAD, DELETE"),
        other => panic!("{other:?}"),
    }
    match spec.find(&Method::DELETE, "/v1/orders") {
        Found::MethodNotAllowed(allow) => assert_eq!(allow, "GET, HEAD, POST"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn head_is_answered_by_the_declared_get() {
    let spec = orders();
    assert_eq!(
        operation(&spec, &Method::HEAD, "/v1/orders/7").0.id(),
        "getOrder"
    );
}

#[test]
fn the_base_path_comes_from_the_first_server_and_nothing_outside_it_matches() {
    let spec = orders();
    assert!(matches!(
        spec.find(&Method::GET, "/orders"),
        Found::NotFound
    ));
    assert!(matches!(
        spec.find(&Method::GET, "/v1orders"),
        Found::NotFound
    ));
    assert!(matches!(
        spec.find(&Method::GET, "/v2/orders"),
        Found::NotFound
    ));
    assert!(matches!(
        spec.find(&Method::GET, "/v1/undeclared"),
        Found::NotFound
    ));
    assert!(matches!(
        spec.find(&Method::GET, "/v1/orders/"),
        Found::NotFound
    ));
    assert!(matches!(
        spec.find(&Method::GET, "/v1/orders/1/extra"),
        Found::NotFound
    ));
}

#[test]
fn the_configured_base_path_overrides_the_servers() {
    let options = CompileOptions {
        base_path: Some("/gateway/".into()),
        ..CompileOptions::default()
    };
    let spec = Spec::compile_file(&fixture("orders-3.0.yaml"), &options).unwrap();
    assert_eq!(
        operation(&spec, &Method::GET, "/gateway/orders").0.id(),
        "listOrders"
    );
    assert!(matches!(
        spec.find(&Method::GET, "/v1/orders"),
        Found::NotFound
    ));
}

#[test]
fn a_relative_server_url_is_a_base_path_and_no_server_means_none() {
    assert_eq!(compile("widgets-3.1.json").base_path(), "/api");
    let spec = compile_text("openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      responses: {'200': {description: ok}}\n", &CompileOptions::default()).unwrap();
    assert_eq!(spec.base_path(), "");
    assert_eq!(operation(&spec, &Method::GET, "/a").0.id(), "GET /a");
}

#[test]
fn path_parameter_values_are_percent_decoded_before_they_are_checked() {
    let spec = compile("widgets-3.1.json");
    let uuid_encoded = "/api/widgets/0b7c6a3e%2D5d1f-4f7e-9a55-0c2b1f3d4e5a";
    let (parts, ()) = Request::builder()
        .method(Method::PUT)
        .uri(uuid_encoded)
        .body(())
        .unwrap()
        .into_parts();
    let (op, params) = operation(&spec, &Method::PUT, uuid_encoded);
    assert!(op.check_head(&parts, &params).is_empty());
    assert_eq!(
        head(&spec, Method::PUT, "/api/widgets/%27%20OR%201%3D1", &[]),
        one("/path/widgetId", "is not a valid uuid")
    );
}

#[test]
fn operation_ids_and_security_are_exposed() {
    let spec = orders();
    let (delete, _) = operation(&spec, &Method::DELETE, "/v1/orders/1");
    assert_eq!(delete.id(), "deleteOrder");
    assert!(delete.security_declared());
    assert_eq!(delete.template(), "/orders/{id}");
    let open = compile("widgets-3.1.json");
    let (put, _) = operation(&open, &Method::PUT, "/api/widgets/x");
    assert_eq!(put.id(), "PUT /widgets/{widgetId}");
    assert!(!put.security_declared());
}

#[test]
fn a_template_parameter_without_a_declaration_is_an_issue() {
    let issues = issues_of(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a/{id}:\n    get:\n      responses: {'200': {description: ok}}\n",
    );
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!(
        (issues[0].pointer.as_str(), issues[0].line),
        ("/paths/~1a~1{id}", Some(4))
    );
}

#[test]
fn duplicate_operation_ids_are_an_issue() {
    let text = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get: {operationId: same}\n  /b:\n    get: {operationId: same}\n";
    let issues = issues_of(text);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!(issues[0].line, Some(7));
}

#[test]
fn a_literal_prefix_of_a_longer_path_falls_back_to_the_template() {
    let text = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /orders/mine/items:\n    get: {operationId: mine}\n  /orders/{id}:\n    get:\n      operationId: one\n      parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n";
    let spec = compile_text(text, &CompileOptions::default()).unwrap();
    assert_eq!(
        operation(&spec, &Method::GET, "/orders/mine/items").0.id(),
        "mine"
    );
    assert_eq!(operation(&spec, &Method::GET, "/orders/mine").0.id(), "one");
}
