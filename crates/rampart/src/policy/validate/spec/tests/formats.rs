//! Formats are asserted, integer widths are ranges.

use serde_json::json;

use super::*;

fn user(member: &str, value: serde_json::Value) -> Vec<(String, String)> {
    let spec = orders();
    let (op, _) = operation(&spec, &Method::POST, "/v1/users");
    let media = op
        .request_body()
        .and_then(|b| b.media("application/json"))
        .unwrap();
    let mut body = json!({"email": "a@example.com"});
    body[member] = value;
    pairs(&media.check(&body))
}

#[test]
fn an_invalid_email_is_refused() {
    assert_eq!(
        user("email", json!("not an email")),
        one("/body/email", "is not a valid email")
    );
    assert_eq!(user("email", json!("someone@example.com")), vec![]);
}

#[test]
fn an_invalid_uuid_in_a_read_only_member_is_refused_for_being_sent() {
    assert_eq!(
        user("id", json!("0b7c6a3e-5d1f-4f7e-9a55-0c2b1f3d4e5a")),
        one("/body/id", "is read-only")
    );
}

#[test]
fn an_invalid_date_time_is_refused() {
    assert_eq!(
        user("birthday", json!("2024-02-30T25:00:00Z")),
        one("/body/birthday", "is not a valid date-time")
    );
    assert_eq!(user("birthday", json!("2024-02-28T12:00:00Z")), vec![]);
}

#[test]
fn invalid_uri_and_ip_addresses_are_refused() {
    assert_eq!(
        user("homepage", json!("not a uri")),
        one("/body/homepage", "is not a valid uri")
    );
    assert_eq!(
        user("ip", json!("300.1.1.1")),
        one("/body/ip", "is not a valid ipv4")
    );
    assert_eq!(
        user("ip6", json!("::g")),
        one("/body/ip6", "is not a valid ipv6")
    );
    assert_eq!(user("ip6", json!("::1")), vec![]);
}

#[test]
fn an_int32_overflow_is_refused() {
    let spec = orders();
    let (op, _) = operation(&spec, &Method::POST, "/v1/orders");
    let media = op
        .request_body()
        .and_then(|b| b.media("application/json"))
        .unwrap();
    let body = |q: serde_json::Value| json!({"item": "pen", "quantity": q});
    assert_eq!(
        pairs(&media.check(&body(json!(2_147_483_648_i64)))),
        one("/body/quantity", "must be a 32-bit integer")
    );
    assert_eq!(pairs(&media.check(&body(json!(2_147_483_647)))), vec![]);
    assert_eq!(
        pairs(&media.check(&body(json!(1.5)))),
        one("/body/quantity", "must be an integer")
    );
}

#[test]
fn an_int64_overflow_is_refused() {
    let text = r#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"post": {"requestBody": {"content":
      {"application/json": {"schema": {"type": "integer", "format": "int64"}}}}}}}}"#;
    let spec = compile_text(text, &CompileOptions::default()).unwrap();
    let (op, _) = operation(&spec, &Method::POST, "/a");
    let media = op
        .request_body()
        .and_then(|b| b.media("application/json"))
        .unwrap();
    let big: serde_json::Value = serde_json::from_str("9223372036854775808").unwrap();
    assert_eq!(
        pairs(&media.check(&big)),
        one("/body", "must be a 64-bit integer")
    );
    assert_eq!(pairs(&media.check(&json!(i64::MAX))), vec![]);
}

#[test]
fn a_pattern_mismatch_names_no_pattern_and_no_value() {
    assert_eq!(
        user("code", json!("ABC")),
        one("/body/code", "must match the allowed pattern")
    );
}

#[test]
fn byte_is_base64_and_binary_is_not_checked() {
    let text = r#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"post": {"requestBody": {"content":
      {"application/json": {"schema": {"type": "object", "properties": {"b": {"type": "string", "format": "byte"}, "raw": {"type": "string", "format": "binary"}}}}}}}}}}"#;
    let spec = compile_text(text, &CompileOptions::default()).unwrap();
    let (op, _) = operation(&spec, &Method::POST, "/a");
    let media = op
        .request_body()
        .and_then(|b| b.media("application/json"))
        .unwrap();
    assert_eq!(
        pairs(&media.check(&json!({"b": "aGVsbG8=", "raw": "\u{1}"}))),
        vec![]
    );
    assert_eq!(
        pairs(&media.check(&json!({"b": "not base64!"}))),
        one("/body/b", "is not a valid byte")
    );
}

/// A contract whose `code` member has `pattern`, and how a `code` of `value` fares.
fn code_with_pattern(pattern: &str, value: &str) -> Vec<(String, String)> {
    let schema = json!({
        "type": "object",
        "properties": { "code": { "type": "string", "pattern": pattern } }
    });
    let text = json!({
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": schema}}}}}}
    })
    .to_string();
    let spec = compile_text(&text, &CompileOptions::default()).unwrap();
    let (op, _) = operation(&spec, &Method::POST, "/a");
    let media = op
        .request_body()
        .and_then(|b| b.media("application/json"))
        .unwrap();
    pairs(&media.check(&json!({ "code": value })))
}

#[test]
fn a_lookaround_pattern_still_applies_on_the_bounded_backtracking_engine() {
    let pattern = "^(?!admin)[a-z]+$";
    assert!(super::super::needs_backtracking(pattern));
    assert_eq!(code_with_pattern(pattern, "bob"), vec![]);
    assert_eq!(
        code_with_pattern(pattern, "admin"),
        one("/body/code", "must match the allowed pattern")
    );
}

#[test]
fn a_catastrophic_lookaround_pattern_runs_out_of_steps_and_refuses_quickly() {
    // `(a+)+` inside a lookahead: exponential backtracking on a run of `a`s without a `b`.
    let pattern = "^(?=(a+)+b)";
    let attack = "a".repeat(40);
    let started = std::time::Instant::now();
    assert_eq!(
        code_with_pattern(pattern, &attack),
        one("/body/code", "must match the allowed pattern")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(code_with_pattern(pattern, "aab"), vec![]);
}

#[test]
fn nested_quantifiers_without_lookaround_run_on_the_linear_engine() {
    let pattern = "^(a+)+$";
    assert!(!super::super::needs_backtracking(pattern));
    let attack = format!("{}b", "a".repeat(10_000));
    let started = std::time::Instant::now();
    assert_eq!(
        code_with_pattern(pattern, &attack),
        one("/body/code", "must match the allowed pattern")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// `@readme/oas-examples`' schema-validation: a GUID in braces, written with ECMA-262's literal
/// `{`/`}` (Annex B), which the Rust regex engines refuse as it stands.
#[test]
fn a_pattern_with_literal_braces_compiles_and_matches_as_ecma_262_reads_it() {
    let text = r#"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"post": {"requestBody": {"content":
      {"application/json": {"schema": {"type": "object", "properties": {"guid": {"type": "string",
      "pattern": "^(?:{[0-9a-fA-F]{4}(?:-?[0-9a-fA-F]{4}){7}}|[0-9a-fA-F]{4}(?:-?[0-9a-fA-F]{4}){7})$"}}}}}}}}}}"#;
    let spec = compile_text(text, &CompileOptions::default()).unwrap();
    let (op, _) = operation(&spec, &Method::POST, "/a");
    let media = op
        .request_body()
        .and_then(|b| b.media("application/json"))
        .unwrap();
    let guid = "0123-4567-89ab-cdef-0123-4567-89ab-cdef";
    assert_eq!(pairs(&media.check(&json!({"guid": guid}))), vec![]);
    assert_eq!(
        pairs(&media.check(&json!({"guid": format!("{{{guid}}}")}))),
        vec![]
    );
    // The quantifiers still count: three hex digits in a group is refused.
    assert_eq!(
        pairs(&media.check(&json!({"guid": "{012-4567-89ab-cdef-0123-4567-89ab-cdef}"}))),
        one("/body/guid", "must match the allowed pattern")
    );
    assert_eq!(
        pairs(&media.check(&json!({"guid": format!("{{{guid}")}))),
        one("/body/guid", "must match the allowed pattern")
    );
}
