//! `rampart demo`: the gateway over TLS (self-signed certificate made at start) in front of a small
//! built-in JSON API, configured by a real config file written next to the certificate, with
//! `curl` lines that show an allowed call and each kind of refusal. The API's OpenAPI contract
//! (`demo/openapi.yaml`) is written beside the config and enforced on its routes: schema and
//! mass-assignment refusals, a sanitized field, and internal response fields stripped.

mod api;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub(crate) use api::serve_demo_api;

/// The demo API's contract, written beside the config as `openapi.yaml`.
const DEMO_CONTRACT: &str = include_str!("demo/openapi.yaml");

/// Where and how the demo runs.
#[derive(Debug, Clone)]
pub(crate) struct DemoOptions {
    /// HTTPS port of the gateway (0 picks a free one).
    pub port: u16,
    /// Directory for the config, certificate and audit log; a fresh temporary one by default.
    pub dir: Option<PathBuf>,
}

/// Runs the demo until `shutdown` resolves.
pub(crate) async fn run(
    options: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    rampart::tls::install_crypto_provider();
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
    let (config_path, token) = write_files(&dir, options.port, api_addr)?;
    let prepared = rampart::run::prepare(&config_path)
        .await
        .map_err(|e| e.to_string())?;
    let api_key = match &prepared.gateway.services.api_keys {
        Some(keys) => {
            let new = rampart::policy::authn::api_key::NewKey {
                name: "demo".into(),
                owner: "demo-team".into(),
                scopes: vec!["orders:read".into()],
                ..Default::default()
            };
            keys.create(&new).await.map_err(|e| e.to_string())?.1
        }
        None => String::new(),
    };
    let gateway = prepared
        .addresses()
        .first()
        .map(|(_, addr)| *addr)
        .ok_or("no listener")?;
    let admin = prepared.admin_address();
    println!("{}", banner(&dir, gateway, admin, &token, &api_key));
    prepared.serve(shutdown).await;
    println!("rampart demo stopped; files kept in {}", dir.display());
    Ok(())
}

/// The demo's token issuer and audience.
const DEMO_ISSUER: &str = "https://issuer.demo.rampart.local";
const DEMO_AUDIENCE: &str = "demo-api";

/// Writes the certificate, the issuer's public key, the API's contract and the config; returns the config path and a
/// token signed by the demo issuer (valid for 24 hours).
fn write_files(dir: &Path, port: u16, api: SocketAddr) -> Result<(PathBuf, String), String> {
    let (cert, key) = rampart::tls::self_signed(&["localhost", "127.0.0.1"])?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("cannot write {name}: {e}"))
    };
    write("cert.pem", &cert)?;
    write("key.pem", &key)?;
    let (public_pem, token) = demo_token()?;
    write("issuer-public.pem", &public_pem)?;
    write(
        "api-keys.secret",
        &rampart::policy::authn::api_key::generate(),
    )?;
    let config = DEMO_CONFIG
        .replace("{port}", &port.to_string())
        .replace("{api}", &api.to_string());
    write("openapi.yaml", DEMO_CONTRACT)?;
    write("rampart.toml", &config)?;
    Ok((dir.join("rampart.toml"), token))
}

/// A fresh ES256 issuer key and a token it signed for the demo user.
fn demo_token() -> Result<(String, String), String> {
    let pair =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let signing = jsonwebtoken::EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())
        .map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = serde_json::json!({
        "iss": DEMO_ISSUER, "aud": DEMO_AUDIENCE, "sub": "demo-user",
        "iat": now, "exp": now + 24 * 3600, "scope": "orders:read orders:write",
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("demo-1".to_owned());
    let token = jsonwebtoken::encode(&header, &claims, &signing).map_err(|e| e.to_string())?;
    Ok((pair.public_key_pem(), token))
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

[[auth.jwt]]
name = "demo"
issuer = "https://issuer.demo.rampart.local"
audiences = ["demo-api"]
algorithms = ["ES256"]
keys_file = "issuer-public.pem"

[api_keys]
hmac_secret = { file = "api-keys.secret" }

[[upstreams]]
name = "demo-api"
targets = ["http://{api}"]
health.active = { path = "/health", interval_ms = 2000 }

[[routes]]
name = "orders"
path_prefix = "/api/orders"
methods = ["GET", "POST"]
upstream = "demo-api"
auth = { jwt = ["demo"], api_key = true }
max_body_bytes = 1024
openapi = { spec_file = "openapi.yaml", mode = "enforce", responses = "strip" }
cors = { allow_origins = ["https://app.example.com", "https://*.example.com"], allow_headers = ["content-type", "authorization"] }

[[routes]]
name = "reports"
path = "/api/reports"
upstream = "demo-api"
auth = { jwt = ["demo"], api_key = true }
authorize = { scopes = ["reports:read"] }
openapi = { spec_file = "openapi.yaml", mode = "enforce", responses = "strip" }

[[routes]]
name = "status"
path = "/api/status"
upstream = "demo-api"
public = true
rate_limits = [{ name = "per-ip", key = "ip", rate = 5, per = "minute", burst = 3 }]

[[routes]]
name = "crash"
path = "/api/crash"
upstream = "demo-api"
public = true
"#;

fn banner(
    dir: &Path,
    gateway: SocketAddr,
    admin: Option<SocketAddr>,
    token: &str,
    api_key: &str,
) -> String {
    let cacert = dir.join("cert.pem");
    let base = format!("https://localhost:{}", gateway.port());
    let curl = format!("curl -sS -i --cacert {}", cacert.display());
    let auth = "-H \"Authorization: Bearer $TOKEN\"";
    let port = gateway.port();
    let config = dir.join("rampart.toml");
    let audit = dir.join("audit.log");
    let contract = dir.join("openapi.yaml");
    let json = "-H 'Content-Type: application/json'";
    let admin = admin.map_or_else(String::new, |a| {
        format!("Admin: http://{a}/metrics  /live  /ready\n")
    });
    format!(
        r#"Rampart demo: gateway {base} (TLS 1.2/1.3, HTTP/2 and HTTP/1.1) in front of a demo API
Config {config}, audit log {audit}
{admin}
A token from the demo issuer (ES256, valid 24 h), and an API key issued by Rampart (stored hashed):
  export TOKEN={token}
  export KEY={api_key}
Allowed:
  {curl} {auth} {base}/api/orders/42
  {curl} -H "X-API-Key: $KEY" {base}/api/orders/42
Refused by the gateway, each with a problem+json body, and never sent to the API:
  no token (401):            {curl} {base}/api/orders/42
  unknown API key (401):     {curl} -H "X-API-Key: rmp_000000000000000000000000000000000000" {base}/api/orders/42
  missing scope (403):       {curl} {auth} {base}/api/reports
  forged token (401):        {curl} -H "Authorization: Bearer ${{TOKEN%.*}}.AAAA" {base}/api/orders/42
  token in the URL (400):    {curl} "{base}/api/orders/42?access_token=$TOKEN"
  no route (404):            {curl} {base}/admin
  wrong method (405):        {curl} {auth} -X DELETE {base}/api/orders/42
  TRACE (405):               {curl} -X TRACE {base}/api/status
  encoded traversal (400):   {curl} --path-as-is '{base}/api/orders/..%2F..%2Fadmin'
  body over 1 KiB (413):     head -c 4096 /dev/zero | {curl} {auth} {json} --data-binary @- {base}/api/orders
  CORS origin refused (403): {curl} -X OPTIONS -H 'Origin: https://example.com.evil.net' -H 'Access-Control-Request-Method: POST' {base}/api/orders
  CL+TE smuggling (400):     printf 'POST /api/orders HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' | openssl s_client -quiet -connect 127.0.0.1:{port}
The API's contract ({contract}) is enforced on /api/orders and /api/reports:
  schema refusal (400, errors at /body/quantity):
    {curl} {auth} {json} -d '{{"item":"pen","quantity":"two"}}' {base}/api/orders
  mass assignment (400, errors at /body/price):
    {curl} {auth} {json} -d '{{"item":"pen","quantity":1,"price":0}}' {base}/api/orders
  sanitized field (201; the API receives and echoes the note as "<b>fragile</b>"):
    {curl} {auth} {json} -d '{{"item":"pen","quantity":1,"note":"<b>fragile</b><script>alert(1)</script><img src=x onerror=alert(2)>"}}' {base}/api/orders
  stripped response fields (the API adds supplier_id and internal_cost; neither is declared, neither leaves):
    {curl} {auth} {base}/api/orders/42
Allowed CORS preflight, answered by the gateway:
  {curl} -X OPTIONS -H 'Origin: https://app.example.com' -H 'Access-Control-Request-Method: POST' {base}/api/orders
Rate limit (3 in a burst, then 5 a minute; the 4th gets 429 with Retry-After and RateLimit headers):
  for i in 1 2 3 4; do {curl} {base}/api/status | grep -Ei '^(HTTP|retry-after|ratelimit)'; done
Upstream 500 masked (stack trace and Server header stay inside):
  {curl} {base}/api/crash


Ctrl-C stops the demo."#,
        config = config.display(),
        audit = audit.display(),
        contract = contract.display(),
    )
}
