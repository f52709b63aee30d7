use super::*;

fn h2_request(name: &str, value: &str) -> http::request::Parts {
    let (mut parts, ()) = http::Request::builder()
        .uri("https://api.example/a")
        .version(http::Version::HTTP_2)
        .body(())
        .unwrap_or_default()
        .into_parts();
    if let (Ok(name), Ok(value)) = (
        http::HeaderName::from_bytes(name.as_bytes()),
        http::HeaderValue::from_str(value),
    ) {
        parts.headers.insert(name, value);
    }
    parts
}

#[test]
fn h2_values_with_outer_whitespace_are_malformed() {
    let limits = LimitsConfig::default();
    for value in [" x", "x ", "\tx", "x\t"] {
        let got = check_request(&h2_request("x-a", value), &limits, &[]);
        assert!(
            matches!(got, Err(GatewayError::MalformedRequest(_))),
            "{value:?}"
        );
    }
    assert!(check_request(&h2_request("x-a", "a b"), &limits, &[]).is_ok());
    assert!(check_request(&h2_request("x-a", ""), &limits, &[]).is_ok());
}

#[test]
fn h2_header_section_over_the_limit_is_431() {
    let limits = LimitsConfig::default();
    let big = "b".repeat(limits.max_header_bytes);
    let got = check_request(&h2_request("x-big", &big), &limits, &[]);
    assert!(matches!(got, Err(GatewayError::HeadersTooLarge(_))));
    assert!(h2_header_list_ceiling(&limits) as usize > 2 * limits.max_header_bytes);
}
