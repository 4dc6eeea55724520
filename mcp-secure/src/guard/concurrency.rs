//! Guard 7a: at most `concurrency` calls of a tool in flight; the rest are refused at once
//! (`overloaded`) rather than queued, so a flood cannot pile up waiting work.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ErrorCode, ToolError};

/// The per-tool limit.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit {
    permits: Arc<Semaphore>,
    max: u32,
}

impl ConcurrencyLimit {
    /// A limit of `max` calls in flight.
    pub fn new(max: u32) -> Self {
        ConcurrencyLimit {
            permits: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// Takes a permit, held until the call ends, or refuses with `overloaded`.
    pub fn acquire(&self) -> Result<OwnedSemaphorePermit, ToolError> {
        Arc::clone(&self.permits).try_acquire_owned().map_err(|_| {
            ToolError::new(
                ErrorCode::Overloaded,
                format!(
                    "this tool already has {} calls in flight; retry shortly",
                    self.max
                ),
            )
            .with_detail("max_in_flight", self.max)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_frees_on_drop() {
        let l = ConcurrencyLimit::new(1);
        let p = l.acquire().unwrap();
        assert_eq!(l.acquire().unwrap_err().code(), ErrorCode::Overloaded);
        drop(p);
        assert!(l.acquire().is_ok());
    }
}
