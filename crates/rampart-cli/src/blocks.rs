//! `rampart blocks ...`: the blocks in force, an operator's own, and lifting one, through the
//! admin API.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::admin::{self, AdminArgs};

/// The columns of `-o table`.
const COLUMNS: [&str; 5] = ["subject", "kind", "by", "retry_after_s", "until"];

#[derive(Args)]
pub(crate) struct BlocksArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(subcommand)]
    command: BlocksCommand,
}

#[derive(Subcommand)]
enum BlocksCommand {
    /// List the blocks in force (detectors', operators' and the brute-force guard's).
    List,
    /// Block an address, a network (CIDR), `key:ID` or `sub:SUBJECT` on every instance.
    Add {
        subject: String,
        /// How long, in seconds.
        #[arg(long)]
        duration_s: u64,
    },
    /// Lift every block on a subject.
    Lift { subject: String },
}

pub(crate) async fn run(args: BlocksArgs) -> Result<(), String> {
    let (method, path, body) = match &args.command {
        BlocksCommand::List => (reqwest::Method::GET, "/v1/blocks".to_owned(), None),
        BlocksCommand::Add {
            subject,
            duration_s,
        } => (
            reqwest::Method::POST,
            "/v1/blocks".to_owned(),
            Some(json!({ "subject": subject, "duration_s": duration_s })),
        ),
        BlocksCommand::Lift { subject } => {
            // A network's `/` travels percent-encoded in the path segment.
            let segment: String =
                percent_encoding::utf8_percent_encode(subject, percent_encoding::NON_ALPHANUMERIC)
                    .collect();
            (
                reqwest::Method::DELETE,
                format!("/v1/blocks/{segment}"),
                None,
            )
        }
    };
    let answer = admin::call(&args.admin, method, &path, body).await?;
    admin::print(&answer, args.admin.output, "blocks", &COLUMNS);
    Ok(())
}
