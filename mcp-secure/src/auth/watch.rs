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
            // Nothing seen yet: the first tick (at once) reloads, so a change made between
            // loading the store and this task's first run (a revocation during start-up) is
            // not taken as the content the store already holds.
            let mut seen = None;
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = Some(fingerprint(&path));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthError, Environment};

    /// A change made between loading the store and starting to watch its file (a revocation
    /// while the server is still starting up) is picked up: the watcher compares the file
    /// with what the store holds, not with what the file held when the watcher first looked.
    #[tokio::test]
    async fn a_revocation_written_before_the_watch_starts_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let key = ApiKeyStore::append_to_file(
            &path,
            "uma",
            &["editor".to_owned()],
            Environment::Live,
            None,
        )
        .unwrap();
        let store = ApiKeyStore::load(&path, Environment::Live).unwrap();
        assert!(store.check(&key.token).is_ok());
        // Revoked after the load, before the watch.
        assert!(ApiKeyStore::revoke_in_file(&path, &key.entry.id).unwrap());
        let _watcher = store.watch_file(&path, Duration::from_millis(20));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while store.check(&key.token).is_ok() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(store.check(&key.token), Err(AuthError::Revoked));
    }
}
