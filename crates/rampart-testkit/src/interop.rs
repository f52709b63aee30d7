//! Third-party implementations for interoperability tests (installed by `scripts/test` into
//! `interop/`): a real OAuth server from npm, and token minting with npm `jose` and PyJWT.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The repository's `interop/` directory.
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// oauth2-mock-server, running until dropped.
pub struct OAuthServer {
    pub issuer: String,
    child: Child,
}

impl OAuthServer {
    /// Starts the server; its tokens carry `aud = audience`.
    pub fn start(audience: &str) -> Self {
        use std::io::BufRead;
        let mut child = Command::new("node")
            .arg(interop_dir().join("mock-oauth.mjs"))
            .arg(audience)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (interop/ installed by scripts/test)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the issuer line");
        let info: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("mock-oauth said {line:?}: {e}"));
        let issuer = info["issuer"].as_str().expect("issuer").to_owned();
        Self { issuer, child }
    }

    /// A client_credentials access token issued by the server.
    pub async fn client_credentials_token(&self, scope: &str) -> String {
        let response: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth("some-client", Some("some-secret"))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token response");
        response["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Revokes a token at the server (RFC 7009).
    pub async fn revoke(&self, token: &str) {
        reqwest::Client::new()
            .post(format!("{}/revoke", self.issuer))
            .basic_auth("some-client", Some("some-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .expect("revoke request");
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token and its public JWK minted by a third-party library.
pub struct Minted {
    pub jwk: Value,
    pub token: String,
}

fn mint(program: &str, script: &str, alg: &str, issuer: &str, audience: &str) -> Minted {
    let out = Command::new(program)
        .arg(interop_dir().join(script))
        .args([alg, issuer, audience])
        .output()
        .unwrap_or_else(|e| panic!("{program} {script}: {e}"));
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: Value = serde_json::from_slice(&out.stdout).expect("JSON from the minting script");
    Minted {
        jwk: value["jwk"].clone(),
        token: value["token"].as_str().expect("token").to_owned(),
    }
}

/// A token signed by npm `jose`.
pub fn mint_with_jose(alg: &str, issuer: &str, audience: &str) -> Minted {
    mint("node", "mint-jose.mjs", alg, issuer, audience)
}

/// A token signed by PyJWT.
pub fn mint_with_pyjwt(alg: &str, issuer: &str, audience: &str) -> Minted {
    let venv = interop_dir().join(".venv/bin/python");
    let python = if venv.exists() {
        venv.display().to_string()
    } else {
        "python3".to_owned()
    };
    mint(&python, "mint_pyjwt.py", alg, issuer, audience)
}
