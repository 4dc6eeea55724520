//! Reloads a key file while the server runs: a revoked or added key takes effect within one
//! poll interval, without a restart. In-flight calls keep the principal they resolved.

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::ApiKeyStore;

/// A running key-file watcher. Dropping it stops the watching.
#[derive(Debug)]
pub struct KeyFileWatcher {
    task: tokio::task::JoinHandle<()>,
}

impl KeyFileWatcher {
    /// Stops watching.
    pub fn stop(self) {}
}

impl Drop for KeyFileWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fingerprint(path: &std::path::Path) -> Option<[u8; 32]> {
    // The content, not the mtime: coarse timestamps cannot hide a change.
    match std::fs::read(path) {
        Ok(bytes) => Some(Sha256::digest(&bytes).into()),
        Err(_) => None,
    }
}

impl ApiKeyStore {
    /// Polls `path` every `interval` (250 ms is a good value) and reloads the store when the
    /// file's content changes. A file that fails to parse is logged and the old keys stay.
    /// Must be called inside a tokio runtime.
    pub fn watch_file(&self, path: impl Into<PathBuf>, interval: Duration) -> KeyFileWatcher {
        let store = self.clone();
        let path = path.into();
        let task = tokio::spawn(async move {
            let mut seen = fingerprint(&path);
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = fingerprint(&path);
                if now == seen {
                    continue;
                }
                match store.reload(&path) {
                    Ok(()) => {
                        seen = now;
                        tracing::info!(path = %path.display(), keys = store.entries().len(), "key file reloaded");
                    }
                    Err(e) => {
                        // Try again at the next change; keep the old keys meanwhile.
                        seen = now;
                        tracing::error!(error = %e, "key file changed but could not be loaded; the old keys stay");
                    }
                }
            }
        });
        KeyFileWatcher { task }
    }
}
