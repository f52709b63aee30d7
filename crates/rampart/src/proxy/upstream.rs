//! Upstreams: round robin over targets, keep-alive connections (HTTP/1.1 pooled per target in
//! `pool`, HTTP/2 multiplexed by hyper-util's client), passive and active health.
//!
//! Passive health ejects a target after `eject_after_failures` consecutive failures (connection
//! errors, timeouts, 502/503/504) for `eject_ms`, then lets it back in. When every target is out,
//! traffic is spread over all of them anyway (Envoy's "panic routing"): a total outage caused by
//! the health logic itself is worse than trying. Upstream TLS is always verified unless the config
//! says `verify = false` (which `check` flags).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::pool::{Connector, Pool, SendError, UpstreamBody};
use crate::body::Body;
use crate::config::{Issue, UpstreamConfig, UpstreamProtocol};

/// hyper-util's pooled client, for HTTP/2 upstreams: one multiplexed connection per target,
/// driven by a task of its own.
pub type HttpClient = Client<Connector, Body>;

/// How requests reach the targets.
enum Transport {
    /// HTTP/1.1: connections pooled per target (`Target::pool`), driven by the request's task.
    Http1(Connector),
    Http2(Box<HttpClient>),
}

/// Parses a target URL (`http://host:port`), refusing paths, queries and user info.
pub fn parse_target(text: &str) -> Result<(Scheme, Authority), String> {
    let uri: http::Uri = text.parse().map_err(|_| "not a URL".to_owned())?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        _ => return Err("the scheme must be http or https".to_owned()),
    };
    let authority = uri.authority().cloned().ok_or("a host is required")?;
    if authority.as_str().contains('@') {
        return Err("user info is not allowed in a target".to_owned());
    }
    if uri.path() != "/" || uri.query().is_some() || text.ends_with('/') {
        return Err("a target is scheme://host[:port] without a path".to_owned());
    }
    Ok((scheme, authority))
}

/// Health state of one target.
#[derive(Debug, Default)]
struct Health {
    consecutive_failures: AtomicU32,
    /// Milliseconds since the upstream's epoch until which the target is ejected.
    ejected_until_ms: AtomicU64,
    /// Set by active health checks.
    probe_down: AtomicBool,
}

/// One target of an upstream.
#[derive(Debug)]
pub struct Target {
    pub scheme: Scheme,
    pub authority: Authority,
    /// The target URL as configured, for logs and the audit record.
    pub label: Arc<str>,
    /// `rampart_upstream_duration_seconds` of this target, made once per build.
    pub latency: metrics::Histogram,
    /// `scheme://authority/`, what connections are opened to.
    origin: Uri,
    /// The `Host` sent when the request's own is not preserved.
    host: HeaderValue,
    pool: Arc<Pool>,
    health: Health,
}

impl Target {
    fn new(
        scheme: Scheme,
        authority: Authority,
        text: &str,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Result<Self, String> {
        let origin = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| e.to_string())?;
        // As hyper-util's client does: the port only when it is not the scheme's default.
        let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(port) if port != default_port => authority.as_str(),
            _ => authority.host(),
        };
        let host = HeaderValue::from_str(host).map_err(|e| e.to_string())?;
        Ok(Self {
            latency: metrics::histogram!("rampart_upstream_duration_seconds", "target" => text.to_owned()),
            label: Arc::from(text),
            scheme,
            authority,
            origin,
            host,
            pool: Arc::new(Pool::new(max_idle, idle_timeout)),
            health: Health::default(),
        })
    }
}

/// A runtime upstream: its targets and how requests reach them.
pub struct Upstream {
    pub name: Arc<str>,
    /// `rampart_upstream_in_flight`, made once per build.
    pub in_flight: metrics::Gauge,
    transport: Transport,
    pub targets: Vec<Target>,
    pub request_timeout: Duration,
    pub preserve_host: bool,
    next: AtomicUsize,
    eject_after: u32,
    eject_for: Duration,
    epoch: Instant,
    probes: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Ok(mut probes) = self.probes.lock()
            && let Some(task) = probes.take()
        {
            task.abort();
        }
    }
}

/// Whether an attempt counts against the target's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Upstream {
    /// Builds the client and targets; must run inside a tokio runtime when active checks are on.
    pub fn build(config: &UpstreamConfig, ptr: &str) -> Result<Arc<Self>, Vec<Issue>> {
        let tls = super::tls_client::client_config(&config.tls)
            .map_err(|why| vec![Issue::new(format!("{ptr}/tls"), why)])?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
        let http2 = config.protocol == UpstreamProtocol::Http2;
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let connector = if http2 {
            builder.enable_http2().wrap_connector(http)
        } else {
            builder.enable_http1().wrap_connector(http)
        };
        let idle_timeout = Duration::from_millis(config.idle_timeout_ms);
        let transport = if http2 {
            Transport::Http2(Box::new(
                Client::builder(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(idle_timeout)
                    .pool_max_idle_per_host(config.max_idle_per_target)
                    .http2_only(true)
                    .build(connector),
            ))
        } else {
            Transport::Http1(connector)
        };
        let mut targets = Vec::new();
        let mut issues = Vec::new();
        for (i, text) in config.targets.iter().enumerate() {
            let target = parse_target(text).and_then(|(scheme, authority)| {
                Target::new(
                    scheme,
                    authority,
                    text,
                    config.max_idle_per_target,
                    idle_timeout,
                )
            });
            match target {
                Ok(target) => targets.push(target),
                Err(why) => issues.push(Issue::new(format!("{ptr}/targets/{i}"), why)),
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let upstream = Arc::new(Self {
            in_flight: metrics::gauge!("rampart_upstream_in_flight", "upstream" => config.name.clone()),
            name: Arc::from(config.name.as_str()),
            transport,
            targets,
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            preserve_host: config.preserve_host,
            next: AtomicUsize::new(0),
            eject_after: config.health.passive.eject_after_failures,
            eject_for: Duration::from_millis(config.health.passive.eject_ms),
            epoch: Instant::now(),
            probes: std::sync::Mutex::new(None),
        });
        if let Some(active) = &config.health.active {
            let task = super::health::spawn_probes(Arc::downgrade(&upstream), active.clone());
            if let Ok(mut probes) = upstream.probes.lock() {
                *probes = Some(task);
            }
        }
        upstream.publish_health();
        Ok(upstream)
    }

    /// Sends a request with an origin-form URI (`/path?query`) to `target`, with the target's
    /// `Host` unless the request carries one. The upstream's protocol decides the version,
    /// whatever the client spoke. `SendError::Timeout` if no response head came by `deadline`.
    pub async fn send(
        &self,
        target: &Target,
        mut request: Request<Body>,
        deadline: tokio::time::Instant,
    ) -> Result<Response<UpstreamBody>, SendError> {
        match &self.transport {
            Transport::Http1(connector) => {
                *request.version_mut() = Version::HTTP_11;
                if let header::Entry::Vacant(host) = request.headers_mut().entry(header::HOST) {
                    host.insert(target.host.clone());
                }
                target
                    .pool
                    .send(connector, &target.origin, request, deadline)
                    .await
            }
            Transport::Http2(client) => {
                *request.version_mut() = Version::HTTP_2;
                let path = request
                    .uri()
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/"));
                *request.uri_mut() = Uri::from_parts({
                    let mut parts = http::uri::Parts::default();
                    parts.scheme = Some(target.scheme.clone());
                    parts.authority = Some(target.authority.clone());
                    parts.path_and_query = Some(path);
                    parts
                })
                .map_err(|e| SendError::Connect(e.into()))?;
                let response = tokio::time::timeout_at(deadline, client.request(request))
                    .await
                    .map_err(|_| SendError::Timeout)??;
                Ok(response.map(UpstreamBody::shared))
            }
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_available(&self, target: &Target, now_ms: u64) -> bool {
        !target.health.probe_down.load(Ordering::Relaxed)
            && target.health.ejected_until_ms.load(Ordering::Relaxed) <= now_ms
    }

    /// The next target in round-robin order that is not ejected or down; any target if all are.
    pub fn pick(&self) -> Option<&Target> {
        let count = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        (0..count)
            .map(|k| &self.targets[(start + k) % count])
            .find(|t| self.is_available(t, now))
            .or_else(|| self.targets.get(start % count.max(1)))
    }

    /// Records the result of a proxied request for passive health.
    pub fn record(&self, target: &Target, outcome: Outcome) {
        let health = &target.health;
        match outcome {
            Outcome::Success => {
                if health.consecutive_failures.load(Ordering::Relaxed) != 0 {
                    health.consecutive_failures.store(0, Ordering::Relaxed);
                }
            }
            Outcome::Failure => {
                let failures = health.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures >= self.eject_after {
                    health.consecutive_failures.store(0, Ordering::Relaxed);
                    let until = self.now_ms().saturating_add(
                        u64::try_from(self.eject_for.as_millis()).unwrap_or(u64::MAX),
                    );
                    health.ejected_until_ms.store(until, Ordering::Relaxed);
                    tracing::warn!(upstream = %self.name, target = %target.label, failures, "target ejected");
                    metrics::counter!("rampart_upstream_ejections_total", "upstream" => self.name.to_string())
                        .increment(1);
                    self.publish_health();
                }
            }
        }
    }

    /// Marks a target up or down from an active probe.
    pub(super) fn set_probe_state(&self, target: &Target, down: bool) {
        if target.health.probe_down.swap(down, Ordering::Relaxed) != down {
            tracing::warn!(upstream = %self.name, target = %target.label, down, "active health changed");
            self.publish_health();
        }
    }

    /// Targets currently taking traffic.
    pub fn healthy_targets(&self) -> usize {
        let now = self.now_ms();
        self.targets
            .iter()
            .filter(|t| self.is_available(t, now))
            .count()
    }

    fn publish_health(&self) {
        metrics::gauge!("rampart_upstream_healthy_targets", "upstream" => self.name.to_string())
            .set(self.healthy_targets() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_must_be_bare_origins() {
        assert!(parse_target("http://127.0.0.1:8080").is_ok());
        assert!(parse_target("https://api.internal").is_ok());
        assert!(parse_target("http://127.0.0.1:8080/v1").is_err());
        assert!(parse_target("http://user:pw@host").is_err());
        assert!(parse_target("ftp://host").is_err());
        assert!(parse_target("host:80").is_err());
    }
}
