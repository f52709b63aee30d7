//! A throwaway Redis server from the installed `redis-server`, on a free loopback port, keeping
//! nothing on disk; stopped on drop (and on demand, for outage tests). `scripts/test` installs the
//! binary when missing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Redis server.
pub struct RedisServer {
    /// `redis://127.0.0.1:PORT`
    pub url: String,
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = crate::free_port();
        let mut server = Self {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            child: None,
        };
        server.restart();
        server
    }

    /// Starts the server (again) on the same port.
    pub fn restart(&mut self) {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed (apt-get install redis-server)");
        crate::wait_for_port(&mut child, self.port, "redis-server");
        self.child = Some(child);
    }

    /// Kills the server (an outage).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of three masters (no replicas) on free loopback ports, made with
/// `redis-cli --cluster create`.
pub struct RedisCluster {
    /// `redis://127.0.0.1:PORT` of every node.
    pub nodes: Vec<String>,
    servers: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        let mut servers = Vec::new();
        for i in 0..3 {
            // The node's cluster bus listens on its port + 10,000.
            let port = crate::free_port_with_companion(10_000);
            let node_dir = dir.path().join(format!("n{i}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is not installed");
            servers.push(child);
            ports.push(port);
        }
        for (child, port) in servers.iter_mut().zip(&ports) {
            crate::wait_for_port(child, *port, "redis-server");
        }
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(created.success(), "redis-cli --cluster create failed");
        // Wait until every node agrees the cluster is up.
        for port in &ports {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let out = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli");
                if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster did not become ready");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Self {
            nodes: ports
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect(),
            servers,
            _dir: dir,
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}
