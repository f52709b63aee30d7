//! The request path makes no blocking call: the real `rampart run` binary, under `strace`,
//! proxies a few hundred requests (audit log on, a rate limit, unrouted paths), and none of the
//! runtime's threads opens, stats, syncs or reads or writes a file, sleeps, or waits in
//! `poll`/`select` meanwhile. File work belongs on the audit writer's and the upkeep threads
//! (named), a blocking wait anywhere on a runtime thread stalls every connection it serves.
//! `strace` is installed by `scripts/test` (Debian package `strace`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use rampart_testkit::{Client, RecordingUpstream};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rampart");

/// Reads and writes: allowed on sockets, pipes and event fds, a finding on a regular file (where
/// they block).
const IO_CALLS: &[&str] = &["read", "write", "readv", "writev", "recvfrom", "sendto"];

/// Syscalls that are a finding on a runtime thread whatever their arguments.
const ALWAYS_BLOCKING: &[&str] = &[
    "openat",
    "open",
    "creat",
    "stat",
    "lstat",
    "newfstatat",
    "statx",
    "access",
    "faccessat",
    "faccessat2",
    "readlink",
    "readlinkat",
    "fsync",
    "fdatasync",
    "sync_file_range",
    "flock",
    "pread64",
    "pwrite64",
    "nanosleep",
    "clock_nanosleep",
    "poll",
    "ppoll",
    "select",
    "pselect6",
];

fn config(dir: &std::path::Path, upstream: &RecordingUpstream) -> String {
    format!(
        r#"[[listeners]]
name = "local"
bind = "127.0.0.1:0"
plaintext = true

[admin]
enabled = false

[audit]
file = "{}"

[server]
watch_config = false

[[upstreams]]
name = "api"
targets = ["{}"]

[[routes]]
name = "orders"
path_prefix = "/orders"
methods = ["GET"]
upstream = "api"
public = true
rate_limits = [{{ name = "per-ip", key = "ip", rate = 100000, per = "second" }}]
"#,
        dir.join("audit.log").display(),
        upstream.url()
    )
}

#[tokio::test]
async fn runtime_threads_make_no_blocking_call_while_proxying() {
    proxy_under_strace(false).await;
}

/// Pinned to one core, the gateway runs tokio's current-thread runtime: every request is served
/// by its main thread, where a blocking call would stall every connection at once.
#[tokio::test]
async fn the_one_core_runtime_makes_no_blocking_call_while_proxying() {
    let served = proxy_under_strace(true).await;
    assert!(
        served.by_main_thread >= 600,
        "pinned to one core, the requests were not served by the main thread (the current-thread \
         runtime): {} socket calls there\n{:?}",
        served.by_main_thread,
        served.names
    );
}

/// What `proxy_under_strace` saw.
struct Served {
    names: HashMap<u32, String>,
    /// Socket reads and writes made by the process's main thread (its TID is its PID).
    by_main_thread: usize,
}

/// Runs the gateway under `strace` (on one core alone with `one_core`), proxies a few hundred
/// requests and fails on any blocking call a runtime thread made meanwhile.
async fn proxy_under_strace(one_core: bool) -> Served {
    let upstream = RecordingUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("rampart.toml");
    std::fs::write(&config_path, config(dir.path(), &upstream)).unwrap();
    let trace = dir.path().join("strace.out");
    // taskset runs strace in its place (same process), with the gateway inheriting its CPUs.
    let mut strace = if one_core {
        let mut taskset = Command::new("taskset");
        taskset.args(["-c", &first_allowed_cpu(), "strace"]);
        taskset
    } else {
        Command::new("strace")
    };
    let mut strace = strace
        .args(["-f", "-qq", "-y", "-ttt", "-e"])
        .arg(format!(
            "trace={},{}",
            ALWAYS_BLOCKING.join(","),
            IO_CALLS.join(",")
        ))
        .arg("-o")
        .arg(&trace)
        .arg(BIN)
        .args(["run", "--config"])
        .arg(&config_path)
        .env_remove("RAMPART_LOG")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("strace must be installed (Debian package strace; scripts/test installs it)");
    let mut logs = BufReader::new(strace.stderr.take().unwrap());
    let addr = listening_address(&mut logs).await;
    // Killed however the test ends: a killed strace would leave its tracee running.
    let gateway = Killed(child_of(strace.id().unwrap()));
    // Logs keep flowing to a reader, so that a full pipe never blocks the gateway.
    tokio::spawn(async move {
        let mut line = String::new();
        while logs.read_line(&mut line).await.is_ok_and(|n| n > 0) {
            line.clear();
        }
    });
    let client = Client::new(&format!("http://{addr}"), None, false);

    // Warm-up: first connections, lazy initialisation, the first audit lines.
    for _ in 0..20 {
        assert_eq!(client.get("/orders/1").await.status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    for i in 0..300 {
        let path = if i % 10 == 0 {
            "/nowhere"
        } else {
            "/orders/7?x=1"
        };
        let status = client.get(path).await.status;
        assert!(
            status == StatusCode::OK || status == StatusCode::NOT_FOUND,
            "{status}"
        );
    }
    // The audit writer catches up (its file writes must be there, on its own thread).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gateway_pid = gateway.0;
    let names = thread_names(gateway_pid);
    drop(gateway);
    // strace ends with its tracee, after writing out the trace.
    let _ = tokio::time::timeout(Duration::from_secs(10), strace.wait()).await;

    let text = std::fs::read_to_string(&trace).unwrap();
    let mut findings = Vec::new();
    let mut audit_writes = 0;
    let mut runtime_socket_io = 0;
    let mut by_main_thread = 0;
    for line in text.lines() {
        let Some((tid, at, call)) = parse(line) else {
            continue;
        };
        if at < since.as_secs_f64() {
            continue;
        }
        let thread = names.get(&tid).map_or("?", String::as_str);
        if thread == "rampart-audit" && call.contains("audit.log>") {
            audit_writes += 1;
        }
        if is_runtime_thread(thread) {
            if is_blocking(call) {
                findings.push(format!("{thread} ({tid}): {call}"));
            } else if call.contains("<TCP") || call.contains("<socket:") {
                runtime_socket_io += 1;
                if tid == gateway_pid {
                    by_main_thread += 1;
                }
            }
        }
    }
    assert!(
        audit_writes > 0,
        "the trace saw no audit write on the writer thread: it traced nothing useful\n{}",
        tail(&text)
    );
    assert!(
        runtime_socket_io >= 600,
        "the runtime threads were not seen serving the requests ({runtime_socket_io} socket calls)\n{names:?}\n{}",
        tail(&text)
    );
    assert!(
        findings.is_empty(),
        "blocking calls on runtime threads while proxying:\n{}",
        findings.join("\n")
    );
    Served {
        names,
        by_main_thread,
    }
}

/// The first CPU this process may run on (`Cpus_allowed_list`: `0-3`, `2,5-7`...): CPU 0 may
/// not be in a restricted cpuset.
fn first_allowed_cpu() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .expect("/proc/self/status has Cpus_allowed_list");
    list.trim().split([',', '-']).next().unwrap().to_owned()
}

/// tokio's workers and blocking threads (`tokio-rt-worker`, `tokio-runtime-w...`), and the main
/// thread (`rampart`), which polls the future `block_on` runs.
fn is_runtime_thread(name: &str) -> bool {
    name.starts_with("tokio-") || name == "rampart"
}

/// `TID SECONDS.MICROS call(...)` as `strace -f -ttt -o` writes it (the TID padded).
fn parse(line: &str) -> Option<(u32, f64, &str)> {
    let (tid, rest) = line.trim_start().split_once(' ')?;
    let (at, call) = rest.trim_start().split_once(' ')?;
    Some((tid.parse().ok()?, at.parse().ok()?, call))
}

fn is_blocking(call: &str) -> bool {
    let name = call.split('(').next().unwrap_or_default();
    if ALWAYS_BLOCKING.contains(&name) {
        return true;
    }
    // A read or write on a path (`3</tmp/x>`), not on a socket, pipe or event fd.
    IO_CALLS.contains(&name)
        && call
            .split_once('<')
            .is_some_and(|(_, target)| target.starts_with('/'))
}

async fn listening_address(logs: &mut (impl AsyncBufReadExt + Unpin)) -> String {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        let mut line = String::new();
        loop {
            line.clear();
            if logs.read_line(&mut line).await.unwrap() == 0 {
                panic!("the gateway exited before listening");
            }
            if line.contains("\"listening\"") {
                let log: serde_json::Value = serde_json::from_str(&line).unwrap();
                return log["fields"]["addr"].as_str().unwrap().to_owned();
            }
        }
    })
    .await;
    found.expect("the gateway did not listen within 30 s")
}

/// A process SIGKILLed when this is dropped.
struct Killed(u32);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

/// The traced process: strace's only child.
fn child_of(strace_pid: u32) -> u32 {
    let children =
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children")).unwrap();
    children
        .split_whitespace()
        .next()
        .expect("strace has no child")
        .parse()
        .unwrap()
}

fn thread_names(pid: u32) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap();
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(name) = std::fs::read_to_string(task.path().join("comm")) {
            names.insert(tid, name.trim().to_owned());
        }
    }
    names
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
