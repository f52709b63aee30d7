//! Secrets in configuration: read from a file or an environment variable, never written inline, and
//! never printed (`Debug` shows `[redacted]`).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

/// Where a secret is read from.
#[derive(Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// A file whose contents (trailing newline removed) are the secret.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// An environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSource")
            .field("file", &self.file)
            .field("env", &self.env)
            .finish()
    }
}

/// Secret bytes; `Debug` never shows them and they are zeroed on drop.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Not a guarantee against every copy, but the obvious one is gone.
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl SecretSource {
    /// Reads the secret; the error never contains it.
    pub fn load(&self) -> Result<Secret, String> {
        match (&self.file, &self.env) {
            (Some(path), None) => std::fs::read(path)
                .map(|mut bytes| {
                    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        bytes.pop();
                    }
                    Secret(bytes)
                })
                .map_err(|e| format!("cannot read {}: {e}", path.display())),
            (None, Some(name)) => std::env::var(name)
                .map(|v| Secret(v.into_bytes()))
                .map_err(|_| format!("environment variable {name} is not set")),
            _ => Err("set exactly one of `file` or `env`".to_owned()),
        }
    }
}
