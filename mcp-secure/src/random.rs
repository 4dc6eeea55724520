//! Randomness, straight from the operating system (`getrandom`): API keys, digest and seal keys,
//! signing seeds, seal and request ids, scratch directory names, and call ids.
//!
//! There is no generator in user space to seed, reseed or get wrong: every byte is the
//! kernel's. Call ids, one per call, come from a per-thread pool of the kernel's bytes refilled
//! [`POOL`] bytes at a time, so a call costs a copy, not a system call.

use std::cell::RefCell;

/// Bytes fetched from the kernel at a time for call ids (256 ids per system call).
const POOL: usize = 4096;

/// Fills `out` with random bytes from the operating system.
///
/// # Panics
///
/// If the operating system gives none (on Linux: no `getrandom(2)` and no readable
/// `/dev/urandom`). Nothing that needs a key or an id can go on safely without them, and the
/// thread generator this replaced panicked there too.
pub(crate) fn fill(out: &mut [u8]) {
    if let Err(e) = getrandom::fill(out) {
        panic!("the operating system's random source failed: {e}");
    }
}

/// A pool of the kernel's random bytes, handed out front to back, each byte once.
struct Pool {
    bytes: [u8; POOL],
    /// The first byte not yet handed out (`POOL`: empty).
    next: usize,
}

impl Pool {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        const { assert!(N <= POOL) };
        if POOL - self.next < N {
            fill(&mut self.bytes);
            self.next = 0;
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.next..self.next + N]);
        self.next += N;
        out
    }
}

/// 16 random bytes for a call id, from this thread's pool of the kernel's bytes.
///
/// # Panics
///
/// As [`fill`], when the pool needs refilling and the operating system gives nothing.
pub(crate) fn call_id() -> [u8; 16] {
    thread_local! {
        static IDS: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; POOL], next: POOL }) };
    }
    IDS.try_with(|pool| pool.try_borrow_mut().ok().map(|mut pool| pool.take()))
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            // This thread's pool is gone (thread exit) or in use: straight from the kernel.
            let mut id = [0u8; 16];
            fill(&mut id);
            id
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn call_ids_do_not_repeat_across_refills_and_threads() {
        let per_thread = 3 * POOL / 16 + 5; // past three refills
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(move || (0..per_thread).map(|_| call_id()).collect()))
            .collect();
        let mut seen = HashSet::new();
        for t in threads {
            let ids: Vec<[u8; 16]> = t.join().expect("thread");
            for id in ids {
                assert!(seen.insert(id), "repeated id {id:02x?}");
            }
        }
        assert_eq!(seen.len(), 4 * per_thread);
    }

    #[test]
    fn a_pool_hands_out_each_byte_once_then_refills() {
        let mut pool = Pool {
            bytes: std::array::from_fn(|i| i as u8),
            next: POOL - 20,
        };
        let first: [u8; 16] = pool.take();
        let expected: [u8; 16] = std::array::from_fn(|i| (POOL - 20 + i) as u8);
        assert_eq!(first, expected, "taken from the front");
        assert_eq!(pool.next, POOL - 4);
        // Four bytes left: not enough for an id, so the pool is refilled from the kernel.
        let second: [u8; 16] = pool.take();
        assert_eq!(pool.next, 16);
        assert_eq!(second, pool.bytes[..16], "the refilled pool's first bytes");
        assert_ne!(pool.bytes, std::array::from_fn(|i| i as u8), "refilled");
    }

    #[test]
    fn fill_writes_random_bytes() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fill(&mut a);
        fill(&mut b);
        assert_ne!(a, [0u8; 32]);
        assert_ne!(a, b);
    }
}
