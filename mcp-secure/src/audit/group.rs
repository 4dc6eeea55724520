//! Group commit without a thread of its own, for [`JsonLinesSink`](super::JsonLinesSink) and
//! `SqliteSink`: the records of concurrent calls share one store (one `write` and one `fsync`,
//! or one SQLite transaction).
//!
//! A record is appended to the *open batch*. If no store is under way, its caller stores that
//! batch at once: a call alone pays one store, as it did before batching. Otherwise the caller
//! waits (an async caller's task leaves its thread free; a blocking caller sleeps) while the
//! store under way finishes. That caller then hands the open batch over by waking its callers,
//! and the first of them to run stores it whole. So every batch is stored by one of its own
//! callers, a caller never stores more than its own batch, and no call waits behind more than
//! one store of others.
//!
//! A caller alone (no store under way, no record waiting) that can store its record by itself
//! does so straight from its own buffer, with no batch made for it ([`GroupWriter::store_async`]):
//! two turns of the lock instead of three, and nothing copied.
//!
//! Nothing is left unstored when a caller goes away: a waiting future dropped before its batch
//! is stored stores the batch itself if no store is under way, and a caller that finds the open
//! batch with no caller still waiting stores it too instead of handing it over.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use super::AuditError;

/// Where a [`GroupWriter`] stores its batches.
pub(super) trait BatchStore: Send + Sync + 'static {
    /// The records of one batch.
    type Batch: Default + Send;
    /// Stores a whole batch, or none of it as far as it can tell. Called by one caller at a
    /// time. The batch is emptied afterwards by [`BatchStore::reuse`].
    fn store(&self, batch: &Self::Batch) -> Result<(), Arc<str>>;
    /// Empties a stored batch, to be filled again (keeping a sensible capacity).
    fn reuse(batch: &mut Self::Batch);
    /// Whether a batch has no record.
    fn is_empty(batch: &Self::Batch) -> bool;
}

/// One batch: its outcome, set once when it is stored, and its blocked callers.
#[derive(Default)]
struct Batch {
    outcome: OnceLock<Result<(), Arc<str>>>,
    /// Threads blocked in [`GroupWriter::append_blocking`] for this batch wait here (with the
    /// state's lock): woken all at once when it is stored, one of them when it is handed over.
    done: Condvar,
    /// How many wait on `done` (changed under the state's lock; no wake-up call when none).
    blocked: AtomicUsize,
}

impl Batch {
    fn blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed) > 0
    }
}

/// Batches of records in front of a [`BatchStore`] (see the module docs).
pub(super) struct GroupWriter<S: BatchStore> {
    store: S,
    state: Mutex<State<S::Batch>>,
    /// Batches stored (tests count the stores).
    #[cfg(test)]
    stores: AtomicUsize,
    /// Batches allocated (tests count them).
    #[cfg(test)]
    batches: AtomicUsize,
}

/// The state's lock, held.
type Guard<'a, S> = MutexGuard<'a, State<<S as BatchStore>::Batch>>;

struct State<B> {
    /// The records of the open batch.
    open: B,
    /// The last batch stored, emptied, to become the next open one.
    spare: B,
    /// The open batch: each of its callers still waiting holds a clone.
    batch: Arc<Batch>,
    /// A stored batch that nobody holds any more, emptied, to become a later open one: a
    /// record whose caller is alone allocates no batch.
    spare_batch: Option<Arc<Batch>>,
    /// A store is under way (with the lock released).
    writing: bool,
    /// Tasks waiting for the batch being stored, and for the open batch.
    wake_writing: Vec<Waker>,
    wake_open: Vec<Waker>,
    /// How many times a waker list was taken to wake it: a task registered in the current
    /// round is still listed and need not add its waker again.
    round: u64,
}

impl<S: BatchStore + std::fmt::Debug> std::fmt::Debug for GroupWriter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupWriter")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<S: BatchStore> GroupWriter<S> {
    pub(super) fn new(store: S) -> Self {
        GroupWriter {
            store,
            state: Mutex::new(State {
                open: S::Batch::default(),
                spare: S::Batch::default(),
                batch: Arc::default(),
                spare_batch: None,
                writing: false,
                wake_writing: Vec::new(),
                wake_open: Vec::new(),
                round: 0,
            }),
            #[cfg(test)]
            stores: AtomicUsize::new(0),
            #[cfg(test)]
            batches: AtomicUsize::new(1),
        }
    }

    /// How many batches were stored.
    #[cfg(test)]
    pub(super) fn stores(&self) -> usize {
        self.stores.load(Ordering::SeqCst)
    }

    /// How many batches were allocated.
    #[cfg(test)]
    pub(super) fn batches(&self) -> usize {
        self.batches.load(Ordering::SeqCst)
    }

    /// Whether a store is under way.
    #[cfg(test)]
    pub(super) fn storing(&self) -> bool {
        self.lock().writing
    }

    pub(super) fn store(&self) -> &S {
        &self.store
    }

    pub(super) fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Adds a record (`add` puts it in the open batch) and returns once its batch is stored,
    /// blocking the thread while another caller's store is under way.
    pub(super) fn append_blocking(
        &self,
        add: impl FnOnce(&mut S::Batch),
    ) -> Result<(), AuditError> {
        let (mut state, batch) = self.append(add);
        loop {
            let outcome;
            (state, outcome) = self.advance(state, &batch);
            if let Some(outcome) = outcome {
                release(&mut state, batch); // under the lock: see `Pending`'s `Drop`
                return outcome;
            }
            batch.blocked.fetch_add(1, Ordering::Relaxed);
            state = batch
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            batch.blocked.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Adds a record (`add` puts it in the open batch) at once; the future resolves once its
    /// batch is stored. It is stored even if the future is dropped.
    pub(super) fn append_async(&self, add: impl FnOnce(&mut S::Batch)) -> Pending<'_, S> {
        let (state, batch) = self.append(add);
        let (mut state, outcome) = self.advance(state, &batch);
        let wait = match outcome {
            Some(outcome) => {
                release(&mut state, batch); // under the lock: see `Pending`'s `Drop`
                Wait::Ready(outcome)
            }
            None => Wait::Waiting(batch),
        };
        drop(state);
        Pending {
            writer: self,
            wait,
            registered: None,
        }
    }

    /// Like [`GroupWriter::append_async`], for a record its caller can store by itself:
    /// when no store is under way and no record waits, `alone` stores it at once (with the
    /// lock released), with no batch made for it and no copy of it kept; otherwise `add` puts
    /// it in the open batch, as `append_async` does.
    pub(super) fn store_async(
        &self,
        alone: impl FnOnce(&S) -> Result<(), Arc<str>>,
        add: impl FnOnce(&mut S::Batch),
    ) -> Pending<'_, S> {
        let mut state = self.lock();
        if state.writing || !S::is_empty(&state.open) {
            drop(state);
            return self.append_async(add);
        }
        state.writing = true;
        drop(state);
        let outcome = self.store_with(|| alone(&self.store));
        let mut state = self.lock();
        state.writing = false;
        // Records came meanwhile: their callers store them, or this caller does when none of
        // them still waits (as after a batch's store).
        let mut wake = Vec::new();
        let next = Self::hand_over(&mut state, &mut wake);
        if Self::orphaned(&state) {
            state.wake_open.clear();
            drop(self.store_open(state));
        } else {
            drop(state);
            wake_all(next, wake);
        }
        Pending {
            writer: self,
            wait: Wait::Ready(outcome.map_err(|why| AuditError(why.to_string()))),
            registered: None,
        }
    }

    /// Runs one store: a store that panics fails (its batch or record); the writer's state
    /// stays usable.
    fn store_with(&self, store: impl FnOnce() -> Result<(), Arc<str>>) -> Result<(), Arc<str>> {
        #[cfg(test)]
        self.stores.fetch_add(1, Ordering::SeqCst);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(store))
            .unwrap_or_else(|_| Err(Arc::from("the audit store panicked")))
    }

    fn append(&self, add: impl FnOnce(&mut S::Batch)) -> (Guard<'_, S>, Arc<Batch>) {
        let mut state = self.lock();
        add(&mut state.open);
        let batch = Arc::clone(&state.batch);
        (state, batch)
    }

    fn lock(&self) -> Guard<'_, S> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `batch`'s outcome if it is known. Otherwise, if no store is under way, `batch` is the
    /// open one (batches are stored one at a time, in order): it is stored now, by this caller.
    /// `None` while another caller's store is under way.
    fn advance<'a>(
        &'a self,
        mut state: Guard<'a, S>,
        batch: &Arc<Batch>,
    ) -> (Guard<'a, S>, Option<Result<(), AuditError>>) {
        loop {
            if let Some(outcome) = batch.outcome.get() {
                let outcome = outcome.clone().map_err(|why| AuditError(why.to_string()));
                return (state, Some(outcome));
            }
            if state.writing {
                return (state, None);
            }
            debug_assert!(Arc::ptr_eq(batch, &state.batch));
            state = self.store_open(state);
        }
    }

    /// Stores the open batch with the lock released, publishes its outcome and wakes its
    /// callers. If more records came meanwhile, wakes their callers to store them (or stores
    /// them too, when none of those callers is still waiting).
    fn store_open<'a>(&'a self, mut state: Guard<'a, S>) -> Guard<'a, S> {
        loop {
            state.writing = true;
            let spare = std::mem::take(&mut state.spare);
            let mut records = std::mem::replace(&mut state.open, spare);
            let next_open = state.spare_batch.take().unwrap_or_else(|| {
                #[cfg(test)]
                self.batches.fetch_add(1, Ordering::SeqCst);
                Arc::default()
            });
            let batch = std::mem::replace(&mut state.batch, next_open);
            state.wake_writing = std::mem::take(&mut state.wake_open);
            drop(state);

            let outcome = self.store_with(|| self.store.store(&records));
            S::reuse(&mut records);

            state = self.lock();
            state.spare = records;
            state.writing = false;
            // Set only here, by the one caller storing this batch.
            let _ = batch.outcome.set(outcome);
            let mut wake = std::mem::take(&mut state.wake_writing);
            let next = Self::hand_over(&mut state, &mut wake);
            drop(state);
            if batch.blocked() {
                batch.done.notify_all();
            }
            drop(batch);
            wake_all(next, wake);
            state = self.lock();
            if !Self::orphaned(&state) {
                return state;
            }
            // The wakers listed for it are those of the callers that left.
            state.wake_open.clear();
        }
    }

    /// After a store: if records came meanwhile and some of their callers wait, the open batch
    /// is handed over to them (its tasks' wakers added to `wake`; the batch returned, for one
    /// of its blocked threads): the first to run stores it. The round moves on when any task
    /// is to be woken.
    fn hand_over(state: &mut Guard<'_, S>, wake: &mut Vec<Waker>) -> Option<Arc<Batch>> {
        let next = (!S::is_empty(&state.open) && Arc::strong_count(&state.batch) > 1)
            .then(|| Arc::clone(&state.batch));
        if next.is_some() {
            wake.append(&mut state.wake_open);
        }
        if !wake.is_empty() {
            state.round += 1;
        }
        next
    }

    /// Records whose callers are all gone (only the state holds their batch), and nobody
    /// storing: the caller that finds them stores them.
    fn orphaned(state: &Guard<'_, S>) -> bool {
        !state.writing && !S::is_empty(&state.open) && Arc::strong_count(&state.batch) == 1
    }
}

/// Wakes what [`GroupWriter::hand_over`] found to wake (with the state's lock released).
fn wake_all(next: Option<Arc<Batch>>, wake: Vec<Waker>) {
    if let Some(next) = next.filter(|n| n.blocked()) {
        next.done.notify_one();
    }
    wake.into_iter().for_each(Waker::wake);
}

/// Lets go of a caller's `batch`, under the state's lock. If nothing else holds it, it was
/// stored and its outcome taken by every caller (the state and a caller storing it hold it
/// until then), so it is emptied and kept to be the next open batch.
fn release<B>(state: &mut State<B>, mut batch: Arc<Batch>) {
    if let Some(done) = Arc::get_mut(&mut batch) {
        debug_assert!(done.outcome.get().is_some() && !done.blocked());
        done.outcome = OnceLock::new();
        *done.blocked.get_mut() = 0;
        state.spare_batch = Some(batch);
    }
}

/// The most capacity a reused line buffer keeps.
const KEEP_BUFFER: usize = 1 << 20;

/// An append-only file, one `write` of whole lines per batch (more only if the kernel takes
/// part of them), then `fsync` if asked.
#[derive(Debug)]
pub(super) struct LinesFile {
    file: File,
    path: PathBuf,
    fsync: bool,
    /// The last write stopped inside a line: the next one starts with a newline.
    torn: AtomicBool,
}

impl LinesFile {
    /// Writes to `file` (opened for appending), named `path` in error messages.
    pub(super) fn new(file: File, path: PathBuf, fsync: bool) -> Self {
        LinesFile {
            file,
            path,
            fsync,
            torn: AtomicBool::new(false),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn set_fsync(&mut self, fsync: bool) {
        self.fsync = fsync;
    }

    /// The file ends inside a line (a record cut short before it was opened): the first
    /// write starts with a newline.
    pub(super) fn set_torn(&mut self) {
        *self.torn.get_mut() = true;
    }

    /// Writes whole `lines` (a batch, or one record stored alone).
    fn store_lines(&self, lines: &[u8]) -> Result<(), Arc<str>> {
        // One caller stores at a time: the flag is only read and set by it.
        let (outcome, torn) = self.write(lines, self.torn.load(Ordering::Relaxed));
        self.torn.store(torn, Ordering::Relaxed);
        outcome
    }

    /// Writes `lines`; returns the outcome and whether the file now ends inside a line.
    fn write(&self, lines: &[u8], torn: bool) -> (Result<(), Arc<str>>, bool) {
        let fail =
            |e: std::io::Error| -> Arc<str> { format!("{}: {e}", self.path.display()).into() };
        let mut file = &self.file;
        if torn && let Err(e) = file.write_all(b"\n") {
            return (Err(fail(e)), true);
        }
        let mut rest = lines;
        while !rest.is_empty() {
            match file.write(rest) {
                Ok(0) => {
                    let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
                    let written = lines.len() - rest.len();
                    return (Err(fail(e)), ends_inside_a_line(lines, written));
                }
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let written = lines.len() - rest.len();
                    return (Err(fail(e)), ends_inside_a_line(lines, written));
                }
            }
        }
        if self.fsync
            && let Err(e) = self.file.sync_data()
        {
            return (Err(fail(e)), false);
        }
        (Ok(()), false)
    }
}

impl BatchStore for LinesFile {
    /// The lines, one after the other, each with its newline.
    type Batch = Vec<u8>;

    fn store(&self, lines: &Vec<u8>) -> Result<(), Arc<str>> {
        self.store_lines(lines)
    }

    fn reuse(lines: &mut Vec<u8>) {
        lines.clear();
        lines.shrink_to(KEEP_BUFFER);
    }

    fn is_empty(lines: &Vec<u8>) -> bool {
        lines.is_empty()
    }
}

impl GroupWriter<LinesFile> {
    /// Appends `line` (ending with its newline): [`GroupWriter::append_blocking`].
    pub(super) fn write_line_blocking(&self, line: &[u8]) -> Result<(), AuditError> {
        self.append_blocking(|lines| lines.extend_from_slice(line))
    }

    /// Appends `line` (ending with its newline): [`GroupWriter::store_async`], written
    /// straight from `line` when its caller is alone.
    pub(super) fn write_line(&self, line: &[u8]) -> Pending<'_, LinesFile> {
        self.store_async(
            |file| file.store_lines(line),
            |lines| lines.extend_from_slice(line),
        )
    }
}

/// Whether a write that stopped after `written` bytes of `lines` left a line unfinished.
fn ends_inside_a_line(lines: &[u8], written: usize) -> bool {
    written > 0 && lines.get(written - 1) != Some(&b'\n')
}

/// The future of [`GroupWriter::append_async`] and [`GroupWriter::store_async`].
#[must_use = "a record is not known to be stored until this future resolves"]
pub(super) struct Pending<'a, S: BatchStore> {
    writer: &'a GroupWriter<S>,
    wait: Wait,
    /// The round this task's waker was listed in, and that waker.
    registered: Option<(u64, Waker)>,
}

/// Where a [`Pending`] stands.
enum Wait {
    /// The outcome, known when the record was added (its caller stored the batch).
    Ready(Result<(), AuditError>),
    /// The batch waited for.
    Waiting(Arc<Batch>),
    /// The outcome was returned.
    Done,
}

impl<'a, S: BatchStore> Pending<'a, S> {
    /// The future, boxed for [`AuditSink::record_async`](super::AuditSink::record_async). One
    /// whose outcome was known when the record was added (its caller stored the batch) is
    /// boxed without an allocation ([`settled`](super::sink::settled)).
    pub(super) fn boxed(mut self) -> futures::future::BoxFuture<'a, Result<(), AuditError>> {
        match std::mem::replace(&mut self.wait, Wait::Done) {
            Wait::Ready(outcome) => super::sink::settled(outcome),
            wait => {
                self.wait = wait;
                Box::pin(self)
            }
        }
    }
}

impl<S: BatchStore> Future for Pending<'_, S> {
    type Output = Result<(), AuditError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let batch = match std::mem::replace(&mut this.wait, Wait::Done) {
            Wait::Ready(outcome) => return Poll::Ready(outcome),
            Wait::Waiting(batch) => batch,
            Wait::Done => {
                return Poll::Ready(Err(AuditError(
                    "the record's outcome was already taken".into(),
                )));
            }
        };
        let (mut state, outcome) = this.writer.advance(this.writer.lock(), &batch);
        if let Some(outcome) = outcome {
            release(&mut state, batch); // under the lock: see `Drop`
            return Poll::Ready(outcome);
        }
        let listed = this
            .registered
            .as_ref()
            .is_some_and(|(round, w)| *round == state.round && w.will_wake(cx.waker()));
        if !listed {
            let round = state.round;
            if Arc::ptr_eq(&batch, &state.batch) {
                state.wake_open.push(cx.waker().clone());
            } else {
                state.wake_writing.push(cx.waker().clone());
            }
            this.registered = Some((round, cx.waker().clone()));
        }
        this.wait = Wait::Waiting(batch);
        Poll::Pending
    }
}

impl<S: BatchStore> Drop for Pending<'_, S> {
    /// A caller that stops waiting does not take its record back. If its batch is still open
    /// and nobody is storing, it stores it now; if a store is under way, the caller storing
    /// sees (the batch's count of holders, changed here under the lock) that the open batch has
    /// lost this caller, and stores it itself when no other caller waits.
    fn drop(&mut self) {
        let Wait::Waiting(batch) = std::mem::replace(&mut self.wait, Wait::Done) else {
            return;
        };
        let (mut state, _) = self.writer.advance(self.writer.lock(), &batch);
        release(&mut state, batch);
        drop(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    #[test]
    fn a_write_cut_short_is_known_to_end_inside_a_line() {
        let lines = b"{\"a\":1}\n{\"b\":2}\n";
        assert!(!ends_inside_a_line(lines, 0));
        assert!(ends_inside_a_line(lines, 3));
        assert!(!ends_inside_a_line(lines, 8));
        assert!(ends_inside_a_line(lines, 9));
        assert!(!ends_inside_a_line(lines, lines.len()));
    }

    fn writes(w: &GroupWriter<LinesFile>) -> usize {
        w.stores()
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(pending: &mut Pending<'_, LinesFile>, waker: &Waker) -> Poll<Result<(), AuditError>> {
        Pin::new(pending).poll(&mut Context::from_waker(waker))
    }

    /// A line bigger than a pipe holds (64 KiB): its write blocks until the reader drains it.
    fn big_line() -> Vec<u8> {
        let mut line = vec![b'a'; 200 * 1024];
        line.push(b'\n');
        line
    }

    /// A waker that counts its wake-ups, and the count.
    fn counting_waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (Arc::clone(&count), Waker::from(count))
    }

    /// A FIFO (in its own folder, removed on drop), its writer (a `GroupWriter`) and its reader.
    fn fifo() -> (tempfile::TempDir, GroupWriter<LinesFile>, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.fifo");
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.expect("mkfifo runs").success(), "mkfifo failed");
        let reader = {
            let path = path.clone();
            std::thread::spawn(move || File::open(path).expect("open the FIFO to read"))
        };
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open the FIFO to write");
        let reader = reader.join().expect("reader opened");
        (
            dir,
            GroupWriter::new(LinesFile::new(file, path, false)),
            reader,
        )
    }

    /// How the first record of a test is stored.
    #[derive(Clone, Copy, Debug)]
    enum First {
        /// By a blocking caller, through a batch.
        Blocking,
        /// By an async caller alone, straight from its line (`store_async`).
        Alone,
    }

    const FIRSTS: [First; 2] = [First::Blocking, First::Alone];

    /// Starts an append of a big line on its own thread and returns once that write is under
    /// way (its first byte came out of the reader), and still blocked (most of the line is not
    /// read yet).
    fn start_blocked_write<'s>(
        scope: &'s std::thread::Scope<'s, '_>,
        writer: &'s GroupWriter<LinesFile>,
        reader: &mut File,
        how: First,
    ) -> std::thread::ScopedJoinHandle<'s, Result<(), AuditError>> {
        let first = scope.spawn(move || match how {
            First::Blocking => writer.write_line_blocking(&big_line()),
            First::Alone => futures::executor::block_on(writer.write_line(&big_line())),
        });
        let mut byte = [0u8; 1];
        reader
            .read_exact(&mut byte)
            .expect("the first write started");
        assert_eq!(byte[0], b'a');
        assert!(writer.storing());
        first
    }

    /// Reads `n` bytes on a thread of its own (not scoped: a test that fails while it waits
    /// for bytes that never come ends instead of hanging; see [`read`]).
    fn drain(mut reader: File, n: usize) -> std::sync::mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut all = vec![0u8; n];
            reader.read_exact(&mut all).expect("read the FIFO");
            let _ = tx.send(all);
        });
        rx
    }

    /// Reads on a thread of its own until what it read ends with `end`.
    fn drain_until(mut reader: File, end: &'static [u8]) -> std::sync::mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut chunk = [0u8; 4096];
            while !all.ends_with(end) {
                let n = reader.read(&mut chunk).expect("read the FIFO");
                assert!(n > 0, "the FIFO closed before {end:?}");
                all.extend_from_slice(&chunk[..n]);
            }
            let _ = tx.send(all);
        });
        rx
    }

    /// What a drain read, or a failure after 30 s.
    fn read(rx: std::sync::mpsc::Receiver<Vec<u8>>) -> Vec<u8> {
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("the reader did not get the expected bytes within 30 s")
    }

    const TWO: &[u8] = b"{\"n\":2}\n";
    const THREE: &[u8] = b"{\"n\":3}\n";

    #[test]
    fn records_that_come_during_a_write_share_the_next_one_without_blocking() {
        for how in FIRSTS {
            let (_dir, writer, mut reader) = fifo();
            let (_, waker) = counting_waker();
            let all = std::thread::scope(|scope| {
                let first = start_blocked_write(scope, &writer, &mut reader, how);
                // While that write is under way, two more records are taken at once and wait: the
                // future does not block this thread.
                let mut second = writer.write_line(TWO);
                let mut third = writer.write_line(THREE);
                assert!(poll(&mut second, &waker).is_pending());
                assert!(poll(&mut third, &waker).is_pending());
                assert_eq!(writes(&writer), 1);
                let rest = drain(reader, big_line().len() - 1 + TWO.len() + THREE.len());
                first.join().unwrap().expect("the big line is written");
                // The first caller wrote only its own record and handed the next batch over.
                assert_eq!(writes(&writer), 1);
                assert!(matches!(poll(&mut second, &waker), Poll::Ready(Ok(()))));
                assert!(matches!(poll(&mut third, &waker), Poll::Ready(Ok(()))));
                // One write for both.
                assert_eq!(writes(&writer), 2);
                read(rest)
            });
            let mut expected = big_line()[1..].to_vec();
            expected.extend_from_slice(TWO);
            expected.extend_from_slice(THREE);
            assert_eq!(all, expected);
        }
    }

    #[test]
    fn the_batch_goes_to_a_waiting_caller_which_writes_it_even_if_dropped_unpolled() {
        for how in FIRSTS {
            let (_dir, writer, mut reader) = fifo();
            let (count, waker) = counting_waker();
            let all = std::thread::scope(|scope| {
                let first = start_blocked_write(scope, &writer, &mut reader, how);
                let mut second = writer.write_line(TWO);
                assert!(poll(&mut second, &waker).is_pending());
                let rest = drain(reader, big_line().len() - 1 + TWO.len());
                first.join().unwrap().expect("the big line is written");
                // Handed over: the waiting caller is woken, and nothing more was written.
                assert_eq!(count.0.load(Ordering::SeqCst), 1);
                assert_eq!(writes(&writer), 1);
                // It goes away before it runs: it writes its batch as it goes.
                drop(second);
                assert_eq!(writes(&writer), 2);
                read(rest)
            });
            assert!(all.ends_with(b"a\n{\"n\":2}\n"), "the record was lost");
        }
    }

    #[test]
    fn a_blocked_caller_is_handed_its_batch_and_writes_it() {
        for how in FIRSTS {
            let (_dir, writer, mut reader) = fifo();
            let writer = Arc::new(writer);
            let all = std::thread::scope(|scope| {
                let first = start_blocked_write(scope, &writer, &mut reader, how);
                // Not scoped: if it is never woken, the test fails instead of hanging.
                let (tx, done) = std::sync::mpsc::channel();
                let second = Arc::clone(&writer);
                std::thread::spawn(move || tx.send(second.write_line_blocking(TWO)));
                // Wait until that caller sleeps on its (open) batch.
                while !writer.lock().batch.blocked() {
                    std::thread::yield_now();
                }
                let rest = drain(reader, big_line().len() - 1 + TWO.len());
                first.join().unwrap().expect("the big line is written");
                let second = done.recv_timeout(std::time::Duration::from_secs(30));
                second
                    .expect("the blocked caller was not handed its batch")
                    .expect("written");
                assert_eq!(writes(&writer), 2);
                read(rest)
            });
            assert!(all.ends_with(b"a\n{\"n\":2}\n"), "the record was lost");
        }
    }

    #[test]
    fn a_batch_whose_callers_all_left_is_written_by_the_writer_before_it() {
        for how in FIRSTS {
            let (_dir, writer, mut reader) = fifo();
            let (count, waker) = counting_waker();
            let all = std::thread::scope(|scope| {
                let first = start_blocked_write(scope, &writer, &mut reader, how);
                let mut second = writer.write_line(TWO);
                assert!(poll(&mut second, &waker).is_pending());
                // Dropped while the write is under way: it cannot write, and its record stays.
                drop(second);
                assert_eq!(writes(&writer), 1);
                let rest = drain(reader, big_line().len() - 1 + TWO.len());
                first.join().unwrap().expect("the big line is written");
                // Nobody to hand over to: the first caller wrote the orphaned batch too.
                assert_eq!(writes(&writer), 2);
                assert_eq!(count.0.load(Ordering::SeqCst), 0);
                read(rest)
            });
            assert!(all.ends_with(b"a\n{\"n\":2}\n"), "the record was lost");
        }
    }

    #[test]
    fn a_failed_write_fails_its_whole_batch_and_the_next_starts_on_a_new_line() {
        let (_dir, writer, mut reader) = fifo();
        let path = writer.store().path().to_path_buf();
        let (_, waker) = counting_waker();
        std::thread::scope(|scope| {
            let first = start_blocked_write(scope, &writer, &mut reader, First::Blocking);
            let mut second = writer.write_line(TWO);
            let mut third = writer.write_line(THREE);
            assert!(poll(&mut second, &waker).is_pending());
            // The reader goes away: the write under way fails half done (EPIPE).
            drop(reader);
            let failed = first.join().unwrap().expect_err("no reader");
            assert!(
                failed.0.starts_with(&format!("{}: ", path.display())),
                "{failed}"
            );
            // The next batch fails too, for each of its callers.
            for pending in [&mut second, &mut third] {
                match poll(pending, &waker) {
                    Poll::Ready(Err(e)) => assert_eq!(e.0, failed.0),
                    other => panic!("expected the write's error, got {other:?}"),
                }
            }
            assert_eq!(writes(&writer), 2);
        });
        // A reader again (the FIFO opens at once, its writer being there). What the first reader
        // left of the torn line is still in the pipe; the next record starts on a line of its
        // own after it.
        let reader = File::open(&path).expect("reopen the FIFO");
        let rest = drain_until(reader, TWO);
        writer.write_line_blocking(TWO).expect("written");
        let again = read(rest);
        assert!(again.ends_with(b"aaaa\n{\"n\":2}\n"), "torn line not ended");
        // Only once: the file no longer ends inside a line.
        let reader = File::open(&path).expect("reopen the FIFO");
        let rest = drain_until(reader, THREE);
        writer.write_line_blocking(THREE).expect("written");
        let after = read(rest);
        assert_eq!(after, THREE);
    }

    /// Panics on its first store, then keeps the lines.
    #[derive(Default)]
    struct PanicsOnce {
        panicked: AtomicBool,
        kept: Mutex<Vec<u8>>,
    }

    impl BatchStore for PanicsOnce {
        type Batch = Vec<u8>;

        fn store(&self, lines: &Vec<u8>) -> Result<(), Arc<str>> {
            if !self.panicked.swap(true, Ordering::SeqCst) {
                panic!("a bug in the store");
            }
            self.kept.lock().unwrap().extend_from_slice(lines);
            Ok(())
        }

        fn reuse(lines: &mut Vec<u8>) {
            lines.clear();
        }

        fn is_empty(lines: &Vec<u8>) -> bool {
            lines.is_empty()
        }
    }

    #[test]
    fn a_store_that_panics_fails_its_batch_and_the_next_one_is_stored() {
        let writer = GroupWriter::new(PanicsOnce::default());
        let failed = writer
            .append_blocking(|b| b.extend_from_slice(TWO))
            .expect_err("the store panicked");
        assert_eq!(failed.0, "the audit store panicked");
        assert!(!writer.storing(), "the writer is not stuck");
        writer
            .append_blocking(|b| b.extend_from_slice(THREE))
            .expect("stored");
        assert_eq!(*writer.store().kept.lock().unwrap(), THREE);
    }

    /// Boxed for `record_async`: a record its own caller stored is boxed with nothing in the
    /// box (no allocation), its error kept; one that waits for another caller's write stays
    /// the waiting future, and resolves once its batch is written.
    #[test]
    fn a_record_stored_by_its_caller_is_boxed_without_an_allocation() {
        let writer = GroupWriter::new(PanicsOnce::default());
        let failed = writer.append_async(|b| b.extend_from_slice(TWO)).boxed();
        let failed = futures::executor::block_on(failed).expect_err("the store panicked");
        assert_eq!(failed.0, "the audit store panicked");
        let stored = writer.append_async(|b| b.extend_from_slice(THREE)).boxed();
        assert_eq!(std::mem::size_of_val(&*stored), 0, "nothing allocated");
        futures::executor::block_on(stored).expect("stored");
        assert_eq!(*writer.store().kept.lock().unwrap(), THREE);

        let (_dir, writer, mut reader) = fifo();
        let (count, waker) = counting_waker();
        let all = std::thread::scope(|scope| {
            let first = start_blocked_write(scope, &writer, &mut reader, First::Blocking);
            let mut second = writer.write_line(TWO).boxed();
            assert!(std::mem::size_of_val(&*second) > 0);
            let mut cx = Context::from_waker(&waker);
            assert!(second.as_mut().poll(&mut cx).is_pending());
            let rest = drain(reader, big_line().len() - 1 + TWO.len());
            first.join().unwrap().expect("the big line is written");
            assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken");
            assert!(matches!(second.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
            read(rest)
        });
        assert!(all.ends_with(TWO));
    }

    /// A caller alone has its batch stored and lets go of it last: the emptied batch becomes a
    /// later open one, so a run of such records allocates no batch, async or blocking.
    #[test]
    fn a_caller_alone_reuses_the_last_stored_batch() {
        let writer = GroupWriter::new(PanicsOnce::default());
        writer.store().panicked.store(true, Ordering::SeqCst); // it keeps every line
        for i in 0..4 {
            if i % 2 == 0 {
                futures::executor::block_on(writer.append_async(|b| b.extend_from_slice(TWO)))
                    .expect("stored");
            } else {
                writer
                    .append_blocking(|b| b.extend_from_slice(THREE))
                    .expect("stored");
            }
        }
        assert_eq!(writer.stores(), 4);
        assert_eq!(
            writer.batches(),
            2,
            "the first open batch, and the one made when it was stored"
        );
        assert_eq!(
            *writer.store().kept.lock().unwrap(),
            [TWO, THREE, TWO, THREE].concat()
        );
    }

    /// A writer on a new file in a temporary directory (kept while the directory is).
    fn lines_file(fsync: bool) -> (tempfile::TempDir, PathBuf, GroupWriter<LinesFile>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let writer = GroupWriter::new(LinesFile::new(file, path.clone(), fsync));
        (dir, path, writer)
    }

    /// A caller alone stores its record straight from its line: no batch is made for it, and
    /// each record is one store.
    #[test]
    fn a_caller_alone_stores_its_record_without_a_batch() {
        let (_dir, path, writer) = lines_file(false);
        for line in [TWO, THREE, TWO] {
            let stored = writer.write_line(line);
            assert!(matches!(stored.wait, Wait::Ready(Ok(()))), "stored at once");
            futures::executor::block_on(stored).expect("stored");
        }
        assert_eq!(writer.stores(), 3);
        assert_eq!(writer.batches(), 1, "only the first open batch, never used");
        assert!(writer.lock().open.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), [TWO, THREE, TWO].concat());
    }

    /// 2 blocking threads and 16 tasks on 2 runtime threads, fsync on (so writes overlap), and
    /// every third task's wait given up after one poll: every line is stored exactly once.
    #[test]
    fn concurrent_callers_lose_nothing_even_those_that_give_up() {
        let (_dir, path, writer) = lines_file(true);
        let writer = Arc::new(writer);
        const EACH: usize = 100;
        let given_up = Arc::new(AtomicUsize::new(0));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let writer = Arc::clone(&writer);
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        let line = format!("{{\"t\":\"b{t}\",\"i\":{i}}}\n");
                        writer.write_line_blocking(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        runtime.block_on(async {
            let tasks: Vec<_> = (0..16)
                .map(|t| {
                    let (writer, given_up) = (Arc::clone(&writer), Arc::clone(&given_up));
                    tokio::spawn(async move {
                        for i in 0..EACH {
                            let line = format!("{{\"t\":\"a{t}\",\"i\":{i}}}\n");
                            let stored = writer.write_line(line.as_bytes());
                            if (t + i) % 3 == 0 {
                                // Polled once, then dropped if still waiting.
                                tokio::select! {
                                    biased;
                                    r = stored => r.unwrap(),
                                    () = std::future::ready(()) => {
                                        given_up.fetch_add(1, Ordering::SeqCst);
                                    }
                                }
                            } else {
                                stored.await.unwrap();
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(
            given_up.load(Ordering::SeqCst) > 0,
            "no wait was given up: the test did not test that"
        );
        assert!(writer.lock().open.is_empty(), "lines left unstored");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut seen = std::collections::HashSet::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("whole lines");
            assert!(
                seen.insert((v["t"].to_string(), v["i"].as_u64().unwrap())),
                "twice: {line}"
            );
        }
        assert_eq!(seen.len(), 18 * EACH);
        assert!(writes(&writer) < 18 * EACH, "records shared no write");
    }
}
