//! `rampart check` compiles every OpenAPI contract the config names and lints weak ones with rule
//! ids; a contract that does not compile fails the check with its file, line and pointer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

const BIN: &str = env!("CARGO_BIN_EXE_rampart");

const CONFIG: &str = r#"[[listeners]]
name = "edge"
bind = "127.0.0.1:8080"
plaintext = true

[[upstreams]]
name = "api"
targets = ["http://127.0.0.1:9000"]
openapi = { spec_file = "api.yaml" }

[[routes]]
name = "all"
path_prefix = "/"
upstream = "api"
public = true
"#;

const WEAK_CONTRACT: &str = r#"openapi: 3.1.0
info: { title: weak, version: "1" }
paths:
  /notes:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              additionalProperties: true
              properties:
                text: { type: string }
                tags: { type: array, items: { type: string, maxLength: 10 } }
                count: { type: integer }
      responses:
        "204": { description: stored }
"#;

fn check(contract: &str, strict: bool) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api.yaml"), contract).unwrap();
    let path = dir.path().join("rampart.toml");
    std::fs::write(&path, CONFIG).unwrap();
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

#[test]
fn weak_contracts_are_linted_with_rule_ids_pointers_and_lines() {
    let (code, stdout, stderr) = check(WEAK_CONTRACT, false);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for (rule, line) in [
        ("string-without-max-length", "api.yaml:13"),
        ("array-without-max-items", "api.yaml:14"),
        ("additional-properties-true", "api.yaml:11"),
        ("integer-without-bounds", "api.yaml:15"),
        ("operation-without-security", "api.yaml:5"),
    ] {
        let warning = stdout
            .lines()
            .find(|l| l.starts_with(&format!("warning[{rule}]")))
            .unwrap_or_else(|| panic!("no {rule} in {stdout}"));
        assert!(warning.contains(line), "{rule} not at {line}: {warning}");
        assert!(
            warning.contains("upstreams[0].openapi.spec_file"),
            "{warning}"
        );
    }
    let (code, _, _) = check(WEAK_CONTRACT, true);
    assert_eq!(code, 2, "--strict fails on contract lints");
}

#[test]
fn a_contract_that_does_not_compile_fails_check_with_file_line_and_pointer() {
    let broken = WEAK_CONTRACT.replace(
        "count: { type: integer }",
        "count: { $ref: \"https://schemas.example/count.json\" }",
    );
    let (code, stdout, stderr) = check(&broken, false);
    assert_ne!(code, 0, "{stdout}");
    assert!(stderr.contains("api.yaml:15"), "{stderr}");
    assert!(stderr.contains("/properties/count/$ref"), "{stderr}");
    assert!(stderr.contains("never fetches"), "{stderr}");
}
