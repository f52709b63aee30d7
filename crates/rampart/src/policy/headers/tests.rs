use super::*;

#[test]
fn defaults_are_strict() {
    let h = SecurityHeaders::new(&SecurityHeadersConfig::default(), None);
    let map = h.to_map(true);
    assert_eq!(map[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(map[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(
        map[header::CONTENT_SECURITY_POLICY],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(map[header::REFERRER_POLICY], "no-referrer");
    assert!(
        map[header::STRICT_TRANSPORT_SECURITY]
            .to_str()
            .is_ok_and(|v| v.starts_with("max-age="))
    );
}

#[test]
fn hsts_is_never_sent_over_plaintext() {
    let h = SecurityHeaders::new(&SecurityHeadersConfig::default(), None);
    assert!(
        !h.to_map(false)
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    );
}

#[test]
fn route_override_wins_and_empty_removes() {
    let global = SecurityHeadersConfig {
        x_frame_options: Some("SAMEORIGIN".into()),
        ..Default::default()
    };
    let route = SecurityHeadersConfig {
        content_security_policy: Some(String::new()),
        ..Default::default()
    };
    let map = SecurityHeaders::new(&global, Some(&route)).to_map(false);
    assert_eq!(map[header::X_FRAME_OPTIONS], "SAMEORIGIN");
    assert!(!map.contains_key(header::CONTENT_SECURITY_POLICY));
}

#[test]
fn upstream_values_are_replaced() {
    let mut upstream = HeaderMap::new();
    upstream.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("ALLOWALL"),
    );
    SecurityHeaders::new(&SecurityHeadersConfig::default(), None).apply(&mut upstream, false);
    assert_eq!(upstream[header::X_FRAME_OPTIONS], "DENY");
}
