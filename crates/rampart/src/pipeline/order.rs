//! The order of the pipeline, as data: every step of the request path and of the response path,
//! once, in order. `service` runs them in this order, `Pipeline::new` places each route's
//! policies by it, and a test holds `docs/pipeline.md` to it.

use super::Stage;

/// The request path, outer to inner.
pub const REQUEST_ORDER: [Stage; 16] = [
    Stage::RequestId,
    Stage::Audit,
    Stage::ErrorMapping,
    Stage::Blocklist,
    Stage::Hygiene,
    Stage::Routing,
    Stage::Cors,
    Stage::Validate,
    Stage::RateLimitByAddress,
    Stage::Authenticate,
    Stage::RateLimitByPrincipal,
    Stage::Authorize,
    Stage::Body,
    Stage::ValidateBody,
    Stage::UpstreamRequest,
    Stage::Proxy,
];

/// The response path, inner to outer.
pub const RESPONSE_ORDER: [Stage; 5] = [
    Stage::ValidateResponse,
    Stage::MaskUpstream,
    Stage::SecurityHeaders,
    Stage::CorsHeaders,
    Stage::AuditRecord,
];

/// The stages at which a route's policies can run (the others are the service's own steps).
pub const POLICY_STAGES: [Stage; 9] = [
    Stage::Cors,
    Stage::Validate,
    Stage::RateLimitByAddress,
    Stage::Authenticate,
    Stage::RateLimitByPrincipal,
    Stage::Authorize,
    Stage::ValidateBody,
    Stage::UpstreamRequest,
    Stage::ValidateResponse,
];

/// Where a stage runs: its place on the request path, response stages after all of those.
pub fn position(stage: Stage) -> usize {
    REQUEST_ORDER
        .iter()
        .chain(RESPONSE_ORDER.iter())
        .position(|s| *s == stage)
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derive_order_is_the_listed_order() {
        let all: Vec<Stage> = REQUEST_ORDER
            .iter()
            .chain(RESPONSE_ORDER.iter())
            .copied()
            .collect();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(
            all, sorted,
            "Stage's variants are declared in pipeline order"
        );
        sorted.dedup();
        assert_eq!(sorted.len(), all.len(), "each stage once");
    }

    #[test]
    fn policy_stages_are_pipeline_stages_in_order() {
        let positions: Vec<usize> = POLICY_STAGES.iter().map(|s| position(*s)).collect();
        assert!(positions.iter().all(|p| *p < usize::MAX));
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
    }

    /// `docs/pipeline.md` draws the pipeline with each stage's name; the names must appear there
    /// in this order, each once, so the document cannot drift from the code.
    #[test]
    fn docs_pipeline_md_lists_the_stages_in_this_order() {
        let doc = include_str!("../../../../docs/pipeline.md");
        let drawn: Vec<&str> = doc
            .split("Stage::")
            .skip(1)
            .map(|rest| {
                let end = rest
                    .find(|c: char| !c.is_ascii_alphanumeric())
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .filter(|name| !name.is_empty())
            .collect();
        let listed: Vec<String> = REQUEST_ORDER
            .iter()
            .chain(RESPONSE_ORDER.iter())
            .map(|s| format!("{s:?}"))
            .collect();
        assert_eq!(drawn, listed);
    }
}
