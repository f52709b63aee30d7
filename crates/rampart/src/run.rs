//! Running from a config file: load, bind, watch for reloads, serve, drain on a signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::audit::AuditSink;
use crate::config::{ConfigErrors, ConfigSource};
use crate::runtime::gateway::{Gateway, Runtime, Services};
use crate::runtime::reload::reload_logged;
pub use crate::runtime::reload::{ReloadError, reload};
use crate::runtime::watch::{self, FileWatch};
use crate::server::{self, BoundListener};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("{0}")]
    Bind(String),
    #[error("audit log: {0}")]
    Audit(std::io::Error),
    #[error("{0}")]
    Services(String),
}

/// A gateway that is bound and ready to serve.
pub struct Prepared {
    pub gateway: Arc<Gateway>,
    listeners: Vec<BoundListener>,
    admin: Option<TcpListener>,
    config_path: PathBuf,
    /// The digest of the config bytes the running runtime was built from.
    loaded_digest: [u8; 32],
    watches: Vec<FileWatch>,
}

impl Prepared {
    /// `(listener name, bound address)` for each data-plane listener.
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|l| Some((l.config.name.clone(), l.local_addr().ok()?)))
            .collect()
    }

    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|a| a.local_addr().ok())
    }

    /// Serves until `shutdown`, reloading on SIGHUP and (if enabled) on file change.
    pub async fn serve(mut self, shutdown: impl Future<Output = ()>) {
        let runtime = self.gateway.runtime();
        let drain = Duration::from_millis(runtime.config.server.drain_timeout_ms);
        if runtime.config.server.watch_config {
            let gateway = self.gateway.clone();
            let path = self.config_path.clone();
            let on_change = move || {
                tokio::spawn(reload_logged(gateway.clone(), path.clone()));
            };
            let loaded = Some(self.loaded_digest);
            match watch::watch_files_since(&[&self.config_path], loaded, on_change) {
                Ok(w) => self.watches.push(w),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch the config file; SIGHUP still reloads")
                }
            }
            self.watch_contracts(&runtime.config);
        }
        let hangups = spawn_sighup_reloader(self.gateway.clone(), self.config_path.clone());
        server::serve(
            self.gateway.clone(),
            self.listeners,
            self.admin,
            shutdown,
            drain,
        )
        .await;
        hangups.abort();
        if let Some(acme) = &self.gateway.services.acme {
            acme.stop();
        }
        drop(self.watches);
    }
}

impl Prepared {
    /// Reloads when a contract named at start changes, or any file its `$ref`s reach (a
    /// contract first named by a reload is watched from the next start; SIGHUP reloads it any
    /// time).
    fn watch_contracts(&mut self, config: &crate::config::Config) {
        let contracts: std::collections::BTreeSet<&Path> = config
            .upstreams
            .iter()
            .filter_map(|u| u.openapi.as_ref())
            .chain(config.routes.iter().filter_map(|r| r.openapi.as_ref()))
            .map(|o| o.spec_file.as_path())
            .collect();
        let files: std::collections::BTreeSet<std::path::PathBuf> = contracts
            .into_iter()
            .flat_map(|c| {
                let mut files = crate::policy::validate::spec::contract_files(c);
                files.push(c.to_path_buf());
                files
            })
            .collect();
        if files.is_empty() {
            return;
        }
        let files: Vec<&Path> = files.iter().map(std::path::PathBuf::as_path).collect();
        let gateway = self.gateway.clone();
        let path = self.config_path.clone();
        let on_change = move || {
            tokio::spawn(reload_logged(gateway.clone(), path.clone()));
        };
        match watch::watch_files(&files, on_change) {
            Ok(w) => self.watches.push(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the contracts; SIGHUP still reloads")
            }
        }
    }
}

/// Loads the config, starts the audit writer and binds every listener.
pub async fn prepare(config_path: &Path) -> Result<Prepared, StartError> {
    crate::tls::install_crypto_provider();
    // Before anything records a metric: events before the recorder exists are lost.
    crate::telemetry::metrics_handle();
    let source = ConfigSource::from_file(config_path).map_err(|source| StartError::Read {
        path: config_path.to_path_buf(),
        source,
    })?;
    let config = crate::config::parse(&source).map_err(StartError::Config)?;
    let mut services = Services::start(&config)
        .await
        .map_err(StartError::Services)?;
    services.config_path = Some(config_path.to_path_buf());
    let runtime = Runtime::build(config, &services)
        .map_err(|issues| StartError::Config(source.locate(issues)))?;
    let (detectors, detections) = services.watch.detectors();
    let spans = crate::trace::export::SpanExporter::start(
        services.trace_export.clone(),
        runtime.config.tracing.queue_capacity,
    );
    let observers: Vec<Box<dyn crate::audit::RecordObserver>> =
        vec![Box::new(detectors), Box::new(spans)];
    let audit = AuditSink::start(&runtime.config.audit, observers).map_err(StartError::Audit)?;
    services.watch.start(detections, audit.clone());
    if let (Some(syslog), Some(file)) = (&runtime.config.syslog, &runtime.config.audit.file) {
        let shipper = crate::syslog::Shipper::start(syslog, file, runtime.config.audit.max_files)
            .map_err(StartError::Services)?;
        services.shippers.push(Arc::new(shipper));
    }
    if let (Some(logs), Some(file)) = (&runtime.config.otlp_logs, &runtime.config.audit.file) {
        let shipper = crate::otlp_logs::start(logs, file, runtime.config.audit.max_files)
            .map_err(StartError::Services)?;
        services.shippers.push(Arc::new(shipper));
    }
    if runtime.config.detect.enabled && !runtime.config.audit.enabled {
        tracing::warn!("[detect] reads the audit records, and [audit] is off: no detector runs");
    }
    if runtime.config.tracing.otlp_endpoint.is_some() && !runtime.config.audit.enabled {
        tracing::warn!(
            "spans are made from the audit records, and [audit] is off: none is exported"
        );
    }
    audit.event(crate::audit::AuditEvent::start(&source.text));
    let listeners = server::bind(&runtime.config, &services.acme_challenges)
        .await
        .map_err(StartError::Bind)?;
    services.acme = start_acme(&runtime.config, &services, &listeners, &audit).await?;
    let admin = match runtime.config.admin.enabled {
        true => Some(
            TcpListener::bind(runtime.config.admin.bind)
                .await
                .map_err(|e| {
                    StartError::Bind(format!(
                        "admin: cannot bind {}: {e}",
                        runtime.config.admin.bind
                    ))
                })?,
        ),
        false => None,
    };
    let mut watches = Vec::new();
    for listener in &listeners {
        let Some((_, resolver)) = &listener.tls else {
            continue;
        };
        let Some(files) = resolver.files() else {
            continue;
        };
        let resolver = resolver.clone();
        let name = listener.config.name.clone();
        let on_change = move || match resolver.reload() {
            Ok(()) => {
                metrics::counter!("rampart_certificate_reloads_total", "result" => "ok")
                    .increment(1);
                tracing::info!(listener = %name, "certificate reloaded")
            }
            Err(e) => {
                metrics::counter!("rampart_certificate_reloads_total", "result" => "error")
                    .increment(1);
                tracing::error!(listener = %name, error = %e, "certificate reload failed; keeping the old one")
            }
        };
        match watch::watch_files(&files, on_change) {
            Ok(w) => watches.push(w),
            Err(e) => tracing::warn!(error = %e, "cannot watch certificate files"),
        }
    }
    let resolvers: Vec<_> = listeners
        .iter()
        .filter_map(|l| l.tls.as_ref().map(|(_, resolver)| resolver.clone()))
        .collect();
    for listener in &listeners {
        if let (Some(settings), Some((_, resolver))) = (&listener.config.tls, &listener.tls)
            && settings.ocsp_stapling
        {
            crate::tls::ocsp::spawn_stapler(resolver);
        }
    }
    let gateway = Gateway::new(runtime, audit, services);
    crate::acme::ExpiryWatch::spawn(Arc::downgrade(&gateway), resolvers);
    Ok(Prepared {
        gateway,
        listeners,
        admin,
        config_path: config_path.to_path_buf(),
        loaded_digest: watch::content_digest([Some(source.text.as_bytes())]),
        watches,
    })
}

/// Starts obtaining and renewing the ACME listeners' certificates (installing stored ones first).
async fn start_acme(
    config: &crate::config::Config,
    services: &Services,
    listeners: &[BoundListener],
    audit: &AuditSink,
) -> Result<Option<Arc<crate::acme::Acme>>, StartError> {
    let Some(acme) = &config.acme else {
        return Ok(None);
    };
    let managed: Vec<_> = listeners
        .iter()
        .filter_map(|l| {
            let domains = &l.config.tls.as_ref()?.acme_domains;
            let (_, resolver) = l.tls.as_ref()?;
            (!domains.is_empty()).then(|| (domains.clone(), resolver.clone()))
        })
        .collect();
    if managed.is_empty() {
        return Ok(None);
    }
    let store = services.store.clone().ok_or_else(|| {
        StartError::Services("ACME keeps its certificates in the store, which is not open".into())
    })?;
    let challenges = services.acme_challenges.clone();
    Ok(Some(
        crate::acme::Acme::start(acme.clone(), store, challenges, audit.clone(), managed).await,
    ))
}

/// SIGHUP reloads (even an unchanged file: the operator asked, and every piece of state survives
/// a reload); a burst of signals is one reload.
fn spawn_sighup_reloader(gateway: Arc<Gateway>, path: PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hangups.recv().await.is_some() {
            tokio::time::sleep(watch::DEBOUNCE).await;
            while futures_util::FutureExt::now_or_never(hangups.recv()).is_some() {}
            reload_logged(gateway.clone(), path.clone()).await;
        }
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
}
