//! The real gateway, started in-process from a real config file in a temporary directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rampart::Gateway;
use tokio::sync::oneshot;

use crate::client::{Client, TestResponse};

/// Builds a config: a TLS (or plaintext) listener on 127.0.0.1:0, the admin listener on
/// 127.0.0.1:0, the audit log in the temp directory, plus the caller's sections.
#[derive(Default)]
pub struct TestGatewayBuilder {
    plaintext: bool,
    watch_config: bool,
    listeners: Option<String>,
    audit: String,
    api_keys: bool,
    store_url: Option<String>,
    admin_token: bool,
    sections: String,
    files: Vec<(String, String)>,
    drain_timeout_ms: Option<u64>,
}

impl TestGatewayBuilder {
    /// A plaintext listener instead of TLS.
    pub fn plaintext(mut self) -> Self {
        self.plaintext = true;
        self
    }

    /// `server.drain_timeout_ms` (5000 unless set).
    pub fn drain_timeout_ms(mut self, ms: u64) -> Self {
        self.drain_timeout_ms = Some(ms);
        self
    }

    /// Reload on config file change.
    pub fn watch_config(mut self) -> Self {
        self.watch_config = true;
        self
    }

    /// Enables API keys with a fresh server secret (SQLite store in the temp directory unless
    /// `store_url` says otherwise).
    pub fn api_keys(mut self) -> Self {
        self.api_keys = true;
        self
    }

    /// The store URL (e.g. a `PgServer`'s).
    pub fn store_url(mut self, url: &str) -> Self {
        self.store_url = Some(url.to_owned());
        self
    }

    /// Enables the admin API with a fresh token (`TestGateway::admin_token`).
    pub fn admin_token(mut self) -> Self {
        self.admin_token = true;
        self
    }

    /// Extra keys for the `[audit]` table (`max_file_bytes = 1000`).
    pub fn audit(mut self, toml: &str) -> Self {
        self.audit.push_str(toml);
        self.audit.push('\n');
        self
    }

    /// Replaces the default listener section; `cert.pem` and `key.pem` exist in the directory.
    pub fn listeners(mut self, toml: &str) -> Self {
        self.listeners = Some(toml.to_owned());
        self
    }

    /// Writes a file into the gateway's directory (config paths are relative to it).
    pub fn file(mut self, name: &str, contents: &str) -> Self {
        self.files.push((name.to_owned(), contents.to_owned()));
        self
    }

    /// Appends TOML sections (`[[upstreams]]`, `[[routes]]`, `[limits]`, ...).
    pub fn config(mut self, toml: &str) -> Self {
        self.sections.push_str(toml);
        self.sections.push('\n');
        self
    }

    /// Writes the files and starts serving.
    pub async fn start(self) -> TestGateway {
        crate::init();
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) =
            rampart::tls::self_signed(&["localhost", "127.0.0.1"]).expect("self-signed");
        std::fs::write(dir.path().join("cert.pem"), &cert).expect("write cert");
        std::fs::write(dir.path().join("key.pem"), &key).expect("write key");
        for (name, contents) in &self.files {
            std::fs::write(dir.path().join(name), contents).expect("write file");
        }
        let listener = if self.plaintext {
            "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\nplaintext = true\n"
                .to_owned()
        } else {
            "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\ntls = { cert_file = \"cert.pem\", key_file = \"key.pem\" }\n".to_owned()
        };
        let admin_token = self.admin_token.then(rampart::admin::api::new_admin_token);
        let admin_line = admin_token.as_ref().map_or(String::new(), |(_, hash)| {
            format!("token_sha256 = \"{hash}\"\n")
        });
        let mut extra = String::new();
        if self.api_keys {
            std::fs::write(
                dir.path().join("keys.secret"),
                "test-secret-0123456789-0123456789-0123456789",
            )
            .expect("secret");
            extra.push_str("[api_keys]\nhmac_secret = { file = \"keys.secret\" }\n\n");
        }
        if let Some(url) = &self.store_url {
            extra.push_str(&format!("[store]\nurl = \"{url}\"\n\n"));
        }
        let text = format!(
            "{}\n[admin]\nbind = \"127.0.0.1:0\"\n{admin_line}\n[audit]\nfile = \"audit.log\"\n{}\n[server]\nwatch_config = {}\ndrain_timeout_ms = {}\n\n{extra}{}",
            self.listeners.unwrap_or(listener),
            self.audit,
            self.watch_config,
            self.drain_timeout_ms.unwrap_or(5000),
            self.sections
        );
        let config_path = dir.path().join("rampart.toml");
        std::fs::write(&config_path, text).expect("write config");
        TestGateway::serve(
            dir,
            config_path,
            cert,
            !self.plaintext,
            admin_token.map(|(token, _)| token),
        )
        .await
    }
}

/// A running gateway; `stop` drains it, dropping it aborts it.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub addrs: Vec<(String, SocketAddr)>,
    pub admin: SocketAddr,
    pub gateway: Arc<Gateway>,
    pub ca_pem: String,
    pub config_path: PathBuf,
    pub dir: tempfile::TempDir,
    /// The admin API token, when enabled.
    pub admin_token: Option<String>,
    tls: bool,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    pub fn builder() -> TestGatewayBuilder {
        TestGatewayBuilder::default()
    }

    /// Starts serving `config_path` (its files in `dir`).
    async fn serve(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        ca_pem: String,
        tls: bool,
        admin_token: Option<String>,
    ) -> TestGateway {
        let prepared = rampart::run::prepare(&config_path)
            .await
            .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
        let addrs = prepared.addresses();
        let admin = prepared.admin_address().expect("admin listener");
        let gateway = prepared.gateway.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(prepared.serve(async {
            let _ = stopped.await;
        }));
        TestGateway {
            admin_token,
            addr: addrs[0].1,
            addrs,
            admin,
            gateway,
            tls,
            ca_pem,
            config_path,
            stop: Some(stop),
            task: Some(task),
            dir,
        }
    }

    /// A graceful stop, then a new gateway on the same directory and config: what is on disk
    /// (audit trail, store, keys) carries over, as across a restart of the process.
    pub async fn restart(self) -> TestGateway {
        self.restart_after(|_| {}).await
    }

    /// `restart`, with `between` run on the directory while no gateway runs (to damage or
    /// change what is on disk, as a crash or an intruder would).
    pub async fn restart_after(mut self, between: impl FnOnce(&std::path::Path)) -> TestGateway {
        self.shut_down().await;
        between(self.dir.path());
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        TestGateway::serve(
            dir,
            self.config_path.clone(),
            self.ca_pem.clone(),
            self.tls,
            self.admin_token.clone(),
        )
        .await
    }

    async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// `https://localhost:port` (or `http://` for a plaintext gateway).
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://localhost:{}", self.addr.port())
    }

    /// An HTTP/1.1 client.
    pub fn client(&self) -> Client {
        Client::new(&self.base_url(), Some(&self.ca_pem), false)
    }

    /// An HTTP/2 client (ALPN `h2` over TLS, prior knowledge over plaintext).
    pub fn client_h2(&self) -> Client {
        Client::new(&self.base_url(), Some(&self.ca_pem), true)
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.client().get(path).await
    }

    /// A GET with these request headers (credentials, forwarding headers...).
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> TestResponse {
        let client = self.client();
        let mut request = client.request(http::Method::GET, path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(http_body_util::Full::default())
            .expect("a valid request");
        client.send(request).await
    }

    /// Every audit record written so far (after a flush).
    pub async fn audit(&self) -> Vec<serde_json::Value> {
        self.gateway.audit().flush().await;
        read_audit(&self.dir.path().join("audit.log"))
    }

    /// GETs `path` `n` times, each answered 200; returns the request ids.
    pub async fn request_ids(&self, path: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let answered = self.get(path).await;
            assert_eq!(answered.status, http::StatusCode::OK, "{path}");
            ids.push(
                answered
                    .header("x-request-id")
                    .expect("x-request-id")
                    .to_owned(),
            );
        }
        ids
    }

    /// GET `path` with HTTP Basic credentials.
    pub async fn get_basic(&self, path: &str, user: &str, password: &str) -> TestResponse {
        use base64::Engine;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.get_with(path, &[("authorization", &format!("Basic {credentials}"))])
            .await
    }

    /// A client for the admin listener (add the token yourself to test refusals).
    pub fn admin_client(&self) -> Client {
        Client::new(&format!("http://{}", self.admin), None, false)
    }

    /// Calls the admin API with the token; returns the response.
    pub async fn admin(
        &self,
        method: http::Method,
        path: &str,
        body: serde_json::Value,
    ) -> TestResponse {
        let client = self.admin_client();
        let token = self
            .admin_token
            .as_deref()
            .expect("admin_token() not enabled");
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let request = client
            .request(method, path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("request");
        client.send(request).await
    }

    /// The Prometheus text from the admin listener.
    pub async fn metrics(&self) -> String {
        let admin = Client::new(&format!("http://{}", self.admin), None, false);
        admin.get("/metrics").await.text()
    }

    /// Graceful stop (drain, flush the audit log); returns the audit records on disk afterwards.
    pub async fn stop(mut self) -> Vec<serde_json::Value> {
        self.shut_down().await;
        read_audit(&self.dir.path().join("audit.log"))
    }

    /// A graceful stop that keeps the directory (the whole audit trail, rotated files too).
    pub async fn stop_keeping_files(mut self) -> tempfile::TempDir {
        self.shut_down().await;
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The request records of a JSON-lines audit file (events, such as starts, reloads and
/// checkpoints, left out: `read_audit_lines` has them).
pub fn read_audit(path: &std::path::Path) -> Vec<serde_json::Value> {
    read_audit_lines(path)
        .into_iter()
        .filter(|line| line.get("event").is_none())
        .collect()
}

/// Every line of a JSON-lines audit file.
pub fn read_audit_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}
