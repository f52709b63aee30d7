//! `[tracing]`: whose trace context is believed, how new traces are sampled, where spans go.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::Issue;
use crate::config::bounds::{MAX_COUNT, MAX_MILLIS};

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// Whose `traceparent` is believed: the trusted proxies (default), any client, or none.
    #[serde(default)]
    pub accept_from: TraceAccept,
    /// The share of new traces sampled (0 to 1), when `otlp_endpoint` is set; a believed
    /// parent's decision is followed.
    #[serde(default = "default_ratio")]
    pub sample_ratio: f64,
    /// An OTLP/HTTP receiver (`http://collector:4318`): spans of sampled requests are sent to
    /// `ENDPOINT/v1/traces` as OTLP JSON. Unset: no span is exported.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the spans.
    #[serde(default = "default_service")]
    pub service_name: String,
    /// Spans waiting for export at most; past this they are dropped and counted.
    #[serde(default = "default_queue")]
    #[schemars(range(min = 1, max = MAX_COUNT))]
    pub queue_capacity: usize,
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = MAX_MILLIS))]
    pub export_timeout_ms: u64,
}

impl Default for TracingConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TraceAccept {
    #[default]
    TrustedProxies,
    Any,
    None,
}

impl TracingConfig {
    pub fn validate(&self, issues: &mut Vec<Issue>) {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            issues.push(Issue::new(
                "/tracing/sample_ratio",
                "a share between 0 and 1",
            ));
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            match url::Url::parse(endpoint) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => issues.push(Issue::new(
                    "/tracing/otlp_endpoint",
                    "an http:// or https:// URL of an OTLP/HTTP receiver",
                )),
            }
        }
        if self.service_name.is_empty() || self.service_name.len() > 128 {
            issues.push(Issue::new("/tracing/service_name", "1 to 128 characters"));
        }
    }

    /// The share of new traces sampled: none while no span is exported.
    pub fn effective_ratio(&self) -> f64 {
        if self.otlp_endpoint.is_some() {
            self.sample_ratio
        } else {
            0.0
        }
    }
}

fn default_ratio() -> f64 {
    0.05
}
fn default_service() -> String {
    "rampart".to_owned()
}
fn default_queue() -> usize {
    4096
}
fn default_timeout() -> u64 {
    5000
}
