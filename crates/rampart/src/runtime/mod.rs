//! The lifecycle of a running gateway: the runtime built from a config and published atomically
//! (`gateway`), the process-level services that outlive reloads (`services`), reloads
//! (`reload`) and the file watches that trigger them (`watch`).

pub mod gateway;
pub mod reload;
pub mod services;
pub mod watch;
