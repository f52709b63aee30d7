//! `rampart keys ...`: API key operations through the admin API.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Args)]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Issue a key; its value is printed once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner: String,
        /// Comma-separated scopes.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Comma-separated roles.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long)]
        expires_in_s: Option<i64>,
    },
    /// List keys (never their values).
    List,
    /// Show one key's record.
    Get { id: String },
    /// Issue a replacement; the old key keeps working for the grace window.
    Rotate {
        id: String,
        #[arg(long)]
        grace_s: Option<u64>,
    },
    /// Revoke a key at once.
    Revoke { id: String },
}

/// The admin API's address and token, as every admin command takes them.
#[derive(Args)]
pub(crate) struct AdminArgs {
    /// The admin listener.
    #[arg(
        long,
        env = "RAMPART_ADMIN_URL",
        default_value = "http://127.0.0.1:9901"
    )]
    pub(crate) admin_url: String,
    /// The admin API token (prefer the environment variable: command lines are visible to others).
    #[arg(long, env = "RAMPART_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) token: String,
}

/// Runs the command; prints the JSON answer, or the problem document on stderr.
pub(crate) async fn run(args: KeysArgs) -> Result<(), String> {
    let (method, path, body) = match &args.command {
        KeysCommand::Create {
            name,
            owner,
            scopes,
            roles,
            expires_in_s,
        } => (
            reqwest::Method::POST,
            "/v1/keys".to_owned(),
            Some(
                json!({"name": name, "owner": owner, "scopes": scopes, "roles": roles, "expires_in_s": expires_in_s}),
            ),
        ),
        KeysCommand::List => (reqwest::Method::GET, "/v1/keys".to_owned(), None),
        KeysCommand::Get { id } => (reqwest::Method::GET, format!("/v1/keys/{id}"), None),
        KeysCommand::Rotate { id, grace_s } => (
            reqwest::Method::POST,
            format!("/v1/keys/{id}/rotate"),
            Some(json!({"grace_s": grace_s})),
        ),
        KeysCommand::Revoke { id } => {
            (reqwest::Method::POST, format!("/v1/keys/{id}/revoke"), None)
        }
    };
    call(
        &args.admin.admin_url,
        &args.admin.token,
        method,
        &path,
        body,
    )
    .await
}

/// One admin API call; prints the JSON answer, or returns the status and problem document.
pub(crate) async fn call(
    admin_url: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(), String> {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, format!("{}{path}", admin_url.trim_end_matches('/')))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("admin API unreachable: {e}"))?;
    let status = response.status();
    let value: Value = response
        .json()
        .await
        .map_err(|e| format!("unexpected answer: {e}"))?;
    let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
    if status.is_success() {
        println!("{text}");
        Ok(())
    } else {
        Err(format!("{status}\n{text}"))
    }
}
