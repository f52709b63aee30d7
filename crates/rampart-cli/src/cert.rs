//! `rampart cert self-signed`: a certificate and key for a first run or a test set-up;
//! `rampart cert list` and `rampart cert revoke`: the ACME certificates, through the admin API.
//!
//! The private key is written with mode 0600 from the moment it exists (never readable by others,
//! not even briefly), and neither file is overwritten unless `--force` says so: replacing a
//! deployed key by accident would take a listener down at its next certificate reload.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;

use crate::admin::{self, AdminArgs};

#[derive(Args)]
pub(crate) struct CertArgs {
    #[command(subcommand)]
    command: CertCommand,
}

#[derive(Subcommand)]
enum CertCommand {
    /// Write a self-signed certificate (`server.pem`) and its key (`server.key`, mode 0600).
    SelfSigned {
        /// Directory for the two files (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// A DNS name or IP address the certificate is for; repeat for several.
        /// Default: localhost and 127.0.0.1.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// List the ACME certificates served (names, serial, expiry, revocation).
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Revoke the ACME certificate a listener serves, at the CA, and have it replaced at once.
    Revoke {
        #[command(flatten)]
        admin: AdminArgs,
        /// The listener's name.
        #[arg(long)]
        listener: String,
        /// RFC 5280 reason code: 1 keyCompromise, 4 superseded, 5 cessationOfOperation.
        #[arg(long)]
        reason: Option<u8>,
    },
}

/// The columns of `cert list -o table`.
const COLUMNS: [&str; 5] = ["listeners", "domains", "serial", "not_after", "revoked_at"];

/// The file names the first config (`examples/first.toml`) expects.
const CERT_FILE: &str = "server.pem";
const KEY_FILE: &str = "server.key";

/// Runs the command.
pub(crate) async fn run(args: CertArgs) -> Result<(), String> {
    match args.command {
        CertCommand::SelfSigned { out, hosts, force } => self_signed(out, hosts, force),
        CertCommand::List { admin } => {
            let answer =
                admin::call(&admin, reqwest::Method::GET, "/v1/certificates", None).await?;
            admin::print(&answer, admin.output, "certificates", &COLUMNS);
            Ok(())
        }
        CertCommand::Revoke {
            admin,
            listener,
            reason,
        } => {
            let segment: String = percent_encoding::utf8_percent_encode(
                &listener,
                percent_encoding::NON_ALPHANUMERIC,
            )
            .collect();
            let body = reason.map(|code| json!({ "reason": code }));
            let path = format!("/v1/certificates/{segment}/revoke");
            let answer = admin::call(&admin, reqwest::Method::POST, &path, body).await?;
            admin::print(
                &answer,
                admin.output,
                "",
                &["listener", "revoked_serial", "replacement"],
            );
            Ok(())
        }
    }
}

/// Writes a self-signed pair; prints the paths written.
fn self_signed(out: PathBuf, hosts: Vec<String>, force: bool) -> Result<(), String> {
    let hosts = if hosts.is_empty() {
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
    } else {
        hosts
    };
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let (cert, key) = rampart::tls::self_signed(&names)?;
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let cert_path = out.join(CERT_FILE);
    let key_path = out.join(KEY_FILE);
    if !force {
        // Check both before writing either, so a refusal leaves no half-written pair.
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(format!(
                    "{} exists; use --force to replace it",
                    path.display()
                ));
            }
        }
    }
    write_new(&key_path, &key, 0o600, force)?;
    write_new(&cert_path, &cert, 0o644, force)?;
    println!("wrote {} (for {})", cert_path.display(), hosts.join(", "));
    println!("wrote {} (mode 0600)", key_path.display());
    Ok(())
}

/// Creates `path` with `mode` (a replaced file is removed first, so it never keeps a wider mode).
fn write_new(path: &Path, text: &str, mode: u32, force: bool) -> Result<(), String> {
    if force {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot replace {}: {e}", path.display())),
        }
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
