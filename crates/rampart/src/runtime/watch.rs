//! File watching for config and certificate reloads.
//!
//! The parent directories are watched (editors and Kubernetes replace files rather than write
//! them in place). Only events that can change content count (a write that closes, a write, a
//! rename, a creation, a removal): opening or reading a file (`cat`, `rampart check`, `curl
//! --cacert`, the reload's own read) is not a change, which is what once made every read start a
//! loop of reloads. Events are debounced, and the callback runs only when the bytes of the
//! watched files differ from the last ones seen (SHA-256), so a `touch` or a rewrite with the same
//! content reloads nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

/// Events closer together than this are one change.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Keeps the watch alive; dropping it stops watching.
pub struct FileWatch {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

/// Calls `on_change` after the content of any of `files` changes. Must run inside a tokio
/// runtime.
pub fn watch_files<F>(files: &[&Path], on_change: F) -> notify::Result<FileWatch>
where
    F: Fn() + Send + 'static,
{
    watch_files_since(files, None, on_change)
}

/// Like `watch_files`, from the content that was actually loaded (`loaded`: the digest of the
/// files' bytes as `content_digest` computes it), so that a change made between loading and
/// watching is not missed.
pub fn watch_files_since<F>(
    files: &[&Path],
    loaded: Option<[u8; 32]>,
    on_change: F,
) -> notify::Result<FileWatch>
where
    F: Fn() + Send + 'static,
{
    let names: HashSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
    let dirs: HashSet<PathBuf> = names
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    let ordered: Vec<PathBuf> = files.iter().map(|f| absolute(f)).collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && changes_content(&event.kind)
            && event
                .paths
                .iter()
                .any(|p| names.contains(&absolute(p)) || is_kubernetes_swap(p))
        {
            let _ = tx.try_send(());
        }
    })?;
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    let seen = loaded.unwrap_or_else(|| digest(&ordered));
    let task = tokio::spawn(async move {
        // Reading the files and reacting (a reload parses them) are file work: on a blocking
        // thread, so that the runtime's threads (one, on one core) keep serving meanwhile.
        let mut state = (ordered, seen, on_change);
        while rx.recv().await.is_some() {
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            let checked = tokio::task::spawn_blocking(move || {
                let (ordered, mut seen, on_change) = state;
                let now = digest(&ordered);
                if now != seen {
                    seen = now;
                    on_change();
                }
                (ordered, seen, on_change)
            })
            .await;
            match checked {
                Ok(next) => state = next,
                Err(e) => {
                    tracing::error!(error = %e, "the file watch stopped: its change handler failed");
                    return;
                }
            }
        }
    });
    Ok(FileWatch {
        _watcher: watcher,
        task,
    })
}

/// Whether an event can have changed a file's bytes (or which file a name points to).
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// SHA-256 over the files' bytes in order (a missing file counts as its own state).
fn digest(files: &[PathBuf]) -> [u8; 32] {
    let contents: Vec<Option<Vec<u8>>> = files.iter().map(|f| std::fs::read(f).ok()).collect();
    content_digest(contents.iter().map(Option::as_deref))
}

/// The digest of files' contents (`None`: a missing file), as the watch compares them.
pub fn content_digest<'a>(contents: impl IntoIterator<Item = Option<&'a [u8]>>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for content in contents {
        match content {
            Some(bytes) => {
                hasher.update((bytes.len() as u64).to_be_bytes());
                hasher.update(bytes);
            }
            None => hasher.update(u64::MAX.to_be_bytes()),
        }
    }
    hasher.finalize().into()
}

/// A Kubernetes ConfigMap or Secret volume updates its files by renaming a `..data` symlink (and
/// `..2026_...` directories) beside them: the watched names themselves see no event. The content
/// hash decides whether anything changed.
fn is_kubernetes_swap(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".."))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn calls_after_rewriting_the_same_bytes(loaded: Option<&[u8]>) -> usize {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("rampart.toml");
        std::fs::write(&file, b"now").unwrap_or_else(|e| panic!("{e}"));
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let loaded = loaded.map(|bytes| content_digest([Some(bytes)]));
        let _watch = watch_files_since(&[&file], loaded, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap_or_else(|e| panic!("{e}"));
        // Reading is not a change; writing the same bytes is an event with nothing new.
        let _ = std::fs::read(&file);
        std::fs::write(&file, b"now").unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(DEBOUNCE * 4).await;
        calls.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn rewriting_the_same_bytes_reloads_nothing() {
        assert_eq!(calls_after_rewriting_the_same_bytes(None).await, 0);
        assert_eq!(calls_after_rewriting_the_same_bytes(Some(b"now")).await, 0);
    }

    #[tokio::test]
    async fn a_change_made_between_loading_and_watching_is_reloaded() {
        assert_eq!(
            calls_after_rewriting_the_same_bytes(Some(b"before")).await,
            1
        );
    }

    #[test]
    fn only_content_events_count() {
        use notify::event::{CreateKind, DataChange, MetadataKind};
        assert!(changes_content(&EventKind::Create(CreateKind::File)));
        assert!(changes_content(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!changes_content(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!changes_content(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any
        ))));
    }
}
