//! Hot reload of a provider's file: watch its directory, wait until a save
//! settles, reload.
//!
//! Like the server's watcher (flags-server's `reload`), it observes the
//! directory rather than the file, because editors save by renaming a new
//! file over the old one and Kubernetes ConfigMaps swap a `..data` symlink;
//! events for the file's name or a `..` name count, reads never do. It is
//! smaller than the server's: one thread, no SIGHUP, no metrics or webhooks.
//! What a reload does (per-flag last-known-good) is the core's
//! `compile_merged`, shared with the server. Not here: the reload itself
//! (`provider`).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::loaded::LoadError;

/// Longest a burst of file events can postpone a reload (as in the server).
const MAX_SETTLE: Duration = Duration::from_millis(250);

/// Watches until dropped.
pub(crate) struct FileWatch {
    _watcher: RecommendedWatcher,
}

/// Calls `reload` after each save of `path`, once events have stopped for
/// `debounce`, on a thread of its own.
pub(crate) fn watch(
    path: &Path,
    debounce: Duration,
    reload: impl Fn() + Send + 'static,
) -> Result<FileWatch, LoadError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(ToOwned::to_owned);
    let concerns = move |changed: &Path| {
        changed.file_name().is_some_and(|changed| {
            Some(changed) == name.as_deref() || changed.to_string_lossy().starts_with("..")
        })
    };
    let (changes, changed) = channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(event) => {
                !matches!(event.kind, EventKind::Access(_))
                    && event.paths.iter().any(|p| concerns(p))
            }
            // A lost or failed event may hide a change: look again.
            Err(_) => true,
        };
        if relevant {
            let _ = changes.send(());
        }
    })
    .map_err(|e| LoadError::Watch(format!("{}: {e}", dir.display())))?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| LoadError::Watch(format!("{}: {e}", dir.display())))?;
    std::thread::Builder::new()
        .name("flags-openfeature-reload".into())
        .spawn(move || {
            // Ends when the watcher, and with it the sender, is dropped.
            while changed.recv().is_ok() {
                // A file saved in a loop still reloads, at least every MAX_SETTLE.
                let deadline = Instant::now() + MAX_SETTLE.max(debounce);
                loop {
                    let wait = debounce.min(deadline.saturating_duration_since(Instant::now()));
                    match changed.recv_timeout(wait) {
                        Ok(()) if Instant::now() < deadline => continue,
                        Ok(()) => break,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                reload();
            }
        })
        .map_err(|e| LoadError::Watch(e.to_string()))?;
    Ok(FileWatch { _watcher: watcher })
}
