//! Pre-started workers: each already sandboxed and waiting for its one call. Taking one is a
//! pipe write instead of a process start; a background task starts replacements.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::runner::{RunnerInner, Worker};

/// Idle workers of one tool.
pub(crate) struct Pool {
    size: usize,
    idle: Mutex<VecDeque<Worker>>,
    /// Wakes the filler: a worker was taken, or the runner is gone.
    wake: Arc<Notify>,
    started: AtomicBool,
}

impl Pool {
    pub(crate) fn new(size: usize) -> Self {
        Pool {
            size,
            idle: Mutex::new(VecDeque::with_capacity(size)),
            wake: Arc::new(Notify::new()),
            started: AtomicBool::new(false),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<Worker>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the background filler once (it needs a tokio runtime).
    pub(crate) fn start(runner: &Arc<RunnerInner>) {
        let Some(pool) = &runner.pool else { return };
        if pool.started.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(fill(Arc::downgrade(runner), Arc::clone(&pool.wake)));
    }

    /// A live idle worker, if there is one; the filler is told to replace it.
    pub(crate) fn take(runner: &Arc<RunnerInner>) -> Option<Worker> {
        let pool = runner.pool.as_ref()?;
        Pool::start(runner);
        loop {
            let next = pool.idle().pop_front();
            pool.wake.notify_one();
            let mut worker = next?;
            if worker.alive() {
                return Some(worker);
            }
            // Died while idle (its `Drop` reaps it); try the next.
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // The filler sees the runner gone and stops; idle workers are killed and reaped by
        // their `Drop`.
        self.wake.notify_one();
    }
}

/// Keeps the pool full while the runner lives. A worker that fails to start is logged and
/// retried after a back-off (1 s, doubling up to 30 s), so a broken set-up does not spin.
async fn fill(runner: Weak<RunnerInner>, wake: Arc<Notify>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let missing = {
            let Some(inner) = runner.upgrade() else {
                return;
            };
            let Some(pool) = &inner.pool else { return };
            pool.size.saturating_sub(pool.idle().len())
        };
        if missing == 0 {
            wake.notified().await;
            continue;
        }
        let started = {
            let Some(inner) = runner.upgrade() else {
                return;
            };
            let started = Worker::start(&inner).await;
            match started {
                Ok(worker) => {
                    if let Some(pool) = &inner.pool {
                        pool.idle().push_back(worker);
                    }
                    true
                }
                Err(e) => {
                    tracing::error!(target: "mcp_secure::sandbox", tool = inner.tool, error = %e, "sandbox worker could not start; retrying in {} s", backoff.as_secs());
                    false
                }
            }
        };
        if started {
            backoff = Duration::from_secs(1);
        } else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}
