//! Request bodies: closed objects, read-only members, composition, forms, multipart, sanitize
//! marks; responses.

use serde_json::json;

use super::super::{MediaKind, MediaSpec, media_kind};
use super::*;
use crate::policy::sanitize::field_path::FieldPath;

fn media<'a>(spec: &'a Spec, path: &str, content_type: &str) -> &'a MediaSpec {
    let (op, _) = operation(spec, &Method::POST, path);
    op.request_body()
        .and_then(|b| b.media(content_type))
        .unwrap()
}

fn check(path: &str, body: serde_json::Value) -> Vec<(String, String)> {
    let spec = orders();
    pairs(&media(&spec, path, "application/json").check(&body))
}

#[test]
fn mass_assignment_of_an_undeclared_member_is_refused_at_its_pointer() {
    assert_eq!(
        check("/v1/orders", json!({"item": "pen", "quantity": 1})),
        vec![]
    );
    assert_eq!(
        check(
            "/v1/orders",
            json!({"item": "pen", "quantity": 1, "isAdmin": true})
        ),
        one("/body/isAdmin", "is not declared")
    );
    let nested =
        json!({"item": "pen", "quantity": 1, "comments": [{"text": "hi", "approved": true}]});
    assert_eq!(
        check("/v1/orders", nested),
        one("/body/comments/0/approved", "is not declared")
    );
}

#[test]
fn mass_assignment_inside_a_sibling_file_schema_is_refused() {
    let body = json!({"item": "pen", "quantity": 1, "price": {"amount": 1, "currency": "EUR", "discount": 100}});
    assert_eq!(
        check("/v1/orders", body),
        one("/body/price/discount", "is not declared")
    );
}

#[test]
fn an_open_contract_is_left_open_when_strictness_is_off() {
    let options = CompileOptions {
        strict_properties: false,
        ..CompileOptions::default()
    };
    let spec = Spec::compile_file(&fixture("orders-3.0.yaml"), &options).unwrap();
    let body = json!({"item": "pen", "quantity": 1, "isAdmin": true});
    assert_eq!(
        pairs(&media(&spec, "/v1/orders", "application/json").check(&body)),
        vec![]
    );
}

#[test]
fn a_read_only_member_sent_by_the_client_is_refused_and_not_required() {
    assert_eq!(
        check("/v1/orders", json!({"id": 7, "item": "pen", "quantity": 1})),
        one("/body/id", "is read-only")
    );
    // `User.id` is required and read-only: a request without it is fine.
    assert_eq!(
        check("/v1/users", json!({"email": "a@example.com"})),
        vec![]
    );
}

#[test]
fn all_of_composition_accepts_every_branch_and_refuses_extras() {
    assert_eq!(
        check("/v1/pets", json!({"name": "Rex", "tag": "dog"})),
        vec![]
    );
    assert_eq!(
        check("/v1/pets", json!({"tag": "dog"})),
        one("/body/name", "is required")
    );
    assert_eq!(
        check("/v1/pets", json!({"name": "Rex", "owner": "me"})),
        one("/body/owner", "is not declared")
    );
}

#[test]
fn a_recursive_schema_compiles_and_validates_at_depth() {
    let deep = json!({"name": "a", "children": [{"name": "b", "children": [{"name": "c", "children": []}]}]});
    assert_eq!(check("/v1/nodes", deep), vec![]);
    let bad = json!({"name": "a", "children": [{"name": "b", "children": [{"name": 3}]}]});
    assert_eq!(
        check("/v1/nodes", bad),
        one("/body/children/0/children/0/name", "must be a string")
    );
    let extra = json!({"children": [{"children": [{"sneaky": 1}]}]});
    assert_eq!(
        check("/v1/nodes", extra),
        one("/body/children/0/children/0/sneaky", "is not declared")
    );
}

#[test]
fn nullable_in_3_0_allows_null_and_nothing_else() {
    assert_eq!(
        check(
            "/v1/users",
            json!({"email": "a@example.com", "nickname": null})
        ),
        vec![]
    );
    assert_eq!(
        check(
            "/v1/users",
            json!({"email": "a@example.com", "nickname": 5})
        ),
        one("/body/nickname", "must be a string or null")
    );
}

#[test]
fn openapi_3_1_types_and_numeric_exclusive_bounds_apply() {
    let spec = compile("widgets-3.1.json");
    let (op, _) = operation(&spec, &Method::PUT, "/api/widgets/x");
    let json = op
        .request_body()
        .and_then(|b| b.media("application/json; charset=utf-8"))
        .unwrap();
    assert_eq!(
        pairs(&json.check(&json!({"name": "w", "color": null, "weight": 1.5}))),
        vec![]
    );
    assert_eq!(
        pairs(&json.check(&json!({"name": "w", "weight": 0}))),
        one("/body/weight", "must be greater than 0")
    );
    assert!(op.request_body().unwrap().required());
}

#[test]
fn exclusive_minimum_in_3_0_is_converted() {
    assert_eq!(
        check("/v1/users", json!({"email": "a@example.com", "age": 0})),
        one("/body/age", "must be greater than 0")
    );
}

#[test]
fn no_reason_repeats_the_offending_value() {
    let marker = "<script>alert(31337)</script>";
    let body = json!({"item": marker, "quantity": marker, marker: marker, "price": {"amount": marker, "currency": marker}});
    let spec = orders();
    let violations = media(&spec, "/v1/orders", "application/json").check(&body);
    assert!(violations.len() >= 4, "{violations:?}");
    for v in &violations {
        assert!(!v.reason.contains("31337"), "{v:?}");
    }
    let query = head(
        &spec,
        Method::GET,
        "/v1/orders?limit=31337x&status=31337",
        &[REQUEST_ID],
    );
    assert_eq!(query.len(), 2);
    assert!(
        query.iter().all(|(_, reason)| !reason.contains("31337")),
        "{query:?}"
    );
}

#[test]
fn violations_are_capped() {
    let mut body = serde_json::Map::new();
    for i in 0..200 {
        body.insert(format!("extra{i}"), json!(i));
    }
    let spec = orders();
    let violations =
        media(&spec, "/v1/orders", "application/json").check(&serde_json::Value::Object(body));
    assert_eq!(violations.len(), super::super::MAX_VIOLATIONS);
}

#[test]
fn media_types_match_on_their_essence() {
    let spec = orders();
    let (op, _) = operation(&spec, &Method::POST, "/v1/orders");
    let body = op.request_body().unwrap();
    assert!(body.required());
    assert_eq!(
        body.media("Application/JSON ; charset=UTF-8")
            .map(MediaSpec::kind),
        Some(MediaKind::Json)
    );
    assert_eq!(
        body.media("application/x-www-form-urlencoded")
            .map(MediaSpec::kind),
        Some(MediaKind::Form)
    );
    assert_eq!(
        body.media("multipart/form-data; boundary=x")
            .map(MediaSpec::kind),
        Some(MediaKind::Multipart)
    );
    assert!(body.media("text/plain").is_none());
    assert!(body.media("application/xml").is_none());
    assert_eq!(media_kind("application/merge-patch+json"), MediaKind::Json);
    assert_eq!(media_kind("application/atom+xml"), MediaKind::Xml);
}

#[test]
fn form_fields_are_typed_like_query_parameters() {
    let spec = orders();
    let form = media(&spec, "/v1/orders", "application/x-www-form-urlencoded");
    let fields = [
        ("quantity".to_owned(), "3".to_owned()),
        ("labels".to_owned(), "a".to_owned()),
        ("labels".to_owned(), "b".to_owned()),
    ];
    let value = form.coerce_form(&fields).unwrap();
    assert_eq!(value, json!({"quantity": 3, "labels": ["a", "b"]}));
    assert!(form.check(&value).is_empty());
    let injected = form
        .coerce_form(&[("quantity".to_owned(), "3 OR 1=1".to_owned())])
        .unwrap();
    assert_eq!(
        pairs(&form.check(&injected)),
        one("/body/quantity", "must be an integer")
    );
}

#[test]
fn a_repeated_form_field_that_is_not_an_array_is_refused() {
    let spec = orders();
    let form = media(&spec, "/v1/orders", "application/x-www-form-urlencoded");
    let polluted = [
        ("note".to_owned(), "a".to_owned()),
        ("note".to_owned(), "b".to_owned()),
    ];
    assert_eq!(
        pairs(&form.coerce_form(&polluted).err().unwrap_or_default()),
        one("/body/note", "must appear once")
    );
}

#[test]
fn multipart_parts_say_which_are_files() {
    let spec = orders();
    let multipart = media(&spec, "/v1/orders", "multipart/form-data");
    let fields = multipart.multipart_fields();
    assert_eq!(fields.len(), 2);
    let file = fields.iter().find(|f| f.name == "file").unwrap();
    assert!(file.file && file.required && !file.repeated);
    assert_eq!(file.content_type.as_deref(), Some("image/png"));
    let caption = fields.iter().find(|f| f.name == "caption").unwrap();
    assert!(!caption.file && !caption.required);
}

#[test]
fn sanitize_marks_are_collected_through_references_and_arrays() {
    let spec = orders();
    let fields: Vec<String> = media(&spec, "/v1/orders", "application/json")
        .sanitize_fields()
        .iter()
        .map(FieldPath::to_string)
        .collect();
    assert_eq!(
        fields,
        vec!["/comments/*/text".to_owned(), "/item".to_owned()]
    );
}

#[test]
fn responses_are_found_by_code_then_range_then_default() {
    let spec = orders();
    let (op, _) = operation(&spec, &Method::GET, "/v1/orders");
    assert!(op.response(200, "application/json").is_some());
    assert!(op.response(404, "application/problem+json").is_some());
    assert!(op.response(404, "application/json").is_none());
    assert!(op.response_declared(503));
    assert!(op.response(503, "application/json").is_none());
}

#[test]
fn responses_are_validated_as_declared_without_strictness() {
    let spec = orders();
    let (op, _) = operation(&spec, &Method::POST, "/v1/orders");
    let created = op.response(201, "application/json").unwrap();
    // Read-only members and undeclared members are fine in a response.
    assert_eq!(
        pairs(&created.check(&json!({"id": 1, "item": "pen", "quantity": 2, "internal": true}))),
        vec![]
    );
    assert_eq!(
        pairs(&created.check(&json!({"id": 1, "item": "pen"}))),
        one("/body/quantity", "is required")
    );
    let (schema, root) = created.schema();
    let target = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix('#'))
        .unwrap();
    assert!(
        root.pointer(target)
            .and_then(|s| s.get("properties"))
            .is_some()
    );
}

#[test]
fn write_only_members_are_not_required_in_responses() {
    let text = r#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"get": {"responses": {"200": {"description": "ok",
      "content": {"application/json": {"schema": {"type": "object", "required": ["password"], "properties": {"password": {"type": "string", "writeOnly": true}}}}}}}}}}}"#;
    let spec = compile_text(text, &CompileOptions::default()).unwrap();
    let (op, _) = operation(&spec, &Method::GET, "/a");
    assert_eq!(
        pairs(
            &op.response(200, "application/json")
                .unwrap()
                .check(&json!({}))
        ),
        vec![]
    );
}

#[test]
fn a_read_only_sibling_of_a_3_0_reference_is_honoured() {
    let text = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema:\n              type: object\n              required: [id]\n              properties:\n                id: {$ref: '#/components/schemas/Id', readOnly: true}\n      responses: {'200': {description: ok}}\ncomponents:\n  schemas:\n    Id: {type: integer}\n";
    let spec = compile_text(text, &CompileOptions::default()).unwrap();
    let media = media(&spec, "/a", "application/json");
    assert_eq!(pairs(&media.check(&json!({}))), vec![]);
    assert_eq!(
        pairs(&media.check(&json!({"id": 1}))),
        one("/body/id", "is read-only")
    );
}

#[test]
fn a_response_reference_resolves_against_the_bundled_document() {
    let spec = orders();
    let (op, _) = operation(&spec, &Method::GET, "/v1/orders");
    let list = op.response(200, "application/json").unwrap();
    let (schema, _) = list.schema();
    let item = schema["items"]["$ref"].as_str().unwrap();
    let order = list.resolve_ref(item).unwrap();
    let price = order["properties"]["price"]["$ref"].as_str().unwrap();
    assert!(
        list.resolve_ref(price)
            .and_then(|m| m.get("properties"))
            .is_some(),
        "{price}"
    );
}

/// A contract of one operation, `POST /comments`, whose body is the `Comment` of `schemas`
/// (YAML under `components.schemas`).
fn comments_contract(schemas: &str) -> Spec {
    let text = format!(
        "openapi: 3.1.0
info: {{ title: t, version: '1' }}
paths:
  /comments:
    post:
      requestBody:
        content:
          application/json:
            schema: {{ $ref: '#/components/schemas/Comment' }}
      responses: {{ '200': {{ description: ok }} }}
components:
  schemas:
{schemas}"
    );
    Spec::compile_str(
        &text,
        std::path::Path::new("/nonexistent/c.yaml"),
        &CompileOptions::default(),
    )
    .unwrap()
}

/// Sanitizes the marked `fields` of `body` with the default allow-list.
fn sanitize_marked(
    fields: &[FieldPath],
    body: &mut serde_json::Value,
) -> crate::policy::sanitize::apply::Applied {
    let marked = fields
        .iter()
        .map(|f| (f, crate::policy::sanitize::config::OnUnsafe::Sanitize));
    let sanitizer = crate::policy::sanitize::html::HtmlSanitizer::default();
    crate::policy::sanitize::apply::apply(body, marked, &sanitizer).unwrap()
}

#[test]
fn a_sanitize_mark_in_a_recursive_schema_applies_at_every_depth() {
    let schemas = r##"
    Comment:
      type: object
      properties:
        text: { type: string, maxLength: 200, x-rampart-sanitize: html }
        replies: { type: array, maxItems: 10, items: { $ref: "#/components/schemas/Comment" } }
"##;
    let spec = comments_contract(schemas);
    let fields = media(&spec, "/comments", "application/json").sanitize_fields();
    assert!(!fields.is_empty());
    let mut reply = json!({"text": "<script>x</script>deep"});
    for _ in 0..8 {
        reply = json!({"text": "<i>ok</i>", "replies": [reply]});
    }
    let applied = sanitize_marked(fields, &mut reply);
    assert_eq!(applied.removed, 1);
    let text = reply.to_string();
    assert!(!text.contains("script"), "{text}");
    assert!(
        text.contains("deep") && text.contains("<i>ok</i>"),
        "{text}"
    );
}

#[test]
fn a_mark_reached_through_one_recursion_inside_another_is_still_sanitized() {
    let schemas = r##"
    Comment:
      type: object
      properties:
        text: { type: string, maxLength: 200, x-rampart-sanitize: html }
        author: { $ref: "#/components/schemas/User" }
    User:
      type: object
      properties:
        friends: { type: array, maxItems: 10, items: { $ref: "#/components/schemas/User" } }
        comments: { type: array, maxItems: 10, items: { $ref: "#/components/schemas/Comment" } }
"##;
    let spec = comments_contract(schemas);
    let fields = media(&spec, "/comments", "application/json").sanitize_fields();
    let xss = "<img src=x onerror=alert(1)>hi";
    let mut bodies = vec![
        json!({"author": {"friends": [{"comments": [{"text": xss}]}]}}),
        json!({"author": {"friends": [{"friends": [{"comments": [{"author": {"comments": [{"text": xss}]}}]}]}]}}),
    ];
    // Deep in a single recursion: twenty friends of friends.
    let mut user = json!({"comments": [{"text": xss}]});
    for _ in 0..20 {
        user = json!({"friends": [user]});
    }
    bodies.push(json!({"author": user}));
    for mut body in bodies {
        sanitize_marked(fields, &mut body);
        assert!(!body.to_string().contains("onerror"), "{body}");
    }
}
