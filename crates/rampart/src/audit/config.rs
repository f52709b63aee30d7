//! Audit log settings.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

pub const DEFAULT_AUDIT_QUEUE: usize = 65_536;
pub const DEFAULT_AUDIT_MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;
pub const DEFAULT_AUDIT_MAX_FILES: u32 = 5;
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1000;

/// Where the one-line-per-request JSON audit log goes.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    #[serde(default = "crate::config::listener::default_true")]
    pub enabled: bool,
    /// A file path, or absent for stdout.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Rotate when the file reaches this size.
    #[serde(default = "default_max_file_bytes")]
    #[schemars(range(max = crate::config::bounds::MAX_BODY_BYTES))]
    pub max_file_bytes: u64,
    /// Rotated files kept (`audit.log.1` ... `audit.log.N`).
    #[serde(default = "default_max_files")]
    #[schemars(range(max = crate::config::bounds::MAX_COUNT))]
    pub max_files: u32,
    /// Events queued between the request path and the writer.
    #[serde(default = "default_queue")]
    #[schemars(range(max = crate::config::bounds::MAX_ENTRIES))]
    pub queue_capacity: usize,
    /// The Ed25519 key (PKCS#8 PEM) that signs the trail's checkpoints; made on first start,
    /// with the public key in `FILE.pub`. Default: `FILE.key` beside the audit file (keep it
    /// readable by the gateway only); a stdout log without one gets a key per process.
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// A signed checkpoint after this many lines (and at every rotation and at shutdown).
    #[serde(default = "default_checkpoint_every")]
    #[schemars(range(min = 1, max = crate::config::bounds::MAX_ENTRIES))]
    pub checkpoint_every: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            file: None,
            max_file_bytes: DEFAULT_AUDIT_MAX_FILE_BYTES,
            max_files: DEFAULT_AUDIT_MAX_FILES,
            queue_capacity: DEFAULT_AUDIT_QUEUE,
            signing_key_file: None,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
        }
    }
}

fn default_max_file_bytes() -> u64 {
    DEFAULT_AUDIT_MAX_FILE_BYTES
}
fn default_max_files() -> u32 {
    DEFAULT_AUDIT_MAX_FILES
}
fn default_queue() -> usize {
    DEFAULT_AUDIT_QUEUE
}
fn default_checkpoint_every() -> u64 {
    DEFAULT_CHECKPOINT_EVERY
}
