//! Routing by host, normalized path and method.
//!
//! Path matching is matchit's radix tree (the router under axum): exact paths, templates such as
//! `/orders/{id}`, and prefixes on segment boundaries (`/api` is stored as `/api` and
//! `/api/{*rest}`). The most specific path wins; if its routes do not allow the method the answer
//! is 405, never a fall-back to a broader route. Host-specific routes are tried before routes that
//! serve any host.

use std::collections::HashMap;

use http::{HeaderValue, Method};

use crate::config::{Issue, RouteConfig};

/// The result of a lookup: an index into the route list, or why there is none.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteLookup {
    Found(usize),
    MethodNotAllowed(HeaderValue),
    NotFound,
}

#[derive(Default)]
struct PathTable {
    tree: matchit::Router<Vec<usize>>,
    /// Patterns already inserted, to share one tree entry among routes that differ by method.
    slots: HashMap<String, ()>,
}

impl PathTable {
    fn insert(&mut self, pattern: String, route: usize) -> Result<(), String> {
        if self.slots.contains_key(&pattern) {
            if let Ok(found) = self.tree.at_mut(&pattern) {
                found.value.push(route);
            }
            return Ok(());
        }
        self.tree
            .insert(pattern.clone(), vec![route])
            .map_err(|e| format!("conflicts with another route: {e}"))?;
        self.slots.insert(pattern, ());
        Ok(())
    }
}

/// The routing table built from the route list.
#[derive(Default)]
pub struct Router {
    exact_hosts: HashMap<String, PathTable>,
    /// `(".example.com", table)` for `*.example.com`, longest suffix first.
    wildcard_hosts: Vec<(String, PathTable)>,
    any_host: PathTable,
    methods: Vec<Vec<Method>>,
}

impl Router {
    pub fn build(routes: &[RouteConfig]) -> Result<Self, Vec<Issue>> {
        let mut router = Self::default();
        let mut issues = Vec::new();
        for (index, route) in routes.iter().enumerate() {
            router.methods.push(
                route
                    .methods
                    .iter()
                    .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                    .collect(),
            );
            let (field, patterns) = patterns(route);
            for pattern in patterns {
                for table in router.tables_for(&route.hosts) {
                    if let Err(why) = table.insert(pattern.clone(), index) {
                        issues.push(Issue::new(format!("/routes/{index}/{field}"), why));
                    }
                }
            }
        }
        router
            .wildcard_hosts
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        if issues.is_empty() {
            Ok(router)
        } else {
            Err(issues)
        }
    }

    fn tables_for(&mut self, hosts: &[String]) -> Vec<&mut PathTable> {
        if hosts.is_empty() {
            return vec![&mut self.any_host];
        }
        for host in hosts {
            match host.strip_prefix('*') {
                Some(suffix) => {
                    if !self.wildcard_hosts.iter().any(|(s, _)| s == suffix) {
                        self.wildcard_hosts
                            .push((suffix.to_owned(), PathTable::default()));
                    }
                }
                None => {
                    self.exact_hosts.entry(host.clone()).or_default();
                }
            }
        }
        let mut tables = Vec::new();
        for (suffix, table) in &mut self.wildcard_hosts {
            if hosts
                .iter()
                .any(|h| h.strip_prefix('*') == Some(suffix.as_str()))
            {
                tables.push(table);
            }
        }
        for (name, table) in &mut self.exact_hosts {
            if hosts.contains(name) {
                tables.push(table);
            }
        }
        tables
    }

    /// Finds the route for a request. `host` is the request's host without port, lower-cased.
    pub fn lookup(&self, host: Option<&str>, path: &str, method: &Method) -> RouteLookup {
        let host_table = host.and_then(|h| {
            self.exact_hosts.get(h).or_else(|| {
                self.wildcard_hosts
                    .iter()
                    .find(|(suffix, _)| h.len() > suffix.len() && h.ends_with(suffix.as_str()))
                    .map(|(_, t)| t)
            })
        });
        let candidates = host_table
            .and_then(|t| t.tree.at(path).ok())
            .or_else(|| self.any_host.tree.at(path).ok())
            .map(|m| m.value);
        let Some(candidates) = candidates else {
            return RouteLookup::NotFound;
        };
        let allowed = |i: &usize| self.methods.get(*i).is_some_and(|m| m.contains(method));
        match candidates.iter().find(|i| allowed(i)) {
            Some(index) => RouteLookup::Found(*index),
            None => RouteLookup::MethodNotAllowed(self.allow_header(candidates)),
        }
    }

    fn allow_header(&self, candidates: &[usize]) -> HeaderValue {
        let mut names: Vec<&str> = candidates
            .iter()
            .filter_map(|i| self.methods.get(*i))
            .flatten()
            .map(Method::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        HeaderValue::from_str(&names.join(", ")).unwrap_or(HeaderValue::from_static(""))
    }
}

/// The matchit patterns for a route and the config field they came from.
fn patterns(route: &RouteConfig) -> (&'static str, Vec<String>) {
    match (&route.path, &route.path_prefix) {
        (Some(path), _) => ("path", vec![path.clone()]),
        (None, Some(prefix)) => {
            let base = prefix.trim_end_matches('/');
            let mut list = vec![format!("{base}/{{*rampart_rest}}")];
            list.push(if base.is_empty() {
                "/".to_owned()
            } else {
                base.to_owned()
            });
            ("path_prefix", list)
        }
        (None, None) => ("path", Vec::new()),
    }
}

/// The request's host for routing: `Host` (HTTP/1) or `:authority` (HTTP/2), lower-cased, without
/// port or trailing dot.
pub fn request_host(req: &http::request::Parts) -> Option<String> {
    let raw = req.uri.authority().map(|a| a.host()).or_else(|| {
        let value = req.headers.get(http::header::HOST)?.to_str().ok()?;
        Some(strip_port(value))
    })?;
    let host = raw.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(
        name: &str,
        path: Option<&str>,
        prefix: Option<&str>,
        methods: &[&str],
        hosts: &[&str],
    ) -> RouteConfig {
        let text = format!(
            "name = {name:?}\nupstream = \"u\"\nmethods = {methods:?}\nhosts = {hosts:?}\n{}{}",
            path.map(|p| format!("path = {p:?}\n")).unwrap_or_default(),
            prefix
                .map(|p| format!("path_prefix = {p:?}\n"))
                .unwrap_or_default(),
        );
        toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn template_prefix_and_exact_routes_match() {
        let routes = vec![
            route("order", Some("/orders/{id}"), None, &["GET"], &[]),
            route("api", None, Some("/api"), &["GET", "POST"], &[]),
            route("status", Some("/status"), None, &["GET"], &[]),
        ];
        let r = Router::build(&routes).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            r.lookup(None, "/orders/7", &Method::GET),
            RouteLookup::Found(0)
        );
        assert_eq!(
            r.lookup(None, "/orders/7/x", &Method::GET),
            RouteLookup::NotFound
        );
        assert_eq!(r.lookup(None, "/api", &Method::POST), RouteLookup::Found(1));
        assert_eq!(
            r.lookup(None, "/api/a/b", &Method::GET),
            RouteLookup::Found(1)
        );
        assert_eq!(r.lookup(None, "/apix", &Method::GET), RouteLookup::NotFound);
        assert_eq!(
            r.lookup(None, "/status/", &Method::GET),
            RouteLookup::NotFound
        );
    }

    #[test]
    fn wrong_method_is_405_with_allow_and_never_falls_back_to_a_prefix() {
        let routes = vec![
            route("all", None, Some("/"), &["GET", "POST", "DELETE"], &[]),
            route("admin", Some("/admin"), None, &["GET"], &[]),
        ];
        let r = Router::build(&routes).unwrap_or_else(|e| panic!("{e:?}"));
        match r.lookup(None, "/admin", &Method::DELETE) {
            RouteLookup::MethodNotAllowed(allow) => assert_eq!(allow, "GET"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn host_routes_win_and_wildcards_are_anchored() {
        let routes = vec![
            route("a", Some("/x"), None, &["GET"], &["api.example.com"]),
            route("b", Some("/x"), None, &["GET"], &["*.example.com"]),
            route("c", Some("/x"), None, &["GET"], &[]),
        ];
        let r = Router::build(&routes).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            r.lookup(Some("api.example.com"), "/x", &Method::GET),
            RouteLookup::Found(0)
        );
        assert_eq!(
            r.lookup(Some("eu.example.com"), "/x", &Method::GET),
            RouteLookup::Found(1)
        );
        assert_eq!(
            r.lookup(Some("example.com.evil.net"), "/x", &Method::GET),
            RouteLookup::Found(2)
        );
        assert_eq!(
            r.lookup(Some("example.com"), "/x", &Method::GET),
            RouteLookup::Found(2)
        );
    }

    #[test]
    fn conflicting_templates_are_config_errors() {
        let routes = vec![
            route("a", Some("/o/{id}"), None, &["GET"], &[]),
            route("b", Some("/o/{name}"), None, &["GET"], &[]),
        ];
        let issues = Router::build(&routes).err().unwrap_or_default();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].pointer, "/routes/1/path");
    }

    #[test]
    fn host_is_lowercased_without_port() {
        let (parts, _) = http::Request::builder()
            .uri("/x")
            .header("host", "API.Example.com.:8443")
            .body(())
            .unwrap_or_default()
            .into_parts();
        assert_eq!(request_host(&parts).as_deref(), Some("api.example.com"));
    }
}
