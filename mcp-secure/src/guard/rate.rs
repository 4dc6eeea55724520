//! Guard 4: rate limits. A GCRA limiter (governor) per tool, keyed by principal, and an
//! optional server-wide limiter per principal. Memory stays bounded: once a limiter holds more
//! keys than its threshold, keys indistinguishable from a fresh start are evicted, and the
//! threshold doubles past the survivors so eviction work is amortised.

use std::sync::atomic::{AtomicUsize, Ordering};

use governor::{Quota, RateLimiter, middleware::NoOpMiddleware, state::keyed::DashMapStateStore};

use crate::clock::Clock;
use crate::error::{ErrorCode, ToolError};
use crate::policy::Rate;

type Keyed =
    RateLimiter<String, DashMapStateStore<String>, Clock, NoOpMiddleware<std::time::Duration>>;

/// Keys kept before the first eviction pass.
pub const DEFAULT_KEY_THRESHOLD: usize = 100_000;

/// Calls between two looks at the number of keys. Counting keys visits every shard of the
/// map (four per CPU), so it is not done on every call; a limiter may pass its threshold by at
/// most this many keys before it evicts.
const GC_CHECK_EVERY: usize = 64;

/// One keyed limiter with bounded memory.
pub struct KeyedLimit {
    limiter: Keyed,
    rate: Rate,
    clock: Clock,
    threshold: usize,
    next_gc: AtomicUsize,
    calls: AtomicUsize,
}

impl std::fmt::Debug for KeyedLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimit")
            .field("rate", &self.rate)
            .field("keys", &self.limiter.len())
            .finish()
    }
}

impl KeyedLimit {
    /// A limiter for `rate` on `clock`, evicting idle keys past `threshold` keys.
    pub fn new(rate: Rate, clock: Clock, threshold: usize) -> Self {
        let quota = Quota::with_period(rate.per() / rate.count())
            .unwrap_or_else(|| Quota::per_second(rate_count(rate)))
            .allow_burst(rate_count(rate));
        KeyedLimit {
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone()),
            rate,
            clock,
            threshold,
            next_gc: AtomicUsize::new(threshold),
            calls: AtomicUsize::new(0),
        }
    }

    /// Counts one call for `key`, or refuses with `rate_limited` and `retry_after_ms`.
    ///
    /// The key is a `&String` because the limiter's map is looked up by `&String`: borrowing
    /// the caller's (the principal's user id) saves a copy on every call.
    #[allow(clippy::ptr_arg)]
    pub fn check(&self, key: &String, what: &str) -> Result<(), ToolError> {
        let result = self.limiter.check_key(key);
        self.collect_garbage();
        result.map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
            let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
            ToolError::new(
                ErrorCode::RateLimited,
                format!(
                    "{what} allows {} calls; retry in {:.1} s",
                    self.rate,
                    wait.as_secs_f64()
                ),
            )
            .with_detail("retry_after_ms", ms)
        })
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Evicts keys whose state is the same as a fresh start.
    pub fn evict_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    fn collect_garbage(&self) {
        if !self
            .calls
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(GC_CHECK_EVERY)
        {
            return;
        }
        let len = self.limiter.len();
        let due = self.next_gc.load(Ordering::Relaxed);
        if len > due
            && self
                .next_gc
                .compare_exchange(due, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.evict_idle();
            let survivors = self.limiter.len();
            self.next_gc.store(
                survivors.saturating_mul(2).max(self.threshold),
                Ordering::Release,
            );
        }
    }
}

fn rate_count(rate: Rate) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(rate.count()).unwrap_or(std::num::NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn exactly_the_quota_then_refused_then_refilled() {
        let clock = Clock::manual();
        let l = KeyedLimit::new(Rate::parse("3/min").unwrap(), clock.clone(), 1000);
        let alice = "alice".to_string();
        for _ in 0..3 {
            l.check(&alice, "t").unwrap();
        }
        let e = l.check(&alice, "t").unwrap_err();
        assert_eq!(e.code(), ErrorCode::RateLimited);
        assert_eq!(e.details()["retry_after_ms"], 20_000);
        l.check(&"bob".to_string(), "t").unwrap();
        clock.advance(Duration::from_secs(20));
        l.check(&alice, "t").unwrap();
        assert!(l.check(&alice, "t").is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let clock = Clock::manual();
        let l = KeyedLimit::new(Rate::parse("10/sec").unwrap(), clock.clone(), 1000);
        for i in 0..5000 {
            l.check(&format!("user-{i}"), "t").unwrap();
            if i % 100 == 0 {
                clock.advance(Duration::from_secs(2));
            }
        }
        assert!(l.len() <= 2000, "held {} keys", l.len());
    }
}
