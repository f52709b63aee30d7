//! Configuration: every error at once with its path and line, the generated schema, and reloads
//! that swap atomically or keep the running config.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::Duration;

use http::StatusCode;
use rampart::config::{ConfigSource, lint, parse};
use rampart_testkit::{RecordingUpstream, TestGateway};

use rampart_testkit::config_errors as errors;

const LISTENER: &str = "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\nplaintext = true\n";

#[test]
fn every_structural_error_is_reported_at_once_with_path_and_line() {
    let text = format!(
        "{LISTENER}
[limits]
max_body_bytes = \"big\"
max_headrs = 10

[[upstreams]]
name = \"api\"
targets = [\"http://127.0.0.1:1\"]
timeout = 5

[[routes]]
name = \"r\"
path = \"/x\"
"
    );
    let found = errors(&text);
    let summary: Vec<(usize, &str, &str)> = found
        .iter()
        .map(|e| (e.line, e.path.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(found.len(), 4, "{summary:#?}");
    assert_eq!(
        (found[0].line, found[0].path.as_str()),
        (7, "limits.max_body_bytes"),
        "{summary:#?}"
    );
    assert!(found[0].message.contains("integer"), "{summary:#?}");
    assert_eq!(
        (
            found[1].line,
            found[1].path.as_str(),
            found[1].message.as_str()
        ),
        (8, "limits.max_headrs", "unknown key `max_headrs`")
    );
    assert_eq!(
        (found[2].line, found[2].path.as_str()),
        (13, "upstreams[0].timeout")
    );
    assert_eq!(found[3].path, "routes[0]");
    assert!(found[3].message.contains("upstream"), "{summary:#?}");
}

#[test]
fn every_semantic_error_is_reported_with_path_and_line() {
    let text = "[[listeners]]
name = \"l\"
bind = \"0.0.0.0:8443\"

[[upstreams]]
name = \"api\"
targets = [\"http://127.0.0.1:1/v1\"]

[[routes]]
name = \"r\"
path = \"orders\"
methods = [\"get\"]
upstream = \"nope\"
public = true
cors = { allow_origins = [\"*\"], allow_credentials = true }
";
    let found = errors(text);
    let summary: Vec<(usize, &str, &str)> = found
        .iter()
        .map(|e| (e.line, e.path.as_str(), e.message.as_str()))
        .collect();
    let expect = [
        (1, "listeners[0]"),
        (7, "upstreams[0].targets[0]"),
        (11, "routes[0].path"),
        (12, "routes[0].methods[0]"),
        (13, "routes[0].upstream"),
        (15, "routes[0].cors.allow_origins[0]"),
    ];
    assert_eq!(found.len(), expect.len(), "{summary:#?}");
    for ((line, path), got) in expect.iter().zip(&found) {
        assert_eq!(
            (*line, *path),
            (got.line, got.path.as_str()),
            "{summary:#?}"
        );
    }
    assert!(found[5].message.contains("allow_credentials"));
}

#[test]
fn syntax_errors_carry_their_line() {
    let found = errors("[[listeners]]\nname = \"l\"\nbind = \n");
    assert_eq!(found[0].line, 3);
}

#[test]
fn a_listener_without_tls_must_say_plaintext_explicitly() {
    let found = errors("[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n");
    assert!(
        found[0].message.contains("plaintext = true"),
        "{:?}",
        found[0]
    );
}

#[test]
fn the_schema_is_generated_from_the_types_and_refuses_unknown_keys() {
    let schema = rampart::config::json_schema();
    assert_eq!(schema["additionalProperties"], false);
    assert!(
        schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "listeners")
    );
    let text = serde_json::to_string(schema).unwrap();
    assert!(text.contains("max_body_bytes") && text.contains("allow_origins"));
    assert!(!text.contains("\"null\""), "TOML has no null");
}

/// A contract with one of each weakness the contract lint rules look for.
const WEAK_CONTRACT: &str = "openapi: 3.1.0
info: { title: weak, version: '1' }
paths:
  /things:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              additionalProperties: true
              properties:
                name: { type: string }
                code: { type: string, maxLength: 8, pattern: '^(?!admin)[a-z]+$' }
                tags: { type: array, items: { type: string, maxLength: 8 } }
                count: { type: integer }
      responses:
        '200': { description: ok }
";

#[test]
fn lint_flags_weak_settings_with_stable_rule_ids() {
    let text = "[[listeners]]
name = \"l\"
bind = \"0.0.0.0:8080\"
plaintext = true

[admin]
bind = \"0.0.0.0:9901\"

[proxy]
trusted_proxies = [\"0.0.0.0/0\"]
refuse_methods = [\"CONNECT\"]

[[auth.jwt]]
name = \"idp\"
issuer = \"http://idp\"
audiences = [\"a\"]
algorithms = [\"ES256\"]
jwks_url = \"http://idp/jwks\"
allow_insecure_http = true

[[upstreams]]
name = \"api\"
targets = [\"http://10.1.2.3:80\"]
tls = { verify = false }

[[routes]]
name = \"r\"
path_prefix = \"/\"
upstream = \"api\"
public = true
mask_upstream_errors = false
max_body_bytes = 1073741824
security_headers = { x_frame_options = \"\", strict_transport_security = \"max-age=60\" }
cors = { allow_origins = [\"*\", \"http://app.example.com\"] }
openapi = { spec_file = \"weak.yaml\" }

[[routes]]
name = \"ops\"
path_prefix = \"/ops\"
upstream = \"api\"
auth = { basic = true }

[[auth.basic.users]]
username = \"ops\"
password_hash = \"HASH\"
";
    let hash = rampart::policy::authn::basic::hash_password("pw").unwrap();
    let text = text.replace("HASH", &hash);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("weak.yaml"), WEAK_CONTRACT).unwrap();
    let config = parse(&ConfigSource::from_text("t.toml", &text, dir.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rules: Vec<&str> = lint::lint(&config).iter().map(|f| f.rule).collect();
    rules.sort_unstable();
    rules.dedup();
    let mut all: Vec<&str> = lint::RULES.iter().map(|(id, _)| *id).collect();
    all.sort_unstable();
    assert_eq!(rules, all, "every rule fires on this config");
}

fn routes(upstream: &RecordingUpstream, path: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"{path}\"\nupstream = \"api\"\npublic = true\n",
        upstream.url()
    )
}

/// Rewrites the routes part of the gateway's config file, keeping its header.
fn rewrite(gw: &TestGateway, new_tail: &str) {
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let head = text.split("[[upstreams]]").next().unwrap().to_owned();
    std::fs::write(&gw.config_path, format!("{head}{new_tail}")).unwrap();
}

async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..60 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn file_change_reloads_and_an_invalid_file_keeps_the_running_config() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .watch_config()
        .config(&routes(&upstream, "/old"))
        .start()
        .await;
    assert_eq!(gw.get("/old").await.status, StatusCode::OK);
    rewrite(&gw, &routes(&upstream, "/new"));
    assert!(
        eventually(async || gw.get("/new").await.status == StatusCode::OK).await,
        "the new route is served"
    );
    assert_eq!(gw.get("/old").await.status, StatusCode::NOT_FOUND);
    rewrite(
        &gw,
        "[[upstreams]]\nname = \"api\"\ntargets = []\nbogus = 1\n",
    );
    assert!(
        eventually(async || gw
            .metrics()
            .await
            .contains(r#"rampart_config_reloads_total{result="error"} 1"#))
        .await,
        "the failed reload is counted"
    );
    assert_eq!(
        gw.get("/new").await.status,
        StatusCode::OK,
        "the last good config still serves"
    );
}

#[tokio::test]
async fn reload_swaps_in_a_complete_new_config() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&routes(&upstream, "/a"))
        .start()
        .await;
    rewrite(&gw, &routes(&upstream, "/b"));
    rampart::run::reload(&gw.gateway, &gw.config_path).unwrap();
    assert_eq!(gw.get("/b").await.status, StatusCode::OK);
    assert_eq!(gw.get("/a").await.status, StatusCode::NOT_FOUND);
    rewrite(
        &gw,
        "[[upstreams]]\nname = \"api\"\ntargets = [\"ftp://x\"]\n",
    );
    let err = rampart::run::reload(&gw.gateway, &gw.config_path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("upstreams[0].targets[0]"), "{err}");
    assert_eq!(gw.get("/b").await.status, StatusCode::OK);
}
