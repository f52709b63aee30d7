//! Building the validation policies of the routes: the JSON threat limits on every route, the
//! OpenAPI contract of a route (or of its upstream), and the configured sanitized fields.
//!
//! Each distinct contract is compiled once per build, however many routes share it, and a
//! contract that does not compile fails the build with every issue (file, line, JSON pointer),
//! so `check`, start and reload refuse it alike and a running gateway keeps its old contract.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::Policy;
use crate::config::{Config, Issue, RouteConfig};
use crate::policy::sanitize::html::HtmlSanitizer;
use crate::policy::sanitize::policy::SanitizeFields;
use crate::policy::validate::config::{OpenApiConfig, UnknownQuery};
use crate::policy::validate::contract::{Contract, ContractEnv};
use crate::policy::validate::spec::{self, CompileOptions, Spec};
use crate::policy::validate::threat_limits::ThreatLimits;

/// What compiles the same contract: its file and the options that change the compiled result.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ContractKey {
    spec_file: PathBuf,
    base_path: Option<String>,
    unknown_query: UnknownQuery,
}

impl ContractKey {
    fn of(config: &OpenApiConfig) -> Self {
        Self {
            spec_file: config.spec_file.clone(),
            base_path: config.base_path.clone(),
            unknown_query: config.unknown_query,
        }
    }

    fn options(&self) -> CompileOptions {
        CompileOptions {
            base_path: self.base_path.clone(),
            unknown_query: match self.unknown_query {
                UnknownQuery::Refuse => spec::UnknownQuery::Refuse,
                UnknownQuery::Allow => spec::UnknownQuery::Allow,
            },
            ..CompileOptions::default()
        }
    }
}

/// What every route's validation policies share in one build.
pub struct Validation {
    sanitizer: Option<Arc<HtmlSanitizer>>,
    contracts: HashMap<ContractKey, Arc<Spec>>,
}

impl Validation {
    /// Compiles every contract the config names and the HTML allow-list; problems go to `issues`.
    pub fn build(config: &Config, issues: &mut Vec<Issue>) -> Self {
        let sanitizer = match HtmlSanitizer::new(&config.validation.html) {
            Ok(sanitizer) => Some(Arc::new(sanitizer)),
            Err(found) => {
                issues.extend(found.into_iter().map(|issue| {
                    Issue::new(format!("/validation/html{}", issue.pointer), issue.message)
                }));
                None
            }
        };
        let mut contracts = HashMap::new();
        for (key, at) in contract_sites(config) {
            if contracts.contains_key(&key) {
                continue;
            }
            match Spec::compile_file(&key.spec_file, &key.options()) {
                Ok(spec) => {
                    contracts.insert(key, Arc::new(spec));
                }
                Err(found) => {
                    issues.extend(found.into_iter().map(|issue| {
                        Issue::new(format!("{at}/openapi/spec_file"), issue.to_string())
                    }))
                }
            }
        }
        Self {
            sanitizer,
            contracts,
        }
    }

    /// The validation policies of `route`, in the order they must run within their stages.
    pub fn policies(
        &self,
        config: &Config,
        route: &RouteConfig,
        at: &str,
        issues: &mut Vec<Issue>,
    ) -> Vec<Arc<dyn Policy>> {
        let mut policies: Vec<Arc<dyn Policy>> = Vec::new();
        // The first body policy: no other one parses a body these limits have not passed.
        let needs_sanitizer = contract_of(config, route).is_some() || !route.sanitize.is_empty();
        if config.validation.json.enabled {
            let limits = config.validation.json.clone();
            // The contract and the sanitizer read the JSON this policy has just parsed.
            policies.push(Arc::new(ThreatLimits::new(limits, needs_sanitizer)));
        }
        let sanitizer = match (&self.sanitizer, needs_sanitizer) {
            (Some(sanitizer), _) => sanitizer.clone(),
            (None, false) => return policies,
            (None, true) => {
                issues.push(Issue::new(
                    format!("{at}/sanitize"),
                    "the HTML allow-list `[validation.html]` did not build",
                ));
                return policies;
            }
        };
        if let Some(openapi) = contract_of(config, route)
            && let Some(spec) = self.contracts.get(&ContractKey::of(openapi))
        {
            let env = ContractEnv {
                route: Arc::from(route.name.as_str()),
                sanitizer: sanitizer.clone(),
                xml: config.validation.xml.clone(),
                multipart: config.validation.multipart.clone(),
            };
            policies.extend(Contract::new(spec.clone(), openapi, env).policies());
        }
        if !route.sanitize.is_empty() {
            let fields = route
                .sanitize
                .iter()
                .filter_map(|f| Some((f.field_path().ok()?, f.on_unsafe)))
                .collect();
            policies.push(Arc::new(SanitizeFields::new(fields, sanitizer)));
        }
        policies
    }
}

/// The contract of a route: its own, else its upstream's.
pub fn contract_of<'a>(config: &'a Config, route: &'a RouteConfig) -> Option<&'a OpenApiConfig> {
    route.openapi.as_ref().or_else(|| {
        config
            .upstreams
            .iter()
            .find(|u| u.name == route.upstream)
            .and_then(|u| u.openapi.as_ref())
    })
}

/// Every contract the config names, with where it is named (the first place wins for messages).
fn contract_sites(config: &Config) -> Vec<(ContractKey, String)> {
    let upstreams = config.upstreams.iter().enumerate().filter_map(|(i, u)| {
        let openapi = u.openapi.as_ref()?;
        Some((ContractKey::of(openapi), format!("/upstreams/{i}")))
    });
    let routes = config.routes.iter().enumerate().filter_map(|(i, r)| {
        let openapi = r.openapi.as_ref()?;
        Some((ContractKey::of(openapi), format!("/routes/{i}")))
    });
    upstreams.chain(routes).collect()
}
