//! `rampart audit report`: what a period of the audit trail says, for a reviewer: how many
//! requests and how they ended, the top refused sources, principals and routes, refusals by
//! code, detections and blocks, admin calls and reloads.
//!
//! It reads the files as written (current and rotated, in any order; key files skipped) and
//! counts in memory: an offline tool over files the operator chose, so its maps grow with the
//! distinct values in them (addresses, principals), which `top` only trims in the output.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Which records count, and how many of each ranking are shown.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub top: usize,
}

/// One ranked value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ranked {
    pub name: String,
    pub count: u64,
}

/// One detector's detections, and its most detected subjects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorSummary {
    pub detector: String,
    pub detections: u64,
    pub blocks: u64,
    pub subjects: Vec<Ranked>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The first and last record time counted (RFC 3339).
    pub first: Option<String>,
    pub last: Option<String>,
    pub requests: u64,
    pub allowed: u64,
    pub denied: u64,
    pub errors: u64,
    pub refusals_by_code: Vec<Ranked>,
    /// The pipeline stage that refused (`refused_by`).
    pub refusals_by_stage: Vec<Ranked>,
    pub top_refused_sources: Vec<Ranked>,
    pub top_refused_principals: Vec<Ranked>,
    pub top_refused_routes: Vec<Ranked>,
    pub detections: Vec<DetectorSummary>,
    pub admin_calls: u64,
    pub config_reloads_applied: u64,
    pub config_reloads_refused: u64,
    pub starts: u64,
    /// Lines that are not JSON objects (a damaged file: run `rampart audit verify`).
    pub unreadable_lines: u64,
}

/// Counts while reading.
#[derive(Default)]
struct Tally {
    report: Report,
    codes: HashMap<String, u64>,
    stages: HashMap<String, u64>,
    sources: HashMap<String, u64>,
    principals: HashMap<String, u64>,
    routes: HashMap<String, u64>,
    detectors: HashMap<String, (u64, u64, HashMap<String, u64>)>,
    first: Option<OffsetDateTime>,
    last: Option<OffsetDateTime>,
}

/// Reads every file and summarizes the records within the period.
pub fn report(files: &[PathBuf], options: &ReportOptions) -> Result<Report, String> {
    let mut tally = Tally::default();
    // A file named twice (a glob and its own name) is read once.
    let mut seen = std::collections::HashSet::new();
    for file in files.iter().filter(|f| !super::verify::is_key_file(f)) {
        if seen.insert(std::fs::canonicalize(file).unwrap_or_else(|_| file.clone())) {
            read(file, options, &mut tally)?;
        }
    }
    Ok(tally.finish(options.top))
}

fn read(file: &Path, options: &ReportOptions, tally: &mut Tally) -> Result<(), String> {
    let opened =
        std::fs::File::open(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut reader = std::io::BufReader::new(opened);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if read == 0 {
            break;
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        // A damaged line (not JSON, not UTF-8) is counted, never the end of the report.
        match serde_json::from_slice::<Value>(&line) {
            Ok(Value::Object(record)) => tally.add(&Value::Object(record), options),
            _ => tally.report.unreadable_lines += 1,
        }
    }
    Ok(())
}

impl Tally {
    fn add(&mut self, r: &Value, options: &ReportOptions) {
        let Some(time) = r["time"]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        else {
            self.report.unreadable_lines += 1;
            return;
        };
        if options.since.is_some_and(|s| time < s) || options.until.is_some_and(|u| time >= u) {
            return;
        }
        match r["event"].as_str() {
            Some("checkpoint") => return,
            Some(event) => self.event(event, r),
            // The admin API's own records (`admin/api.rs`): its listener and route together.
            None if r["listener"] == "admin" && r["route"] == "admin-api" => {
                self.report.admin_calls += 1
            }
            None => self.request(r),
        }
        self.first = Some(self.first.map_or(time, |f| f.min(time)));
        self.last = Some(self.last.map_or(time, |l| l.max(time)));
    }

    fn request(&mut self, r: &Value) {
        let report = &mut self.report;
        report.requests += 1;
        match r["decision"].as_str() {
            Some("allow") => report.allowed += 1,
            Some("error") => report.errors += 1,
            _ => {
                report.denied += 1;
                let name = |v: &Value| v.as_str().map(str::to_owned);
                bump(
                    &mut self.codes,
                    name(&r["code"]).unwrap_or_else(|| r["status"].to_string()),
                );
                if let Some(stage) = name(&r["refused_by"]) {
                    bump(&mut self.stages, stage);
                }
                if let Some(ip) = name(&r["client_ip"]) {
                    bump(&mut self.sources, ip);
                }
                if let Some(who) = name(&r["key_id"])
                    .map(|id| format!("key:{id}"))
                    .or_else(|| name(&r["principal"]).map(|p| format!("sub:{p}")))
                {
                    bump(&mut self.principals, who);
                }
                bump(
                    &mut self.routes,
                    name(&r["route"]).unwrap_or_else(|| "(no route)".to_owned()),
                );
            }
        }
    }

    fn event(&mut self, event: &str, r: &Value) {
        match (event, r["outcome"].as_str()) {
            ("start", _) => self.report.starts += 1,
            ("config_reload", Some("applied")) => self.report.config_reloads_applied += 1,
            ("config_reload", _) => self.report.config_reloads_refused += 1,
            ("detection", outcome) => {
                let detection = &r["detection"];
                let detector = detection["detector"].as_str().unwrap_or("?").to_owned();
                let subject = detection["subject"].as_str().unwrap_or("?").to_owned();
                let entry = self.detectors.entry(detector).or_default();
                entry.0 += 1;
                entry.1 += u64::from(outcome == Some("blocked"));
                bump(&mut entry.2, subject);
            }
            _ => {}
        }
    }

    fn finish(mut self, top: usize) -> Report {
        let report = &mut self.report;
        report.first = self.first.and_then(|t| t.format(&Rfc3339).ok());
        report.last = self.last.and_then(|t| t.format(&Rfc3339).ok());
        report.refusals_by_code = ranked(self.codes, top);
        report.refusals_by_stage = ranked(self.stages, top);
        report.top_refused_sources = ranked(self.sources, top);
        report.top_refused_principals = ranked(self.principals, top);
        report.top_refused_routes = ranked(self.routes, top);
        let mut detections: Vec<DetectorSummary> = self
            .detectors
            .into_iter()
            .map(
                |(detector, (detections, blocks, subjects))| DetectorSummary {
                    detector,
                    detections,
                    blocks,
                    subjects: ranked(subjects, top),
                },
            )
            .collect();
        detections.sort_by(|a, b| {
            b.detections
                .cmp(&a.detections)
                .then(a.detector.cmp(&b.detector))
        });
        report.detections = detections;
        self.report
    }
}

fn bump(counts: &mut HashMap<String, u64>, key: String) {
    *counts.entry(key).or_default() += 1;
}

/// The `top` largest counts, ties by name.
fn ranked(counts: HashMap<String, u64>, top: usize) -> Vec<Ranked> {
    let mut all: Vec<Ranked> = counts
        .into_iter()
        .map(|(name, count)| Ranked { name, count })
        .collect();
    all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    all.truncate(top);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, lines: &[Value]) -> PathBuf {
        let path = dir.join(name);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn request(time: &str, ip: &str, decision: &str, code: Option<&str>) -> Value {
        serde_json::json!({"time": time, "client_ip": ip, "listener": "public", "route": "orders",
            "decision": decision, "status": 401, "code": code, "principal": null,
            "refused_by": "authenticate"})
    }

    #[test]
    fn a_period_is_summarized_across_files_with_rankings_detections_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let t = |s: u32| format!("2026-12-03T10:00:{s:02}Z");
        let rotated = write(
            dir.path(),
            "audit.log.1",
            &[
                serde_json::json!({"time": t(0), "event": "start", "config_sha256": "x"}),
                request(&t(1), "198.51.100.7", "deny", Some("invalid_token")),
                request(&t(2), "198.51.100.7", "deny", Some("invalid_token")),
                serde_json::json!({"time": t(3), "event": "checkpoint"}),
            ],
        );
        let current = write(
            dir.path(),
            "audit.log",
            &[
                request(&t(4), "203.0.113.1", "deny", Some("route_not_found")),
                request(&t(5), "203.0.113.1", "allow", None),
                request(
                    "2026-12-03T10:00:05.500Z",
                    "192.0.2.1",
                    "error",
                    Some("upstream_timeout"),
                ),
                serde_json::json!({"time": t(6), "event": "detection", "outcome": "blocked",
                    "detection": {"detector": "users_by_address", "subject": "198.51.100.7"}}),
                serde_json::json!({"time": t(7), "event": "config_reload", "outcome": "refused"}),
                serde_json::json!({"time": t(8), "listener": "admin", "route": "admin-api", "decision": "allow"}),
                serde_json::json!({"time": t(59), "client_ip": "192.0.2.9", "decision": "deny"}),
            ],
        );
        let key = write(dir.path(), "audit.log.key", &[]);
        std::fs::write(&key, "not json").unwrap();
        let options = ReportOptions {
            since: Some(OffsetDateTime::parse(&t(1), &Rfc3339).unwrap()),
            until: Some(OffsetDateTime::parse(&t(59), &Rfc3339).unwrap()),
            top: 10,
        };
        let report = report(&[current, rotated, key], &options).unwrap();
        assert_eq!(report.first.as_deref(), Some("2026-12-03T10:00:01Z"));
        assert_eq!(report.last.as_deref(), Some("2026-12-03T10:00:08Z"));
        assert_eq!(
            (
                report.requests,
                report.allowed,
                report.denied,
                report.errors
            ),
            (5, 1, 3, 1)
        );
        assert_eq!(report.starts, 0, "the start is before the period");
        assert_eq!(
            report.top_refused_sources,
            vec![
                Ranked {
                    name: "198.51.100.7".into(),
                    count: 2
                },
                Ranked {
                    name: "203.0.113.1".into(),
                    count: 1
                },
            ]
        );
        assert_eq!(
            report.refusals_by_code[0],
            Ranked {
                name: "invalid_token".into(),
                count: 2
            }
        );
        assert_eq!(
            report.refusals_by_stage[0],
            Ranked {
                name: "authenticate".into(),
                count: 3
            }
        );
        assert_eq!(report.detections.len(), 1);
        assert_eq!(report.detections[0].blocks, 1);
        assert_eq!(report.config_reloads_refused, 1);
        assert_eq!(report.admin_calls, 1);
        assert_eq!(report.unreadable_lines, 0, "the key file is skipped");
    }
}
