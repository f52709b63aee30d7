//! Smoke tests of the built `rampart` binary: `check`, `config schema`, `run` and `demo`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use http::StatusCode;
use rampart_testkit::{Client, RecordingUpstream};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_rampart");

fn check(config: &str, strict: bool) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["check", "--config"]).arg(&path);
    if strict {
        cmd.arg("--strict");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const WEAK: &str = "[[listeners]]
name = \"edge\"
bind = \"0.0.0.0:8080\"
plaintext = true

[[upstreams]]
name = \"api\"
targets = [\"http://127.0.0.1:9000\"]

[[routes]]
name = \"all\"
path_prefix = \"/\"
upstream = \"api\"
public = true
";

#[test]
fn check_passes_a_valid_config_and_lists_lint_warnings_with_rule_ids_and_lines() {
    let (code, stdout, _) = check(WEAK, false);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("warning[plaintext-listener-exposed]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("test.toml:4:"),
        "the line of `plaintext = true`: {stdout}"
    );
    assert!(
        stdout.contains("ok: 1 listener(s), 1 upstream(s), 1 route(s); 1 warning(s)"),
        "{stdout}"
    );
}

#[test]
fn check_strict_fails_on_lint_warnings() {
    let (code, _, _) = check(WEAK, true);
    assert_eq!(code, 2);
    let clean = WEAK.replace("0.0.0.0:8080", "127.0.0.1:8080");
    let (code, stdout, _) = check(&clean, true);
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn check_reports_every_error_with_path_and_line() {
    let broken = WEAK
        .replace("plaintext = true", "plaintext = \"yes\"")
        .replace(
            "upstream = \"api\"",
            "upstream = \"apj\"\nmethod = [\"GET\"]",
        );
    let (code, _, stderr) = check(&broken, false);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("test.toml:4:1: listeners[0].plaintext:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("test.toml:14:1: routes[0].method: unknown key `method`"),
        "{stderr}"
    );
    assert!(stderr.contains("2 error(s)"), "{stderr}");
}

#[test]
fn config_schema_prints_the_json_schema() {
    let out = std::process::Command::new(BIN)
        .args(["config", "schema"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "Config");
    assert!(schema["properties"]["routes"].is_object());
}

/// Reads lines from a child's stream until one contains `needle`.
async fn wait_for_line(reader: &mut (impl AsyncBufReadExt + Unpin), needle: &str) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap() == 0 {
                return None;
            }
            seen.push_str(&line);
            if line.contains(needle) {
                return Some(line.clone());
            }
        }
    })
    .await;
    match found {
        Ok(Some(line)) => line,
        _ => panic!("never saw {needle:?}; output so far:\n{seen}"),
    }
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-s", name, &pid])
            .status()
            .unwrap()
            .success()
    );
}

fn run_config(dir: &Path, upstream: &RecordingUpstream, prefix: &str) -> String {
    format!(
        "[[listeners]]\nname = \"local\"\nbind = \"127.0.0.1:0\"\nplaintext = true\n\n[admin]\nenabled = false\n\n[audit]\nfile = \"{}\"\n\n[server]\nwatch_config = false\n\n[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"{prefix}\"\nupstream = \"api\"\npublic = true\n",
        dir.join("audit.log").display(),
        upstream.url()
    )
}

#[tokio::test]
async fn run_serves_reloads_on_sighup_and_drains_on_sigterm() {
    let upstream = RecordingUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rampart.toml");
    std::fs::write(&config, run_config(dir.path(), &upstream, "/one")).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(child.stderr.take().unwrap());
    let line = wait_for_line(&mut logs, "\"listening\"").await;
    let log: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = log["fields"]["addr"].as_str().unwrap().to_owned();
    let client = Client::new(&format!("http://{addr}"), None, false);
    assert_eq!(client.get("/one").await.status, StatusCode::OK);

    std::fs::write(&config, run_config(dir.path(), &upstream, "/two")).unwrap();
    signal(&child, "HUP");
    wait_for_line(&mut logs, "configuration reloaded").await;
    assert_eq!(client.get("/two").await.status, StatusCode::OK);
    assert_eq!(client.get("/one").await.status, StatusCode::NOT_FOUND);

    signal(&child, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let audit = rampart_testkit::read_audit(&dir.path().join("audit.log"));
    assert_eq!(
        audit.len(),
        3,
        "every request served is in the audit log after shutdown"
    );
}

/// The memory settings of a long-running gateway (src/allocator.rs): without them, 10,000 parked
/// connections held from 39 to 118 MiB, growing by itself (docs/benchmarks.md, "Issue 10, tenth
/// round").
#[cfg(target_os = "linux")]
#[tokio::test]
async fn run_keeps_huge_pages_off_and_a_thread_handing_freed_memory_back() {
    let upstream = RecordingUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rampart.toml");
    std::fs::write(&config, run_config(dir.path(), &upstream, "/one")).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(child.stderr.take().unwrap());
    wait_for_line(&mut logs, "\"listening\"").await;
    let pid = child.id().unwrap();

    // `THP_enabled` is in the status of kernels from 5.0; an older kernel has nothing to show.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    if let Some(thp) = status.lines().find(|line| line.starts_with("THP_enabled:")) {
        assert!(thp.split_whitespace().eq(["THP_enabled:", "0"]), "{thp}");
    }
    // Threads may come and go while they are listed (tokio's blocking pool).
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect();
    if cfg!(feature = "mimalloc") {
        assert!(
            threads.iter().any(|name| name == "rampart-memory"),
            "{threads:?}"
        );
    }
}

#[tokio::test]
async fn run_refuses_an_invalid_config_with_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[[listeners]]\nname = \"x\"\nbind = \"nope\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:3:"), "{stderr}");
}

#[tokio::test]
async fn demo_runs_with_no_setup_and_its_printed_calls_behave() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["demo", "--port", "0", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let first = wait_for_line(&mut out, "Rampart demo: gateway https://localhost:").await;
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap()
        .to_owned();
    let export = wait_for_line(&mut out, "export TOKEN=").await;
    let token = export.trim().trim_start_matches("export TOKEN=").to_owned();
    let export = wait_for_line(&mut out, "export KEY=").await;
    let api_key = export.trim().trim_start_matches("export KEY=").to_owned();
    wait_for_line(&mut out, "Ctrl-C stops the demo").await;
    let ca = std::fs::read_to_string(dir.path().join("cert.pem")).unwrap();
    let client = Client::new(&url, Some(&ca), true);
    let req = client
        .request(http::Method::GET, "/api/orders/42")
        .header("authorization", format!("Bearer {token}"))
        .body(Default::default())
        .unwrap();
    let ok = client.send(req).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json()["id"], 42);
    let with_key = client
        .request(http::Method::GET, "/api/orders/42")
        .header("x-api-key", api_key)
        .body(Default::default())
        .unwrap();
    assert_eq!(client.send(with_key).await.status, StatusCode::OK);
    let req = client
        .request(http::Method::GET, "/api/reports")
        .header("authorization", format!("Bearer {token}"))
        .body(Default::default())
        .unwrap();
    assert_eq!(
        client.send(req).await.status,
        StatusCode::FORBIDDEN,
        "the demo token lacks reports:read"
    );
    let unauthenticated = client.get("/api/orders/42").await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    assert_eq!(client.get("/admin").await.status, StatusCode::NOT_FOUND);
    let masked = client.get("/api/crash").await;
    assert_eq!(masked.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!masked.text().contains("Traceback"));
    for _ in 0..3 {
        assert_eq!(client.get("/api/status").await.status, StatusCode::OK);
    }
    let limited = client.get("/api/status").await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the demo's burst"
    );
    assert!(limited.header("retry-after").is_some());
    assert!(limited.header("ratelimit").is_some());

    signal(&child, "INT");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert!(
        std::fs::read_to_string(dir.path().join("audit.log"))
            .unwrap()
            .lines()
            .count()
            >= 3
    );
}

/// A running `rampart demo` with its request log on, and what its banner printed.
struct Demo {
    child: Child,
    /// Kept open: the demo prints a last line when it stops.
    _out: BufReader<tokio::process::ChildStdout>,
    dir: tempfile::TempDir,
    client: Client,
    token: String,
    banner: String,
}

impl Demo {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .args(["demo", "--port", "0", "--dir"])
            .arg(dir.path())
            .env("RAMPART_DEMO_REQUEST_LOG", dir.path().join("requests.log"))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(20), async {
            while !banner.contains("Ctrl-C stops the demo") {
                line.clear();
                assert!(out.read_line(&mut line).await.unwrap() > 0, "{banner}");
                banner.push_str(&line);
            }
        })
        .await
        .unwrap();
        let url = banner
            .split_whitespace()
            .find(|w| w.starts_with("https://"))
            .unwrap()
            .to_owned();
        let token = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("export TOKEN="))
            .unwrap()
            .to_owned();
        let ca = std::fs::read_to_string(dir.path().join("cert.pem")).unwrap();
        let client = Client::new(&url, Some(&ca), true);
        Demo {
            child,
            _out: out,
            dir,
            client,
            token,
            banner,
        }
    }

    /// The `curl` line printed under the banner line that contains `label`.
    fn curl_after(&self, label: &str) -> &str {
        let mut lines = self.banner.lines();
        lines.find(|l| l.contains(label)).unwrap();
        lines.next().unwrap().trim()
    }

    /// The JSON body (`-d '...'`) of the `curl` line printed under `label`, as the shell passes it.
    fn body_after(&self, label: &str) -> String {
        let line = self.curl_after(label);
        let start = line.find("-d '").unwrap() + 4;
        let end = start + line[start..].find('\'').unwrap();
        line[start..end].to_owned()
    }

    async fn post_order(&self, body: &str) -> rampart_testkit::TestResponse {
        let req = self
            .client
            .request(http::Method::POST, "/api/orders")
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_owned(),
            )))
            .unwrap();
        self.client.send(req).await
    }

    /// Every request the demo API received (its `RAMPART_DEMO_REQUEST_LOG`), health checks aside.
    fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("requests.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["path"] != "/health")
            .collect()
    }

    async fn stop(self) -> Vec<serde_json::Value> {
        let mut child = self.child;
        signal(&child, "INT");
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success());
        rampart_testkit::read_audit(&self.dir.path().join("audit.log"))
    }
}

fn pointers(problem: &serde_json::Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn demo_schema_refusal_line_gets_400_at_the_quantity_and_the_api_sees_nothing() {
    let demo = Demo::start().await;
    let body = demo.body_after("schema refusal");
    assert!(body.contains(r#""quantity":"two""#), "{body}");
    let rsp = demo.post_order(&body).await;
    assert_eq!(rsp.status, StatusCode::BAD_REQUEST, "{}", rsp.text());
    let problem = rsp.json();
    assert_eq!(problem["code"], "validation_failed");
    assert_eq!(pointers(&problem), ["/body/quantity"]);
    assert!(!rsp.text().contains("two"), "no reflected input");
    assert!(demo.received().is_empty(), "{:?}", demo.received());
    demo.stop().await;
}

#[tokio::test]
async fn demo_mass_assignment_line_gets_400_at_the_undeclared_price() {
    let demo = Demo::start().await;
    let body = demo.body_after("mass assignment");
    let rsp = demo.post_order(&body).await;
    assert_eq!(rsp.status, StatusCode::BAD_REQUEST, "{}", rsp.text());
    let problem = rsp.json();
    assert_eq!(pointers(&problem), ["/body/price"]);
    assert_eq!(problem["errors"][0]["reason"], "is not declared");
    assert!(demo.received().is_empty(), "{:?}", demo.received());
    // Without the extra property the same order is placed: the refusal is the property.
    let placed = demo.post_order(&body.replace(r#","price":0"#, "")).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text());
    demo.stop().await;
}

#[tokio::test]
async fn demo_sanitized_field_line_reaches_the_api_without_script_or_handler() {
    let demo = Demo::start().await;
    let body = demo.body_after("sanitized field");
    assert!(
        body.contains("<script>") && body.contains("onerror"),
        "{body}"
    );
    let rsp = demo.post_order(&body).await;
    assert_eq!(rsp.status, StatusCode::CREATED, "{}", rsp.text());
    assert_eq!(rsp.json()["note"], "<b>fragile</b>", "the API's echo");
    let received = demo.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let sent: serde_json::Value =
        serde_json::from_str(received[0]["body"].as_str().unwrap()).unwrap();
    let note = sent["note"].as_str().unwrap();
    for bad in ["<script", "alert", "onerror", "<img"] {
        assert!(!note.contains(bad), "the API received {note}");
    }
    let audit = demo.stop().await;
    assert!(
        audit.iter().any(|r| r["validation"]["sanitized"] == 1),
        "{audit:?}"
    );
}

#[tokio::test]
async fn demo_stripped_response_line_shows_no_internal_fields() {
    let demo = Demo::start().await;
    let line = demo.curl_after("stripped response fields");
    assert!(line.ends_with("/api/orders/42"), "{line}");
    let req = demo
        .client
        .request(http::Method::GET, "/api/orders/42")
        .header("authorization", format!("Bearer {}", demo.token))
        .body(Default::default())
        .unwrap();
    let rsp = demo.client.send(req).await;
    assert_eq!(rsp.status, StatusCode::OK, "{}", rsp.text());
    assert_eq!(
        rsp.json(),
        serde_json::json!({"id": 42, "item": "monitor", "quantity": 2})
    );
    for leaked in ["supplier_id", "internal_cost", "SUP-7731"] {
        assert!(!rsp.text().contains(leaked), "{}", rsp.text());
    }
    let audit = demo.stop().await;
    let record = audit.iter().find(|r| r["status"] == 200).unwrap();
    assert_eq!(
        record["validation"]["stripped"],
        serde_json::json!(["/internal_cost", "/supplier_id"]),
        "the API did send them: {record}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_command_creates_lists_and_revokes_through_the_admin_api() {
    let upstream = RecordingUpstream::start().await;
    let routes = format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\nauth = {{ api_key = true }}\n",
        upstream.url()
    );
    let gw = rampart_testkit::TestGateway::builder()
        .api_keys()
        .admin_token()
        .config(&routes)
        .start()
        .await;
    let admin_url = format!("http://{}", gw.admin);
    let token = gw.admin_token.clone().unwrap();
    let keys = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .arg("keys")
            .args(args)
            .env("RAMPART_ADMIN_URL", &admin_url)
            .env("RAMPART_ADMIN_TOKEN", &token)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| {
        keys(&[
            "create", "--name", "ci", "--owner", "team-a", "--scopes", "a,b",
        ])
    });
    assert!(ok, "{stderr}");
    let created: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["record"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["record"]["scopes"], serde_json::json!(["a", "b"]));
    let client = gw.client();
    let call = |key: String| {
        let client = client.clone();
        async move {
            let req = client
                .request(http::Method::GET, "/x")
                .header("x-api-key", key)
                .body(Default::default())
                .unwrap();
            client.send(req).await.status
        }
    };
    assert_eq!(call(key.clone()).await, StatusCode::OK);
    let (ok, stdout, _) = tokio::task::block_in_place(|| keys(&["list"]));
    assert!(ok && stdout.contains(&id) && !stdout.contains(&key));
    let (ok, _, stderr) = tokio::task::block_in_place(|| keys(&["revoke", &id]));
    assert!(ok, "{stderr}");
    assert_eq!(call(key).await, StatusCode::UNAUTHORIZED);
    let (ok, _, stderr) = tokio::task::block_in_place(|| keys(&["get", "key_missing"]));
    assert!(!ok && stderr.contains("404"), "{stderr}");
}

#[test]
fn admin_token_prints_a_token_and_its_hash() {
    let out = std::process::Command::new(BIN)
        .arg("admin-token")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let token = text.lines().next().unwrap().trim_start_matches("token: ");
    let hash = text.lines().nth(1).unwrap().split('"').nth(1).unwrap();
    use std::fmt::Write;
    let digest = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut digest = digest;
    std::io::Write::write_all(digest.stdin.as_mut().unwrap(), token.as_bytes()).unwrap();
    let out = digest.wait_with_output().unwrap();
    let mut expected = String::new();
    write!(
        expected,
        "{}",
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
    )
    .unwrap();
    assert_eq!(hash, expected);
    assert!(token.len() >= 43);
}

#[test]
fn hash_password_prints_an_argon2id_hash_of_stdin() {
    use std::io::Write;
    let mut child = std::process::Command::new(BIN)
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains("correct horse"));
}

#[test]
fn the_annotated_example_config_passes_check_once_its_certificate_exists() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/rampart.toml");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rampart.toml");
    // The example logs to /var/log/rampart; here, to the temporary directory.
    let text = std::fs::read_to_string(example).unwrap();
    let audit = dir.path().join("audit.log");
    let text = text.replace("/var/log/rampart/audit.log", audit.to_str().unwrap());
    std::fs::write(&config, text).unwrap();
    let check = || {
        std::process::Command::new(BIN)
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    // `check` runs the build that `run` runs: a missing certificate is refused here too.
    let refused = check();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("listeners[0].tls"), "{stderr}");
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    let (cert, key) = rampart::tls::self_signed(&["api.example.com"]).unwrap();
    std::fs::write(dir.path().join("certs/server.pem"), cert).unwrap();
    std::fs::write(dir.path().join("certs/server.key"), key).unwrap();
    let out = check();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok: 2 listener(s), 1 upstream(s), 2 route(s)"),
        "{stdout}"
    );
}

/// The README's fenced `sh` block that contains `needle`, as written.
fn readme_block(needle: &str) -> String {
    let readme = include_str!("../../../README.md");
    readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("\n```").map(|(block, _)| block))
        .find(|block| block.contains(needle))
        .unwrap_or_else(|| panic!("no sh block with {needle:?} in README.md"))
        .to_owned()
}

/// Runs the README's first-config block in a fresh copy of the repository's `examples/` (HOME in a
/// temporary directory, the built `rampart` first on PATH); returns the working directory it made
/// and the block's stdout.
fn run_first_config_setup(root: &Path) -> (std::path::PathBuf, String) {
    let examples = root.join("clone/examples");
    std::fs::create_dir_all(&examples).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/first.toml"),
        examples.join("first.toml"),
    )
    .unwrap();
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let block = readme_block("rampart cert self-signed");
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block])
        .current_dir(root.join("clone"))
        .env("HOME", &home)
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the README block failed:\n{block}\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (home.join("rampart-first"), stdout)
}

#[test]
fn readme_first_config_commands_pass_check() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let (work, stdout) = run_first_config_setup(root.path());
    assert!(
        stdout.contains("ok: 1 listener(s), 1 upstream(s), 2 route(s); 0 warning(s)"),
        "{stdout}"
    );
    let mode = |name: &str| {
        std::fs::metadata(work.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("certs/server.key"), 0o600);
    assert_eq!(mode("api-keys.secret"), 0o600);
    assert_eq!(mode("admin-token.txt"), 0o600);
    let config = std::fs::read_to_string(work.join("first.toml")).unwrap();
    assert!(
        config
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("token_sha256 = \""),
        "the admin token hash ends the config, inside [admin]: {config}"
    );
}

#[test]
fn cert_self_signed_refuses_to_overwrite_without_force() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cert = |extra: &[&str]| {
        std::process::Command::new(BIN)
            .args(["cert", "self-signed", "--out"])
            .arg(dir.path())
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(cert(&["--host", "gw.example.test"]).status.success());
    let key_path = dir.path().join("server.key");
    let first_key = std::fs::read_to_string(&key_path).unwrap();
    assert!(first_key.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(
        std::fs::read_to_string(dir.path().join("server.pem"))
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );

    let refused = cert(&[]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--force"),
        "{refused:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&key_path).unwrap(),
        first_key,
        "a refusal leaves the key as it was"
    );

    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(cert(&["--force"]).status.success());
    assert_ne!(std::fs::read_to_string(&key_path).unwrap(), first_key);
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a replaced key never keeps a wider mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_config_key_from_the_readme_opens_only_its_route() {
    let upstream = RecordingUpstream::start().await;
    let root = tempfile::tempdir().unwrap();
    let (work, _) = tokio::task::block_in_place(|| run_first_config_setup(root.path()));
    // The README's fixed ports, moved to free ones so that tests can run side by side.
    let config_path = work.join("first.toml");
    let config = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace("127.0.0.1:8443", "127.0.0.1:0")
        .replace("127.0.0.1:9901", "127.0.0.1:0")
        .replace("http://127.0.0.1:9000", &upstream.url());
    std::fs::write(&config_path, config).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config", "first.toml"])
        .current_dir(&work)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(child.stderr.take().unwrap());
    let address = |line: &str, field: &str| {
        let log: serde_json::Value = serde_json::from_str(line).unwrap();
        log["fields"][field].as_str().unwrap().to_owned()
    };
    let gateway = address(&wait_for_line(&mut logs, "\"listening\"").await, "addr");
    let admin = address(&wait_for_line(&mut logs, "admin listening").await, "admin");

    let saved = std::fs::read_to_string(work.join("admin-token.txt")).unwrap();
    let token = saved.lines().next().unwrap().trim_start_matches("token: ");
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(BIN)
            .args([
                "keys",
                "create",
                "--name",
                "first",
                "--owner",
                "me",
                "--scopes",
                "orders:read",
            ])
            .env("RAMPART_ADMIN_URL", format!("http://{admin}"))
            .env("RAMPART_ADMIN_TOKEN", token)
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{out:?}");
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["key"].as_str().unwrap().to_owned();

    let ca = std::fs::read_to_string(work.join("certs/server.pem")).unwrap();
    let port = gateway.rsplit(':').next().unwrap();
    let client = Client::new(&format!("https://localhost:{port}"), Some(&ca), true);
    assert_eq!(client.get("/api/status").await.status, StatusCode::OK);
    let without_key = client.get("/api/orders/42").await;
    assert_eq!(without_key.status, StatusCode::UNAUTHORIZED);
    let with_key = client
        .request(http::Method::GET, "/api/orders/42")
        .header("x-api-key", &key)
        .body(Default::default())
        .unwrap();
    assert_eq!(client.send(with_key).await.status, StatusCode::OK);
    let elsewhere = client
        .request(http::Method::GET, "/admin")
        .header("x-api-key", &key)
        .body(Default::default())
        .unwrap();
    assert_eq!(
        client.send(elsewhere).await.status,
        StatusCode::NOT_FOUND,
        "the key opens no path the config does not route"
    );
    let seen: Vec<String> = upstream
        .requests()
        .iter()
        .map(|r| r.uri.path().to_owned())
        .collect();
    assert_eq!(seen, ["/api/status", "/api/orders/42"]);
    signal(&child, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn audit_verify_exits_0_on_a_sealed_trail_and_1_on_a_tampered_one() {
    let upstream = RecordingUpstream::start().await;
    let gw = rampart_testkit::TestGateway::builder()
        .plaintext()
        .config(&format!(
            "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n",
            upstream.url()
        ))
        .start()
        .await;
    for _ in 0..3 {
        assert_eq!(gw.get("/x").await.status, StatusCode::OK);
    }
    let dir = gw.stop_keeping_files().await;
    let log = dir.path().join("audit.log");
    let key = dir.path().join("audit.log.key.pub");
    let verify = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(BIN)
            .args(["audit", "verify"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = verify(&["--public-key".as_ref(), key.as_os_str(), log.as_os_str()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.starts_with("ok: "), "{stdout}");
    assert!(stdout.contains("(pinned)"), "{stdout}");
    // Neither a key nor the explicit choice to trust the trail's own: refused by the CLI.
    let (code, _) = verify(&[log.as_os_str()]);
    assert_eq!(code, 2);

    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, text.replacen("\"status\":200", "\"status\":500", 1)).unwrap();
    let (code, stdout) = verify(&["--trust-embedded-key".as_ref(), log.as_os_str()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("was altered"), "{stdout}");
}

#[tokio::test]
async fn run_reads_rampart_config_and_writes_text_logs_when_asked() {
    let upstream = RecordingUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rampart.toml");
    std::fs::write(&config, run_config(dir.path(), &upstream, "/one")).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--log-format",
            "text",
            "--log-level",
            "warn,rampart=info",
        ])
        .env("RAMPART_CONFIG", &config)
        .env_remove("RAMPART_LOG")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(child.stderr.take().unwrap());
    let line = wait_for_line(&mut logs, "listening").await;
    assert!(
        !line.trim_start().starts_with('{'),
        "text, not JSON: {line}"
    );
    assert!(line.contains("INFO"), "{line}");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap()
        .to_owned();
    let client = Client::new(&format!("http://{addr}"), None, false);
    assert_eq!(client.get("/one").await.status, StatusCode::OK);
    child.kill().await.unwrap();
}

#[test]
fn an_invalid_log_level_is_refused_with_its_reason() {
    let out = std::process::Command::new(BIN)
        .args(["run", "--log-level", "rampart=loud"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a log level or filter"), "{stderr}");
}

#[test]
fn check_takes_its_config_from_rampart_config_or_the_default_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("from-env.toml");
    std::fs::write(&path, "[[listeners]]\nname = \"x\"\nbind = \"nope\"\n").unwrap();
    let out = std::process::Command::new(BIN)
        .arg("check")
        .env("RAMPART_CONFIG", &path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("from-env.toml:3:"), "{stderr}");
    if !Path::new("/etc/rampart/rampart.toml").exists() {
        let out = std::process::Command::new(BIN)
            .arg("check")
            .env_remove("RAMPART_CONFIG")
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success());
        assert!(all.contains("/etc/rampart/rampart.toml"), "{all}");
    }
}

#[tokio::test]
async fn reload_applies_a_good_config_and_reports_a_bad_one_through_the_admin_api() {
    let upstream = RecordingUpstream::start().await;
    let gw = rampart_testkit::TestGateway::builder()
        .admin_token()
        .config(&format!(
            "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/one\"\nupstream = \"api\"\npublic = true\n",
            upstream.url()
        ))
        .start()
        .await;
    // Async: the gateway answers on this test's runtime, which a blocking wait would stall.
    let reload = || {
        Command::new(BIN)
            .args(["reload", "--admin-url", &format!("http://{}", gw.admin)])
            .env("RAMPART_ADMIN_TOKEN", gw.admin_token.as_deref().unwrap())
            .output()
    };
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(&gw.config_path, text.replace("\"/one\"", "\"/two\"")).unwrap();
    let out = reload().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"reloaded\": true"));
    assert_eq!(gw.get("/two").await.status, StatusCode::OK);

    std::fs::write(&gw.config_path, "[[routes]]\nname = 1\n").unwrap();
    let out = reload().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("422"), "{stderr}");
    assert_eq!(
        gw.get("/two").await.status,
        StatusCode::OK,
        "the running config stays"
    );
}

#[tokio::test]
async fn audit_report_summarizes_a_real_trail_as_text_and_json() {
    let upstream = RecordingUpstream::start().await;
    let gw = rampart_testkit::TestGateway::builder()
        .plaintext()
        .config(&format!(
            "[detect.scanning]\nthreshold = 4\nblock_s = 60\n\n[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath = \"/ok\"\nupstream = \"api\"\npublic = true\n",
            upstream.url()
        ))
        .start()
        .await;
    assert_eq!(gw.get("/ok").await.status, StatusCode::OK);
    for path in ["/.env", "/admin", "/.git/HEAD", "/wp-login.php"] {
        assert_eq!(gw.get(path).await.status, StatusCode::NOT_FOUND);
    }
    // The detection blocks the scanner; wait until it holds, so the trail has it. Requests
    // served before it holds count as allowed.
    let mut allowed = 1;
    for _ in 0..100 {
        match gw.get("/ok").await.status {
            StatusCode::FORBIDDEN => break,
            _ => allowed += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = gw.stop_keeping_files().await;
    let log = dir.path().join("audit.log");
    let report = |format: &str| {
        let out = std::process::Command::new(BIN)
            .args(["audit", "report", "-o", format])
            .arg(&log)
            .arg(dir.path().join("audit.log.key"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let json: serde_json::Value = serde_json::from_str(&report("json")).unwrap();
    assert_eq!(json["starts"], 1);
    assert_eq!(json["allowed"], allowed);
    assert_eq!(json["refusals_by_code"][0]["name"], "route_not_found");
    assert_eq!(json["refusals_by_code"][0]["count"], 4);
    assert_eq!(json["top_refused_sources"][0]["name"], "127.0.0.1");
    assert_eq!(json["detections"][0]["detector"], "scanning");
    assert_eq!(json["detections"][0]["blocks"], 1);
    assert!(
        json["refusals_by_code"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "blocked")
    );
    let text = report("text");
    assert!(text.contains("refusals by code:"), "{text}");
    assert!(text.contains("route_not_found  4"), "{text}");
    assert!(text.contains("scanning"), "{text}");
}

#[tokio::test]
async fn blocks_are_added_listed_as_a_table_and_lifted_from_the_cli() {
    let upstream = RecordingUpstream::start().await;
    let gw = rampart_testkit::TestGateway::builder()
        .plaintext()
        .admin_token()
        .config(&format!(
            "[proxy]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n",
            upstream.url()
        ))
        .start()
        .await;
    // Async: the gateway answers on this test's runtime, which a blocking wait would stall.
    let blocks = |args: &[&str]| {
        Command::new(BIN)
            .args(["blocks", "--admin-url", &format!("http://{}", gw.admin)])
            .args(args)
            .env("RAMPART_ADMIN_TOKEN", gw.admin_token.as_deref().unwrap())
            .output()
    };
    let from = async |ip: &str| gw.get_with("/x", &[("x-forwarded-for", ip)]).await;
    let added = blocks(&["add", "203.0.113.0/24", "--duration-s", "600"])
        .await
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert_eq!(from("203.0.113.9").await.status, StatusCode::FORBIDDEN);
    assert_eq!(from("198.51.100.9").await.status, StatusCode::OK);

    let listed = blocks(&["list", "-o", "table"]).await.unwrap();
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    let mut lines = table.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("SUBJECT         KIND     BY"),
        "{table}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("203.0.113.0/24  network  operator"),
        "{table}"
    );

    let lifted = blocks(&["lift", "203.0.113.0/24"]).await.unwrap();
    assert!(
        lifted.status.success(),
        "{}",
        String::from_utf8_lossy(&lifted.stderr)
    );
    assert_eq!(from("203.0.113.9").await.status, StatusCode::OK);
    let again = blocks(&["lift", "203.0.113.0/24"]).await.unwrap();
    assert!(!again.status.success(), "nothing left to lift");
    assert!(String::from_utf8_lossy(&again.stderr).contains("not_found"));
}

#[tokio::test]
async fn cert_revoke_revokes_at_the_ca_and_the_gateway_serves_a_replacement() {
    use rampart_testkit::{PebblePorts, PebbleServer, free_port};
    let port = free_port();
    let pebble = PebbleServer::start(
        PebblePorts {
            http: free_port(),
            tls: port,
        },
        3600,
    );
    let upstream = RecordingUpstream::start().await;
    let gw = rampart_testkit::TestGateway::builder()
        .listeners(&format!(
            "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:{port}\"\ntls = {{ acme_domains = [\"api.rampart.test\"] }}\n"
        ))
        .admin_token()
        .config(&format!(
            "[acme]\ndirectory = \"{}\"\nca_file = \"{}\"\nagree_terms = true\nsync_ms = 200\nretry_min_s = 1\n\n[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n",
            pebble.directory,
            pebble.ca_file.display(),
            upstream.url()
        ))
        .start()
        .await;
    // Async: the gateway answers on this test's runtime, which a blocking wait would stall.
    let cert = |args: &[&str]| {
        Command::new(BIN)
            .arg("cert")
            .args(args)
            .args(["--admin-url", &format!("http://{}", gw.admin)])
            .env("RAMPART_ADMIN_TOKEN", gw.admin_token.as_deref().unwrap())
            .output()
    };
    let served_serial = async || {
        let listed = cert(&["list", "-o", "json"]).await.unwrap();
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        json["certificates"][0]["serial"]
            .as_str()
            .map(str::to_owned)
    };
    let first = rampart_testkit::eventually(served_serial).await;

    let revoked = cert(&["revoke", "--listener", "public", "--reason", "1"])
        .await
        .unwrap();
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert!(String::from_utf8_lossy(&revoked.stdout).contains(&first));
    assert_eq!(pebble.certificate_status(&first).await, "Revoked");
    let second =
        rampart_testkit::eventually(async || served_serial().await.filter(|s| *s != first)).await;
    assert_eq!(pebble.certificate_status(&second).await, "Valid");

    let unknown = cert(&["revoke", "--listener", "nope"]).await.unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not_found"));
    gw.gateway.audit().flush().await;
    let trail = rampart_testkit::read_audit_lines(&gw.dir.path().join("audit.log"));
    assert!(
        trail
            .iter()
            .any(|r| r["event"] == "certificate" && r["outcome"] == "revoked"),
        "the revocation is on the trail"
    );
}
