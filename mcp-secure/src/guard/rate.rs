//! Guard 4: rate limits. A GCRA limiter per tool, keyed by principal, and an optional
//! server-wide limiter per principal. Memory stays bounded: once a limiter holds more keys than
//! its threshold, keys indistinguishable from a fresh start are evicted, and the threshold
//! doubles past the survivors so eviction work is amortised.
//!
//! GCRA (the generic cell rate algorithm) keeps one number per key, its theoretical arrival
//! time `tat`. With `t` the interval between calls at the sustained rate and `tau = t * (n - 1)`
//! the burst of a `n/period` rate, a call at `now` is allowed when `now >= tat - tau`, and moves
//! `tat` to `max(tat, now) + t`; otherwise it is refused, to be retried after `tat - tau - now`.
//! A key whose `tat` is not after `now` behaves exactly as a new key would, so it can be
//! forgotten.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::clock::Clock;
use crate::error::{ErrorCode, ToolError};
use crate::policy::Rate;

/// Keys kept before the first eviction pass.
pub const DEFAULT_KEY_THRESHOLD: usize = 100_000;

/// A clock reading in nanoseconds, saturating.
fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One keyed limiter with bounded memory.
pub struct KeyedLimit {
    /// Keys and their theoretical arrival times (nanoseconds on `clock`), in shards so that
    /// callers with different keys seldom wait for one another.
    shards: Box<[Mutex<Shard>]>,
    /// Hashes a key once, for both its shard and its place in the shard (SipHash, seeded per
    /// limiter: keys cannot be chosen to collide).
    hasher: RandomState,
    /// Nanoseconds between two calls at the sustained rate (at least 1).
    t: u64,
    /// The burst tolerance: `t` times one less than the rate's count.
    tau: u64,
    rate: Rate,
    clock: Clock,
    threshold: usize,
    /// Keys held, over all shards.
    keys: AtomicUsize,
    /// The number of keys past which the next call evicts (`usize::MAX` while one does).
    next_gc: AtomicUsize,
}

impl std::fmt::Debug for KeyedLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimit")
            .field("rate", &self.rate)
            .field("keys", &self.len())
            .finish()
    }
}

impl KeyedLimit {
    /// A limiter for `rate` on `clock`, evicting idle keys past `threshold` keys.
    pub fn new(rate: Rate, clock: Clock, threshold: usize) -> Self {
        let count = u64::from(rate.count().max(1));
        let per = nanos(rate.per());
        let t = (per / count).max(1);
        let shards = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .saturating_mul(4)
            .next_power_of_two();
        KeyedLimit {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            t,
            tau: t.saturating_mul(count - 1),
            rate,
            clock,
            threshold,
            keys: AtomicUsize::new(0),
            next_gc: AtomicUsize::new(threshold),
        }
    }

    /// Counts one call for `key`, or refuses with `rate_limited` and `retry_after_ms`.
    pub fn check(&self, key: &str, what: &str) -> Result<(), ToolError> {
        self.check_at(key, what, self.clock.elapsed())
    }

    /// [`KeyedLimit::check`] for a call at `now`, a reading of this limiter's clock
    /// ([`Clock::elapsed`]) that the caller already has: the server counts a call at the time
    /// it arrived, which its audit record read, so the clock is read once per call, not once
    /// more per limiter.
    pub fn check_at(
        &self,
        key: &str,
        what: &str,
        now: std::time::Duration,
    ) -> Result<(), ToolError> {
        let now = nanos(now);
        let hash = self.hasher.hash_one(key);
        let verdict = {
            let mut shard = lock(&self.shards[self.shard_index(hash)]);
            match shard.get_mut(hash, key) {
                Some(tat) => self.gcra(*tat, now).map(|next| *tat = next),
                None => {
                    // A new key: always allowed (`now - tau <= now`).
                    shard.insert(hash, key, now.saturating_add(self.t));
                    self.keys.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            }
        };
        self.collect_garbage();
        verdict.map_err(|wait_ns| {
            let wait = std::time::Duration::from_nanos(wait_ns);
            // Rounded up: a client that waits `retry_after_ms` is then let through.
            let ms = wait_ns.div_ceil(1_000_000);
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
        self.keys.load(Ordering::Relaxed)
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Evicts keys whose state is the same as a fresh start, and gives their memory back.
    pub fn evict_idle(&self) {
        let now = self.now();
        for shard in &self.shards {
            let mut shard = lock(shard);
            let evicted = shard.retain_after(now);
            self.keys.fetch_sub(evicted, Ordering::Relaxed);
        }
    }

    /// GCRA for a key whose theoretical arrival time is `tat`: the new one if a call at `now`
    /// is allowed, else how long (ns) until one would be.
    fn gcra(&self, tat: u64, now: u64) -> Result<u64, u64> {
        let earliest = tat.saturating_sub(self.tau);
        if now < earliest {
            Err(earliest - now)
        } else {
            Ok(tat.max(now).saturating_add(self.t))
        }
    }

    fn now(&self) -> u64 {
        nanos(self.clock.elapsed())
    }

    /// A key's shard, from bits of its hash that the shard's table uses for neither the bucket
    /// (the low bits) nor the tag (the top seven).
    fn shard_index(&self, hash: u64) -> usize {
        (hash >> 32) as usize & (self.shards.len() - 1)
    }

    fn collect_garbage(&self) {
        let due = self.next_gc.load(Ordering::Relaxed);
        if self.len() > due
            && self
                .next_gc
                .compare_exchange(due, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.evict_idle();
            self.next_gc.store(
                self.len().saturating_mul(2).max(self.threshold),
                Ordering::Release,
            );
        }
    }
}

/// One shard: keys by their hash, each with its theoretical arrival time. The hash is computed
/// once per call and the table uses it as it is. Two keys with the same 64-bit hash (which
/// cannot be aimed at: the hash is keyed) both stay exact, the second in `collided`.
#[derive(Default)]
struct Shard {
    by_hash: HashMap<u64, (Box<str>, u64), BuildHasherDefault<AsIs>>,
    collided: Vec<(Box<str>, u64)>,
}

impl Shard {
    fn get_mut(&mut self, hash: u64, key: &str) -> Option<&mut u64> {
        if let Some((name, tat)) = self.by_hash.get_mut(&hash)
            && **name == *key
        {
            return Some(tat);
        }
        // Another key holds this hash's place (or held it, and was evicted).
        self.collided
            .iter_mut()
            .find(|(name, _)| **name == *key)
            .map(|(_, tat)| tat)
    }

    /// Adds a key `get_mut` did not find.
    fn insert(&mut self, hash: u64, key: &str, tat: u64) {
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert((key.into(), tat));
            }
            std::collections::hash_map::Entry::Occupied(_) => self.collided.push((key.into(), tat)),
        }
    }

    /// Keeps the keys whose arrival time is after `now`, frees the rest's memory, and returns
    /// how many went.
    fn retain_after(&mut self, now: u64) -> usize {
        let before = self.len();
        self.by_hash.retain(|_, (_, tat)| *tat > now);
        self.collided.retain(|(_, tat)| *tat > now);
        self.by_hash.shrink_to_fit();
        self.collided.shrink_to_fit();
        before - self.len()
    }

    fn len(&self) -> usize {
        self.by_hash.len() + self.collided.len()
    }
}

/// The hasher of a table keyed by a hash already computed: that hash, as it is.
#[derive(Default)]
struct AsIs(u64);

impl Hasher for AsIs {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here (`write_u64`); anything else is folded in, not lost.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A shard; a panic elsewhere cannot leave it half-updated (one number per key), so a poisoned
/// lock is used as it is.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn exactly_the_quota_then_refused_then_refilled() {
        let clock = Clock::manual();
        let l = KeyedLimit::new(Rate::parse("3/min").unwrap(), clock.clone(), 1000);
        let alice = "alice";
        for _ in 0..3 {
            l.check(alice, "t").unwrap();
        }
        let e = l.check(alice, "t").unwrap_err();
        assert_eq!(e.code(), ErrorCode::RateLimited);
        assert_eq!(e.details()["retry_after_ms"], 20_000);
        assert_eq!(e.message(), "t allows 3/min calls; retry in 20.0 s");
        l.check("bob", "t").unwrap();
        clock.advance(Duration::from_secs(20));
        l.check(alice, "t").unwrap();
        assert!(l.check(alice, "t").is_err());
    }

    /// The sustained rate once the burst is spent: one call per interval, each refusal saying
    /// how long is left, to the millisecond.
    #[test]
    fn after_the_burst_one_call_per_interval() {
        let clock = Clock::manual();
        let l = KeyedLimit::new(Rate::parse("2/sec").unwrap(), clock.clone(), 1000);
        l.check("k", "t").unwrap();
        l.check("k", "t").unwrap();
        let wait =
            |l: &KeyedLimit| l.check("k", "t").unwrap_err().details()["retry_after_ms"].clone();
        assert_eq!(wait(&l), 500);
        clock.advance(Duration::from_millis(200));
        assert_eq!(wait(&l), 300);
        clock.advance(Duration::from_millis(300));
        l.check("k", "t").unwrap();
        assert_eq!(wait(&l), 500);
        // Idle long enough to refill the whole burst, not more.
        clock.advance(Duration::from_secs(10));
        l.check("k", "t").unwrap();
        l.check("k", "t").unwrap();
        assert!(l.check("k", "t").is_err());
    }

    /// `retry_after_ms` is rounded up: waiting exactly that long is enough.
    #[test]
    fn retry_after_ms_is_enough_to_wait() {
        let clock = Clock::manual();
        let l = KeyedLimit::new(Rate::parse("3/sec").unwrap(), clock.clone(), 1000);
        for _ in 0..3 {
            l.check("k", "t").unwrap();
        }
        let e = l.check("k", "t").unwrap_err();
        assert_eq!(e.details()["retry_after_ms"], 334, "333.33 ms, rounded up");
        clock.advance(Duration::from_millis(333));
        assert_eq!(
            l.check("k", "t").unwrap_err().details()["retry_after_ms"],
            1
        );
        clock.advance(Duration::from_millis(1));
        l.check("k", "t").unwrap();
    }

    #[test]
    fn only_keys_back_at_a_fresh_start_are_evicted() {
        let clock = Clock::manual();
        let l = KeyedLimit::new(Rate::parse("1/sec").unwrap(), clock.clone(), 1000);
        l.check("old", "t").unwrap();
        clock.advance(Duration::from_millis(600));
        l.check("new", "t").unwrap();
        clock.advance(Duration::from_millis(400));
        // `old` is refilled (its next call is as a new key's); `new` still owes 600 ms.
        l.evict_idle();
        assert_eq!(l.len(), 1);
        let e = l.check("new", "t").unwrap_err();
        assert_eq!(e.details()["retry_after_ms"], 600);
        l.check("old", "t").unwrap();
        assert_eq!(l.len(), 2);
    }

    /// Keys with one hash (made up here; a keyed hash cannot be aimed at) are told apart by
    /// name, and stay reachable when the one holding the hash's place is evicted.
    #[test]
    fn keys_sharing_a_hash_stay_apart() {
        let mut shard = Shard::default();
        shard.insert(7, "a", 10);
        shard.insert(7, "b", 20);
        shard.insert(8, "c", 30);
        assert_eq!(shard.len(), 3);
        assert_eq!(shard.get_mut(7, "a").copied(), Some(10));
        assert_eq!(shard.get_mut(7, "b").copied(), Some(20));
        assert_eq!(shard.get_mut(7, "c"), None);
        *shard.get_mut(7, "b").expect("b") = 25;
        assert_eq!(
            shard.retain_after(15),
            1,
            "only `a` is back at a fresh start"
        );
        assert_eq!(shard.get_mut(7, "a"), None);
        assert_eq!(shard.get_mut(7, "b").copied(), Some(25));
        shard.insert(7, "a", 40);
        assert_eq!(shard.get_mut(7, "a").copied(), Some(40));
        assert_eq!(shard.get_mut(7, "b").copied(), Some(25));
        assert_eq!(shard.retain_after(100), 3);
        assert_eq!(shard.len(), 0);
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
        let held: usize = l.shards.iter().map(|s| lock(s).len()).sum();
        assert_eq!(held, l.len(), "the count agrees with the shards");
    }

    /// Many threads on one key never let more calls through than the burst.
    #[test]
    fn concurrent_callers_share_one_quota() {
        let clock = Clock::manual();
        let l = KeyedLimit::new(Rate::parse("100/hour").unwrap(), clock, 1000);
        let allowed = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        if l.check("shared", "t").is_ok() {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.into_inner(), 100);
    }
}
