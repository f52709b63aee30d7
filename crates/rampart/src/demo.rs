//! `rampart demo`: the gateway over TLS (self-signed certificate made at start) in front of a small
//! built-in JSON API, configured by a real config file written next to the certificate, with
//! `curl` lines that show an allowed call and each kind of refusal.

mod api;

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use api::serve_demo_api;

/// Where and how the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// HTTPS port of the gateway (0 picks a free one).
    pub port: u16,
    /// Directory for the config, certificate and audit log; a fresh temporary one by default.
    pub dir: Option<PathBuf>,
}

/// Runs the demo until `shutdown` resolves.
pub async fn run(options: DemoOptions, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    crate::tls::install_crypto_provider();
    let dir = match &options.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("rampart-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let api = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("demo API: {e}"))?;
    let api_addr = api.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(serve_demo_api(api));
    let config_path = write_files(&dir, options.port, api_addr)?;
    let prepared = crate::run::prepare(&config_path)
        .await
        .map_err(|e| e.to_string())?;
    let gateway = prepared
        .addresses()
        .first()
        .map(|(_, addr)| *addr)
        .ok_or("no listener")?;
    let admin = prepared.admin_address();
    println!("{}", banner(&dir, gateway, admin));
    prepared.serve(shutdown).await;
    println!("rampart demo stopped; files kept in {}", dir.display());
    Ok(())
}

fn write_files(dir: &Path, port: u16, api: SocketAddr) -> Result<PathBuf, String> {
    let (cert, key) = crate::tls::self_signed(&["localhost", "127.0.0.1"])?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("cannot write {name}: {e}"))
    };
    write("cert.pem", &cert)?;
    write("key.pem", &key)?;
    let config = DEMO_CONFIG
        .replace("{port}", &port.to_string())
        .replace("{api}", &api.to_string());
    write("rampart.toml", &config)?;
    Ok(dir.join("rampart.toml"))
}

const DEMO_CONFIG: &str = r#"# Written by `rampart demo`. Every setting not given here has its secure default.
[[listeners]]
name = "public"
bind = "127.0.0.1:{port}"
tls = { cert_file = "cert.pem", key_file = "key.pem" }

[admin]
bind = "127.0.0.1:0"

[audit]
file = "audit.log"

[[upstreams]]
name = "demo-api"
targets = ["http://{api}"]
health.active = { path = "/health", interval_ms = 2000 }

[[routes]]
name = "orders"
path_prefix = "/api/orders"
methods = ["GET", "POST"]
upstream = "demo-api"
public = true
max_body_bytes = 1024
cors = { allow_origins = ["https://app.example.com", "https://*.example.com"], allow_headers = ["content-type"] }

[[routes]]
name = "status"
path = "/api/status"
upstream = "demo-api"
public = true

[[routes]]
name = "crash"
path = "/api/crash"
upstream = "demo-api"
public = true
"#;

fn banner(dir: &Path, gateway: SocketAddr, admin: Option<SocketAddr>) -> String {
    let cacert = dir.join("cert.pem");
    let base = format!("https://localhost:{}", gateway.port());
    let curl = format!("curl -sS -i --cacert {}", cacert.display());
    let mut out = String::new();
    let mut line = |text: String| {
        let _ = writeln!(out, "{text}");
    };
    line(format!(
        "Rampart demo: gateway {base} (TLS 1.2/1.3, HTTP/2 and HTTP/1.1) in front of a demo API"
    ));
    line(format!(
        "Config {}, audit log {}",
        dir.join("rampart.toml").display(),
        dir.join("audit.log").display()
    ));
    if let Some(admin) = admin {
        line(format!("Admin: http://{admin}/metrics  /live  /ready"));
    }
    line(String::new());
    line("Allowed:".into());
    line(format!("  {curl} {base}/api/orders/42"));
    line(
        "Refused by the gateway, each with a problem+json body, and never sent to the API:".into(),
    );
    line(format!("  no route (404):            {curl} {base}/admin"));
    line(format!(
        "  wrong method (405):        {curl} -X DELETE {base}/api/orders/42"
    ));
    line(format!(
        "  TRACE (405):               {curl} -X TRACE {base}/api/status"
    ));
    line(format!(
        "  encoded traversal (400):   {curl} --path-as-is '{base}/api/orders/..%2F..%2Fadmin'"
    ));
    line(format!(
        "  body over 1 KiB (413):     head -c 4096 /dev/zero | {curl} -X POST --data-binary @- {base}/api/orders"
    ));
    line(format!(
        "  CORS origin refused (403): {curl} -X OPTIONS -H 'Origin: https://example.com.evil.net' -H 'Access-Control-Request-Method: POST' {base}/api/orders"
    ));
    line(format!(
        "  CL+TE smuggling (400):     printf 'POST /api/orders HTTP/1.1\\r\\nHost: localhost\\r\\nContent-Length: 4\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n' | openssl s_client -quiet -connect 127.0.0.1:{}",
        gateway.port()
    ));
    line("Allowed CORS preflight, answered by the gateway:".into());
    line(format!(
        "  {curl} -X OPTIONS -H 'Origin: https://app.example.com' -H 'Access-Control-Request-Method: POST' {base}/api/orders"
    ));
    line("Upstream 500 masked (stack trace and Server header stay inside):".into());
    line(format!("  {curl} {base}/api/crash"));
    line(String::new());
    line("Ctrl-C stops the demo.".into());
    out
}
