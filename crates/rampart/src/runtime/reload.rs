//! Reloading the config file into a running gateway.
//!
//! The new config goes through the same build as start and `rampart check`, then is swapped in
//! atomically; any problem keeps the running config. Settings that the process opened at start
//! (listeners, admin listener, audit sink, server settings, store, Redis, the API-key service and
//! its secret) cannot change on reload: a change to them refuses the reload with a message that
//! says so, instead of producing routes that cannot work. Configs are compared by value.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::gateway::{Gateway, Runtime};
use crate::audit::AuditEvent;
use crate::config::{Config, ConfigErrors, ConfigSource, Issue};

/// Why a reload did not happen; the running config keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(ConfigErrors),
}

/// Reloads the config file: built completely, then swapped in atomically. Reloads are serialized
/// (a watch, SIGHUP and the admin API may ask at once), so the config that ends up running is the
/// one read last. Every outcome is counted in `rampart_config_reloads_total`.
/// Every outcome is also an event in the audit trail, with the SHA-256 of the config's text.
pub fn reload(gateway: &Gateway, path: &Path) -> Result<(), ReloadError> {
    let _one_at_a_time = gateway.reload_lock();
    let (text, result) = match ConfigSource::from_file(path) {
        Ok(source) => {
            let result = build(gateway, &source).map(|runtime| gateway.swap(runtime));
            (Some(source.text), result)
        }
        Err(source) => (
            None,
            Err(ReloadError::Read {
                path: path.to_path_buf(),
                source,
            }),
        ),
    };
    if result.is_err() {
        metrics::counter!("rampart_config_reloads_total", "result" => "error").increment(1);
    }
    let refused = result.as_ref().err().map(|e| {
        let mut why = e.to_string();
        why.truncate(why.floor_char_boundary(2048));
        why
    });
    gateway
        .audit()
        .event(AuditEvent::reload(text.as_deref(), refused));
    result
}

fn build(gateway: &Gateway, source: &ConfigSource) -> Result<Runtime, ReloadError> {
    let config = crate::config::parse(source).map_err(ReloadError::Config)?;
    let old = gateway.runtime();
    let mut issues = restart_only_changes(&old.config, &config);
    issues.extend(secret_change(gateway, &config));
    issues.extend(store_needed(gateway, &config));
    if !issues.is_empty() {
        return Err(ReloadError::Config(source.locate(issues)));
    }
    Runtime::build(config, &gateway.services)
        .map_err(|issues| ReloadError::Config(source.locate(issues)))
}

/// Reloads and logs the outcome, off the async workers (file I/O, and carrying rate-limit state
/// over can copy many entries): file watches and SIGHUP.
pub async fn reload_logged(gateway: Arc<Gateway>, path: PathBuf) {
    let done = tokio::task::spawn_blocking(move || {
        let result = reload(&gateway, &path);
        (path, result)
    })
    .await;
    match done {
        Ok((path, Ok(()))) => tracing::info!(path = %path.display(), "configuration reloaded"),
        Ok((path, Err(e))) => {
            tracing::error!(path = %path.display(), errors = %e, "configuration reload failed; keeping the running config")
        }
        Err(e) => tracing::error!(error = %e, "configuration reload did not finish"),
    }
}

/// The sections that the process opened at start and a reload cannot change.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut refuse = |changed: bool, pointer: &str| {
        if changed {
            issues.push(Issue::new(
                pointer,
                "cannot change on reload (opened at start): restart the gateway to apply it",
            ));
        }
    };
    refuse(old.listeners != new.listeners, "/listeners");
    refuse(
        old.admin.enabled != new.admin.enabled || old.admin.bind != new.admin.bind,
        "/admin",
    );
    refuse(old.audit != new.audit, "/audit");
    refuse(old.syslog != new.syslog, "/syslog");
    refuse(old.otlp_logs != new.otlp_logs, "/otlp_logs");
    refuse(old.acme != new.acme, "/acme");
    refuse(old.server != new.server, "/server");
    refuse(old.store != new.store, "/store");
    refuse(old.redis != new.redis, "/redis");
    refuse(old.api_keys != new.api_keys, "/api_keys");
    refuse(
        old.auth.dpop.replay_cache_entries != new.auth.dpop.replay_cache_entries,
        "/auth/dpop/replay_cache_entries",
    );
    // What needs the store (quotas without Redis) is refused by the route build, at the route.
    issues
}

/// The store is opened at start when the config needs it; a reload that adds the first user of it
/// (the admin token's revocation list) cannot open it. (Quotas say so at their route.)
fn store_needed(gateway: &Gateway, new: &Config) -> Option<Issue> {
    let opened = gateway.services.revocations.is_some();
    (new.admin.token_sha256.is_some() && !opened && !gateway.services.provided.quota_storage).then(
        || {
            Issue::new(
                "/admin/token_sha256",
                "the admin API needs the store, which the running gateway did not open: restart it",
            )
        },
    )
}

/// The API-key secret is read at start; a reload cannot change its content either (the key
/// hashes in the store depend on it).
fn secret_change(gateway: &Gateway, new: &Config) -> Option<Issue> {
    let keys = new.api_keys.as_ref()?;
    let running = gateway.services.api_key_secret_digest?;
    let loaded = keys.hmac_secret.load().ok()?;
    let digest: [u8; 32] = Sha256::digest(loaded.expose()).into();
    (digest != running).then(|| {
        Issue::new(
            "/api_keys/hmac_secret",
            "the secret's content changed; it is read at start: restart the gateway to apply it",
        )
    })
}
