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
//!   Another process that writes into the file changes bytes we read back, which the spool
//!   treats as it treats any record: bytes, copied out to the log.
//! - **The header's counters as atomics** (`AtomicU64::from_ptr`). Each counter is an aligned
//!   8-byte word of its own mapping (offset 0, page-aligned), which no slice ever covers, so
//!   that a store is one instruction: a crash leaves either the old or the new value, never a
//!   mix of the two.

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
}
