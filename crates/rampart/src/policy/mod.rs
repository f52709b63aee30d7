//! Security policies, one practice per module, each with the same shape: `mod.rs` (runtime and a
//! module doc stating the threat and invariants), `config.rs`, and tests.

pub mod authn;
pub mod authz;
pub mod cors;
pub mod detect;

pub mod headers;
pub mod hygiene;
pub mod mask;
pub mod rate_limit;
pub mod sanitize;
pub mod upstream_request;
pub mod validate;
