//! One clock for every time-dependent guard (rate limits, approval expiry, audit timestamps),
//! so tests can move time instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// A monotonic clock that can be the real one or a manual one that only moves when told.
///
/// Cloning shares the clock: advancing one clone advances all.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: Instant,
    base_utc: OffsetDateTime,
    manual: bool,
    offset_nanos: AtomicU64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The real clock.
    pub fn system() -> Self {
        Self::with(false)
    }

    /// A clock that stands still until [`Clock::advance`] moves it. For tests.
    pub fn manual() -> Self {
        Self::with(true)
    }

    fn with(manual: bool) -> Self {
        Clock {
            inner: Arc::new(Inner {
                base: Instant::now(),
                base_utc: OffsetDateTime::now_utc(),
                manual,
                offset_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Moves a manual clock forward (a real clock moves too: the offset adds to real time).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.inner.offset_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// Time since the clock was made.
    pub fn elapsed(&self) -> Duration {
        let offset = Duration::from_nanos(self.inner.offset_nanos.load(Ordering::SeqCst));
        if self.inner.manual {
            offset
        } else {
            self.inner.base.elapsed() + offset
        }
    }

    /// Wall-clock time (UTC) on this clock.
    pub fn now_utc(&self) -> OffsetDateTime {
        self.inner.base_utc + self.elapsed()
    }
}

impl governor::clock::Clock for Clock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual();
        assert_eq!(c.elapsed(), Duration::ZERO);
        c.clone().advance(Duration::from_secs(5));
        assert_eq!(c.elapsed(), Duration::from_secs(5));
        assert_eq!(c.now_utc() - c.inner.base_utc, time::Duration::seconds(5));
    }
}
