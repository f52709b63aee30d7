//! Request validation: the positive security model. Only what the API declares reaches it.
//!
//! Threat: a request the upstream does not expect (an undeclared operation, a parameter of the
//! wrong type, a property the client should not set, a body built to exhaust a parser) reaches
//! code that was written for well-formed input. Invariants: an OpenAPI contract is compiled once,
//! at load or reload, never at request time and never with a remote fetch; only declared
//! operations pass; every refusal is a problem+json whose `errors` name pointers and reasons,
//! never the offending values; JSON and XML bodies are bounded while they are parsed.

pub mod config;
pub mod contract;
pub mod form;
pub mod json_limits;
pub mod lint;
pub mod media;
pub mod multipart;
pub mod spec;
pub mod strip;
pub mod threat_limits;
pub mod violation;
pub mod xml;

#[cfg(test)]
pub(crate) mod mutation;
