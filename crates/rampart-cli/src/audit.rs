//! `rampart audit verify`: checks an audit trail's hash chain and signed checkpoints.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Args)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify a trail: the current file and its rotated ones, in any order (`audit.log*`).
    /// Reports the first record altered, removed, inserted or reordered, a forged checkpoint,
    /// and a trail or rotated file cut short. Exit status 1 when anything is wrong.
    Verify {
        /// The audit files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The signing key's public half (`FILE.key.pub`), pinned; without it, the key named
        /// by the trail's first checkpoint is trusted.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
}

pub(crate) fn run(args: AuditArgs) -> ExitCode {
    match args.command {
        AuditCommand::Verify { files, public_key } => verify(&files, public_key),
    }
}

fn verify(files: &[PathBuf], public_key: Option<PathBuf>) -> ExitCode {
    let pinned = match public_key.map(std::fs::read_to_string).transpose() {
        Ok(key) => key.map(|k| k.trim().to_owned()),
        Err(e) => {
            eprintln!("error: cannot read the public key: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rampart::audit::verify::verify(files, pinned.as_deref()) {
        Ok(trail) => {
            println!(
                "ok: {} records ({} to {}) in {} file(s), {} signed checkpoints, key {}{}",
                trail.records,
                trail.first_seq,
                trail.last_seq,
                trail.files,
                trail.checkpoints,
                trail.key,
                if pinned.is_some() {
                    " (pinned)"
                } else {
                    " (from the trail: pin it with --public-key)"
                }
            );
            ExitCode::SUCCESS
        }
        Err(finding) => {
            println!("FAILED: {finding}");
            ExitCode::FAILURE
        }
    }
}
