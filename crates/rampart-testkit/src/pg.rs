//! A throwaway PostgreSQL server from the installed binaries, on a free loopback port, in a
//! temporary directory; stopped and deleted on drop. `scripts/test` installs the binaries when
//! missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// A running PostgreSQL server.
pub struct PgServer {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub url: String,
    child: Child,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL is not installed (apt-get install postgresql); scripts/test installs it",
        )
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root (initdb refuses root).
fn command(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

impl PgServer {
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        if is_root() {
            let ok = Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(dir.path())
                .status();
            assert!(ok.is_ok_and(|s| s.success()), "chown to postgres failed");
        }
        let data = dir.path().join("data");
        let out = command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let child = spawn_postgres(&data, dir.path(), port);
        Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            child,
            data,
            port,
            _dir: dir,
        }
    }

    /// Stops the server (an outage); the data stays for `restart`.
    pub fn stop(&mut self) {
        // The postmaster's pid is the first line of postmaster.pid (the child may be runuser).
        if let Ok(text) = std::fs::read_to_string(self.data.join("postmaster.pid"))
            && let Some(pid) = text.lines().next()
        {
            let _ = Command::new("kill").args(["-INT", pid]).status();
            for _ in 0..100 {
                if !self.data.join("postmaster.pid").exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the stopped server again on the same port and data.
    pub fn restart(&mut self) {
        let socket_dir = self
            .data
            .parent()
            .expect("data dir has a parent")
            .to_path_buf();
        self.child = spawn_postgres(&self.data, &socket_dir, self.port);
    }
}

/// Starts `postgres` on `data` and waits until it accepts connections.
fn spawn_postgres(data: &Path, socket_dir: &Path, port: u16) -> Child {
    let child = command(&bin_dir().join("postgres"))
        .arg("-D")
        .arg(data)
        .args([
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ])
        .arg("-k")
        .arg(socket_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start postgres");
    // An open port is not enough: a server still replaying or starting refuses logins ("the
    // database system is starting up"). pg_isready answers 0 only once it accepts them.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !accepts_connections(port) {
        assert!(Instant::now() < deadline, "postgres did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn accepts_connections(port: u16) -> bool {
    std::process::Command::new(bin_dir().join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
