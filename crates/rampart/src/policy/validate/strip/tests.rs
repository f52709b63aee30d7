use serde_json::json;

use super::*;

/// A contract in the shape the loader hands over: schemas under `components`, local refs.
fn contract() -> Value {
    json!({
        "openapi": "3.1.0",
        "components": { "schemas": {
            "User": {
                "type": "object",
                "properties": {
                    "id": { "type": "integer" },
                    "name": { "type": "string" },
                    "email": { "type": "string", "format": "email" },
                    "address": { "$ref": "#/components/schemas/Address" }
                },
                "required": ["id", "name"]
            },
            "Address": {
                "type": ["object", "null"],
                "properties": { "city": { "type": "string" }, "zip": { "type": "string" } },
                "additionalProperties": false
            },
            "Order": {
                "type": "object",
                "properties": {
                    "id": { "type": "string" },
                    "lines": { "type": "array", "items": { "$ref": "#/components/schemas/Line" } }
                }
            },
            "Line": {
                "type": "object",
                "properties": { "sku": { "type": "string" }, "qty": { "type": "integer" } }
            },
            "Pet": {
                "type": "object",
                "properties": { "name": { "type": "string" }, "kind": { "type": "string" } }
            },
            "Dog": {
                "allOf": [
                    { "$ref": "#/components/schemas/Pet" },
                    { "type": "object", "properties": { "bark": { "type": "boolean" } } }
                ]
            },
            "Cat": {
                "allOf": [
                    { "$ref": "#/components/schemas/Pet" },
                    { "properties": { "lives": { "type": "integer" } } }
                ]
            },
            "Node": {
                "type": "object",
                "properties": {
                    "value": { "type": "integer" },
                    "children": { "type": "array", "items": { "$ref": "#/components/schemas/Node" } }
                }
            },
            "Loop": { "$ref": "#/components/schemas/Loop2" },
            "Loop2": {
                "allOf": [
                    { "$ref": "#/components/schemas/Loop" },
                    { "properties": { "kept": { "type": "string" } } }
                ]
            },
            "Fan": {
                "allOf": [
                    { "$ref": "#/components/schemas/Fan" },
                    { "$ref": "#/components/schemas/Fan" },
                    { "$ref": "#/components/schemas/Fan" },
                    { "properties": { "kept": { "type": "string" } } }
                ]
            },
            "Odd/Name": {
                "type": "object",
                "properties": { "ok": { "type": "boolean" } }
            },
            "With Space": {
                "type": "object",
                "properties": { "ok": { "type": "boolean" } }
            }
        }},
        "$defs": {
            "Tag": { "type": "object", "properties": { "label": { "type": "string" } } }
        }
    })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn strip(value: &mut Value, schema: &Value) -> Vec<String> {
    let root = contract();
    strip_undeclared(value, schema, &root)
}

#[test]
fn password_hash_and_internal_fields_never_leave_the_gateway() {
    let mut body = json!({
        "id": 7, "name": "Ada", "email": "ada@example.com",
        "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        "is_admin": true,
        "internal": { "risk_score": 0.93, "notes": "VIP" }
    });
    let removed = strip(&mut body, &schema_ref("User"));
    assert_eq!(removed, ["/internal", "/is_admin", "/password_hash"]);
    assert_eq!(
        body,
        json!({ "id": 7, "name": "Ada", "email": "ada@example.com" })
    );
}

#[test]
fn the_audit_names_pointers_never_values() {
    let mut body = json!({ "id": 7, "name": "Ada", "secret_token": "tok_live_123" });
    let removed = strip(&mut body, &schema_ref("User"));
    assert_eq!(removed, ["/secret_token"]);
    assert!(removed.iter().all(|p| !p.contains("tok_live_123")));
}

#[test]
fn nested_objects_are_stripped_at_every_level() {
    let mut body = json!({
        "id": 7, "name": "Ada",
        "address": { "city": "Leeds", "zip": "LS1", "geo": { "lat": 53.8, "lon": -1.5 } }
    });
    let removed = strip(&mut body, &schema_ref("User"));
    assert_eq!(removed, ["/address/geo"]);
    assert_eq!(body["address"], json!({ "city": "Leeds", "zip": "LS1" }));
}

#[test]
fn a_nullable_object_type_list_is_an_object_schema() {
    let mut body = json!({ "id": 1, "name": "A", "address": null });
    assert!(strip(&mut body, &schema_ref("User")).is_empty());
    let mut address = json!({ "city": "Leeds", "owner_ssn": "x" });
    assert_eq!(strip(&mut address, &schema_ref("Address")), ["/owner_ssn"]);
}

#[test]
fn arrays_of_objects_are_stripped_element_by_element() {
    let mut body = json!([
        { "id": "o1", "cost_price": 3, "lines": [{ "sku": "A", "qty": 1, "supplier": "S" }] },
        { "id": "o2", "lines": [{ "sku": "B", "qty": 2 }, { "sku": "C", "margin": 0.4 }] }
    ]);
    let schema = json!({ "type": "array", "items": { "$ref": "#/components/schemas/Order" } });
    let removed = strip(&mut body, &schema);
    assert_eq!(
        removed,
        ["/0/cost_price", "/0/lines/0/supplier", "/1/lines/1/margin"]
    );
    assert_eq!(body[1]["lines"][1], json!({ "sku": "C" }));
}

#[test]
fn all_of_declares_the_union_of_its_branches() {
    let mut dog = json!({ "name": "Rex", "kind": "dog", "bark": true, "chip_id": "981" });
    assert_eq!(strip(&mut dog, &schema_ref("Dog")), ["/chip_id"]);
    assert_eq!(dog, json!({ "name": "Rex", "kind": "dog", "bark": true }));
}

#[test]
fn one_of_is_lenient_and_keeps_what_any_branch_declares() {
    let schema = json!({ "oneOf": [schema_ref("Dog"), schema_ref("Cat"), { "type": "null" }] });
    let mut pet = json!({ "name": "Tom", "lives": 9, "bark": false, "owner_id": 3 });
    assert_eq!(strip(&mut pet, &schema), ["/owner_id"]);
    assert_eq!(pet, json!({ "name": "Tom", "lives": 9, "bark": false }));
}

#[test]
fn a_branch_that_only_requires_does_not_open_the_object() {
    let schema = json!({
        "type": "object",
        "properties": { "email": { "type": "string" }, "phone": { "type": "string" } },
        "oneOf": [{ "required": ["email"] }, { "required": ["phone"] }]
    });
    let mut body = json!({ "email": "a@example.com", "password": "x" });
    assert_eq!(strip(&mut body, &schema), ["/password"]);
}

#[test]
fn refs_resolve_into_components_and_defs_with_escapes() {
    let mut tag = json!({ "label": "red", "internal_id": 4 });
    assert_eq!(
        strip(&mut tag, &json!({ "$ref": "#/$defs/Tag" })),
        ["/internal_id"]
    );

    let mut odd = json!({ "ok": true, "x": 1 });
    let schema = json!({ "$ref": "#/components/schemas/Odd~1Name" });
    assert_eq!(strip(&mut odd, &schema), ["/x"]);

    let mut spaced = json!({ "ok": true, "y": 1 });
    let schema = json!({ "$ref": "#/components/schemas/With%20Space" });
    assert_eq!(strip(&mut spaced, &schema), ["/y"]);
}

#[test]
fn a_recursive_tree_is_stripped_to_its_leaves() {
    let mut tree = json!({ "value": 1, "children": [
        { "value": 2, "children": [
            { "value": 3, "children": [
                { "value": 4, "debug": "leaf" }
            ]}
        ]},
        { "value": 5, "parent_ptr": "0x7f" }
    ]});
    let removed = strip(&mut tree, &schema_ref("Node"));
    assert_eq!(
        removed,
        [
            "/children/0/children/0/children/0/debug",
            "/children/1/parent_ptr"
        ]
    );
}

#[test]
fn reference_cycles_end_and_contribute_nothing_new() {
    let mut body = json!({ "kept": "a", "dropped": "b" });
    assert_eq!(strip(&mut body, &schema_ref("Loop")), ["/dropped"]);
    let mut body = json!({ "kept": "a", "dropped": "b" });
    assert_eq!(strip(&mut body, &schema_ref("Fan")), ["/dropped"]);
}

#[test]
fn an_additional_properties_schema_declares_and_checks_every_other_member() {
    let schema = json!({
        "type": "object",
        "properties": { "total": { "type": "integer" } },
        "additionalProperties": { "type": "object", "properties": { "count": { "type": "integer" } } }
    });
    let mut body = json!({
        "total": 3,
        "apples": { "count": 2, "cost": 1 },
        "pears": { "count": 1 }
    });
    assert_eq!(strip(&mut body, &schema), ["/apples/cost"]);
    assert_eq!(body["pears"], json!({ "count": 1 }));
}

#[test]
fn additional_properties_true_and_free_form_objects_keep_everything() {
    for schema in [
        json!({ "type": "object", "properties": { "a": {} }, "additionalProperties": true }),
        json!({ "type": "object" }),
        json!({}),
        json!(true),
    ] {
        let mut body = json!({ "a": 1, "b": { "c": 2 } });
        assert!(strip(&mut body, &schema).is_empty(), "{schema}");
        assert_eq!(body, json!({ "a": 1, "b": { "c": 2 } }));
    }
}

#[test]
fn additional_properties_false_in_one_all_of_branch_wins() {
    let schema = json!({ "allOf": [
        { "properties": { "a": {} }, "additionalProperties": false },
        { "properties": { "b": {} }, "additionalProperties": true }
    ]});
    let mut body = json!({ "a": 1, "b": 2, "c": 3 });
    assert_eq!(strip(&mut body, &schema), ["/c"]);
}

#[test]
fn unevaluated_properties_false_closes_an_all_of() {
    let schema = json!({
        "allOf": [schema_ref("Pet"), { "properties": { "bark": {} } }],
        "unevaluatedProperties": false
    });
    let mut body = json!({ "name": "Rex", "bark": true, "vet_notes": "x" });
    assert_eq!(strip(&mut body, &schema), ["/vet_notes"]);
}

#[test]
fn pattern_properties_declare_matching_names() {
    let schema = json!({
        "type": "object",
        "properties": { "id": {} },
        "patternProperties": { "^x-": { "type": "object", "properties": { "v": {} } } }
    });
    let mut body = json!({ "id": 1, "x-trace": { "v": 1, "host": "db-3" }, "y-debug": 2 });
    assert_eq!(strip(&mut body, &schema), ["/x-trace/host", "/y-debug"]);
}

#[test]
fn a_pattern_the_regex_crate_cannot_read_keeps_members_it_might_declare() {
    let schema = json!({
        "type": "object",
        "patternProperties": { "^(?!internal).*$": {} }
    });
    let mut body = json!({ "public": 1, "internal": 2 });
    assert!(strip(&mut body, &schema).is_empty());
}

#[test]
fn prefix_items_are_positional() {
    let schema = json!({
        "type": "array",
        "prefixItems": [schema_ref("Pet"), schema_ref("Line")],
        "items": { "$ref": "#/$defs/Tag" }
    });
    let mut body = json!([
        { "name": "Rex", "x": 1 },
        { "sku": "A", "y": 2 },
        { "label": "t", "z": 3 },
        { "label": "u", "w": 4 }
    ]);
    assert_eq!(strip(&mut body, &schema), ["/0/x", "/1/y", "/2/z", "/3/w"]);
}

#[test]
fn pointer_tokens_are_escaped() {
    let mut body = json!({ "id": 1, "name": "A", "a/b": 1, "m~n": 2 });
    assert_eq!(strip(&mut body, &schema_ref("User")), ["/a~1b", "/m~0n"]);
}

#[test]
fn a_conforming_body_is_left_exactly_as_it_was() {
    let original = json!([{ "id": "o1", "lines": [{ "sku": "A", "qty": 1 }] }]);
    let mut body = original.clone();
    let schema = json!({ "type": "array", "items": schema_ref("Order") });
    assert!(strip(&mut body, &schema).is_empty());
    assert_eq!(body, original);
}

#[test]
fn a_reference_outside_the_document_leaves_the_value_untouched() {
    let schema = json!({
        "allOf": [
            { "$ref": "https://schemas.example.com/user.json" },
            { "properties": { "id": {} } }
        ]
    });
    let mut body = json!({ "id": 1, "anything": 2 });
    assert!(strip(&mut body, &schema).is_empty());
    let mut body = json!({ "id": 1, "anything": 2 });
    assert!(
        strip(
            &mut body,
            &json!({ "$ref": "#/components/schemas/Missing" })
        )
        .is_empty()
    );
}

#[test]
fn a_value_of_another_type_than_declared_is_left_to_validation() {
    let schema = json!({ "type": "string" });
    let mut body = json!({ "password_hash": "x" });
    assert!(strip(&mut body, &schema).is_empty());
}

#[test]
fn very_deep_values_stop_the_walk_without_overflowing() {
    let schema = json!({ "$ref": "#/$defs/Deep" });
    let root = json!({ "$defs": { "Deep": {
        "type": "object",
        "properties": { "next": { "$ref": "#/$defs/Deep" } }
    }}});
    let mut body = json!({});
    for _ in 0..(MAX_VALUE_DEPTH + 10) {
        body = json!({ "next": body, "junk": 1 });
    }
    let removed = strip_undeclared(&mut body, &schema, &root);
    assert_eq!(removed.len(), MAX_VALUE_DEPTH + 1);
    assert_eq!(removed[0], "/junk");
}

#[test]
fn a_schema_that_fans_out_is_bounded_and_leaves_the_value_untouched() {
    // A0 = allOf [A1, A1], A1 = allOf [A2, A2], ...: 2^24 nodes if expanded naively.
    let mut defs = serde_json::Map::new();
    for level in 0..24 {
        let next = json!({ "$ref": format!("#/$defs/A{}", level + 1) });
        defs.insert(
            format!("A{level}"),
            json!({ "allOf": [next.clone(), next] }),
        );
    }
    defs.insert("A24".into(), json!({ "properties": { "kept": {} } }));
    let root = json!({ "$defs": defs });
    let mut body = json!({ "kept": 1, "other": 2 });
    let removed = strip_undeclared(&mut body, &json!({ "$ref": "#/$defs/A0" }), &root);
    assert!(removed.is_empty());
    assert_eq!(body, json!({ "kept": 1, "other": 2 }));
}

#[test]
fn a_member_declared_false_is_removed() {
    let schema = json!({
        "type": "object",
        "properties": { "id": {}, "password": false },
        "patternProperties": { "^_": false },
        "additionalProperties": true
    });
    let mut body = json!({ "id": 1, "password": "x", "_rev": 3, "extra": 4 });
    assert_eq!(strip(&mut body, &schema), ["/_rev", "/password"]);
    assert_eq!(body, json!({ "id": 1, "extra": 4 }));
}

#[test]
fn write_only_members_never_leave_the_gateway_inline_behind_a_ref_or_in_all_of() {
    let root = json!({ "components": { "schemas": {
        "Secret": { "type": "string", "writeOnly": true },
        "User": {
            "type": "object",
            "properties": {
                "id": { "type": "integer" },
                "password": { "type": "string", "writeOnly": true },
                "pin": { "$ref": "#/components/schemas/Secret" },
                "token": { "allOf": [{ "$ref": "#/components/schemas/Secret" }] },
                "otp": { "$ref": "#/components/schemas/Secret", "description": "3.0 sibling" },
                "name": { "type": "string", "writeOnly": false }
            }
        },
        "Admin": {
            "allOf": [
                { "$ref": "#/components/schemas/User" },
                { "properties": { "password": { "type": "string" }, "level": {} } }
            ]
        }
    }}});
    let user = json!({ "$ref": "#/components/schemas/User" });
    let mut body = json!({
        "id": 1, "password": "hunter2", "pin": "1234", "token": "t", "otp": "9", "name": "Ann"
    });
    let removed = strip_undeclared(&mut body, &user, &root);
    assert_eq!(removed, ["/otp", "/password", "/pin", "/token"]);
    assert_eq!(body, json!({ "id": 1, "name": "Ann" }));
    // Another branch declaring the member without `writeOnly` does not bring it back.
    let admin = json!({ "$ref": "#/components/schemas/Admin" });
    let mut body = json!({ "id": 1, "password": "hunter2", "level": 3 });
    assert_eq!(strip_undeclared(&mut body, &admin, &root), ["/password"]);
    assert_eq!(body, json!({ "id": 1, "level": 3 }));
}

#[test]
fn audit_pointers_are_grouped_by_schema_path_capped_and_counted() {
    let root = contract();
    let schema = json!({ "type": "array", "items": schema_ref("Line") });
    let mut body = Value::Array(
        (0..10_000)
            .map(|i| json!({ "sku": "A", "qty": i, "secret": i }))
            .collect(),
    );
    let stripped = strip_response(&mut body, &schema, &root, &Patterns::default(), 20);
    assert_eq!(stripped.pointers, ["/*/secret"]);
    assert_eq!(stripped.total, 10_000);
    assert_eq!(body[9_999], json!({ "sku": "A", "qty": 9_999 }));

    let mut wide = Map::new();
    for i in 0..100 {
        wide.insert(format!("extra{i:03}"), json!(i));
    }
    let mut wide = Value::Object(wide);
    let stripped = strip_response(
        &mut wide,
        &schema_ref("Line"),
        &root,
        &Patterns::default(),
        20,
    );
    assert_eq!(stripped.pointers.len(), 20);
    assert_eq!(stripped.pointers[0], "/extra000");
    assert_eq!(stripped.total, 100);
    assert_eq!(wide, json!({}));
}

#[test]
fn each_schema_is_expanded_once_per_response_however_many_values_it_covers() {
    let root = contract();
    let schema = schema_ref("Order");
    let lines: Vec<Value> = (0..1_000)
        .map(|i| json!({ "sku": "A", "qty": i, "x": 1 }))
        .collect();
    let mut body = json!({ "id": "o1", "lines": lines });
    let patterns = Patterns::default();
    let nodes = NodeShapes::default();
    let mut walk = Walk::new(
        &root,
        &patterns,
        &nodes,
        Removed::new(Grouping::Exact, usize::MAX),
    );
    walk.strip(&mut body, &Sub::One(&schema), &mut String::new(), 0);
    assert_eq!(walk.removed.total, 1_000);
    assert_eq!(walk.removed.pointers[999], "/lines/999/x");
    // The order and its line schema; the list of lines.
    assert_eq!(nodes.objects.len(), 2);
    assert_eq!(nodes.arrays.len(), 1);
    assert!(walk.merged_objects.is_empty() && walk.merged_arrays.is_empty());
}

fn order_contract() -> ResponseContract {
    ResponseContract::build(ResponseSchema {
        schema: schema_ref("Order"),
        root: Arc::new(contract()),
        patterns: Arc::new(Patterns::default()),
    })
}

fn expanded(contract: &ResponseContract) -> (usize, usize) {
    contract.with_dependent(|_, nodes| (nodes.objects.len(), nodes.arrays.len()))
}

#[test]
fn shapes_expanded_for_one_response_serve_every_later_one_alike() {
    let contract = order_contract();
    let body = || json!({ "id": "o1", "lines": [{ "sku": "A", "x": 1 }], "total": 3 });
    let mut first = body();
    let stripped = contract.strip(&mut first, 20);
    assert_eq!(stripped.pointers, ["/lines/*/x", "/total"]);
    assert_eq!(expanded(&contract), (2, 1));

    for _ in 0..3 {
        let mut again = body();
        assert_eq!(contract.strip(&mut again, 20), stripped);
        assert_eq!(again, first);
    }
    // Nothing new to expand: the same shapes, however many responses.
    assert_eq!(expanded(&contract), (2, 1));
}

#[test]
fn kept_shapes_are_bounded_by_the_schema_not_by_response_member_names() {
    // Every member, whatever its name, is a `Line`: a thousand names are still two shapes.
    let contract = ResponseContract::build(ResponseSchema {
        schema: json!({ "type": "object", "additionalProperties": schema_ref("Line") }),
        root: Arc::new(contract()),
        patterns: Arc::new(Patterns::default()),
    });
    for i in 0..1_000 {
        let mut body = json!({});
        body[format!("spray{i}")] = json!({ "sku": "A", "x": i });
        body[format!("other{i}")] = json!({ "qty": 1, "y": { "deep": [i] } });
        assert_eq!(contract.strip(&mut body, 20).total, 2);
        assert_eq!(body[format!("spray{i}")], json!({ "sku": "A" }));
    }
    assert_eq!(expanded(&contract), (2, 0));
}

#[test]
fn one_contract_strips_from_many_threads_at_once() {
    let contract = order_contract();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let contract = &contract;
            scope.spawn(move || {
                for i in 0..200 {
                    let mut body = json!({ "id": "o", "lines": [{ "qty": i, "t": t }] });
                    let stripped = contract.strip(&mut body, 20);
                    assert_eq!(stripped.pointers, ["/lines/*/t"]);
                    assert_eq!(body, json!({ "id": "o", "lines": [{ "qty": i }] }));
                }
            });
        }
    });
    assert_eq!(expanded(&contract), (2, 1));
}

#[test]
fn pattern_properties_are_compiled_at_load_and_strip_as_before() {
    let root = json!({ "$defs": { "Headers": {
        "type": "object",
        "properties": { "id": {} },
        "patternProperties": { "^x-": { "type": "object", "properties": { "v": {} } }, "(?<=a)b": {} }
    }}});
    let patterns = Patterns::collect(&root);
    assert!(matches!(patterns.compiled.get("^x-"), Some(Some(_))));
    // Lookbehind is not the regex crate's: unreadable, so members it might declare are kept.
    assert!(matches!(patterns.compiled.get("(?<=a)b"), Some(None)));
    let schema = json!({ "$ref": "#/$defs/Headers" });
    let body = json!({ "id": 1, "x-trace": { "v": 1, "host": "h" }, "other": 2 });
    let mut precompiled = body.clone();
    let mut lazily = body;
    let stripped = strip_response(&mut precompiled, &schema, &root, &patterns, 20);
    let removed = strip_undeclared(&mut lazily, &schema, &root);
    assert_eq!(precompiled, lazily);
    assert_eq!(stripped.pointers, removed);
    assert_eq!(removed, ["/x-trace/host"]);
}
