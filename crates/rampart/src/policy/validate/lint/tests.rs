use serde_json::json;

use super::*;

/// A small API that follows every rule: the baseline each test breaks in one place.
fn clean_spec() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Shop", "version": "1" },
        "security": [{ "bearer": [] }],
        "paths": {
            "/orders/{id}": {
                "parameters": [{
                    "name": "id", "in": "path", "required": true,
                    "schema": { "type": "string", "format": "uuid" }
                }],
                "get": {
                    "parameters": [{
                        "name": "expand", "in": "query",
                        "schema": { "type": "string", "enum": ["lines", "customer"] }
                    }],
                    "responses": {
                        "200": {
                            "description": "the order",
                            "headers": {
                                "x-rate-remaining": {
                                    "schema": { "type": "integer", "minimum": 0, "maximum": 10000 }
                                }
                            },
                            "content": { "application/json": {
                                "schema": { "$ref": "#/components/schemas/Order" }
                            }}
                        }
                    }
                },
                "put": {
                    "security": [{ "bearer": ["orders:write"] }],
                    "requestBody": { "$ref": "#/components/requestBodies/OrderBody" },
                    "responses": { "204": { "description": "updated" } }
                }
            }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "requestBodies": {
                "OrderBody": { "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/Order" }
                }}}
            },
            "schemas": {
                "Order": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "id": { "type": "string", "format": "uuid" },
                        "placed": { "type": "string", "format": "date-time" },
                        "note": { "type": ["string", "null"], "maxLength": 500 },
                        "lines": {
                            "type": "array", "maxItems": 100,
                            "items": { "$ref": "#/components/schemas/Line" }
                        },
                        "attachment": { "type": "string", "format": "binary" },
                        "status": { "const": "open" }
                    }
                },
                "Line": {
                    "type": "object",
                    "properties": {
                        "sku": { "type": "string", "maxLength": 32, "pattern": "^[A-Z0-9-]+$" },
                        "qty": { "type": "integer", "minimum": 1, "maximum": 999 },
                        "parent": { "$ref": "#/components/schemas/Line" }
                    }
                }
            }
        }
    })
}

fn rules_at(doc: &Value) -> Vec<(&'static str, String)> {
    lint(doc).into_iter().map(|l| (l.rule, l.pointer)).collect()
}

/// Sets (or adds) the member at `pointer`, whose parent must exist.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, name) = pointer.rsplit_once('/').unwrap();
    let name = name.replace("~1", "/").replace("~0", "~");
    let parent = doc.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    parent.insert(name, value);
}

#[test]
fn a_spec_that_follows_every_rule_yields_no_lint() {
    assert_eq!(lint(&clean_spec()), []);
}

#[test]
fn a_string_without_max_length_is_flagged() {
    let mut doc = clean_spec();
    set(
        &mut doc,
        "/components/schemas/Line/properties/sku",
        json!({ "type": "string", "pattern": "^[A-Z0-9-]+$" }),
    );
    set(
        &mut doc,
        "/components/schemas/Order/properties/note",
        json!({ "type": ["string", "null"], "format": "uri" }),
    );
    assert_eq!(
        rules_at(&doc),
        [
            (
                STRING_WITHOUT_MAX_LENGTH,
                "/components/schemas/Line/properties/sku".to_owned()
            ),
            (
                STRING_WITHOUT_MAX_LENGTH,
                "/components/schemas/Order/properties/note".to_owned()
            ),
        ]
    );
    let message = &lint(&doc)[0].message;
    assert!(message.contains("maxLength"), "{message}");
}

#[test]
fn strings_in_parameters_and_headers_are_checked_too() {
    let mut doc = clean_spec();
    set(
        &mut doc,
        "/paths/~1orders~1{id}/get/parameters/0/schema",
        json!({ "type": "string" }),
    );
    set(
        &mut doc,
        "/paths/~1orders~1{id}/parameters/0/schema",
        json!({ "type": "string", "format": "byte" }),
    );
    assert_eq!(
        rules_at(&doc),
        [
            (
                STRING_WITHOUT_MAX_LENGTH,
                "/paths/~1orders~1{id}/get/parameters/0/schema".to_owned()
            ),
            (
                STRING_WITHOUT_MAX_LENGTH,
                "/paths/~1orders~1{id}/parameters/0/schema".to_owned()
            ),
        ]
    );
}

#[test]
fn an_array_without_max_items_is_flagged_unless_a_closed_tuple() {
    let mut doc = clean_spec();
    set(
        &mut doc,
        "/components/schemas/Order/properties/lines",
        json!({ "type": "array", "items": { "$ref": "#/components/schemas/Line" } }),
    );
    set(
        &mut doc,
        "/components/schemas/Order/properties/point",
        json!({ "type": "array", "prefixItems": [{ "const": 1 }, { "const": 2 }], "items": false }),
    );
    assert_eq!(
        rules_at(&doc),
        [(
            ARRAY_WITHOUT_MAX_ITEMS,
            "/components/schemas/Order/properties/lines".to_owned()
        )]
    );
}

#[test]
fn additional_properties_true_or_empty_is_flagged() {
    let mut doc = clean_spec();
    set(
        &mut doc,
        "/components/schemas/Order/additionalProperties",
        json!(true),
    );
    set(
        &mut doc,
        "/components/schemas/Line/additionalProperties",
        json!({}),
    );
    assert_eq!(
        rules_at(&doc),
        [
            (
                ADDITIONAL_PROPERTIES_TRUE,
                "/components/schemas/Line/additionalProperties".to_owned()
            ),
            (
                ADDITIONAL_PROPERTIES_TRUE,
                "/components/schemas/Order/additionalProperties".to_owned()
            ),
        ]
    );
}

#[test]
fn an_additional_properties_schema_is_not_flagged_but_is_walked() {
    let mut doc = clean_spec();
    set(
        &mut doc,
        "/components/schemas/Order/additionalProperties",
        json!({ "type": "string" }),
    );
    assert_eq!(
        rules_at(&doc),
        [(
            STRING_WITHOUT_MAX_LENGTH,
            "/components/schemas/Order/additionalProperties".to_owned()
        )]
    );
}

#[test]
fn an_integer_without_bounds_is_flagged_even_with_a_format() {
    let mut doc = clean_spec();
    set(
        &mut doc,
        "/components/schemas/Line/properties/qty",
        json!({ "type": "integer", "format": "int64" }),
    );
    set(
        &mut doc,
        "/components/schemas/Line/properties/rank",
        json!({ "type": "integer", "minimum": 0 }),
    );
    set(
        &mut doc,
        "/components/schemas/Line/properties/size",
        json!({ "type": "integer", "enum": [1, 2, 3] }),
    );
    set(
        &mut doc,
        "/components/schemas/Line/properties/pct",
        json!({ "type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 100 }),
    );
    let lints = lint(&doc);
    let found: Vec<(&str, &str)> = lints
        .iter()
        .map(|l| (l.pointer.as_str(), l.message.as_str()))
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].0, "/components/schemas/Line/properties/qty");
    assert!(found[0].1.ends_with("add `minimum` and `maximum`"));
    assert_eq!(found[1].0, "/components/schemas/Line/properties/rank");
    assert!(found[1].1.ends_with("add `maximum`"));
    assert!(lints.iter().all(|l| l.rule == INTEGER_WITHOUT_BOUNDS));
}

#[test]
fn an_operation_without_security_is_flagged() {
    let mut doc = clean_spec();
    doc.as_object_mut().unwrap().remove("security");
    // `put` has its own requirement; `get` relied on the document's.
    assert_eq!(
        rules_at(&doc),
        [(
            OPERATION_WITHOUT_SECURITY,
            "/paths/~1orders~1{id}/get".to_owned()
        )]
    );
    set(&mut doc, "/security", json!([]));
    assert_eq!(rules_at(&doc).len(), 1);
}

#[test]
fn an_explicitly_public_or_anonymous_operation_is_flagged() {
    let mut doc = clean_spec();
    set(&mut doc, "/paths/~1orders~1{id}/put/security", json!([]));
    set(
        &mut doc,
        "/paths/~1orders~1{id}/get/security",
        json!([{ "bearer": [] }, {}]),
    );
    let lints = lint(&doc);
    assert_eq!(
        lints
            .iter()
            .map(|l| (l.rule, l.pointer.as_str()))
            .collect::<Vec<_>>(),
        [
            (
                OPERATION_WITHOUT_SECURITY,
                "/paths/~1orders~1{id}/get/security"
            ),
            (
                OPERATION_WITHOUT_SECURITY,
                "/paths/~1orders~1{id}/put/security"
            ),
        ]
    );
    assert!(lints[0].message.contains("anonymous"));
    assert!(lints[1].message.contains("explicitly public"));
}

#[test]
fn webhooks_and_callbacks_are_walked_but_need_no_security() {
    let mut doc = clean_spec();
    set(
        &mut doc,
        "/webhooks",
        json!({ "orderShipped": { "post": {
            "requestBody": { "content": { "application/json": {
                "schema": { "type": "object", "properties": { "tracking": { "type": "string" } } }
            }}},
            "responses": { "200": { "description": "ok" } }
        }}}),
    );
    set(
        &mut doc,
        "/paths/~1orders~1{id}/put/callbacks",
        json!({ "onDone": { "{$request.body#/callbackUrl}": { "post": {
            "requestBody": { "content": { "application/json": {
                "schema": { "type": "array", "maxItems": 3, "items": { "type": "integer" } }
            }}},
            "responses": { "200": { "description": "ok" } }
        }}}}),
    );
    assert_eq!(
        rules_at(&doc),
        [
            (
                INTEGER_WITHOUT_BOUNDS,
                "/paths/~1orders~1{id}/put/callbacks/onDone/{$request.body#~1callbackUrl}/post/requestBody/content/application~1json/schema/items"
                    .to_owned()
            ),
            (
                STRING_WITHOUT_MAX_LENGTH,
                "/webhooks/orderShipped/post/requestBody/content/application~1json/schema/properties/tracking"
                    .to_owned()
            ),
        ]
    );
}

#[test]
fn each_schema_is_visited_once_however_often_it_is_referred_to() {
    let mut doc = clean_spec();
    // Line is referred to from Order, from itself (recursion) and from here.
    set(
        &mut doc,
        "/components/schemas/Line/properties/sku",
        json!({ "type": "string" }),
    );
    set(
        &mut doc,
        "/components/schemas/Pair",
        json!({ "allOf": [
            { "$ref": "#/components/schemas/Line" },
            { "$ref": "#/components/schemas/Line" }
        ]}),
    );
    assert_eq!(
        rules_at(&doc),
        [(
            STRING_WITHOUT_MAX_LENGTH,
            "/components/schemas/Line/properties/sku".to_owned()
        )]
    );
}

#[test]
fn a_schema_only_reachable_through_a_ref_is_linted_at_its_own_pointer() {
    let mut doc = clean_spec();
    set(
        &mut doc,
        "/paths/~1orders~1{id}/get/responses/200/content/application~1json/schema",
        json!({ "$ref": "#/$defs/Legacy" }),
    );
    set(
        &mut doc,
        "/$defs",
        json!({ "Legacy": { "type": "string" } }),
    );
    assert_eq!(
        rules_at(&doc),
        [(STRING_WITHOUT_MAX_LENGTH, "/$defs/Legacy".to_owned())]
    );
}

#[test]
fn an_openapi_3_0_document_is_linted_the_same_way() {
    let doc = json!({
        "openapi": "3.0.3",
        "paths": { "/login": { "post": {
            "security": [],
            "requestBody": { "content": { "application/x-www-form-urlencoded": {
                "schema": { "type": "object", "properties": {
                    "user": { "type": "string", "nullable": true },
                    "tries": { "type": "integer", "maximum": 5, "exclusiveMaximum": true, "minimum": 0 },
                    "tags": { "type": "array", "items": { "type": "string", "maxLength": 8 } }
                }}
            }}},
            "responses": { "200": { "description": "ok" } }
        }}}
    });
    let schema =
        "/paths/~1login/post/requestBody/content/application~1x-www-form-urlencoded/schema";
    assert_eq!(
        rules_at(&doc),
        [
            (ARRAY_WITHOUT_MAX_ITEMS, format!("{schema}/properties/tags")),
            (
                STRING_WITHOUT_MAX_LENGTH,
                format!("{schema}/properties/user")
            ),
            (
                OPERATION_WITHOUT_SECURITY,
                "/paths/~1login/post/security".to_owned()
            ),
        ]
    );
}

#[test]
fn a_deeply_nested_schema_does_not_exhaust_the_stack() {
    let mut schema = json!({ "type": "string" });
    for _ in 0..1_000 {
        schema = json!({ "type": "object", "additionalProperties": false, "properties": { "a": schema } });
    }
    let mut doc = clean_spec();
    set(&mut doc, "/components/schemas/Deep", schema);
    let lints = lint(&doc);
    assert_eq!(lints.len(), 1);
    assert_eq!(lints[0].rule, STRING_WITHOUT_MAX_LENGTH);
    // serde_json drops values recursively; dismantle the deep value without recursion.
    let mut node = doc
        .pointer_mut("/components/schemas/Deep")
        .map(Value::take)
        .unwrap_or_default();
    while let Some(next) = node.pointer_mut("/properties/a").map(Value::take) {
        node = next;
    }
}

#[test]
fn a_pattern_that_needs_backtracking_is_flagged_at_its_pointer() {
    let mut doc = clean_spec();
    set(
        &mut doc,
        "/components/schemas/Line/properties/sku",
        json!({ "type": "string", "maxLength": 32, "pattern": "^(?!X-)[A-Z0-9-]+$" }),
    );
    set(
        &mut doc,
        "/components/schemas/Order/patternProperties",
        json!({ "^x-(\\w)\\1$": { "type": "integer", "minimum": 0, "maximum": 1 }, "^y-": {} }),
    );
    assert_eq!(
        rules_at(&doc),
        [
            (
                PATTERN_BACKTRACKING,
                "/components/schemas/Line/properties/sku/pattern".to_owned()
            ),
            (
                PATTERN_BACKTRACKING,
                "/components/schemas/Order/patternProperties/^x-(\\w)\\1$".to_owned()
            ),
        ]
    );
    // ECMA classes the linear engine reads (`\d`, `\w`, `\s`, Unicode escapes) are not flagged.
    for linear in ["^\\d{3}-\\w+\\s?$", "^[\\u0041-\\u005A]+$", "^(a|b)*c$"] {
        assert!(!needs_backtracking(linear), "{linear}");
    }
}
