//! [`SpooledJsonLinesSink`]: a JSON-lines audit file whose records are stored by a copy into a
//! spool mapped into memory, and appended to the file by a thread of the sink's own.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use futures::future::BoxFuture;

use super::event::JsonForm;
use super::log::open_append;
use super::mapped::{HEADER, Mapped, WORDS};
use super::sink::{ends_inside_a_line, settled, with_line};
use super::{AuditError, AuditEvent, AuditEventRef, AuditSink};

/// The first header word of every spool: `mcpspol1`.
const MAGIC: u64 = u64::from_le_bytes(*b"mcpspol1");
/// The header's words: the magic, the ring's capacity in bytes, then three counters of bytes
/// since the spool was made (or last recovered). `HEAD` bytes were copied in and `DRAINED`
/// bytes appended to the log; spool byte `n` is at the log's offset `BASE + n` (wrapping), as
/// far as the sink knows. `DIRECT`, while not 0, says that a record is being written straight
/// to the log from spool position `DIRECT - 1` (so that a crash that cuts it can be undone).
const W_MAGIC: usize = 0;
const W_CAPACITY: usize = 1;
const W_HEAD: usize = 2;
const W_DRAINED: usize = 3;
const W_BASE: usize = 4;
const W_DIRECT: usize = 5;
const _: () = assert!(W_DIRECT < WORDS);

/// The ring's size when a spool is made: a thousand or more records of the usual size.
const CAPACITY: usize = 1 << 20;
/// The largest ring a spool found on disk may declare (64 times what a sink makes): what
/// opening it maps and may read into memory.
const MAX_CAPACITY: u64 = 64 << 20;
/// How often the thread appends the ring to the log while records arrive. A wake-up by its
/// clock costs the calls of a busy server more than its append does, and more than a wake-up
/// by a record ([`WAKE_AT`]): every millisecond, a sequential server lost 15% of its calls per
/// second, every 10 ms still 3 to 4 points more than every 50 or 100 ms in alternated runs,
/// which could not tell those two apart (BENCHMARKS.md, section 1, twenty-second and
/// twenty-third rounds). So a busy server's ring is appended as its quarters fill, and the
/// clock only bounds how long a quiet server's records wait.
const TICK: Duration = Duration::from_millis(50);
/// The record that brings the bytes waiting to this part of the ring (a quarter) wakes the
/// thread before its tick: the ring seldom fills, so its callers seldom append it themselves.
const WAKE_AT: u64 = 4;
/// How long the thread finds nothing to append before it sleeps until the next record.
const IDLE: Duration = Duration::from_millis(200);
/// How long the thread waits between its attempts while the log fails (a record also tries
/// at once).
const RETRY: Duration = Duration::from_millis(100);
/// [`IDLE`] and [`RETRY`] in the thread's ticks, so that they keep their times whatever
/// [`TICK`] is.
const IDLE_TICKS: u32 = ticks(IDLE);
const RETRY_TICKS: u32 = ticks(RETRY);

/// `d` in whole ticks, at least one.
const fn ticks(d: Duration) -> u32 {
    let n = d.as_millis() / TICK.as_millis();
    if n == 0 { 1 } else { n as u32 }
}

/// Appends one JSON object per line to a file, like [`JsonLinesSink`](super::JsonLinesSink)
/// without `fsync`, with no system call on a record's way: the record is stored once it is
/// copied into a **spool**, a file beside the log (its name plus `.spool`) mapped into memory.
/// A thread of the sink's own appends the spool to the log whenever a quarter of it waits, and
/// at the latest 50 ms after a record arrived, and sleeps while none do. Feature `spool`.
///
/// **What is promised.** As with `JsonLinesSink` without `fsync`, a record whose call was
/// answered survives the server's crash (the kernel holds the spool's pages, as it holds the
/// bytes of a `write`), but not the machine's: use `JsonLinesSink::with_fsync` or the chained
/// [`AuditLog`](super::AuditLog) with [`Durability::Fsync`](super::Durability::Fsync) for that.
/// Opening the log again after a crash appends the records the spool still holds, each once:
/// bytes that the crashed thread had already appended are recognized and skipped.
///
/// **What changes for readers.** The log shows a record up to about 50 ms after its call was
/// answered (on a busy server sooner: once the quarter of the spool it is in is full).
/// [`flush`](Self::flush) appends everything recorded so far, and [`close`](Self::close) (or
/// dropping the sink) appends everything and removes the spool.
/// Lines are whole and in the order their records were stored.
///
/// **When the log fails** (a full disk, say), the sink learns it at the thread's next append
/// (50 ms or so) or at a `flush`. The records already stored stay in the spool, and
/// every new record is refused with the log's error (so that
/// [`FailurePolicy::FailClosed`](super::FailurePolicy) refuses calls) until an append works
/// again: each record tries one. Closing keeps a spool that could not be emptied, for the next
/// open to append.
///
/// **A full spool** (records arrive faster than the disk takes them) makes a record's caller
/// append the spool itself before copying its record in (blocking its thread for that
/// `write`, as `JsonLinesSink` does for each record): back-pressure, never a drop. A record
/// larger than the whole spool is written to the log straight away, after everything before it
/// and holding records after it back meanwhile.
///
/// **The spool file.** It is created mode 0600, about 1 MiB. A sink holds an exclusive lock
/// (`flock`) on the log (a regular file) and on the spool while it lives: a second sink on the
/// same log, in this process or another, is refused ("the audit log ... is in use by another
/// sink"), and so is a sink on a new log at the path of one renamed away while its sink still
/// holds the spool. Only the server may write the log's directory: another process that
/// truncated the spool while it is mapped would crash the server (`SIGBUS`). The spool's
/// blocks are written (allocated) when it is opened, so that a full disk refuses the open
/// rather than faulting a record's copy later (on a copy-on-write file system, such as btrfs,
/// a full disk can still fault it). A file at the spool's path that is not a spool is left
/// alone and refused. A record written straight to the log that a crash cut short is cut
/// off by the next open.
pub struct SpooledJsonLinesSink {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SpooledJsonLinesSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpooledJsonLinesSink")
            .field("path", &self.shared.path)
            .field("spool", &self.shared.spool_path)
            .finish_non_exhaustive()
    }
}

struct Shared {
    path: PathBuf,
    spool_path: PathBuf,
    /// Holds the spool's lock while the sink lives.
    _spool: File,
    capacity: u64,
    tick: Duration,
    /// Bytes waiting that make a record wake the thread before its tick.
    wake_at: u64,
    state: Mutex<State>,
    /// The thread waits here for its next tick (or a record that finds the ring filling), or,
    /// while parked, for any record.
    wake: Condvar,
    /// Held by whoever appends to the log; always taken before `state`.
    drainer: Mutex<Drainer>,
}

struct State {
    /// The spool; its counters are written only under this state's lock.
    map: Mapped,
    /// The last append to the log failed (no later one worked yet).
    failing: bool,
    /// The thread sleeps until a record wakes it.
    parked: bool,
    /// A record found [`WAKE_AT`] of the ring waiting and woke the thread, which has not
    /// taken its wake-up yet (the records after it wake nobody again).
    filling: bool,
    closing: bool,
    /// `close` removed the spool.
    removed: bool,
    /// A test dropped the sink as a crash would: nothing more is appended or removed.
    #[cfg(test)]
    crashed: bool,
}

struct Drainer {
    log: File,
    /// The log ends inside a line (a record written straight to it was cut short).
    torn: bool,
    /// The bytes being appended, copied out of the ring.
    bytes: Vec<u8>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    fn head(&self) -> u64 {
        self.map.word(W_HEAD).load(Ordering::Relaxed)
    }

    fn drained(&self) -> u64 {
        self.map.word(W_DRAINED).load(Ordering::Relaxed)
    }

    fn pending(&self) -> u64 {
        self.head() - self.drained()
    }

    fn set_head(&mut self, head: u64) {
        self.map.word(W_HEAD).store(head, Ordering::Release);
    }

    fn set_drained(&mut self, drained: u64) {
        self.map.word(W_DRAINED).store(drained, Ordering::Release);
    }

    /// Copies `bytes` in after the last byte (the caller made sure they fit); the new head.
    fn put(&mut self, bytes: &[u8]) -> u64 {
        let head = self.head();
        let ring = self.map.ring_mut();
        let at = (head % ring.len() as u64) as usize;
        let first = bytes.len().min(ring.len() - at);
        ring[at..at + first].copy_from_slice(&bytes[..first]);
        ring[..bytes.len() - first].copy_from_slice(&bytes[first..]);
        // The bytes are in place before the counter says so (to a crash, too).
        let head = head + bytes.len() as u64;
        self.set_head(head);
        head
    }
}

/// Appends spool bytes `from..to` (at most the ring's length) of `map` to `out`.
fn copy_out(map: &Mapped, from: u64, to: u64, out: &mut Vec<u8>) {
    let ring = map.ring();
    let len = (to - from) as usize;
    let at = (from % ring.len() as u64) as usize;
    let first = len.min(ring.len() - at);
    out.extend_from_slice(&ring[at..at + first]);
    out.extend_from_slice(&ring[..len - first]);
}

/// Writes `bytes` to the log, adding to `written` what was written, even when it fails after
/// writing part of them.
fn write_counting(mut log: &File, bytes: &[u8], written: &mut u64) -> std::io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        match log.write(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                rest = &rest[n..];
                *written += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Shared {
    /// Marks whether the log works by the outcome of an append to it; a failure is the
    /// record's error.
    fn settle(&self, state: &mut State, outcome: std::io::Result<()>) -> Result<(), AuditError> {
        state.failing = outcome.is_err();
        outcome.map_err(|e| AuditError(format!("{}: {e}", self.path.display())))
    }

    fn closed(&self) -> AuditError {
        AuditError(format!("{}: the audit sink is closed", self.path.display()))
    }

    /// Stores one line (with its newline).
    fn push(&self, line: &[u8]) -> Result<(), AuditError> {
        let len = line.len() as u64;
        loop {
            let mut state = lock(&self.state);
            if state.closing {
                return Err(self.closed());
            }
            let failing = state.failing;
            let pending = state.pending();
            if !failing && self.capacity - pending >= len {
                let head = state.put(line);
                // Where the next record will go, about as long as this one.
                let ahead = state.map.ahead(head, line.len());
                if state.parked {
                    state.parked = false;
                    self.wake.notify_one();
                } else if !state.filling && pending + len >= self.wake_at {
                    state.filling = true;
                    self.wake.notify_one();
                }
                drop(state);
                ahead.prefetch();
                return Ok(());
            }
            drop(state);
            if failing || len > self.capacity {
                // The last append failed (this record tries the log, and is refused if the
                // log still fails), or the record is larger than the whole spool.
                return self.write_direct(line);
            }
            // The spool is full: append it now.
            self.drain()?;
        }
    }

    /// Appends everything stored so far to the log.
    fn drain(&self) -> Result<(), AuditError> {
        let mut drainer = lock(&self.drainer);
        self.drain_locked(&mut drainer)
    }

    fn drain_locked(&self, drainer: &mut Drainer) -> Result<(), AuditError> {
        let Drainer { log, torn, bytes } = drainer;
        let mut state = lock(&self.state);
        if *torn {
            // Only a record written straight to the log tears it, with the spool empty, and
            // no record is taken until an append works again.
            debug_assert_eq!(state.pending(), 0);
            let mut written = 0;
            let outcome = write_counting(log, b"\n", &mut written);
            self.account_direct(&mut state, written);
            self.settle(&mut state, outcome)?;
            *torn = false;
        }
        let (from, to) = (state.drained(), state.head());
        if from == to {
            // Nothing to append, so nothing learned of the log: a failure stands.
            return Ok(());
        }
        bytes.clear();
        copy_out(&state.map, from, to, bytes);
        drop(state);
        let mut written = 0;
        let outcome = write_counting(log, bytes, &mut written);
        let mut state = lock(&self.state);
        state.set_drained(from + written);
        self.settle(&mut state, outcome)
    }

    /// Counts `written` bytes that went to the log straight, not through the ring (which is
    /// empty): both counters move past them, `DRAINED` first, so that a crash in between
    /// never shows them as records waiting in the ring.
    fn account_direct(&self, state: &mut State, written: u64) {
        let drained = state.drained() + written;
        state.set_drained(drained);
        state.set_head(drained);
    }

    /// Writes a line straight to the log, once everything before it is appended, holding the
    /// records that arrive meanwhile back: a line larger than the whole ring, or one that
    /// finds the log failing (its store is then the try that says whether the log works).
    fn write_direct(&self, line: &[u8]) -> Result<(), AuditError> {
        let mut drainer = lock(&self.drainer);
        loop {
            self.drain_locked(&mut drainer)?;
            let mut state = lock(&self.state);
            if state.closing {
                return Err(self.closed());
            }
            if state.pending() > 0 {
                continue; // records stored since: append them first
            }
            let mut written = 0;
            let at = state.drained();
            state.map.word(W_DIRECT).store(at + 1, Ordering::Release);
            let outcome = write_counting(&drainer.log, line, &mut written);
            self.account_direct(&mut state, written);
            state.map.word(W_DIRECT).store(0, Ordering::Release);
            drainer.torn = outcome.is_err() && written > 0;
            return self.settle(&mut state, outcome);
        }
    }

    /// The thread: appends the ring every tick while records arrive (sooner when a record
    /// finds it filling), sleeps while none do.
    fn run(&self) {
        let mut idle = 0;
        let mut since_failure = 0;
        let mut state = lock(&self.state);
        loop {
            // `closing` and `filling` are checked under the lock before waiting: a close or a
            // wake-up that came first is not missed.
            state = self
                .wake
                .wait_timeout_while(state, self.tick, |s| !s.closing && !s.filling)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if state.closing {
                return;
            }
            state.filling = false;
            // Nothing waits (a record that finds the log failing tries it itself): sleep once
            // idle long enough, failing or not.
            if state.pending() == 0 {
                idle += 1;
                if idle >= IDLE_TICKS {
                    idle = 0;
                    state.parked = true;
                    state = self
                        .wake
                        .wait_while(state, |s| s.parked && !s.closing)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                continue;
            }
            idle = 0;
            // Records wait for a log that fails: try again every `RETRY_TICKS`.
            if state.failing {
                since_failure += 1;
                if since_failure < RETRY_TICKS {
                    continue;
                }
            }
            since_failure = 0;
            let was_failing = state.failing;
            drop(state);
            if let Err(e) = self.drain()
                && !was_failing
            {
                tracing::error!(target: "mcp_secure::audit", error = %e, "the audit spool cannot be appended to its log; records are refused until it can");
            }
            state = lock(&self.state);
        }
    }
}

impl SpooledJsonLinesSink {
    /// Opens (creating, mode 0600) the log at `path` and its spool (`path` plus `.spool`),
    /// first appending what a spool left by a crash still holds. Fails if another sink (in
    /// this process or another) holds the log or the spool, or if the file at the spool's path
    /// is not a spool.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        Self::open_with(path.as_ref(), CAPACITY, TICK, true)
    }

    /// `early`: whether a record that finds the ring filling wakes the thread.
    fn open_with(
        path: &Path,
        capacity: usize,
        tick: Duration,
        early: bool,
    ) -> std::io::Result<Self> {
        let path = path.to_path_buf();
        // Write-only: a FIFO as the log fails while nobody reads it, as it should.
        let mut log = open_append(&path, false)?;
        // One sink per log: the lock is held while the sink lives, so that two servers
        // starting together never both make a spool. (A FIFO or a device is not locked.)
        if log.metadata()?.file_type().is_file() {
            lock_exclusive(&log, "the audit log", &path)?;
        }
        let spool_path = Self::spool_path_of(&path);
        let (spool, map) = match OpenOptions::new().read(true).write(true).open(&spool_path) {
            Ok(spool) => {
                let map = Self::reopen(&spool, &spool_path)?;
                recover(&mut log, &path, &map)?;
                // Nothing waits now: the ring's blocks are allocated (a spool made sparse by
                // an earlier version, or by someone else, would fault on a full disk).
                fill(&spool, map.ring().len() as u64)?;
                (spool, map)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A log left ending inside a line (a record cut short) gets its newline
                // first: the next record starts a line of its own.
                let len = log.metadata()?.len();
                let len = len + end_line(&mut log, &path, len)?;
                Self::create(&spool_path, capacity, len)?
            }
            Err(e) => return Err(e),
        };
        let capacity = map.ring().len() as u64;
        let shared = Arc::new(Shared {
            path,
            spool_path,
            _spool: spool,
            capacity,
            tick,
            wake_at: if early { capacity / WAKE_AT } else { u64::MAX },
            state: Mutex::new(State {
                map,
                failing: false,
                parked: false,
                filling: false,
                closing: false,
                removed: false,
                #[cfg(test)]
                crashed: false,
            }),
            wake: Condvar::new(),
            drainer: Mutex::new(Drainer {
                log,
                torn: false,
                bytes: Vec::new(),
            }),
        });
        let thread = std::thread::Builder::new()
            .name("mcp-secure-audit-spool".into())
            .spawn({
                let shared = shared.clone();
                move || shared.run()
            })?;
        Ok(SpooledJsonLinesSink {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The spool's path for the log at `path`: its file name plus `.spool`.
    pub fn spool_path_of(path: &Path) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".spool");
        path.with_file_name(name)
    }

    /// Opens a spool found on disk: locked, checked and mapped.
    fn reopen(spool: &File, path: &Path) -> std::io::Result<Mapped> {
        lock_exclusive(spool, "the audit spool", path)?;
        let not_a_spool = |why: &str| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is not an mcp-secure audit spool ({why}); it was left as it is",
                    path.display()
                ),
            )
        };
        let mut words = [0u8; 16];
        spool
            .read_exact_at(&mut words, 0)
            .map_err(|_| not_a_spool("too short"))?;
        let word = |i: usize| u64::from_le_bytes(words[i * 8..i * 8 + 8].try_into().unwrap());
        if word(W_MAGIC) != MAGIC {
            return Err(not_a_spool("its first bytes are not `mcpspol1`"));
        }
        let capacity = word(W_CAPACITY);
        if capacity == 0 || capacity > MAX_CAPACITY || spool.metadata()?.len() != HEADER + capacity
        {
            return Err(not_a_spool("its length is not the one its header gives"));
        }
        let map = Mapped::new(spool, capacity as usize)?;
        let (head, drained) = (
            map.word(W_HEAD).load(Ordering::Acquire),
            map.word(W_DRAINED).load(Ordering::Acquire),
        );
        if drained <= head && head - drained > capacity {
            return Err(not_a_spool("it claims more waiting bytes than it can hold"));
        }
        Ok(map)
    }

    /// Makes a new, empty spool: written whole under another name, locked, then renamed.
    fn create(path: &Path, capacity: usize, log_len: u64) -> std::io::Result<(File, Mapped)> {
        let mut fresh = path.as_os_str().to_os_string();
        fresh.push(".new");
        let fresh = PathBuf::from(fresh);
        let mut options = OpenOptions::new();
        options.create(true).read(true).write(true).truncate(false);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&fresh)?;
        // Emptied (of what a crash during an earlier `create` left) only once it is ours: a
        // file another sink holds is never cut.
        lock_exclusive(&file, "the audit spool", &fresh)?;
        file.set_len(0)?;
        let mut header = Vec::with_capacity(WORDS * 8);
        let mut words = [0u64; WORDS];
        words[W_MAGIC] = MAGIC;
        words[W_CAPACITY] = capacity as u64;
        words[W_BASE] = log_len;
        for word in words {
            header.extend_from_slice(&word.to_le_bytes());
        }
        file.write_all(&header)?;
        fill(&file, capacity as u64)?;
        std::fs::rename(&fresh, path)?;
        let map = Mapped::new(&file, capacity)?;
        Ok((file, map))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The spool's path.
    pub fn spool_path(&self) -> &Path {
        &self.shared.spool_path
    }

    /// Appends every record stored so far to the log (blocking this thread while it writes).
    pub fn flush(&self) -> Result<(), AuditError> {
        self.shared.drain()
    }

    /// Refuses further records, appends every record stored to the log and removes the spool.
    /// If the log fails, the spool is kept, for the next open to append, and the error is
    /// returned. Dropping the sink does the same.
    pub fn close(&self) -> Result<(), AuditError> {
        {
            let mut state = lock(&self.shared.state);
            #[cfg(test)]
            if state.crashed {
                return Ok(());
            }
            state.closing = true;
        }
        self.shared.wake.notify_all();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
        self.flush()?;
        let mut state = lock(&self.shared.state);
        if !state.removed {
            std::fs::remove_file(&self.shared.spool_path)
                .map_err(|e| AuditError(format!("{}: {e}", self.shared.spool_path.display())))?;
            state.removed = true;
        }
        Ok(())
    }

    /// Stops the sink as a crash would: nothing more is appended, the spool stays as it is.
    #[cfg(test)]
    fn crash(self) {
        let mut state = lock(&self.shared.state);
        state.crashed = true;
        state.closing = true;
        drop(state);
        self.shared.wake.notify_all();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SpooledJsonLinesSink {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(target: "mcp_secure::audit", error = %e, spool = %self.shared.spool_path.display(), "the audit spool could not be emptied into its log; it is kept for the next open");
        }
    }
}

/// Writes zeros over the spool's ring (`capacity` bytes at [`HEADER`]), so that the file
/// system allocates its blocks now: a page of a sparse file mapped into memory gets its block
/// when first written, and a full disk would then fail that store with `SIGBUS` instead of an
/// error (here, a refusal to open).
fn fill(file: &File, capacity: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; 64 * 1024];
    let mut at = 0;
    while at < capacity {
        let n = (capacity - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], HEADER + at)?;
        at += n as u64;
    }
    Ok(())
}

/// Takes `file`'s exclusive lock (`flock`), or says that another process holds it.
fn lock_exclusive(file: &File, what: &str, path: &Path) -> std::io::Result<()> {
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            format!(
                "{what} {} is in use by another sink (it holds the file's lock)",
                path.display()
            ),
        ),
        std::fs::TryLockError::Error(e) => e,
    })
}

/// Appends to `log` what `map` holds that the log does not, each byte once, and makes the log
/// end with a whole line; then marks the spool empty.
///
/// The spool's bytes `DRAINED..HEAD` wait for the log, which the sink last knew to be
/// `BASE + DRAINED` bytes long. A crash between the thread's append and its update of
/// `DRAINED` leaves the log longer than that, ending with the first of those bytes: if the
/// bytes past that length are exactly the start of the waiting ones, they are skipped.
/// Anything else (the log cut, rotated or written by another process) appends every waiting
/// byte: a record may then be in the log twice, never lost.
fn recover(log: &mut File, path: &Path, map: &Mapped) -> std::io::Result<()> {
    let head = map.word(W_HEAD).load(Ordering::Acquire);
    // `DRAINED` runs ahead of `HEAD` only between the two stores of a direct write.
    let drained = map.word(W_DRAINED).load(Ordering::Acquire).min(head);
    let base = map.word(W_BASE).load(Ordering::Acquire);
    let direct = map.word(W_DIRECT).load(Ordering::Acquire);
    let mut waiting = Vec::new();
    copy_out(map, drained, head, &mut waiting);
    let mut len = log.metadata()?.len();
    if direct != 0 && waiting.is_empty() {
        // The crash came during a record written straight to the log (never answered): a
        // line it left cut short is cut off.
        let at = base.wrapping_add(direct - 1);
        if at < len && cut_line_at(path, at, len)? {
            tracing::warn!(log = %path.display(), cut = len - at, "cutting a record the crash cut short");
            log.set_len(at)?;
            len = at;
        }
    }
    let known = base.wrapping_add(drained);
    let mut skip = 0;
    if len > known && len - known <= waiting.len() as u64 {
        let mut tail = vec![0; (len - known) as usize];
        File::open(path)?.read_exact_at(&mut tail, known)?;
        if waiting.starts_with(&tail) {
            skip = tail.len();
        }
    }
    // Past bytes the crashed thread appended, or after a log just as long as the sink knew it
    // (an append that failed inside a line), the waiting ones continue the line it cut;
    // otherwise a line cut short (by a crash, or a failed write) gets its newline first.
    let continues = skip > 0 || (len == known && !waiting.is_empty());
    let mut appended = if continues {
        0
    } else {
        end_line(log, path, len)?
    };
    let rest = &waiting[skip..];
    log.write_all(rest)?;
    appended += rest.len() as u64;
    if appended > 0 {
        // The records are in the log for good before the spool forgets them.
        log.sync_data()?;
    }
    map.word(W_DIRECT).store(0, Ordering::Release);
    // Then the counters start again from 0 (a spool found on disk may hold any values): in
    // an order where a crash between two stores leaves nothing waiting.
    map.word(W_DRAINED).store(head, Ordering::Release);
    map.word(W_BASE).store(len + appended, Ordering::Release);
    map.word(W_HEAD).store(0, Ordering::Release);
    map.word(W_DRAINED).store(0, Ordering::Release);
    Ok(())
}

/// Whether the log at `path` (`len` bytes long) has, from `at`, one line cut short: a line
/// that starts at `at` and has no newline.
fn cut_line_at(path: &Path, at: u64, len: u64) -> std::io::Result<bool> {
    let file = File::open(path)?;
    if at > 0 {
        let mut before = [0u8];
        file.read_exact_at(&mut before, at - 1)?;
        if before[0] != b'\n' {
            return Ok(false);
        }
    }
    let mut chunk = vec![0u8; 64 * 1024];
    let mut from = at;
    while from < len {
        let n = (len - from).min(chunk.len() as u64) as usize;
        file.read_exact_at(&mut chunk[..n], from)?;
        if chunk[..n].contains(&b'\n') {
            return Ok(false);
        }
        from += n as u64;
    }
    Ok(true)
}

/// Appends a newline to the log at `path` (`len` bytes long) if it ends inside a line;
/// returns how many bytes it appended.
fn end_line(log: &mut File, path: &Path, len: u64) -> std::io::Result<u64> {
    if !ends_inside_a_line(path, len)? {
        return Ok(0);
    }
    log.write_all(b"\n")?;
    Ok(1)
}

impl AuditSink for SpooledJsonLinesSink {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        with_line(
            |line| event.write_json(line, JsonForm::Whole),
            |line| self.shared.push(line),
        )
    }

    /// Stores the record at once (a copy into the spool); the future is already resolved.
    fn record_async<'a>(
        &'a self,
        record: AuditEventRef<'_>,
    ) -> BoxFuture<'a, Result<(), AuditError>> {
        settled(with_line(
            |line| record.write_json(line),
            |line| self.shared.push(line),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tick no test waits for: with no early wake-up, the thread appends nothing by itself.
    const NEVER: Duration = Duration::from_secs(3600);

    fn event(id: impl Into<String>) -> AuditEvent {
        let mut event = AuditEvent::new(id.into(), "echo", "test");
        event.outcome = "ok".into();
        event
    }

    /// The log's lines, each parsed (a line that is not JSON fails the test).
    fn lines(path: &Path) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a cut line: {text:?}"
        );
        text.lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| {
                    let start: String = line.chars().take(200).collect();
                    panic!("{e}: {start:?} ({} bytes)", line.len())
                })
            })
            .collect()
    }

    fn ids(path: &Path) -> Vec<String> {
        lines(path)
            .iter()
            .map(|line| line["id"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Opens, retrying while the lock is held: a child that another test forked while this
    /// process held the lock keeps holding it until it `exec`s.
    fn open_retrying(path: &Path) -> SpooledJsonLinesSink {
        retrying(|| SpooledJsonLinesSink::open(path))
    }

    /// `open`, retried for up to 10 s while the spool's lock is held.
    fn retrying(open: impl Fn() -> std::io::Result<SpooledJsonLinesSink>) -> SpooledJsonLinesSink {
        let start = std::time::Instant::now();
        loop {
            match open() {
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        && start.elapsed() < Duration::from_secs(10) =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                opened => return opened.unwrap(),
            }
        }
    }

    /// Runs this binary's test `child` (told `path` in `env`) under a soft file-size limit of
    /// `blocks` KiB, with `SIGXFSZ` ignored (a write past it fails with `EFBIG`), and asserts
    /// that it ran to the end (it prints `<child> done`).
    #[cfg(target_os = "linux")]
    fn run_under_file_limit(child: &str, env: &str, path: &Path, blocks: u32) {
        let script = format!(
            "trap '' XFSZ; ulimit -S -f {blocks}; \
             exec \"$0\" audit::spool::tests::{child} --exact --nocapture"
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .arg(std::env::current_exe().unwrap())
            .env(env, path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let done = format!("{child} done");
        assert!(
            out.status.success() && stdout.contains(&done),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn numbered(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn records_reach_the_log_in_order_and_close_removes_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let sink = SpooledJsonLinesSink::open(&path).unwrap();
        assert_eq!(sink.spool_path(), dir.path().join("audit.jsonl.spool"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for id in numbered("a", 100) {
            if id.ends_with('0') {
                sink.record(&event(id)).unwrap();
            } else {
                rt.block_on(sink.record_async(event(id).borrowed()))
                    .unwrap();
            }
        }
        sink.flush().unwrap();
        assert_eq!(ids(&path), numbered("a", 100));
        assert!(sink.spool_path().exists());
        sink.close().unwrap();
        assert!(!dir.path().join("audit.jsonl.spool").exists());
        let closed = sink.record(&event("late")).unwrap_err();
        assert!(closed.0.contains("closed"), "{closed}");
        drop(sink);
        // A second sink appends after the first's records, on a spool of its own.
        let sink = SpooledJsonLinesSink::open(&path).unwrap();
        sink.record(&event("b0")).unwrap();
        drop(sink);
        let mut expected = numbered("a", 100);
        expected.push("b0".into());
        assert_eq!(ids(&path), expected);
        assert!(!dir.path().join("audit.jsonl.spool").exists());
    }

    #[test]
    fn the_thread_appends_records_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let sink = SpooledJsonLinesSink::open(&path).unwrap();
        sink.record(&event("x")).unwrap();
        let start = std::time::Instant::now();
        while ids(&path).is_empty() {
            assert!(start.elapsed() < Duration::from_secs(10), "never appended");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(ids(&path), ["x"]);
        // Once idle, the thread sleeps until the next record wakes it.
        let start = std::time::Instant::now();
        while !lock(&sink.shared.state).parked {
            assert!(start.elapsed() < Duration::from_secs(10), "never parked");
            std::thread::sleep(Duration::from_millis(5));
        }
        sink.record(&event("y")).unwrap();
        let start = std::time::Instant::now();
        while ids(&path).len() < 2 {
            assert!(start.elapsed() < Duration::from_secs(10), "not woken");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(ids(&path), ["x", "y"]);
    }

    #[test]
    fn a_record_that_finds_a_quarter_of_the_spool_waiting_wakes_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        // A tick that never comes: only the early wake-up can append.
        let sink = SpooledJsonLinesSink::open_with(&path, 64 * 1024, NEVER, true).unwrap();
        let quarter = 16 * 1024;
        let log_len = || std::fs::metadata(&path).unwrap().len();
        let mut stored = Vec::new();
        // Bytes copied in (never less once appended): below a quarter, nothing is appended.
        while lock(&sink.shared.state).head() < quarter {
            assert_eq!(log_len(), 0);
            let id = format!("r{}", stored.len());
            sink.record(&event(id.clone())).unwrap();
            stored.push(id);
        }
        // The ring was never near full, so no caller appended it: the thread must.
        let bytes = lock(&sink.shared.state).head();
        assert!(bytes < 2 * quarter, "{bytes} bytes");
        let start = std::time::Instant::now();
        while log_len() < bytes {
            assert!(start.elapsed() < Duration::from_secs(10), "not woken");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(ids(&path), stored);
    }

    #[test]
    fn a_full_spool_is_appended_by_its_callers_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let sink = SpooledJsonLinesSink::open_with(&path, 4096, NEVER, false).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let sink = &sink;
                s.spawn(move || {
                    for id in numbered(&format!("t{t}-"), 300) {
                        sink.record(&event(id)).unwrap();
                    }
                });
            }
        });
        sink.close().unwrap();
        let ids = ids(&path);
        assert_eq!(ids.len(), 1200);
        // Each thread's records once each, in its order, across many laps of the ring.
        for t in 0..4 {
            let prefix = format!("t{t}-");
            let mine: Vec<_> = ids
                .iter()
                .filter(|id| id.starts_with(&prefix))
                .cloned()
                .collect();
            assert_eq!(mine, numbered(&prefix, 300));
        }
        assert!(std::fs::metadata(&path).unwrap().len() > 20 * 4096);
    }

    #[test]
    fn a_record_larger_than_the_spool_is_written_after_those_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let sink = SpooledJsonLinesSink::open_with(&path, 4096, NEVER, false).unwrap();
        sink.record(&event("before")).unwrap();
        let mut big = event("big");
        big.error = Some("x".repeat(10_000));
        sink.record(&big).unwrap();
        sink.record(&event("after")).unwrap();
        sink.close().unwrap();
        assert_eq!(ids(&path), ["before", "big", "after"]);
        assert_eq!(lines(&path)[1]["error"].as_str().unwrap().len(), 10_000);
    }

    /// Records `n` events (`prefix0`, ...) into a sink whose thread never appends, and crashes.
    fn crashed_with(path: &Path, prefix: &str, n: usize) {
        let sink = SpooledJsonLinesSink::open_with(path, 64 * 1024, NEVER, false).unwrap();
        for id in numbered(prefix, n) {
            sink.record(&event(id)).unwrap();
        }
        sink.crash();
    }

    /// The bytes a crashed spool still holds for its log.
    fn waiting(path: &Path) -> Vec<u8> {
        let spool = std::fs::read(SpooledJsonLinesSink::spool_path_of(path)).unwrap();
        let word = |i: usize| u64::from_le_bytes(spool[i * 8..i * 8 + 8].try_into().unwrap());
        let (head, drained) = (word(W_HEAD) as usize, word(W_DRAINED) as usize);
        spool[HEADER as usize + drained..HEADER as usize + head].to_vec()
    }

    #[test]
    fn a_crash_leaves_the_records_in_the_spool_and_the_next_open_appends_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        crashed_with(&path, "a", 50);
        assert!(ids(&path).is_empty());
        assert!(SpooledJsonLinesSink::spool_path_of(&path).exists());
        let sink = SpooledJsonLinesSink::open(&path).unwrap();
        assert_eq!(ids(&path), numbered("a", 50));
        sink.record(&event("b")).unwrap();
        drop(sink);
        let mut expected = numbered("a", 50);
        expected.push("b".into());
        assert_eq!(ids(&path), expected);
        // Opened again after a clean close: nothing is appended twice.
        drop(SpooledJsonLinesSink::open(&path).unwrap());
        assert_eq!(ids(&path).len(), 51);
    }

    #[test]
    fn bytes_appended_just_before_a_crash_are_not_appended_twice() {
        // The crashed thread had written part of what waits (whole records, then half of one)
        // without counting it.
        for cut in [1, 3 * 40 + 17, usize::MAX] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            std::fs::write(&path, "{\"id\":\"earlier\"}\n").unwrap();
            crashed_with(&path, "a", 10);
            let waiting = waiting(&path);
            let cut = cut.min(waiting.len());
            let mut log = OpenOptions::new().append(true).open(&path).unwrap();
            log.write_all(&waiting[..cut]).unwrap();
            drop(log);
            drop(SpooledJsonLinesSink::open(&path).unwrap());
            let mut expected = vec!["earlier".to_owned()];
            expected.extend(numbered("a", 10));
            assert_eq!(ids(&path), expected, "cut at {cut}");
        }
    }

    #[test]
    fn a_log_changed_by_someone_else_gets_every_waiting_record() {
        for (other, expected_other) in [
            ("{\"id\":\"other\"}\n", "other"),
            // A line cut short: the records start on a line of their own.
            ("{\"id\":\"cut\"", ""),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            crashed_with(&path, "a", 5);
            std::fs::write(&path, other).unwrap();
            drop(SpooledJsonLinesSink::open(&path).unwrap());
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.starts_with(other), "{text}");
            let rest: Vec<_> = text[other.len()..]
                .trim_start_matches('\n')
                .lines()
                .collect();
            assert_eq!(rest.len(), 5, "{text}");
            if !expected_other.is_empty() {
                assert_eq!(ids(&path)[0], expected_other);
            }
        }
        // The log gone altogether: a new one gets the records.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        crashed_with(&path, "a", 5);
        std::fs::remove_file(&path).unwrap();
        drop(SpooledJsonLinesSink::open(&path).unwrap());
        assert_eq!(ids(&path), numbered("a", 5));
    }

    #[test]
    fn a_second_sink_on_the_same_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let sink = SpooledJsonLinesSink::open(&path).unwrap();
        let e = SpooledJsonLinesSink::open(&path).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        let message = e.to_string();
        assert!(message.contains("the audit log"), "{message}");
        assert!(message.contains("is in use by another sink"), "{message}");
        sink.record(&event("a")).unwrap();
        // The log renamed away (rotated) and a new one made: the spool is still the first
        // sink's, and a sink on the new log is refused.
        let rotated = dir.path().join("audit.jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        let e = SpooledJsonLinesSink::open(&path).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("the audit spool"), "{message}");
        assert!(message.contains("is in use by another sink"), "{message}");
        drop(sink);
        assert_eq!(ids(&rotated), ["a"]);
        // A spool being made by another sink is not cut.
        let mut fresh = SpooledJsonLinesSink::spool_path_of(&path).into_os_string();
        fresh.push(".new");
        std::fs::write(&fresh, b"being made").unwrap();
        let held = File::open(&fresh).unwrap();
        held.try_lock().unwrap();
        let e = SpooledJsonLinesSink::open(&path).unwrap_err();
        assert!(e.to_string().contains("is in use by another sink"), "{e}");
        assert_eq!(std::fs::read(&fresh).unwrap(), b"being made");
        drop(held);
        drop(SpooledJsonLinesSink::open(&path).unwrap());
    }

    #[test]
    fn a_file_that_is_not_a_spool_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let spool = SpooledJsonLinesSink::spool_path_of(&path);
        for (content, why) in [
            (b"hello".to_vec(), "too short"),
            (b"not a spool, but long enough".to_vec(), "mcpspol1"),
            (
                [&MAGIC.to_le_bytes()[..], &7u64.to_le_bytes()].concat(),
                "length",
            ),
        ] {
            std::fs::write(&spool, &content).unwrap();
            let e = SpooledJsonLinesSink::open(&path).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
            let message = e.to_string();
            assert!(
                message.contains("not an mcp-secure audit spool"),
                "{message}"
            );
            assert!(message.contains(why), "{message}");
            assert_eq!(std::fs::read(&spool).unwrap(), content);
        }
    }

    #[test]
    fn a_failing_log_refuses_new_records_and_keeps_the_stored_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let sink = SpooledJsonLinesSink::open_with(&path, 64 * 1024, NEVER, false).unwrap();
        for id in numbered("a", 3) {
            sink.record(&event(id)).unwrap();
        }
        let e = sink.flush().unwrap_err();
        assert!(
            e.0.contains("audit.jsonl") && e.0.contains("No space left"),
            "{e}"
        );
        // Once an append failed, each record tries one, and is refused while it fails.
        let e = sink.record(&event("refused")).unwrap_err();
        assert!(e.0.contains("No space left"), "{e}");
        let e = sink.close().unwrap_err();
        assert!(e.0.contains("No space left"), "{e}");
        drop(sink);
        // The spool was kept: with a working log, the next open appends what it stored.
        assert!(SpooledJsonLinesSink::spool_path_of(&path).exists());
        std::fs::remove_file(&path).unwrap();
        drop(SpooledJsonLinesSink::open(&path).unwrap());
        assert_eq!(ids(&path), numbered("a", 3));
    }

    #[test]
    fn a_record_larger_than_the_spool_that_cannot_be_written_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let sink = SpooledJsonLinesSink::open_with(&path, 4096, NEVER, false).unwrap();
        let mut big = event("big");
        big.error = Some("x".repeat(10_000));
        let e = sink.record(&big).unwrap_err();
        assert!(e.0.contains("No space left"), "{e}");
        let e = sink.record(&event("small")).unwrap_err();
        assert!(e.0.contains("No space left"), "{e}");
    }

    /// A FIFO in `dir`, for a log that fails (`EPIPE`) while no reader has it open.
    fn fifo(dir: &Path) -> PathBuf {
        let path = dir.join("audit.fifo");
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.expect("mkfifo runs").success(), "mkfifo failed");
        path
    }

    /// Opens the FIFO to read, on a thread of its own (the open waits for a writer).
    fn reader_of(path: &Path) -> std::thread::JoinHandle<File> {
        let path = path.to_path_buf();
        std::thread::spawn(move || File::open(path).expect("open the FIFO to read"))
    }

    #[test]
    fn a_log_that_works_again_takes_records_again() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        let open_reader = || reader_of(&path);
        let reader = open_reader();
        let sink = SpooledJsonLinesSink::open_with(&path, 64 * 1024, NEVER, false).unwrap();
        let read = |reader: File, n: usize| {
            let mut reader = std::io::BufReader::new(reader);
            let mut ids = Vec::new();
            for _ in 0..n {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line: serde_json::Value = serde_json::from_str(&line).unwrap();
                ids.push(line["id"].as_str().unwrap().to_owned());
            }
            (reader.into_inner(), ids)
        };
        let reader = reader.join().unwrap();
        sink.record(&event("a0")).unwrap();
        sink.record(&event("a1")).unwrap();
        sink.flush().unwrap();
        let (reader, ids) = read(reader, 2);
        assert_eq!(ids, ["a0", "a1"]);
        // No reader: the log fails (`EPIPE`).
        drop(reader);
        sink.record(&event("b0")).unwrap(); // stored: the failure is not known yet
        let e = sink.flush().unwrap_err();
        assert!(
            e.0.contains("audit.fifo") && e.0.contains("Broken pipe"),
            "{e}"
        );
        let e = sink.record(&event("refused")).unwrap_err();
        assert!(e.0.contains("Broken pipe"), "{e}");
        // A reader again: the next record's try appends what waits, then the record itself;
        // later records go through the spool again.
        let reader = open_reader().join().unwrap();
        sink.record(&event("c0")).unwrap();
        assert!(!lock(&sink.shared.state).failing);
        sink.record(&event("c1")).unwrap();
        sink.flush().unwrap();
        let (_reader, ids) = read(reader, 3);
        assert_eq!(ids, ["b0", "c0", "c1"]);
    }

    #[test]
    fn the_thread_appends_what_waits_once_a_failing_log_works_again() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        let first = reader_of(&path);
        let sink = SpooledJsonLinesSink::open(&path).unwrap();
        drop(first.join().unwrap());
        // Stored, then the thread's append fails (no reader).
        sink.record(&event("waiting")).unwrap();
        let start = std::time::Instant::now();
        while !lock(&sink.shared.state).failing {
            assert!(start.elapsed() < Duration::from_secs(10), "no failure seen");
            std::thread::sleep(Duration::from_millis(1));
        }
        // A reader again, and no new record: the thread's next try appends the waiting one.
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = reader_of(&path);
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = std::io::BufReader::new(reader.join().unwrap());
            reader.read_line(&mut line).unwrap();
            tx.send(line).unwrap();
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).expect("appended");
        assert!(line.starts_with("{\"id\":\"waiting\""), "{line}");
        // And the failure is over (the thread marks it right after its write).
        let start = std::time::Instant::now();
        while lock(&sink.shared.state).failing {
            assert!(start.elapsed() < Duration::from_secs(10), "still failing");
            std::thread::sleep(Duration::from_millis(1));
        }
        sink.record(&event("next")).unwrap();
    }

    /// The child of [`a_record_cut_short_leaves_the_next_on_a_line_of_its_own`]: runs with
    /// a soft file-size limit of 72 KiB (room for the spool) (and `SIGXFSZ` ignored), so that a large record is cut.
    #[cfg(all(feature = "sandbox", target_os = "linux"))]
    #[test]
    fn torn_child() {
        use rustix::process::{Resource, Rlimit, setrlimit};
        let Some(path) = std::env::var_os("MCP_SECURE_TORN_CHILD") else {
            return; // run as a test of its own: nothing to do
        };
        let sink = SpooledJsonLinesSink::open_with(Path::new(&path), 4096, NEVER, false).unwrap();
        sink.record(&event("a")).unwrap();
        sink.flush().unwrap();
        let mut big = event("big");
        big.error = Some("x".repeat(100_000));
        let e = sink.record(&big).unwrap_err();
        assert!(e.0.contains("File too large"), "{e}");
        assert!(lock(&sink.shared.drainer).torn);
        // While the log fails, each record tries it (the newline first) and is refused.
        sink.record(&event("refused")).unwrap_err();
        let unlimited = Rlimit {
            current: None,
            maximum: None,
        };
        setrlimit(Resource::Fsize, unlimited).unwrap();
        // The limit lifted: the cut line gets its newline, then the record its own line.
        sink.record(&event("b")).unwrap();
        assert!(!lock(&sink.shared.drainer).torn);
        sink.record(&event("c")).unwrap();
        sink.close().unwrap();
        println!("torn_child done");
    }

    #[cfg(all(feature = "sandbox", target_os = "linux"))]
    #[test]
    fn a_record_cut_short_leaves_the_next_on_a_line_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        run_under_file_limit("torn_child", "MCP_SECURE_TORN_CHILD", &path, 72);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        // The cut record fills the log up to the limit; the records after it are whole lines.
        assert!(lines[1].starts_with("{\"id\":\"big\""));
        assert!(serde_json::from_str::<serde_json::Value>(lines[1]).is_err());
        assert_eq!(lines[0].len() + 1 + lines[1].len(), 72 * 1024);
        let id = |line: &str| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!([id(lines[0]), id(lines[2]), id(lines[3])], ["a", "b", "c"]);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn a_log_left_inside_a_line_gets_its_newline_before_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"id\":\"cut").unwrap();
        let sink = SpooledJsonLinesSink::open(&path).unwrap();
        sink.record(&event("next")).unwrap();
        drop(sink);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"id\":\"cut\n{}",
                text.lines().nth(1).unwrap().to_owned() + "\n"
            )
        );
        assert!(text.lines().nth(1).unwrap().contains("\"id\":\"next\""));
    }

    /// The child of [`a_killed_process_loses_no_answered_record`]: records until killed,
    /// printing each id once its record is stored.
    #[test]
    fn spool_child() {
        let Some(path) = std::env::var_os("MCP_SECURE_SPOOL_CHILD") else {
            return; // run as a test of its own: nothing to do
        };
        let sink = open_retrying(Path::new(&path));
        let mut out = std::io::stdout().lock();
        for i in 0.. {
            sink.record(&event(format!("k{i}"))).unwrap();
            writeln!(out, "stored k{i}").unwrap();
            out.flush().unwrap();
        }
    }

    #[test]
    fn a_killed_process_loses_no_answered_record() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        for round in 0..3 {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["audit::spool::tests::spool_child", "--exact", "--nocapture"])
                .env("MCP_SECURE_SPOOL_CHILD", &path)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let mut stored = Vec::new();
            for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
                if let Some(id) = line.unwrap().strip_prefix("stored ") {
                    stored.push(format!("r{round}-{id}"));
                    if stored.len() == 3000 + 1000 * round {
                        child.kill().unwrap(); // SIGKILL: no destructor runs
                        break;
                    }
                }
            }
            child.wait().unwrap();
            assert!(SpooledJsonLinesSink::spool_path_of(&path).exists());
            // Rename this round's records so that rounds stay apart.
            let sink = open_retrying(&path);
            sink.close().unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            let renamed = text.replace("\"id\":\"k", &format!("\"id\":\"r{round}-k"));
            std::fs::write(&path, renamed).unwrap();
            let ids = ids(&path);
            let mine: Vec<_> = ids
                .iter()
                .filter(|id| id.starts_with(&format!("r{round}-")))
                .collect();
            // Every record the child stored is there once, in order, and so are the records
            // it stored after the last one read here, before it was killed: no gap, nothing
            // twice.
            assert!(
                mine.len() >= stored.len(),
                "{} < {}",
                mine.len(),
                stored.len()
            );
            let expected = numbered(&format!("r{round}-k"), mine.len());
            assert_eq!(mine, expected.iter().collect::<Vec<_>>());
            assert_eq!(mine[..stored.len()], stored.iter().collect::<Vec<_>>()[..]);
        }
    }

    /// The child of [`a_spool_kept_after_a_cut_append_continues_its_line`]: under a soft
    /// file-size limit, its append stops inside a record; closing fails, the spool is kept.
    #[test]
    fn cut_append_child() {
        let Some(path) = std::env::var_os("MCP_SECURE_CUT_CHILD") else {
            return; // run as a test of its own: nothing to do
        };
        let sink =
            SpooledJsonLinesSink::open_with(Path::new(&path), 64 * 1024, NEVER, false).unwrap();
        for id in numbered("a", 20) {
            sink.record(&event(id)).unwrap();
        }
        let e = sink.flush().unwrap_err();
        assert!(e.0.contains("File too large"), "{e}");
        assert!(sink.close().is_err());
        drop(sink);
        println!("cut_append_child done");
    }

    /// A full disk (here a file-size limit) cuts the thread's append inside a record, and the
    /// server stops with the spool kept: the next open continues that record's line.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_spool_kept_after_a_cut_append_continues_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let limit = 256 * 1024;
        let mut filler = String::new();
        let mut expected = Vec::new();
        while filler.len() < limit - 1000 - 64 {
            let id = format!("f{}", expected.len());
            filler.push_str(&format!("{{\"id\":\"{id}\"}}\n"));
            expected.push(id);
        }
        let pad = limit - 1000 - filler.len() - "{\"id\":\"pad\",\"p\":\"\"}\n".len();
        filler.push_str(&format!(
            "{{\"id\":\"pad\",\"p\":\"{}\"}}\n",
            "x".repeat(pad)
        ));
        expected.push("pad".into());
        assert_eq!(filler.len(), limit - 1000);
        std::fs::write(&path, &filler).unwrap();
        run_under_file_limit("cut_append_child", "MCP_SECURE_CUT_CHILD", &path, 256);
        // The append stopped inside a record.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), limit);
        assert!(!text.ends_with('\n'));
        drop(SpooledJsonLinesSink::open(&path).unwrap());
        expected.extend(numbered("a", 20));
        assert_eq!(ids(&path), expected);
    }

    /// A spool whose counters are near the end of `u64` (corrupted, or written by someone
    /// else) is refused, or works: no overflow on the next record.
    #[test]
    fn a_spool_with_counters_near_their_end_does_not_overflow() {
        for capacity in [64 * 1024u64, 1000] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            crashed_with(&path, "a", 3);
            let spool = SpooledJsonLinesSink::spool_path_of(&path);
            let mut bytes = std::fs::read(&spool).unwrap();
            let near = u64::MAX - 5;
            for (w, value) in [(W_CAPACITY, capacity), (W_HEAD, near), (W_DRAINED, near)] {
                bytes[w * 8..w * 8 + 8].copy_from_slice(&value.to_le_bytes());
            }
            bytes.truncate((HEADER + capacity) as usize);
            std::fs::write(&spool, &bytes).unwrap();
            let sink = match SpooledJsonLinesSink::open_with(&path, 4096, NEVER, false) {
                Ok(sink) => sink,
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
                    continue;
                }
            };
            for id in numbered("b", 30) {
                sink.record(&event(id)).unwrap();
            }
            sink.close().unwrap();
            assert_eq!(ids(&path), numbered("b", 30));
        }
    }

    /// The child of [`a_nearly_full_disk_refuses_records_and_does_not_crash`]: in a tmpfs of
    /// 1 MiB filled but for two pages, opens a sink and records.
    #[cfg(target_os = "linux")]
    #[test]
    fn full_disk_child() {
        let Some(dir) = std::env::var_os("MCP_SECURE_FULL_CHILD") else {
            return; // run as a test of its own: nothing to do
        };
        let dir = PathBuf::from(dir);
        let mut filler = File::create(dir.join("filler")).unwrap();
        let page = vec![b'x'; 4096];
        while filler.write_all(&page).is_ok() {}
        let len = filler.metadata().unwrap().len();
        filler.set_len(len / 4096 * 4096 - 2 * 4096).unwrap();
        match SpooledJsonLinesSink::open(dir.join("audit.jsonl")) {
            Err(e) => println!("refused at open: {e}"),
            Ok(sink) => {
                let mut refused = 0;
                for id in numbered("a", 2000) {
                    refused += usize::from(sink.record(&event(id)).is_err());
                }
                println!("{refused} refused");
                drop(sink);
            }
        }
        println!("full child done");
    }

    /// The documented failure of a full disk is a refusal (of the open, or of records), not
    /// a crash: the spool's pages must not need the disk's space when a record is copied in.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_nearly_full_disk_refuses_records_and_does_not_crash() {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("small");
        std::fs::create_dir(&mount).unwrap();
        let script = "mount -t tmpfs -o size=1m tmpfs \"$1\" && echo mounted && \
                      exec \"$0\" audit::spool::tests::full_disk_child --exact --nocapture";
        let out = std::process::Command::new("unshare")
            .args(["-r", "-m", "sh", "-c", script])
            .arg(std::env::current_exe().unwrap())
            .arg(&mount)
            .env("MCP_SECURE_FULL_CHILD", &mount)
            .output();
        let Ok(out) = out else {
            eprintln!("skipped: no unshare");
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !stdout.contains("mounted") {
            eprintln!("skipped: cannot mount a tmpfs in a user namespace");
            return;
        }
        assert!(
            out.status.success() && stdout.contains("full child done"),
            "{:?}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The child of [`killed_at_random_with_16_producers_nothing_is_lost`]: 16 threads record
    /// into a small ring (often full, wrapping many times; with `MCP_SECURE_STRESS_BIG`, now and
    /// then a record larger than it), each printing its id once stored.
    #[test]
    fn stress_child() {
        let Some(path) = std::env::var_os("MCP_SECURE_STRESS_CHILD") else {
            return; // run as a test of its own: nothing to do
        };
        let round = std::env::var("MCP_SECURE_STRESS_ROUND").unwrap();
        let big = std::env::var_os("MCP_SECURE_STRESS_BIG").is_some();
        let sink = retrying(|| {
            SpooledJsonLinesSink::open_with(
                Path::new(&path),
                16 * 1024,
                Duration::from_millis(1),
                true,
            )
        });
        let out = Mutex::new(std::io::stdout());
        std::thread::scope(|s| {
            for t in 0..16 {
                let (sink, out, round) = (&sink, &out, &round);
                s.spawn(move || {
                    for n in 0.. {
                        let id = format!("r{round}-t{t}-{n}");
                        let mut e = event(id.clone());
                        if big && n % 20 == 7 {
                            e.error = Some("x".repeat(200_000));
                        }
                        sink.record(&e).unwrap();
                        let mut out = lock(out);
                        writeln!(out, "stored {id}").unwrap();
                        out.flush().unwrap();
                    }
                });
            }
        });
    }

    /// Opens (recovering) and closes: killed at random by the stress test.
    #[test]
    fn recover_child() {
        let Some(path) = std::env::var_os("MCP_SECURE_RECOVER_CHILD") else {
            return; // run as a test of its own: nothing to do
        };
        drop(open_retrying(Path::new(&path)));
        println!("recovered");
    }

    fn child_of(test: &str) -> std::process::Command {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args([test, "--exact", "--nocapture"])
            .stderr(std::process::Stdio::null());
        command
    }

    fn stress(big: bool, rounds: usize) {
        use std::collections::HashMap;
        use std::io::BufRead;
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("seed {seed}");
        let mut next = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        for round in 0..rounds {
            // What the log held before this round: recovery only appends after it.
            let before = std::fs::metadata(&path).map_or(0, |m| m.len()) as usize;
            let mut command = child_of("audit::spool::tests::stress_child");
            command
                .env("MCP_SECURE_STRESS_CHILD", &path)
                .env("MCP_SECURE_STRESS_ROUND", round.to_string())
                .stdout(std::process::Stdio::piped());
            if big {
                command.env("MCP_SECURE_STRESS_BIG", "1");
            }
            let mut child = command.spawn().unwrap();
            let stdout = child.stdout.take().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let reader = std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(id) = line.strip_prefix("stored ") {
                        let _ = tx.send(id.to_owned());
                    }
                }
            });
            let first = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("child stores");
            std::thread::sleep(Duration::from_micros(next(30_000)));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            reader.join().unwrap();
            let mut acked = vec![first];
            acked.extend(rx.try_iter());
            // Now and then the recovery is killed too: a record may then be appended twice.
            let killed_recovery = next(3) == 0;
            if killed_recovery {
                let mut child = child_of("audit::spool::tests::recover_child")
                    .env("MCP_SECURE_RECOVER_CHILD", &path)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                std::thread::sleep(Duration::from_micros(next(20_000)));
                child.kill().unwrap();
                child.wait().unwrap();
            }
            open_retrying(&path).close().unwrap();
            let text = std::fs::read(&path).unwrap();
            assert!(text.ends_with(b"\n"), "round {round}: a cut last line");
            // Every line whole JSON.
            let ids: Vec<String> = text[before..]
                .split(|&b| b == b'\n')
                .filter(|line| !line.is_empty())
                .map(|line| {
                    let value: serde_json::Value =
                        serde_json::from_slice(line).unwrap_or_else(|e| {
                            let start = String::from_utf8_lossy(&line[..line.len().min(200)]);
                            panic!("round {round}: {e}: {start:?} ({} bytes)", line.len())
                        });
                    value["id"].as_str().unwrap().to_owned()
                })
                .collect();
            let mut count: HashMap<&str, usize> = HashMap::new();
            for id in &ids {
                *count.entry(id.as_str()).or_default() += 1;
            }
            for id in &acked {
                assert!(count.contains_key(id.as_str()), "round {round}: {id} lost");
            }
            let most = if killed_recovery { 2 } else { 1 };
            for (id, n) in &count {
                assert!(id.starts_with(&format!("r{round}-")), "round {round}: {id}");
                assert!(*n <= most, "round {round}: {id} {n} times (at most {most})");
            }
            // Each thread's records in its order, with no gap.
            let mut last: HashMap<String, i64> = HashMap::new();
            for id in &ids {
                let (thread, n) = id.rsplit_once('-').unwrap();
                let n: i64 = n.parse().unwrap();
                let last = last.entry(thread.to_owned()).or_insert(-1);
                assert!(n <= *last + 1, "round {round}: {id} after {last}");
                *last = (*last).max(n);
            }
        }
    }

    #[test]
    fn killed_at_random_with_16_producers_nothing_is_lost() {
        stress(false, 40);
    }

    #[test]
    fn killed_at_random_with_records_larger_than_the_ring_nothing_is_lost() {
        stress(true, 40);
    }
}
