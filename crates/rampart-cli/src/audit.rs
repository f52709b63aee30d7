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
        /// The signing key's public half (`FILE.key.pub`, best a copy kept off the gateway's
        /// machine): every checkpoint must be signed by it.
        #[arg(long, required_unless_present = "trust_embedded_key")]
        public_key: Option<PathBuf>,
        /// Trust the key the trail's first checkpoint names: proves the trail is intact, not
        /// that it was written by your gateway (a trail replaced whole would pass).
        #[arg(long)]
        trust_embedded_key: bool,
        /// Accept a trail that starts after record 1 (its oldest files were rotated away).
        #[arg(long)]
        allow_missing_head: bool,
    },
}

pub(crate) fn run(args: AuditArgs) -> ExitCode {
    match args.command {
        AuditCommand::Verify {
            files,
            public_key,
            trust_embedded_key: _,
            allow_missing_head,
        } => verify(&files, public_key, allow_missing_head),
    }
}

fn verify(files: &[PathBuf], public_key: Option<PathBuf>, allow_missing_head: bool) -> ExitCode {
    let pinned = match public_key.map(std::fs::read_to_string).transpose() {
        Ok(key) => key.map(|k| k.trim().to_owned()),
        Err(e) => {
            eprintln!("error: cannot read the public key: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rampart::audit::verify::verify(files, pinned.as_deref(), allow_missing_head) {
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
                    " (taken from the trail, not pinned)"
                }
            );
            if trail.unsealed_starts > 0 {
                println!(
                    "note: {} start(s) after a trail that did not end sealed (a crash, or lines added while the gateway was stopped): review the records before them",
                    trail.unsealed_starts
                );
            }
            if trail.dropped > 0 {
                println!(
                    "note: the gateway dropped {} record(s) with its queue full",
                    trail.dropped
                );
            }
            ExitCode::SUCCESS
        }
        Err(finding) => {
            println!("FAILED: {finding}");
            ExitCode::FAILURE
        }
    }
}
