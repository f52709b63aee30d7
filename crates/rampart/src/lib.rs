//! Rampart: a security gateway for HTTP APIs.
//!
//! The request path is a fixed pipeline of security policies (see `pipeline`), configured from one
//! TOML file (see `config`). `run::prepare` + `Prepared::serve` is what the `rampart` binary runs;
//! `gateway::load` + `server::serve` let tests and embedders run the real server in-process.

pub mod admin;
pub mod audit;
pub mod body;
pub mod config;
pub mod context;
pub mod error;
pub mod hygiene;
pub mod keep;
pub mod pipeline;
pub mod policy;
pub mod proxy;
pub mod run;
pub mod runtime;
pub mod server;
pub mod telemetry;
pub mod tls;

pub use runtime::gateway::{Gateway, Runtime};
// The lifecycle moved under `runtime/`; the old paths stay valid.
pub use runtime::{gateway, watch};
pub mod store;
