//! Rampart: a security gateway for HTTP APIs.
//!
//! The request path is a fixed pipeline of security policies (see `pipeline`), configured from one
//! TOML file (see `config`). `run::prepare` + `Prepared::serve` is what the `rampart` binary runs;
//! `gateway::load` + `server::serve` let tests and embedders run the real server in-process.

pub mod acme;
pub mod admin;
pub mod audit;
pub mod body;
pub mod config;
pub mod context;
pub mod error;
pub mod keep;
pub mod otlp_logs;
pub mod pipeline;
pub mod policy;
pub mod proxy;
pub mod run;
pub mod runtime;
pub mod server;
pub mod stage;
pub mod syslog;
pub mod telemetry;
pub mod tls;
pub mod trace;

pub use runtime::gateway::{Gateway, Runtime};
// The lifecycle moved under `runtime/`; the old paths stay valid.
pub use runtime::{gateway, watch};
pub mod store;

/// The layering of `docs/architecture.md`: the leaves (`error`, `context`, `config/issue`,
/// `audit`, `stage`, `trace`'s types) import no policy and nothing above them, so that there are
/// no import cycles.
#[cfg(test)]
mod layering_tests {
    const LEAVES: [&str; 9] = [
        include_str!("error/mod.rs"),
        include_str!("error/denial.rs"),
        include_str!("error/response.rs"),
        include_str!("context.rs"),
        include_str!("config/issue.rs"),
        include_str!("audit/mod.rs"),
        include_str!("audit/writer.rs"),
        include_str!("stage.rs"),
        include_str!("trace/mod.rs"),
    ];
    const UPPER: [&str; 6] = [
        "crate::policy",
        "crate::pipeline",
        "crate::runtime",
        "crate::proxy",
        "crate::server",
        "crate::run",
    ];

    #[test]
    fn leaves_import_no_policy_and_nothing_above_them() {
        for (i, source) in LEAVES.iter().enumerate() {
            for upper in UPPER {
                assert!(!source.contains(upper), "leaf {i} uses {upper}");
            }
        }
    }
}
