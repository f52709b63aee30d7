use http::{HeaderValue, Method, Request};

use super::*;
use crate::context::{ConnInfo, RequestCtx, RequestId};

fn config(origins: &[&str], credentials: bool) -> CorsConfig {
    CorsConfig {
        allow_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        allow_methods: None,
        allow_headers: vec!["content-type".into()],
        expose_headers: vec![],
        allow_credentials: credentials,
        max_age_s: 600,
    }
}

fn issues(c: &CorsConfig) -> Vec<Issue> {
    let mut out = Vec::new();
    validate(c, "/cors", &mut out);
    out
}

fn ctx() -> RequestCtx {
    let conn = ConnInfo::new("t".into(), ([127, 0, 0, 1], 1).into(), true);
    RequestCtx::new(conn, RequestId::generate(), conn_ip())
}

fn conn_ip() -> std::net::IpAddr {
    [127, 0, 0, 1].into()
}

fn preflight(origin: &str, method: &str) -> http::request::Parts {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/x")
        .header("origin", origin)
        .header("access-control-request-method", method)
        .body(())
        .unwrap_or_default()
        .into_parts()
        .0
}

async fn decide(cors: &Cors, origin: &str) -> Result<Flow, GatewayError> {
    let mut parts = preflight(origin, "GET");
    let mut cx = ctx();
    cors.on_request(&mut parts, &mut cx).await
}

#[test]
fn wildcard_with_credentials_is_refused_at_load() {
    let found = issues(&config(&["*"], true));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].pointer, "/cors/allow_origins/0");
}

#[test]
fn null_and_malformed_origins_are_refused_at_load() {
    let found = issues(&config(
        &[
            "null",
            "https://a.com/path",
            "HTTPS://A.COM",
            "https://*.com",
            "https://a*.b.com",
        ],
        false,
    ));
    assert_eq!(found.len(), 5, "{found:?}");
}

#[test]
fn wildcard_subdomain_is_anchored_on_a_label_boundary() {
    let rule = OriginRule::parse("https://*.example.com").unwrap_or(OriginRule::Any);
    let matches = |o: &str| Origin::parse(o).is_some_and(|o| rule.matches(&o));
    assert!(matches("https://a.example.com"));
    assert!(matches("https://a.b.example.com"));
    assert!(matches("https://A.Example.com:443"));
    assert!(!matches("https://example.com"));
    assert!(!matches("https://example.com.evil.net"));
    assert!(!matches("https://evilexample.com"));
    assert!(!matches("http://a.example.com"));
    assert!(!matches("https://a.example.com:8443"));
    assert!(!matches("https://x@a.example.com"));
}

#[test]
fn any_origin_never_matches_null() {
    assert!(Origin::parse("null").is_none());
    let cors = Cors::new(&config(&["*"], false), &[Method::GET]);
    assert!(
        cors.allowed_origin(&HeaderValue::from_static("null"))
            .is_none()
    );
}

#[test]
fn allowed_origin_in_another_case_is_echoed_in_canonical_form() {
    let cors = Cors::new(
        &config(
            &["https://app.example.com:443", "http://x.example:8080"],
            true,
        ),
        &[Method::GET],
    );
    for (sent, echoed) in [
        ("HTTPS://APP.EXAMPLE.COM", "https://app.example.com"),
        ("https://App.Example.com:443", "https://app.example.com"),
        ("HTTP://X.Example:8080", "http://x.example:8080"),
    ] {
        let got = cors.allowed_origin(&HeaderValue::from_static(sent));
        assert_eq!(got, Some(HeaderValue::from_static(echoed)), "{sent}");
    }
    for refused in [
        "http://x.example",
        "https://app.example.com:8443",
        "https://app.example.com.",
    ] {
        assert_eq!(
            cors.allowed_origin(&HeaderValue::from_static(refused)),
            None,
            "{refused}"
        );
    }
}

#[tokio::test]
async fn allowed_preflight_is_answered_with_cors_headers() {
    let cors = Cors::new(&config(&["https://app.example.com"], true), &[Method::GET]);
    match decide(&cors, "https://app.example.com").await {
        Ok(Flow::Respond(rsp)) => {
            assert_eq!(rsp.status(), http::StatusCode::NO_CONTENT);
            let h = rsp.headers();
            assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
            assert_eq!(h["access-control-allow-credentials"], "true");
            assert_eq!(h["access-control-allow-methods"], "GET");
        }
        _ => panic!("expected a preflight answer"),
    }
}

#[tokio::test]
async fn reflected_origin_attack_gets_no_cors_headers() {
    let cors = Cors::new(&config(&["https://app.example.com"], true), &[Method::GET]);
    assert!(matches!(
        decide(&cors, "https://evil.example").await,
        Err(GatewayError::CorsRejected(_))
    ));
    let (mut rsp, _) = http::Response::new(()).into_parts();
    let mut cx = ctx();
    cx.origin = Some(HeaderValue::from_static("https://evil.example"));
    cors.on_response(&mut rsp, &cx);
    assert!(!rsp.headers.contains_key("access-control-allow-origin"));
    assert_eq!(rsp.headers["vary"], "Origin");
}

#[tokio::test]
async fn preflight_for_a_method_not_allowed_is_refused() {
    let cors = Cors::new(&config(&["https://app.example.com"], false), &[Method::GET]);
    let mut parts = preflight("https://app.example.com", "DELETE");
    let mut cx = ctx();
    assert!(matches!(
        cors.on_request(&mut parts, &mut cx).await,
        Err(GatewayError::CorsRejected("method not allowed"))
    ));
}

#[tokio::test]
async fn preflight_asking_for_an_unlisted_header_is_refused() {
    let cors = Cors::new(&config(&["https://app.example.com"], false), &[Method::GET]);
    let mut parts = preflight("https://app.example.com", "GET");
    parts.headers.insert(
        "access-control-request-headers",
        HeaderValue::from_static("content-type, x-admin"),
    );
    let mut cx = ctx();
    assert!(matches!(
        cors.on_request(&mut parts, &mut cx).await,
        Err(GatewayError::CorsRejected(_))
    ));
}
