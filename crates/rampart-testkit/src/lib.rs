#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
// A test harness fails loudly: a broken fixture should stop the test at the line that broke.

//! Test harness: the real gateway served in-process on 127.0.0.1:0 from a real config file, a
//! recording upstream, HTTPS clients that trust the test certificate, and a raw TCP client for
//! malformed HTTP.

mod ca;
mod client;
mod dpop;
mod gateway;
pub mod interop;
mod issuer;
mod pebble;
mod pg;
mod ports;
mod raw;
mod redis;
mod rsyslog;
mod upstream;

pub use ca::{ClientIdentity, TestCa};
pub use client::{Client, TestResponse, h2c_send_unsized};
pub use dpop::{DpopKey, Proof};
pub use gateway::{read_audit, read_audit_lines};
pub use issuer::{TestIssuer, TestKey, alg_name, now};
pub use pebble::{OcspResponder, PebblePorts, PebbleServer};
pub use pg::PgServer;
pub use ports::{free_port, free_port_with_companion};
pub use redis::{RedisCluster, RedisServer};
pub use rsyslog::RsyslogServer;

pub use gateway::{TestGateway, TestGatewayBuilder};
pub use raw::{RawExchange, WAIT, raw_exchange, raw_tls_exchange};
pub use upstream::{Recorded, RecordingUpstream, Reply, json};

/// Installs the rustls provider; every test binary calls it through the helpers.
pub fn init() {
    rampart::tls::install_crypto_provider();
    // `RAMPART_TEST_LOG=rampart=debug` shows the gateway's logs while debugging a test.
    if let Ok(filter) = std::env::var("RAMPART_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// Every error `rampart::config::parse` reports for `text`; panics if the config is accepted.
pub fn config_errors(text: &str) -> Vec<rampart::config::Located> {
    let source =
        rampart::config::ConfigSource::from_text("test.toml", text, std::path::Path::new("/tmp"));
    match rampart::config::parse(&source) {
        Ok(_) => panic!("the config should be refused"),
        Err(e) => e.errors,
    }
}

/// Waits (10 s at most) until `child`, a server started by the harness, accepts TCP on this
/// loopback port; `what` names it in the panic, which says whether the server exited (a port
/// taken meanwhile by another process) or is still starting.
pub(crate) fn wait_for_port(child: &mut std::process::Child, port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before listening on port {port}");
        }
        if std::time::Instant::now() >= deadline {
            // Not left running: the caller never got to own it.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not listen on port {port} within 10 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Polls `probe` every 50 ms until it yields a value; panics after 10 s.
pub async fn eventually<T>(mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(found) = probe().await {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("not within 10 s");
}
