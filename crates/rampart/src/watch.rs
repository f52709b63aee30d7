//! File watching for config and certificate reloads: the parent directories are watched (editors
//! and Kubernetes replace files rather than write them in place), events for the named files are
//! debounced, then the callback runs on the tokio runtime.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

/// Events closer together than this are one change.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Keeps the watch alive; dropping it stops watching.
pub struct FileWatch {
    _watcher: notify::RecommendedWatcher,
    _task: tokio::task::JoinHandle<()>,
}

/// Calls `on_change` after any of `files` changes. Must run inside a tokio runtime.
pub fn watch_files<F>(files: &[&Path], on_change: F) -> notify::Result<FileWatch>
where
    F: Fn() + Send + 'static,
{
    let names: HashSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
    let dirs: HashSet<PathBuf> = names
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event.paths.iter().any(|p| names.contains(&absolute(p)))
        {
            let _ = tx.try_send(());
        }
    })?;
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            on_change();
        }
    });
    Ok(FileWatch {
        _watcher: watcher,
        _task: task,
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self._task.abort();
    }
}
