//! The crate's one module with `unsafe` code (feature `spool`): a spool file mapped into memory
//! and shared with the kernel's page cache, so that bytes copied into it survive the process's
//! crash (`SIGKILL`, a panic that aborts) without a system call per record. See
//! [`SpooledJsonLinesSink`](super::SpooledJsonLinesSink) for what it serves.
//!
//! Two `unsafe` operations, each with its reason:
//!
//! - **Mapping the ring** (`MmapOptions::map_mut`). A file's mapping is only sound while no
//!   other process shrinks the file: a byte past the new end faults (`SIGBUS`) when touched.
//!   The spool is created mode 0600 beside the audit log, held under an exclusive lock while a
//!   sink uses it, and only ever grown by us; its documentation tells operators that only the
//!   server may write the log's directory (which a tamper-evident audit log needs anyway).
//!   A page of the file with no block behind it (a sparse file) faults too when its block
//!   cannot be allocated (a full disk): the spool writes its ring's bytes before mapping it.
//!   Another process that writes into the file changes bytes we read back, which the spool
//!   treats as it treats any record: bytes, copied out to the log.
//! - **The header's counters as atomics** (`AtomicU64::from_ptr`). Each counter is an aligned
//!   8-byte word of its own mapping (offset 0, page-aligned), which no slice ever covers, so
//!   that a store is one instruction: a crash leaves either the old or the new value, never a
//!   mix of the two.
//!
//! And one call that needs `unsafe` only because of how Rust marks it: the prefetch of the
//! ring's next bytes ([`Ahead::prefetch`]), an SSE instruction that every x86-64 CPU has,
//! which reads and writes no memory and cannot fault.

#![allow(unsafe_code)]

use std::fs::File;
use std::sync::atomic::AtomicU64;

use memmap2::{MmapMut, MmapOptions, MmapRaw};

/// The bytes before the ring: the header's words, padded so that the ring's offset is a whole
/// number of pages for every page size Linux uses (4 KiB to 64 KiB).
pub(super) const HEADER: u64 = 64 * 1024;

/// How many 8-byte words the header has.
pub(super) const WORDS: usize = 8;

/// The header's words and the ring, each its own mapping of one spool file.
pub(super) struct Mapped {
    /// `WORDS` words at offset 0, only ever read and written as atomics.
    header: MmapRaw,
    /// The ring: `capacity` bytes at offset [`HEADER`].
    ring: MmapMut,
}

impl std::fmt::Debug for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapped")
            .field("ring", &self.ring.len())
            .finish_non_exhaustive()
    }
}

impl Mapped {
    /// Maps `file`, which must already be `HEADER + capacity` bytes long, and reads its pages in
    /// (`MAP_POPULATE`) so that the first records do not fault them in one by one.
    pub(super) fn new(file: &File, capacity: usize) -> std::io::Result<Mapped> {
        let needed = HEADER + capacity as u64;
        if file.metadata()?.len() != needed {
            return Err(std::io::Error::other(format!(
                "the spool is not {needed} bytes long"
            )));
        }
        let header = MmapOptions::new().len(WORDS * 8).populate().map_raw(file)?;
        // SAFETY: see the module's docs. The file is as long as the mapping (checked above),
        // and nobody but this process shrinks it.
        let ring = unsafe {
            MmapOptions::new()
                .offset(HEADER)
                .len(capacity)
                .populate()
                .map_mut(file)?
        };
        Ok(Mapped { header, ring })
    }

    /// The header's word `index` (below [`WORDS`]).
    pub(super) fn word(&self, index: usize) -> &AtomicU64 {
        assert!(index < WORDS, "header word {index} out of range");
        // SAFETY: the header mapping is page-aligned and `WORDS * 8` bytes long, so word
        // `index` is in it and 8-byte aligned. It lives as long as `self`, nothing else in this
        // process refers to those bytes (the ring is another mapping), and they are only
        // accessed through these atomics.
        unsafe { AtomicU64::from_ptr(self.header.as_mut_ptr().cast::<u64>().add(index)) }
    }

    /// The ring, to read.
    pub(super) fn ring(&self) -> &[u8] {
        &self.ring
    }

    /// The ring, to write.
    pub(super) fn ring_mut(&mut self) -> &mut [u8] {
        &mut self.ring
    }

    /// The ring's cache lines that `len` bytes at spool position `at` (counted from the
    /// spool's start, wrapping at the ring's end) would be written to, to fetch ahead of the
    /// writing: see [`Ahead`].
    pub(super) fn ahead(&self, at: u64, len: usize) -> Ahead {
        Ahead::new(self.ring.as_ptr(), self.ring.len(), at, len)
    }
}

/// The size of a cache line on the CPUs the prefetch is for.
const LINE: usize = 64;

/// How many bytes ahead of the ring's head [`Ahead`] fetches at most: enough for a typical
/// record (a few hundred bytes), few enough lines to cost a handful of instructions.
const AHEAD_MAX: usize = 1024;

/// Cache lines of the ring about to be written.
///
/// A record is copied into the ring under the sink's lock, and the lock's release waits for
/// the copy's stores to reach the cache. The ring is 1 MiB, written through once every few
/// tens of milliseconds on a busy server, so the lines a record lands in have left the
/// core's cache since they were last written, and the release waited for each of them to
/// come from memory: about a tenth of a microsecond per call on the machine of
/// `BENCHMARKS.md`. After each record the caller asks for the lines where the next one will
/// go; they arrive while the server does the rest of the call and the next, and the next
/// record's copy finds them in the cache. Nothing waits for a prefetch, and it changes no
/// byte.
pub(super) struct Ahead {
    ring: *const u8,
    ring_len: usize,
    /// Line-aligned offsets from the ring's start, up to twice its length (those past its end
    /// stand for its start: the bytes wrap).
    lines: std::iter::StepBy<std::ops::Range<usize>>,
}

impl Ahead {
    /// The lines that `len` bytes at spool position `at` cover in a ring of `ring_len` bytes
    /// at `ring`, wrapping at its end, `len` capped at [`AHEAD_MAX`]. Lines are counted from
    /// the ring's start, which is page-aligned.
    fn new(ring: *const u8, ring_len: usize, at: u64, len: usize) -> Ahead {
        let len = len.min(AHEAD_MAX).min(ring_len);
        // Below `ring_len`, so it fits a `usize`.
        let at = at.checked_rem(ring_len as u64).unwrap_or(0) as usize;
        let first = at - at % LINE;
        // Bytes that wrap all the way round end in the line they began in: not twice.
        let end = if len == 0 {
            first
        } else {
            (at + len).min(first + ring_len)
        };
        Ahead {
            ring,
            ring_len,
            lines: (first..end).step_by(LINE),
        }
    }

    /// The lines' offsets from the ring's start, each once.
    fn offsets(self) -> impl Iterator<Item = usize> {
        let ring_len = self.ring_len;
        self.lines
            .map(move |at| if at >= ring_len { at - ring_len } else { at })
    }

    /// Asks the CPU for the lines (on x86-64; nothing elsewhere). Needs no lock: it reads
    /// and writes nothing, and a hint about memory since unmapped is ignored, not a fault.
    #[inline]
    pub(super) fn prefetch(self) {
        let ring = self.ring;
        for at in self.offsets() {
            let line = ring.wrapping_add(at);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `_mm_prefetch` is `unsafe` to call only because it is an SSE
            // instruction, which every x86-64 CPU has. It does not dereference `line`: it
            // reads and writes no memory, and a bad address is ignored, never a fault.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.cast());
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = line;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(ring_len: usize, at: u64, len: usize) -> Vec<usize> {
        Ahead::new(std::ptr::null(), ring_len, at, len)
            .offsets()
            .collect()
    }

    #[test]
    fn ahead_covers_the_lines_the_next_bytes_go_to_wrapping_at_the_end() {
        // Inside the ring: from the line `at` is in to the line of the last byte.
        assert_eq!(offsets(4096, 0, 334), [0, 64, 128, 192, 256, 320]);
        assert_eq!(offsets(4096, 100, 28), [64]);
        assert_eq!(offsets(4096, 100, 29), [64, 128]);
        assert_eq!(offsets(4096, 100, 92), [64, 128]);
        assert_eq!(offsets(4096, 100, 93), [64, 128, 192]);
        assert_eq!(offsets(4096, 128, 64), [128]);
        assert_eq!(offsets(4096, 128, 65), [128, 192]);
        // Across the end: the rest at the ring's start.
        assert_eq!(offsets(4096, 4000, 200), [3968, 4032, 0, 64]);
        // `at` is a position in the spool (counted from its creation), taken modulo the ring.
        assert_eq!(offsets(4096, 3 * 4096 + 4000, 200), [3968, 4032, 0, 64]);
        // Capped: a large record fetches at most `AHEAD_MAX` bytes' lines.
        assert_eq!(offsets(1 << 20, 0, 1 << 20).len(), AHEAD_MAX / LINE);
        // Never more than the ring, never a line twice, even when the cap is above its size.
        let small = offsets(256, 200, 10_000);
        assert_eq!(small, [192, 0, 64, 128]);
        // Nothing to fetch.
        assert!(offsets(4096, 10, 0).is_empty());
        assert!(offsets(0, 10, 334).is_empty());
    }
}
