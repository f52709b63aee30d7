//! `rampart keys ...`: API key operations through the admin API.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::admin::{self, AdminArgs};

/// The columns of `-o table`.
const COLUMNS: [&str; 8] = [
    "id",
    "prefix",
    "name",
    "owner",
    "status",
    "scopes",
    "expires_at",
    "last_used_at",
];

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

/// Runs the command; prints the answer, or returns the problem document.
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
    let answer = admin::call(&args.admin, method, &path, body).await?;
    match answer.get("key") {
        // A new key's value is shown once, whatever the format: it is the point of the answer.
        Some(key) if args.admin.output == admin::Output::Table => {
            println!("key: {}", key.as_str().unwrap_or_default());
            admin::print(&answer["record"], args.admin.output, "keys", &COLUMNS);
        }
        _ => admin::print(&answer, args.admin.output, "keys", &COLUMNS),
    }
    Ok(())
}
