//! Parameters: typing, styles, pollution, undeclared names, required presence.

use super::*;

fn list(uri: &str) -> Vec<(String, String)> {
    head(&orders(), Method::GET, uri, &[REQUEST_ID])
}

#[test]
fn a_well_formed_request_head_has_no_violation() {
    let uri = "/v1/orders?limit=10&status=open&tag=a&tag=b&ids=1,2,3&words=x%20y&filter[status]=open&filter[min]=2";
    let headers = [
        REQUEST_ID,
        ("x-flags", "1, 2"),
        ("cookie", "session=abc; other=1"),
    ];
    assert_eq!(head(&orders(), Method::GET, uri, &headers), vec![]);
}

#[test]
fn sql_injection_in_an_integer_query_parameter_is_refused() {
    assert_eq!(
        list("/v1/orders?limit=1%20OR%201%3D1"),
        one("/query/limit", "must be an integer")
    );
    assert_eq!(
        list("/v1/orders?limit=1+OR+1=1"),
        one("/query/limit", "must be an integer")
    );
}

#[test]
fn sql_injection_in_an_integer_path_parameter_is_refused() {
    let spec = orders();
    assert_eq!(
        head(&spec, Method::GET, "/v1/orders/1%20OR%201%3D1", &[]),
        one("/path/id", "must be an integer")
    );
    assert_eq!(
        head(&spec, Method::GET, "/v1/orders/0x10", &[]),
        one("/path/id", "must be an integer")
    );
}

#[test]
fn numbers_outside_the_declared_range_are_refused() {
    assert_eq!(
        list("/v1/orders?limit=0"),
        one("/query/limit", "must be at least 1")
    );
    assert_eq!(
        list("/v1/orders?limit=101"),
        one("/query/limit", "must be at most 100")
    );
    assert_eq!(
        head(&orders(), Method::GET, "/v1/orders/2147483648", &[]),
        one("/path/id", "must be a 32-bit integer")
    );
}

#[test]
fn parameter_pollution_of_a_single_valued_parameter_is_refused() {
    assert_eq!(
        list("/v1/orders?limit=1&limit=2"),
        one("/query/limit", "must appear once")
    );
    assert_eq!(
        list("/v1/orders?status=open&status=shipped"),
        one("/query/status", "must appear once")
    );
    let cookies = [REQUEST_ID, ("cookie", "session=a; session=b")];
    assert_eq!(
        head(&orders(), Method::GET, "/v1/orders", &cookies),
        one("/cookie/session", "must appear once")
    );
}

#[test]
fn an_undeclared_query_parameter_is_refused() {
    assert_eq!(
        list("/v1/orders?debug=true"),
        one("/query/debug", "is not declared")
    );
    assert_eq!(
        list("/v1/orders?a%2Fb=1"),
        one("/query/a~1b", "is not declared")
    );
}

#[test]
fn an_undeclared_query_parameter_passes_where_the_operation_allows_it() {
    let spec = orders();
    assert_eq!(
        head(&spec, Method::GET, "/v1/search?q=x&utm_source=mail", &[]),
        vec![]
    );
    assert_eq!(
        head(&spec, Method::GET, "/v1/search", &[]),
        one("/query/q", "is required")
    );
    let options = CompileOptions {
        unknown_query: super::super::UnknownQuery::Allow,
        ..CompileOptions::default()
    };
    let lenient = Spec::compile_file(&fixture("orders-3.0.yaml"), &options).unwrap();
    assert_eq!(
        head(&lenient, Method::GET, "/v1/orders?debug=1", &[REQUEST_ID]),
        vec![]
    );
}

#[test]
fn an_exploded_array_is_one_item_per_occurrence() {
    assert_eq!(list("/v1/orders?tag=a&tag=b&tag=c"), vec![]);
    assert_eq!(
        list("/v1/orders?tag=a&tag=this-tag-is-far-too-long"),
        one("/query/tag/1", "must be at most 16 characters")
    );
}

#[test]
fn a_non_exploded_array_is_one_delimited_value() {
    assert_eq!(list("/v1/orders?ids=1,2,3"), vec![]);
    assert_eq!(
        list("/v1/orders?ids=1,x,3"),
        one("/query/ids/1", "must be an integer")
    );
    assert_eq!(
        list("/v1/orders?ids=1&ids=2"),
        one("/query/ids", "must appear once")
    );
    assert_eq!(list("/v1/orders?words=a+b+c"), vec![]);
}

#[test]
fn a_deep_object_is_built_from_bracketed_names_and_closed() {
    assert_eq!(list("/v1/orders?filter[status]=open&filter[min]=3"), vec![]);
    assert_eq!(
        list("/v1/orders?filter%5Bmin%5D=three"),
        one("/query/filter/min", "must be an integer")
    );
    assert_eq!(
        list("/v1/orders?filter[admin]=1"),
        one("/query/filter/admin", "is not declared")
    );
}

#[test]
fn a_missing_required_header_is_refused_and_header_names_ignore_case() {
    let spec = orders();
    assert_eq!(
        head(&spec, Method::GET, "/v1/orders", &[]),
        one("/header/X-Request-Id", "is required")
    );
    assert_eq!(
        head(
            &spec,
            Method::GET,
            "/v1/orders",
            &[("X-REQUEST-ID", REQUEST_ID.1)]
        ),
        vec![]
    );
    assert_eq!(
        head(
            &spec,
            Method::GET,
            "/v1/orders",
            &[("x-request-id", "nope")]
        ),
        one("/header/X-Request-Id", "is not a valid uuid")
    );
}

#[test]
fn accept_content_type_and_authorization_are_never_parameters() {
    // The fixture declares `Accept` as a required header: OpenAPI says to ignore that.
    assert_eq!(list("/v1/orders"), vec![]);
}

#[test]
fn a_header_array_is_comma_separated_across_lines() {
    let spec = orders();
    let flags = [REQUEST_ID, ("x-flags", "1,2"), ("x-flags", "3")];
    assert_eq!(head(&spec, Method::GET, "/v1/orders", &flags), vec![]);
    let bad = [REQUEST_ID, ("x-flags", "1,two")];
    assert_eq!(
        head(&spec, Method::GET, "/v1/orders", &bad),
        one("/header/X-Flags/1", "must be an integer")
    );
}

#[test]
fn a_cookie_is_checked_against_its_schema() {
    let long = format!("session={}", "s".repeat(40));
    let headers = [REQUEST_ID, ("cookie", long.as_str())];
    assert_eq!(
        head(&orders(), Method::GET, "/v1/orders", &headers),
        one("/cookie/session", "must be at most 32 characters")
    );
}

#[test]
fn too_many_query_pairs_are_refused_without_looking_further() {
    let uri = format!(
        "/v1/orders?{}",
        "tag=a&".repeat(super::super::MAX_QUERY_PAIRS + 1)
    );
    assert_eq!(
        list(&uri),
        one("/query", "has more parameters than allowed")
    );
}

#[test]
fn a_query_value_that_is_not_utf8_is_refused() {
    assert_eq!(
        list("/v1/orders?status=%FF"),
        one("/query/status", "must be UTF-8 text")
    );
}

/// A template that uses one name twice (as `@readme/oas-examples`' parameters-common does):
/// only one value is typed, so a different text at the other place would reach the upstream
/// unchecked.
#[test]
fn a_path_parameter_used_twice_must_carry_the_same_value_at_both_places() {
    let spec = compile_text(
        r#"
openapi: 3.0.3
info: { title: t, version: "1" }
paths:
  /anything/{id}/{action}/{id}:
    parameters:
      - { in: path, name: id, required: true, schema: { type: integer } }
      - { in: path, name: action, required: true, schema: { type: string, enum: [lists] } }
    get:
      responses: { "200": { description: ok } }
"#,
        &CompileOptions::default(),
    )
    .unwrap();
    assert_eq!(head(&spec, Method::GET, "/anything/7/lists/7", &[]), vec![]);
    assert_eq!(
        head(&spec, Method::GET, "/anything/7/lists/1%20OR%201=1", &[]),
        one(
            "/path/id",
            "must have the same value at each place in the path"
        )
    );
    assert_eq!(
        head(&spec, Method::GET, "/anything/x/lists/x", &[]),
        one("/path/id", "must be an integer")
    );
}
