//! Routing, upstream pools and forwarding.

pub mod forward;
pub mod forwarded;
mod health;
pub mod path;
pub mod router;
mod tls_client;
pub mod upstream;
