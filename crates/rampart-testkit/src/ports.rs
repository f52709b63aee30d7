//! Ports for servers a test starts later: a child process (Pebble, Redis, PostgreSQL, rsyslog)
//! or a gateway whose config names the port.

use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;

/// Where picked ports start: above the well-known and registered ports services use.
const LOWEST: u16 = 10_000;

/// A port free now, for a server the test starts later.
///
/// Not one the kernel hands out for port 0: those come from the ephemeral range
/// (`net.ipv4.ip_local_port_range`, 32768 and up by default), where every outgoing connection
/// of every test running in parallel takes its source port too, and one did take a picked port
/// before the gateway could bind it ("Address already in use", once in a full local run of the
/// suite). Below that range only listeners bind; a Redis cluster node's bus port (its port +
/// 10,000) also stays a valid port. The first port tried is random, so that parallel test processes rarely try
/// the same ones, and each is checked free before it is handed out.
pub fn free_port() -> u16 {
    let below = ephemeral_start();
    let span = u64::from(below.saturating_sub(LOWEST));
    if span < 1_000 {
        // A machine whose ephemeral range starts low: nothing lies safely below it.
        return kernel_pick();
    }
    let first = RandomState::new().hash_one(std::process::id()) % span;
    (0..span)
        .filter_map(|i| u16::try_from((first + i) % span).ok())
        .map(|offset| LOWEST + offset)
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .unwrap_or_else(kernel_pick)
}

/// A free port whose companion `port + offset` is free too: a Redis cluster node also listens on
/// its cluster bus, its port + 10,000, and fails to start when that one is taken.
pub fn free_port_with_companion(offset: u16) -> u16 {
    (0..1_000)
        .map(|_| free_port())
        .find(|port| {
            port.checked_add(offset)
                .is_some_and(|companion| TcpListener::bind(("127.0.0.1", companion)).is_ok())
        })
        .expect("a free port whose companion port is free too")
}

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn kernel_pick() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_lie_below_the_ephemeral_range_and_are_free() {
        let below = ephemeral_start();
        for _ in 0..20 {
            let port = free_port();
            if below > LOWEST + 1_000 {
                assert!(
                    (LOWEST..below).contains(&port),
                    "{port} (range from {below})"
                );
            }
            assert!(
                TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "{port} is taken"
            );
        }
    }

    #[test]
    fn a_port_with_a_companion_has_both_free() {
        for _ in 0..20 {
            let port = free_port_with_companion(10_000);
            assert!(TcpListener::bind(("127.0.0.1", port)).is_ok(), "{port}");
            assert!(
                TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok(),
                "{port} + 10000"
            );
        }
    }
}
