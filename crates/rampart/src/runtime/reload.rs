//! Reloading the config file into a running gateway.
//!
//! The new config goes through the same build as start and `rampart check`, then is swapped in
//! atomically; any problem keeps the running config. Settings that the process opened at start
//! (listeners, admin listener, audit sink, server settings, store, Redis, the API-key service and
//! its secret) cannot change on reload: a change to them refuses the reload with a message that
//! says so, instead of producing routes that cannot work. Configs are compared by value.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::gateway::{Gateway, Runtime};
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

/// Reloads the config file: built completely, then swapped in atomically.
pub fn reload(gateway: &Gateway, path: &Path) -> Result<(), ReloadError> {
    let source = ConfigSource::from_file(path).map_err(|source| ReloadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let config = crate::config::parse(&source).map_err(ReloadError::Config)?;
    let old = gateway.runtime();
    let mut issues = restart_only_changes(&old.config, &config);
    issues.extend(secret_change(gateway, &config));
    if !issues.is_empty() {
        return Err(ReloadError::Config(source.locate(issues)));
    }
    let runtime = Runtime::build(config, &gateway.services)
        .map_err(|issues| ReloadError::Config(source.locate(issues)))?;
    gateway.swap(runtime);
    Ok(())
}

/// Reloads and logs the outcome (file watches, SIGHUP).
pub fn reload_logged(gateway: &Gateway, path: &Path) {
    match reload(gateway, path) {
        Ok(()) => tracing::info!(path = %path.display(), "configuration reloaded"),
        Err(e) => {
            metrics::counter!("rampart_config_reloads_total", "result" => "error").increment(1);
            tracing::error!(path = %path.display(), errors = %e, "configuration reload failed; keeping the running config");
        }
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
    refuse(old.server != new.server, "/server");
    refuse(old.store != new.store, "/store");
    refuse(old.redis != new.redis, "/redis");
    refuse(old.api_keys != new.api_keys, "/api_keys");
    // What needs the store (quotas without Redis) is refused by the route build, at the route.
    issues
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
