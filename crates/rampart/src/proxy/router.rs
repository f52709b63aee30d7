//! Routing by host, normalized path and method.
//!
//! Path matching is matchit's radix tree (the router under axum): exact paths, templates such as
//! `/orders/{id}`, and prefixes on segment boundaries (`/api` is stored as `/api` and
//! `/api/{*rest}`). The most specific path wins; if its routes do not allow the method the answer
//! is 405, never a fall-back to a broader route. Host-specific routes are tried before routes that
//! serve any host.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use http::{HeaderValue, Method};

use crate::config::{Issue, RouteConfig};

/// The result of a lookup: the route itself, or why there is none.
#[derive(Debug)]
pub enum RouteLookup<'a, R> {
    Found(&'a Arc<R>),
    MethodNotAllowed(HeaderValue),
    NotFound,
}

/// A route in the table with the methods it serves.
struct Entry<R> {
    methods: Vec<Method>,
    /// Declared by `path` (exact or template) rather than derived from a `path_prefix`.
    exact: bool,
    route: Arc<R>,
}

impl<R> Clone for Entry<R> {
    fn clone(&self) -> Self {
        Self {
            methods: self.methods.clone(),
            exact: self.exact,
            route: self.route.clone(),
        }
    }
}

struct PathTable<R> {
    tree: matchit::Router<Vec<Entry<R>>>,
    /// Patterns already inserted, to share one tree entry among routes that differ by method.
    patterns: HashSet<String>,
}

impl<R> Default for PathTable<R> {
    fn default() -> Self {
        Self {
            tree: matchit::Router::new(),
            patterns: HashSet::new(),
        }
    }
}

impl<R> PathTable<R> {
    /// Adds a route at a pattern. Routes may share a pattern with different methods; two routes
    /// of the same kind serving one method there are ambiguous (an error, never "the first one
    /// wins"), and a `path` route takes precedence over a prefix covering the same path, so a
    /// public prefix can never shadow a protected exact route.
    fn insert(&mut self, pattern: String, entry: Entry<R>) -> Result<(), String> {
        if self.patterns.contains(&pattern) {
            let Ok(found) = self.tree.at_mut(&pattern) else {
                return Ok(());
            };
            let clash = found.value.iter().find(|other| {
                other.exact == entry.exact
                    && other.methods.iter().any(|m| entry.methods.contains(m))
            });
            if let Some(other) = clash {
                let shared: Vec<&str> = other
                    .methods
                    .iter()
                    .filter(|m| entry.methods.contains(m))
                    .map(Method::as_str)
                    .collect();
                return Err(format!(
                    "another route already serves {} on this path",
                    shared.join(", ")
                ));
            }
            found.value.push(entry);
            // Stable: exact routes first, each kind in config order.
            found.value.sort_by_key(|e| !e.exact);
            return Ok(());
        }
        self.tree
            .insert(pattern.clone(), vec![entry])
            .map_err(|e| format!("conflicts with another route: {e}"))?;
        self.patterns.insert(pattern);
        Ok(())
    }
}

/// The routing table: host, path and method to the routes themselves (never indices into a list
/// that could be built differently).
pub struct Router<R> {
    exact_hosts: HashMap<String, PathTable<R>>,
    /// `(".example.com", table)` for `*.example.com`, longest suffix first.
    wildcard_hosts: Vec<(String, PathTable<R>)>,
    any_host: PathTable<R>,
    /// Every route once, in config order.
    routes: Vec<Arc<R>>,
}

impl<R> Default for Router<R> {
    fn default() -> Self {
        Self {
            exact_hosts: HashMap::new(),
            wildcard_hosts: Vec::new(),
            any_host: PathTable::default(),
            routes: Vec::new(),
        }
    }
}

impl<R> Router<R> {
    /// Builds the table from each route's config and the route built from it.
    pub fn build<'a>(
        routes: impl IntoIterator<Item = (&'a RouteConfig, Arc<R>)>,
    ) -> Result<Self, Vec<Issue>> {
        let mut router = Self::default();
        let mut issues = Vec::new();
        for (index, (config, route)) in routes.into_iter().enumerate() {
            let entry = Entry {
                methods: config
                    .methods
                    .iter()
                    .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                    .collect(),
                exact: config.path.is_some(),
                route: route.clone(),
            };
            router.routes.push(route);
            let (field, patterns) = patterns(config);
            for pattern in patterns {
                for table in router.tables_for(&config.hosts) {
                    if let Err(why) = table.insert(pattern.clone(), entry.clone()) {
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

    /// Every route, in config order.
    pub fn routes(&self) -> &[Arc<R>] {
        &self.routes
    }

    fn tables_for(&mut self, hosts: &[String]) -> Vec<&mut PathTable<R>> {
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

    /// Finds the route for a request at its normalized `path`. The host is read (and lower-cased
    /// only if it must be) when some route names hosts; without such routes every host gets the
    /// same table, so it is not read at all.
    pub fn lookup_request(
        &self,
        req: &http::request::Parts,
        path: &str,
        method: &Method,
    ) -> RouteLookup<'_, R> {
        let routes_by_host = !self.exact_hosts.is_empty() || !self.wildcard_hosts.is_empty();
        let host = if routes_by_host {
            request_host(req)
        } else {
            None
        };
        self.lookup(host.as_deref(), path, method)
    }

    /// Finds the route for a request. `host` is the request's host without port, lower-cased.
    pub fn lookup(&self, host: Option<&str>, path: &str, method: &Method) -> RouteLookup<'_, R> {
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
        match candidates.iter().find(|e| e.methods.contains(method)) {
            Some(entry) => RouteLookup::Found(&entry.route),
            None => RouteLookup::MethodNotAllowed(allow_header(candidates)),
        }
    }
}

fn allow_header<R>(candidates: &[Entry<R>]) -> HeaderValue {
    let mut names: Vec<&str> = candidates
        .iter()
        .flat_map(|e| e.methods.iter())
        .map(Method::as_str)
        .collect();
    names.sort_unstable();
    names.dedup();
    HeaderValue::from_str(&names.join(", ")).unwrap_or(HeaderValue::from_static(""))
}

/// The matchit patterns for a route and the config field they came from.
fn patterns(route: &RouteConfig) -> (&'static str, Vec<String>) {
    match (&route.path, &route.path_prefix) {
        (Some(path), _) => ("path", vec![path.clone()]),
        (None, Some(prefix)) => {
            // `/api/items` serves `/api/items`, `/api/items/` and everything below it (the
            // catch-all needs at least one character, so the trailing slash is its own entry).
            let base = prefix.trim_end_matches('/');
            let mut list = vec![format!("{base}/"), format!("{base}/{{*rampart_rest}}")];
            if !base.is_empty() {
                list.push(base.to_owned());
            }
            ("path_prefix", list)
        }
        (None, None) => ("path", Vec::new()),
    }
}

/// The request's host for routing: `Host` (HTTP/1) or `:authority` (HTTP/2), lower-cased, without
/// port or trailing dot.
pub fn request_host(req: &http::request::Parts) -> Option<Cow<'_, str>> {
    let raw = req.uri.authority().map(|a| a.host()).or_else(|| {
        let value = req.headers.get(http::header::HOST)?.to_str().ok()?;
        Some(strip_port(value))
    })?;
    let host = raw.trim_end_matches('.');
    if host.is_empty() {
        return None;
    }
    // Clients nearly always send it lower-cased: then it is borrowed, not copied.
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
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

    /// A router whose routes are their names.
    fn table(routes: &[RouteConfig]) -> Result<Router<String>, Vec<Issue>> {
        Router::build(routes.iter().map(|r| (r, Arc::new(r.name.clone()))))
    }

    fn found(lookup: RouteLookup<'_, String>) -> Option<&str> {
        match lookup {
            RouteLookup::Found(name) => Some(name.as_str()),
            _ => None,
        }
    }

    #[test]
    fn template_prefix_and_exact_routes_match() {
        let routes = vec![
            route("order", Some("/orders/{id}"), None, &["GET"], &[]),
            route("api", None, Some("/api"), &["GET", "POST"], &[]),
            route("status", Some("/status"), None, &["GET"], &[]),
        ];
        let r = table(&routes).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            found(r.lookup(None, "/orders/7", &Method::GET)),
            Some("order")
        );
        assert_eq!(found(r.lookup(None, "/orders/7/x", &Method::GET)), None);
        assert_eq!(found(r.lookup(None, "/api", &Method::POST)), Some("api"));
        assert_eq!(found(r.lookup(None, "/api/a/b", &Method::GET)), Some("api"));
        assert_eq!(found(r.lookup(None, "/apix", &Method::GET)), None);
        assert_eq!(found(r.lookup(None, "/status/", &Method::GET)), None);
    }

    #[test]
    fn a_prefix_serves_its_path_with_a_trailing_slash() {
        let routes = vec![
            route("items", None, Some("/api/items"), &["GET"], &[]),
            route("slash", None, Some("/v2/"), &["GET"], &[]),
            route("root", None, Some("/"), &["GET"], &["root.example"]),
        ];
        let r = table(&routes).unwrap_or_else(|e| panic!("{e:?}"));
        for path in ["/api/items", "/api/items/", "/api/items/7"] {
            assert_eq!(
                found(r.lookup(None, path, &Method::GET)),
                Some("items"),
                "{path}"
            );
        }
        for path in ["/v2", "/v2/", "/v2/x"] {
            assert_eq!(
                found(r.lookup(None, path, &Method::GET)),
                Some("slash"),
                "{path}"
            );
        }
        assert_eq!(found(r.lookup(None, "/api/itemsx", &Method::GET)), None);
        let root = Some("root.example");
        for path in ["/", "/x", "/x/y/"] {
            assert_eq!(
                found(r.lookup(root, path, &Method::GET)),
                Some("root"),
                "{path}"
            );
        }
    }

    #[test]
    fn wrong_method_is_405_with_allow_and_never_falls_back_to_a_prefix() {
        let routes = vec![
            route("all", None, Some("/"), &["GET", "POST", "DELETE"], &[]),
            route("admin", Some("/admin"), None, &["GET"], &[]),
        ];
        let r = table(&routes).unwrap_or_else(|e| panic!("{e:?}"));
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
        let r = table(&routes).unwrap_or_else(|e| panic!("{e:?}"));
        let at = |host| found(r.lookup(Some(host), "/x", &Method::GET));
        assert_eq!(at("api.example.com"), Some("a"));
        assert_eq!(at("eu.example.com"), Some("b"));
        assert_eq!(at("example.com.evil.net"), Some("c"));
        assert_eq!(at("example.com"), Some("c"));
    }

    #[test]
    fn every_route_keeps_its_own_entry_whatever_its_neighbours() {
        // The router holds the routes themselves: each lookup returns the route built from the
        // config that declared the path, never its neighbour in a list.
        let routes: Vec<RouteConfig> = (0..20)
            .map(|i| {
                route(
                    &format!("r{i}"),
                    Some(&format!("/p{i}")),
                    None,
                    &["GET"],
                    &[],
                )
            })
            .collect();
        let r = table(&routes).unwrap_or_else(|e| panic!("{e:?}"));
        for i in 0..20 {
            let name = format!("r{i}");
            assert_eq!(
                found(r.lookup(None, &format!("/p{i}"), &Method::GET)),
                Some(name.as_str())
            );
        }
        assert_eq!(r.routes().len(), 20);
    }

    #[test]
    fn a_public_prefix_never_shadows_a_protected_exact_route_on_the_same_path() {
        let routes = vec![
            route("public-prefix", None, Some("/admin"), &["GET"], &[]),
            route("protected", Some("/admin/"), None, &["GET"], &[]),
        ];
        let r = table(&routes).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            found(r.lookup(None, "/admin/", &Method::GET)),
            Some("protected")
        );
        assert_eq!(
            found(r.lookup(None, "/admin/x", &Method::GET)),
            Some("public-prefix")
        );
    }

    #[test]
    fn two_routes_serving_one_method_on_one_path_are_a_config_error() {
        let routes = vec![
            route("a", Some("/x"), None, &["GET", "POST"], &[]),
            route("b", Some("/x"), None, &["POST"], &[]),
            route("c", Some("/x"), None, &["DELETE"], &[]),
        ];
        let issues = table(&routes).err().unwrap_or_default();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].pointer, "/routes/1/path");
        assert!(issues[0].message.contains("POST"));
    }

    #[test]
    fn conflicting_templates_are_config_errors() {
        let routes = vec![
            route("a", Some("/o/{id}"), None, &["GET"], &[]),
            route("b", Some("/o/{name}"), None, &["GET"], &[]),
        ];
        let issues = table(&routes).err().unwrap_or_default();
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

    #[test]
    fn a_lower_case_host_is_borrowed_not_copied() {
        let (parts, _) = http::Request::builder()
            .uri("/x")
            .header("host", "api.example.com:8443")
            .body(())
            .unwrap_or_default()
            .into_parts();
        assert!(matches!(
            request_host(&parts),
            Some(Cow::Borrowed("api.example.com"))
        ));
    }
}
