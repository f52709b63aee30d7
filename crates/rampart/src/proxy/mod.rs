//! Routing, upstream pools and forwarding.

pub mod client_ip;
pub mod forward;
mod health;
pub mod path;
pub mod pool;
pub mod router;
pub(crate) mod tls_client;
pub mod upstream;
