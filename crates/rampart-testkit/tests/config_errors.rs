//! Config errors for values serde would parse (addresses, networks), numbers past their documented
//! maxima, and route path syntax: every one reported at once, with its path and line, and never a
//! panic at start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::path::Path;

use rampart::config::{Located, json_schema};

use rampart_testkit::config_errors as errors;

fn summary(found: &[Located]) -> Vec<(usize, String, String)> {
    found
        .iter()
        .map(|e| (e.line, e.path.clone(), e.message.clone()))
        .collect()
}

#[test]
fn bad_cidr_bad_bind_and_unknown_key_are_all_reported_with_paths_and_lines() {
    let text = "[[listeners]]
name = \"l\"
bind = \"127.0.0.1\"
plaintext = true

[admin]
bind = \"localhost:99999\"

[proxy]
trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]
trusted_proxys = []
";
    let found = errors(text);
    let got = summary(&found);
    let expected = [
        (
            3,
            "listeners[0].bind",
            "`127.0.0.1` is not an IP address and port",
        ),
        (
            7,
            "admin.bind",
            "`localhost:99999` is not an IP address and port",
        ),
        (
            10,
            "proxy.trusted_proxies[1]",
            "`10.0.0.0/33` is not an IP network",
        ),
        (11, "proxy.trusted_proxys", "unknown key `trusted_proxys`"),
    ];
    assert_eq!(found.len(), expected.len(), "{got:#?}");
    for ((line, path, message), e) in expected.iter().zip(&found) {
        assert_eq!((e.line, e.path.as_str()), (*line, *path), "{got:#?}");
        assert!(e.message.starts_with(message), "{got:#?}");
    }
}

/// Every integer in the schema, as a JSON pointer into the schema, that has no `maximum`.
fn unbounded_integers(schema: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    match schema {
        serde_json::Value::Object(map) => {
            let types = map.get("type").map(|t| t.to_string()).unwrap_or_default();
            if types.contains("integer") && !map.contains_key("maximum") {
                out.push(at.to_owned());
            }
            for (key, value) in map {
                unbounded_integers(value, &format!("{at}/{key}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                unbounded_integers(value, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_duration_size_and_count_has_a_documented_maximum() {
    let mut unbounded = Vec::new();
    unbounded_integers(json_schema(), "", &mut unbounded);
    assert!(unbounded.is_empty(), "no maximum: {unbounded:#?}");
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md"))
            .unwrap();
    assert!(
        docs.contains("## Maximum values"),
        "docs/config.md lists the maxima"
    );
}

const HUGE: &str = "4000000000000000";

/// A config where every duration, size and count is `HUGE`.
fn huge_config() -> String {
    "[[listeners]]
name = \"l\"
bind = \"127.0.0.1:0\"
plaintext = true

[server]
drain_timeout_ms = HUGE

[limits]
max_header_bytes = HUGE
max_headers = HUGE
max_uri_bytes = HUGE
max_body_bytes = HUGE
header_read_timeout_ms = HUGE
idle_timeout_ms = HUGE
max_concurrent_streams = HUGE

[brute_force]
max_failures = HUGE
window_s = HUGE
block_s = HUGE

[audit]
max_file_bytes = HUGE
max_files = HUGE
queue_capacity = HUGE

[store]
timeout_ms = HUGE

[api_keys]
hmac_secret = { env = \"X\" }
rotation_grace_s = HUGE
outage_grace_s = HUGE

[rate_limit]
max_tracked_keys = HUGE
expected_instances = HUGE
max_queued = HUGE

[auth.dpop]
max_age_s = HUGE
leeway_s = HUGE
nonce_lifetime_s = HUGE
replay_cache_entries = HUGE
max_proof_bytes = HUGE

[[auth.jwt]]
name = \"j\"
issuer = \"https://idp.example\"
audiences = [\"a\"]
algorithms = [\"ES256\"]
keys_file = \"k.json\"
leeway_s = HUGE
max_lifetime_s = HUGE
max_token_bytes = HUGE
jwks_cache = { min_ttl_s = HUGE, max_ttl_s = HUGE, refetch_cooldown_s = HUGE }

[[auth.introspection]]
name = \"i\"
endpoint = \"https://idp.example/introspect\"
client_id = \"c\"
client_secret = { env = \"Y\" }
max_cache_ttl_s = HUGE
timeout_ms = HUGE

[[upstreams]]
name = \"api\"
targets = [\"http://127.0.0.1:1\"]
connect_timeout_ms = HUGE
request_timeout_ms = HUGE
idle_timeout_ms = HUGE
max_idle_per_target = HUGE
health = { passive = { eject_after_failures = HUGE, eject_ms = HUGE }, active = { path = \"/h\", interval_ms = HUGE, timeout_ms = HUGE, unhealthy_threshold = HUGE, healthy_threshold = HUGE } }

[[routes]]
name = \"r\"
path = \"/x\"
upstream = \"api\"
public = true
max_body_bytes = HUGE
max_in_flight = HUGE
cors = { allow_origins = [\"https://a.example\"], max_age_s = HUGE }
rate_limits = [{ name = \"l\", key = \"ip\", rate = HUGE, per = \"second\", burst = HUGE, max_delay_ms = HUGE }]
quotas = [{ name = \"q\", key = \"ip\", limit = HUGE, per = \"day\" }]
"
    .replace("HUGE", HUGE)
}

#[test]
fn huge_durations_sizes_and_counts_are_config_errors_with_paths_never_a_panic() {
    let text = huge_config();
    let fields = text.matches(HUGE).count();
    let found = std::panic::catch_unwind(|| errors(&text)).expect("validation panicked");
    let got = summary(&found);
    for e in &found {
        assert!(
            e.message.contains("maximum") && !e.path.is_empty() && e.line > 1,
            "{got:#?}"
        );
    }
    assert_eq!(found.len(), fields, "one error per huge field: {got:#?}");
    let brute_force: Vec<&str> = found
        .iter()
        .filter(|e| e.path.starts_with("brute_force."))
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        brute_force,
        [
            "brute_force.max_failures",
            "brute_force.window_s",
            "brute_force.block_s"
        ]
    );
}

#[test]
fn malformed_route_templates_are_named_not_reported_as_conflicts() {
    let text = "[[listeners]]
name = \"l\"
bind = \"127.0.0.1:0\"
plaintext = true

[[upstreams]]
name = \"api\"
targets = [\"http://127.0.0.1:1\"]

[[routes]]
name = \"open\"
path = \"/v1/{id\"
upstream = \"api\"
public = true

[[routes]]
name = \"twice\"
path = \"/v1/{id}/{id}\"
upstream = \"api\"
public = true

[[routes]]
name = \"prefix\"
path_prefix = \"/files/{dir}\"
upstream = \"api\"
public = true

[[routes]]
name = \"space\"
path = \"/v1/a b\"
upstream = \"api\"
public = true
";
    let found = errors(text);
    let got = summary(&found);
    let expected = [
        (12, "routes[0].path", "balanced braces"),
        (18, "routes[1].path", "parameter `id` appears twice"),
        (24, "routes[2].path_prefix", "literal"),
        (30, "routes[3].path", "not allowed"),
    ];
    assert_eq!(found.len(), expected.len(), "{got:#?}");
    for ((line, path, message), e) in expected.iter().zip(&found) {
        assert_eq!((e.line, e.path.as_str()), (*line, *path), "{got:#?}");
        assert!(e.message.contains(message), "{got:#?}");
        assert!(!e.message.contains("conflict"), "{got:#?}");
    }
}

#[test]
fn an_inline_secret_is_never_echoed_in_config_errors() {
    let found = errors(
        "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\nplaintext = true\n\n[api_keys]\nhmac_secret = \"hunter2-written-inline\"\n",
    );
    assert!(!found.is_empty());
    for error in &found {
        assert!(
            !error.message.contains("hunter2"),
            "the secret is echoed: {}",
            error.message
        );
    }
    assert!(
        found.iter().any(|e| e.path == "api_keys.hmac_secret"),
        "{found:?}"
    );
}

#[test]
fn a_refusal_status_other_than_400_or_422_is_a_config_error_at_its_path() {
    let config = |status: u16| {
        format!(
            "[[listeners]]
name = \"l\"
bind = \"127.0.0.1:0\"
plaintext = true

[[upstreams]]
name = \"api\"
targets = [\"http://127.0.0.1:1\"]

[[routes]]
name = \"shop\"
path_prefix = \"/\"
upstream = \"api\"
public = true
openapi = {{ spec_file = \"shop.yaml\", refusal_status = {status} }}
"
        )
    };
    for status in [401, 407, 413, 421] {
        let found = errors(&config(status));
        let got = summary(&found);
        assert_eq!(found.len(), 1, "{status}: {got:#?}");
        assert_eq!(
            found[0].path, "routes[0].openapi.refusal_status",
            "{got:#?}"
        );
        assert!(found[0].message.contains("400 or 422"), "{got:#?}");
        assert_eq!(found[0].line, 15, "{got:#?}");
    }
    for status in [400, 422] {
        let source = rampart::config::ConfigSource::from_text(
            "test.toml",
            &config(status),
            Path::new("/tmp"),
        );
        let refused = rampart::config::parse(&source)
            .err()
            .map(|e| e.errors)
            .unwrap_or_default();
        assert!(
            refused.iter().all(|e| !e.path.contains("refusal_status")),
            "{status}: {:#?}",
            summary(&refused)
        );
    }
}

#[test]
fn every_acme_mistake_is_reported_at_its_path_and_line() {
    let text = "[[listeners]]
name = \"both\"
bind = \"127.0.0.1:8443\"
tls = { cert_file = \"c.pem\", key_file = \"k.pem\", acme_domains = [\"api.example.com\"] }

[[listeners]]
name = \"wild\"
bind = \"127.0.0.1:8444\"
tls = { acme_domains = [\"*.example.com\", \"192.0.2.1\"] }

[[listeners]]
name = \"half\"
bind = \"127.0.0.1:8445\"
tls = { cert_file = \"c.pem\" }

[acme]
directory = \"http://ca.example/dir\"
agree_terms = false
contact = [\"ops@example.com\"]
";
    let found = errors(text);
    let got = summary(&found);
    let expected = [
        (
            4,
            "listeners[0].tls.acme_domains",
            "give either `acme_domains` or `cert_file` and `key_file`",
        ),
        (
            9,
            "listeners[1].tls.acme_domains[0]",
            "wildcard names need the DNS-01 challenge",
        ),
        (
            9,
            "listeners[1].tls.acme_domains[1]",
            "an IP address, not a DNS name",
        ),
        (
            14,
            "listeners[2].tls.key_file",
            "`cert_file` needs its `key_file`",
        ),
        (18, "acme.agree_terms", "ACME CAs require agreeing"),
        (17, "acme.directory", "must be an https:// URL"),
        (19, "acme.contact[0]", "must be a mailto: URL"),
    ];
    for (line, path, message) in expected {
        assert!(
            found
                .iter()
                .any(|e| e.line == line && e.path == path && e.message.starts_with(message)),
            "{line} {path} {message}: {got:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{got:#?}");

    let clashes = errors(
        "[[listeners]]\nname = \"a\"\nbind = \"127.0.0.1:8443\"\ntls = { acme_domains = [\"api.example.com\", \"www.example.com\"], client_auth = { ca_file = \"ca.pem\" } }\n\n[[listeners]]\nname = \"b\"\nbind = \"127.0.0.1:8444\"\ntls = { acme_domains = [\"api.example.com\"] }\n\n[acme]\nagree_terms = true\n",
    );
    let got = summary(&clashes);
    assert!(
        got.iter().any(|(line, path, message)| *line == 9
            && path == "listeners[1].tls.acme_domains"
            && message.contains("`api.example.com` is in another listener")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|(line, path, _)| *line == 4 && path == "listeners[0].tls.client_auth.required"),
        "{got:#?}"
    );
    let http01 = errors(
        "[[listeners]]\nname = \"a\"\nbind = \"127.0.0.1:8443\"\ntls = { acme_domains = [\"api.example.com\"] }\n\n[acme]\nagree_terms = true\nchallenge = \"http-01\"\n",
    );
    assert_eq!(
        summary(&http01)[0].1,
        "acme.challenge",
        "{:#?}",
        summary(&http01)
    );

    let without_acme = errors(
        "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:8443\"\ntls = { acme_domains = [\"api.example.com\"] }\n",
    );
    assert_eq!(summary(&without_acme)[0].1, "listeners[0].tls.acme_domains");
    assert!(without_acme[0].message.contains("[acme] section"));
}
