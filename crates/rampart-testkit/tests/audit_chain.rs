//! The audit trail is tamper-evident: a real gateway writes a chained, signed trail across
//! rotations, a reload and a restart, `verify` accepts it whole, and every kind of tampering
//! (an edited, deleted, inserted or reordered line, a forged checkpoint, a file cut short or
//! missing) is reported as what it is.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::path::{Path, PathBuf};

use http::StatusCode;
use rampart::audit::verify::{Finding, verify};
use rampart_testkit::{RecordingUpstream, TestGateway, read_audit_lines};

fn route(upstream: &RecordingUpstream, path: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"r\"\npath_prefix = \"{path}\"\nupstream = \"api\"\npublic = true\n",
        upstream.url()
    )
}

/// What the shell glob `audit.log*` gives: the trail, its key files, a log moved aside.
fn glob(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("audit.log")
        })
        .collect();
    files.sort();
    files
}

/// The trail's own files.
fn trail(dir: &Path) -> Vec<PathBuf> {
    glob(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            !name.contains(".key") && !name.contains(".unchained-")
        })
        .collect()
}

/// Copies the trail into a scratch directory, where `tamper` may change it.
fn copy_trail(files: &[PathBuf]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let scratch = tempfile::tempdir().unwrap();
    let copies = files
        .iter()
        .map(|f| {
            let to = scratch.path().join(f.file_name().unwrap());
            std::fs::copy(f, &to).unwrap();
            to
        })
        .collect();
    (scratch, copies)
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(file: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(file, text).unwrap();
}

fn seq_of(line: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"]
        .as_u64()
        .unwrap()
}

/// The oldest file's lines that are request records (not checkpoints or events), with indexes.
fn request_lines(file: &Path) -> Vec<(usize, String)> {
    lines(file)
        .into_iter()
        .enumerate()
        .filter(|(_, l)| !l.contains("\"event\""))
        .collect()
}

#[tokio::test]
async fn a_trail_across_rotations_a_reload_and_a_restart_verifies_and_every_tampering_is_named() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .plaintext()
        .audit("max_file_bytes = 6000\nmax_files = 100\ncheckpoint_every = 7")
        .config(&route(&upstream, "/a"))
        .start()
        .await;
    for i in 0..30 {
        assert_eq!(gw.get(&format!("/a/{i}")).await.status, StatusCode::OK);
    }
    std::fs::write(&gw.config_path, {
        let text = std::fs::read_to_string(&gw.config_path).unwrap();
        text.replace("path_prefix = \"/a\"", "path_prefix = \"/b\"")
    })
    .unwrap();
    rampart::run::reload(&gw.gateway, &gw.config_path).unwrap();
    let gw = gw.restart().await;
    for i in 0..20 {
        assert_eq!(gw.get(&format!("/b/{i}")).await.status, StatusCode::OK);
    }
    let dir = gw.stop_keeping_files().await;
    let files = trail(dir.path());
    assert!(files.len() >= 3, "rotated: {files:?}");
    let public_key = std::fs::read_to_string(dir.path().join("audit.log.key.pub")).unwrap();
    let public_key = public_key.trim();

    // Whole, with the key pinned: every record in order, the events in the chain.
    let whole = verify(&files, Some(public_key), false).unwrap_or_else(|f| panic!("{f}"));
    verify(&glob(dir.path()), Some(public_key), false).unwrap_or_else(|f| panic!("the glob: {f}"));
    assert_eq!(whole.first_seq, 1);
    assert_eq!(whole.records, whole.last_seq);
    assert!(whole.checkpoints >= 50 / 7, "{whole:?}");
    let all: Vec<serde_json::Value> = files.iter().flat_map(|f| read_audit_lines(f)).collect();
    let events: Vec<&str> = all.iter().filter_map(|l| l["event"].as_str()).collect();
    assert_eq!(
        events.iter().filter(|e| **e == "start").count(),
        2,
        "two starts"
    );
    let reload = all
        .iter()
        .find(|l| l["event"] == "config_reload")
        .expect("the reload is in the trail");
    assert_eq!(reload["outcome"], "applied");
    assert_eq!(
        reload["config_sha256"].as_str().unwrap(),
        rampart::audit::config_sha256(
            &std::fs::read_to_string(dir.path().join("rampart.toml")).unwrap()
        )
    );
    assert!(
        all.iter().filter(|l| l["path"].is_string()).count() == 50,
        "every request recorded"
    );
    let oldest = files
        .iter()
        .min_by_key(|f| seq_of(&lines(f)[0]))
        .unwrap()
        .clone();
    let oldest_index = files.iter().position(|f| *f == oldest).unwrap();
    let current = dir.path().join("audit.log");
    let current_index = files.iter().position(|f| *f == current).unwrap();

    // An edited record.
    let (scratch, copies) = copy_trail(&files);
    let mut text = lines(&copies[oldest_index]);
    let (i, line) = request_lines(&copies[oldest_index])[2].clone();
    text[i] = line.replace("\"status\":200", "\"status\":201");
    write_lines(&copies[oldest_index], &text);
    assert!(
        matches!(verify(&copies, None, false), Err(Finding::Altered { seq: Some(s), .. }) if s == seq_of(&line)),
        "{:?}",
        verify(&copies, None, false)
    );
    drop(scratch);

    // A deleted record.
    let (scratch, copies) = copy_trail(&files);
    let mut text = lines(&copies[oldest_index]);
    let (i, line) = request_lines(&copies[oldest_index])[2].clone();
    text.remove(i);
    write_lines(&copies[oldest_index], &text);
    let removed = seq_of(&line);
    assert!(
        matches!(verify(&copies, None, false), Err(Finding::Removed { from, to, .. }) if from == removed && to == removed),
        "{:?}",
        verify(&copies, None, false)
    );
    drop(scratch);

    // An inserted record: a copy of one placed after the next.
    let (scratch, copies) = copy_trail(&files);
    let mut text = lines(&copies[oldest_index]);
    let (i, line) = request_lines(&copies[oldest_index])[2].clone();
    text.insert(i + 2, line.clone());
    write_lines(&copies[oldest_index], &text);
    assert!(
        matches!(verify(&copies, None, false), Err(Finding::Inserted { seq, .. }) if seq == seq_of(&line)),
        "{:?}",
        verify(&copies, None, false)
    );
    drop(scratch);

    // Two records swapped.
    let (scratch, copies) = copy_trail(&files);
    let mut text = lines(&copies[oldest_index]);
    let (i, _) = request_lines(&copies[oldest_index])[2].clone();
    text.swap(i, i + 1);
    write_lines(&copies[oldest_index], &text);
    assert!(
        matches!(verify(&copies, None, false), Err(Finding::Reordered { .. })),
        "{:?}",
        verify(&copies, None, false)
    );
    drop(scratch);

    // The end of the trail cut off (the shutdown checkpoint with it).
    let (scratch, copies) = copy_trail(&files);
    let mut text = lines(&copies[current_index]);
    text.truncate(text.len().saturating_sub(2));
    write_lines(&copies[current_index], &text);
    assert!(
        matches!(verify(&copies, None, false), Err(Finding::Truncated { .. })),
        "{:?}",
        verify(&copies, None, false)
    );
    drop(scratch);

    // A rotated file cut short, and a last line cut in the middle.
    let (scratch, copies) = copy_trail(&files);
    let mut text = lines(&copies[oldest_index]);
    text.pop();
    write_lines(&copies[oldest_index], &text);
    assert!(
        matches!(verify(&copies, None, false), Err(Finding::Truncated { ref file, .. }) if *file == copies[oldest_index]),
        "{:?}",
        verify(&copies, None, false)
    );
    drop(scratch);
    let (scratch, copies) = copy_trail(&files);
    let mut bytes = std::fs::read(&copies[current_index]).unwrap();
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&copies[current_index], bytes).unwrap();
    assert!(
        matches!(verify(&copies, None, false), Err(Finding::Truncated { detail, .. }) if detail.contains("cut short")),
        "{:?}",
        verify(&copies, None, false)
    );
    drop(scratch);

    // A whole rotated file gone from the middle.
    let middle = files
        .iter()
        .filter(|f| **f != oldest && **f != current)
        .min_by_key(|f| seq_of(&lines(f)[0]))
        .unwrap()
        .clone();
    let without: Vec<PathBuf> = files.iter().filter(|f| **f != middle).cloned().collect();
    assert!(
        matches!(verify(&without, None, false), Err(Finding::Removed { .. })),
        "{:?}",
        verify(&without, None, false)
    );

    // A checkpoint re-signed by another key, and the trail checked against another key.
    let (scratch, copies) = copy_trail(&files);
    let mut text = lines(&copies[oldest_index]);
    let i = text
        .iter()
        .position(|l| l.contains("\"checkpoint\""))
        .unwrap();
    let forged_sig = "A".repeat(86) + "==";
    let mut forged: serde_json::Value = serde_json::from_str(&text[i]).unwrap();
    forged["sig"] = forged_sig.into();
    text[i] = forged.to_string();
    write_lines(&copies[oldest_index], &text);
    assert!(
        matches!(
            verify(&copies, None, false),
            Err(Finding::BadSignature { .. }) | Err(Finding::Altered { .. })
        ),
        "{:?}",
        verify(&copies, None, false)
    );
    drop(scratch);
    let other = "MCowBQYDK2VwAyEA".to_owned() + &"B".repeat(44);
    assert!(matches!(
        verify(&files, Some(&other), false),
        Err(Finding::BadSignature { .. })
    ));
}

#[tokio::test]
async fn a_restart_over_a_cut_line_and_appended_lines_says_so_in_its_start_event() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .plaintext()
        .config(&route(&upstream, "/a"))
        .start()
        .await;
    for _ in 0..3 {
        assert_eq!(gw.get("/a").await.status, StatusCode::OK);
    }
    let gw = gw
        .restart_after(|dir| {
            // Someone appends a line that chains correctly, then a crash leaves half a line.
            let log = dir.join("audit.log");
            let text = lines(&log);
            let last = text.last().unwrap();
            let forged = format!(
                r#"{{"path":"/forged","seq":{},"prev":"{}"}}"#,
                seq_of(last) + 1,
                hex::encode(sha2_digest(last.as_bytes()))
            );
            let mut all = text.clone();
            all.push(forged);
            write_lines(&log, &all);
            let mut bytes = std::fs::read(&log).unwrap();
            bytes.extend_from_slice(br#"{"time":"2026-"#);
            std::fs::write(&log, bytes).unwrap();
        })
        .await;
    assert_eq!(gw.get("/a").await.status, StatusCode::OK);
    let dir = gw.stop_keeping_files().await;
    let log = dir.path().join("audit.log");
    let all = read_audit_lines(&log);
    let start = all
        .iter()
        .filter(|l| l["event"] == "start")
        .nth(1)
        .expect("the second start");
    assert_eq!(start["after"], "unsealed");
    assert_eq!(start["discarded_bytes"], 14);
    let trail = verify(&[log], None, false).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(trail.unsealed_starts, 1, "the appended line is flagged");
}

#[tokio::test]
async fn a_trail_whose_signing_key_went_missing_is_not_continued_under_a_new_key() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .plaintext()
        .config(&route(&upstream, "/a"))
        .start()
        .await;
    assert_eq!(gw.get("/a").await.status, StatusCode::OK);
    let dir = gw.stop_keeping_files().await;
    std::fs::remove_file(dir.path().join("audit.log.key")).unwrap();
    let error = match rampart::run::prepare(&dir.path().join("rampart.toml")).await {
        Ok(_) => panic!("started without the trail's key"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("signing key"), "{error}");
    assert!(!dir.path().join("audit.log.key").exists());
}

fn sha2_digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

#[tokio::test]
async fn a_log_from_before_the_chain_is_moved_aside_and_a_new_trail_begins() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .plaintext()
        .config(&route(&upstream, "/a"))
        .start()
        .await;
    let gw = gw
        .restart_after(|dir| {
            // What an older version wrote: records without seq or prev, and no key.
            std::fs::write(
                dir.join("audit.log"),
                "{\"path\":\"/old\",\"status\":200}\n",
            )
            .unwrap();
            for key in ["audit.log.key", "audit.log.key.pub"] {
                std::fs::remove_file(dir.join(key)).unwrap();
            }
        })
        .await;
    assert_eq!(gw.get("/a").await.status, StatusCode::OK);
    let dir = gw.stop_keeping_files().await;
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("audit.log.unchained-"))
        .expect("the old log moved aside");
    assert!(std::fs::read_to_string(aside).unwrap().contains("/old"));
    // The glob `audit.log*` (keys and the old log included) verifies the new trail.
    verify(&glob(dir.path()), None, false).unwrap_or_else(|f| panic!("{f}"));
}

#[tokio::test]
async fn a_reload_that_changes_the_audit_settings_is_refused_recorded_and_the_chain_goes_on() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .plaintext()
        .audit("checkpoint_every = 5")
        .config(&route(&upstream, "/a"))
        .start()
        .await;
    assert_eq!(gw.get("/a").await.status, StatusCode::OK);
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        text.replace(
            "checkpoint_every = 5",
            "checkpoint_every = 2\nsigning_key_file = \"other.key\"",
        ),
    )
    .unwrap();
    let error = rampart::run::reload(&gw.gateway, &gw.config_path)
        .unwrap_err()
        .to_string();
    assert!(error.contains("audit: cannot change on reload"), "{error}");
    // The running config stays, with its route and its chain.
    assert_eq!(gw.get("/a").await.status, StatusCode::OK);
    let dir = gw.stop_keeping_files().await;
    assert!(
        !dir.path().join("other.key").exists(),
        "no second key was made"
    );
    let log = dir.path().join("audit.log");
    let all = read_audit_lines(&log);
    let refused = all
        .iter()
        .find(|l| l["event"] == "config_reload")
        .expect("the refused reload is in the trail");
    assert_eq!(refused["outcome"], "refused");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("audit: cannot change on reload")
    );
    assert_eq!(all.iter().filter(|l| l["path"] == "/a").count(), 2);
    verify(&[log], None, false).unwrap_or_else(|f| panic!("{f}"));
}
