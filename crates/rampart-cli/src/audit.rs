//! `rampart audit verify`: checks an audit trail's hash chain and signed checkpoints.
//! `rampart audit report`: summarizes a period of it, as text or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use rampart::audit::report::{Report, ReportOptions};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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
    /// Summarize a period: requests and how they ended, the top refused sources, principals
    /// and routes, refusals by code, detections and blocks, admin calls and reloads.
    Report {
        /// The audit files (current and rotated, in any order).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// From this time on (RFC 3339, `2026-12-01T00:00:00Z`).
        #[arg(long, value_parser = rfc3339)]
        since: Option<OffsetDateTime>,
        /// Before this time (RFC 3339).
        #[arg(long, value_parser = rfc3339)]
        until: Option<OffsetDateTime>,
        /// Entries in each ranking.
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[arg(long, short = 'o', value_enum, default_value_t = ReportFormat::Text)]
        output: ReportFormat,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

fn rfc3339(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

pub(crate) fn run(args: AuditArgs) -> ExitCode {
    match args.command {
        AuditCommand::Verify {
            files,
            public_key,
            trust_embedded_key: _,
            allow_missing_head,
        } => verify(&files, public_key, allow_missing_head),
        AuditCommand::Report {
            files,
            since,
            until,
            top,
            output,
        } => {
            let options = ReportOptions { since, until, top };
            match rampart::audit::report::report(&files, &options) {
                Ok(report) => {
                    match output {
                        ReportFormat::Json => println!(
                            "{}",
                            serde_json::to_string_pretty(&report).unwrap_or_default()
                        ),
                        ReportFormat::Text => print!("{}", report_text(&report)),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The report for a terminal: totals, then each ranking as a table.
fn report_text(report: &Report) -> String {
    let mut out = format!(
        "period: {} to {}
requests: {} (allowed {}, denied {}, errors {})
admin calls: {}; starts: {}; config reloads: {} applied, {} refused
",
        report.first.as_deref().unwrap_or("-"),
        report.last.as_deref().unwrap_or("-"),
        report.requests,
        report.allowed,
        report.denied,
        report.errors,
        report.admin_calls,
        report.starts,
        report.config_reloads_applied,
        report.config_reloads_refused,
    );
    let sections = [
        ("refusals by code", &report.refusals_by_code),
        ("refusals by stage", &report.refusals_by_stage),
        ("top refused sources", &report.top_refused_sources),
        ("top refused principals", &report.top_refused_principals),
        ("top refused routes", &report.top_refused_routes),
    ];
    for (title, ranked) in sections {
        out.push_str(&format!("\n{title}:\n"));
        let rows = serde_json::to_value(ranked).unwrap_or_default();
        let rows: Vec<&serde_json::Value> = rows.as_array().into_iter().flatten().collect();
        out.push_str(&crate::admin::table(&rows, &["name", "count"]));
    }
    out.push_str("\ndetections:\n");
    let rows: Vec<serde_json::Value> = report
        .detections
        .iter()
        .map(|d| {
            let subjects: Vec<String> = d
                .subjects
                .iter()
                .map(|s| format!("{} ({})", s.name, s.count))
                .collect();
            serde_json::json!({"detector": d.detector, "detections": d.detections,
                "blocks": d.blocks, "top_subjects": subjects.join(", ")})
        })
        .collect();
    let rows: Vec<&serde_json::Value> = rows.iter().collect();
    out.push_str(&crate::admin::table(
        &rows,
        &["detector", "detections", "blocks", "top_subjects"],
    ));
    if report.unreadable_lines > 0 {
        out.push_str(&format!(
            "\nnote: {} line(s) are not JSON records: run `rampart audit verify`\n",
            report.unreadable_lines
        ));
    }
    out
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
