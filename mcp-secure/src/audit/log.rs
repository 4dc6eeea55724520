//! The chained, durable audit log: a bounded queue in front of one writer thread.
//!
//! Producers serialize their record on their own thread (in parallel; the writer, which is
//! serial, only seals) and append it to a bounded queue, blocking while it is full
//! (back-pressure, never a drop). The writer takes every queued record at once (group commit),
//! gives each its `seq` and `prev_hash` in arrival order, hashes it (see
//! [`crate::audit::chain`] for the canonical form), adds a signed checkpoint every
//! `checkpoint_every` records, and writes the records in store batches of at most `max_batch`,
//! flushing or fsyncing once per store batch. Only then are that store batch's records
//! acknowledged. A store batch that cannot be stored is rolled back whole and every producer
//! in it gets the error, so the chain on disk never has a gap or a fork; the writer goes on
//! with the next records.
//!
//! **Wake-ups are per batch, not per record.** The queue is one `Mutex` around a `Vec` of
//! records (their serialized bytes in one shared buffer) that the writer swaps out whole. The
//! writer is woken only when the queue turns non-empty while it is idle; producers blocked on a
//! full queue are woken together (`notify_all`) once per hand-off. All the records of one
//! hand-off share one outcome: a [`Receipt`] is that outcome plus the record's index in it, and
//! [`Receipt::wait`] sleeps on the outcome's condition variable, which the writer signals once
//! per store batch (and not at all when no receipt is waiting). No channel or allocation per
//! record is needed to acknowledge it.
//!
//! If the writer dies (a panicking [`LogStore`]), every record it held or that is still queued
//! is failed ("the audit writer stopped"), so no receipt waits forever and none reports a
//! record as stored that was not. [`AuditLog::close`] refuses new records (producers still
//! blocked on a full queue included), writes everything already queued, adds a final
//! checkpoint and flushes.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use ed25519_dalek::SigningKey;
use futures::future::BoxFuture;

use super::chain::{self, Checkpoint, CheckpointLine, GENESIS_HASH};
use super::{AuditError, AuditEvent, AuditEventRef, AuditSink};

/// How far a batch is pushed before its records are acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Handed to the operating system (`write`): survives a crash of the process, not of the
    /// machine.
    #[default]
    Flush,
    /// `fsync`ed: survives a power loss.
    Fsync,
}

/// Settings of an [`AuditLog`].
#[derive(Clone)]
pub struct AuditLogConfig {
    durability: Durability,
    queue: usize,
    max_batch: usize,
    checkpoint_every: u64,
    signing_key: Option<SigningKey>,
}

impl std::fmt::Debug for AuditLogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLogConfig")
            .field("durability", &self.durability)
            .field("queue", &self.queue)
            .field("max_batch", &self.max_batch)
            .field("checkpoint_every", &self.checkpoint_every)
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

impl Default for AuditLogConfig {
    fn default() -> Self {
        AuditLogConfig {
            durability: Durability::Flush,
            queue: 4096,
            max_batch: 1024,
            checkpoint_every: 1000,
            signing_key: None,
        }
    }
}

impl AuditLogConfig {
    /// `Flush` (default) or `Fsync`, once per batch.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Records that may wait for the writer (default 4096); producers block beyond it.
    pub fn queue(mut self, records: usize) -> Self {
        self.queue = records.max(1);
        self
    }

    /// The most records written per flush (default 1024).
    pub fn max_batch(mut self, records: usize) -> Self {
        self.max_batch = records.max(1);
        self
    }

    /// A checkpoint every `records` records (default 1000), and one on clean shutdown.
    pub fn checkpoint_every(mut self, records: u64) -> Self {
        self.checkpoint_every = records.max(1);
        self
    }

    /// The Ed25519 key that signs checkpoints. Without one, checkpoints are unsigned and prove
    /// only what the chain proves (anyone able to rewrite the whole file can forge them).
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.signing_key = Some(key);
        self
    }
}

/// Where the chain ends: the last record's `seq` and `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainHead {
    /// The last record's sequence number (0 for an empty log).
    pub seq: u64,
    /// The last record's hash ([`GENESIS_HASH`] for an empty log).
    pub hash: String,
    /// Whether the last line is a checkpoint covering `seq`.
    pub checkpointed: bool,
}

impl ChainHead {
    /// The head of an empty log.
    pub fn genesis() -> Self {
        ChainHead {
            seq: 0,
            hash: GENESIS_HASH.into(),
            checkpointed: true,
        }
    }
}

/// Storage under an [`AuditLog`]: a batch is stored whole or not at all.
pub trait LogStore: Send + 'static {
    /// Appends `records` (complete lines) and then `checkpoints` (complete checkpoint lines,
    /// already part of `records`, for stores that keep them apart as well), pushed as far as
    /// `durability` says. On error nothing of the batch may remain.
    fn write_batch(
        &mut self,
        records: &[u8],
        checkpoints: &[Vec<u8>],
        durability: Durability,
    ) -> std::io::Result<()>;
}

/// The path of the file beside a log that repeats its checkpoints (`<log>.checkpoints`).
///
/// The log alone cannot show that it was cut after its last checkpoint was written; this file
/// can, as long as it is kept where whoever can cut the log cannot (ship it elsewhere, or copy
/// it off the machine).
pub fn checkpoints_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".checkpoints");
    PathBuf::from(name)
}

/// A JSON-lines file (mode 0600) plus its checkpoints file.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    file: File,
    len: u64,
    sidecar: File,
    sidecar_len: u64,
    poisoned: bool,
}

impl FileStore {
    /// Opens (creating) a log and finds where its chain ends. A torn last line, left by a
    /// crash in the middle of a write, is cut off (it was never acknowledged).
    pub fn open(path: impl AsRef<Path>) -> Result<(FileStore, ChainHead), AuditError> {
        let path = path.as_ref().to_path_buf();
        let err = |e: std::io::Error| AuditError(format!("{}: {e}", path.display()));
        let mut file = open_append(&path, true).map_err(err)?;
        let head = recover(&mut file, &path)?;
        let len = file.metadata().map_err(err)?.len();
        let sidecar_path = checkpoints_path(&path);
        let sidecar = open_append(&sidecar_path, true)
            .map_err(|e| AuditError(format!("{}: {e}", sidecar_path.display())))?;
        let sidecar_len = sidecar.metadata().map_err(err)?.len();
        Ok((
            FileStore {
                path,
                file,
                len,
                sidecar,
                sidecar_len,
                poisoned: false,
            },
            head,
        ))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens the file at `path` to append to (and to `read` if asked), creating it (mode 0600)
/// and its folder if need be: every audit file the crate writes is opened this way.
pub(super) fn open_append(path: &Path, read: bool) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true).read(read);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Reads the last complete line of the log; cuts a torn tail.
fn recover(file: &mut File, path: &Path) -> Result<ChainHead, AuditError> {
    let err = |e: std::io::Error| AuditError(format!("{}: {e}", path.display()));
    let len = file.metadata().map_err(err)?.len();
    if len == 0 {
        return Ok(ChainHead::genesis());
    }
    let mut chunk = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(chunk);
        let mut tail = Vec::new();
        file.seek(SeekFrom::Start(start)).map_err(err)?;
        file.take(len - start).read_to_end(&mut tail).map_err(err)?;
        let complete = tail.iter().rposition(|&b| b == b'\n').map(|i| i + 1);
        if let Some(end) = complete {
            if end < tail.len() {
                let keep = start + end as u64;
                tracing::warn!(log = %path.display(), cut = len - keep, "cutting a torn last line left by a crash");
                file.set_len(keep).map_err(err)?;
            }
            let lines = &tail[..end - 1];
            let last_start = lines.iter().rposition(|&b| b == b'\n').map(|i| i + 1);
            if last_start.is_some() || start == 0 {
                return head_of(&lines[last_start.unwrap_or(0)..], path);
            }
        } else if start == 0 {
            tracing::warn!(log = %path.display(), "cutting a torn only line left by a crash");
            file.set_len(0).map_err(err)?;
            return Ok(ChainHead::genesis());
        }
        chunk *= 4;
    }
}

fn head_of(line: &[u8], path: &Path) -> Result<ChainHead, AuditError> {
    let damaged = || {
        AuditError(format!(
            "{}: the last line is not an intact record; run `audit verify`",
            path.display()
        ))
    };
    if let Ok(cp) = serde_json::from_slice::<CheckpointLine>(line) {
        return Ok(ChainHead {
            seq: cp.checkpoint.seq,
            hash: cp.checkpoint.hash,
            checkpointed: true,
        });
    }
    let hash = chain::check_line_hash(line).map_err(|_| damaged())?;
    // Only `seq` is read: a record is as deep as its input and output, which may be deeper
    // than serde_json parses into a whole `AuditEvent` (its nesting limit), yet intact.
    // (Unknown fields are skipped without that limit.)
    #[derive(serde::Deserialize)]
    struct Seq {
        #[serde(default)]
        seq: u64,
    }
    let seq = match chain::line_fields(line) {
        Some(fields) => fields.seq,
        None => {
            serde_json::from_slice::<Seq>(line)
                .map_err(|_| damaged())?
                .seq
        }
    };
    Ok(ChainHead {
        seq,
        hash,
        checkpointed: false,
    })
}

impl LogStore for FileStore {
    fn write_batch(
        &mut self,
        records: &[u8],
        checkpoints: &[Vec<u8>],
        durability: Durability,
    ) -> std::io::Result<()> {
        if self.poisoned {
            return Err(std::io::Error::other(
                "an earlier failed write could not be undone; reopen the log",
            ));
        }
        let result = write_synced(&mut self.file, records, durability).and_then(|()| {
            let lines: Vec<u8> = checkpoints.concat();
            if lines.is_empty() {
                Ok(())
            } else {
                write_synced(&mut self.sidecar, &lines, durability)
            }
        });
        match result {
            Ok(()) => {
                self.len += records.len() as u64;
                self.sidecar_len += checkpoints.iter().map(|c| c.len() as u64).sum::<u64>();
                Ok(())
            }
            Err(e) => {
                // Undo whatever part reached the files, so the chain on disk stays whole.
                if self.file.set_len(self.len).is_err()
                    || self.sidecar.set_len(self.sidecar_len).is_err()
                {
                    self.poisoned = true;
                }
                Err(e)
            }
        }
    }
}

fn write_synced(file: &mut File, bytes: &[u8], durability: Durability) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.flush()?;
    if durability == Durability::Fsync {
        file.sync_data()?;
    }
    Ok(())
}

/// What a producer hands to the writer.
enum Item {
    /// A record its producer serialized: an open body (see [`chain::open_body_into`]) at this range
    /// of the queue's `bodies`.
    Body(Range<usize>),
    /// A request for a checkpoint.
    Checkpoint,
}

/// Everything the writer took from the queue at once. Its [`Receipt`]s wait here; the writer
/// publishes the outcome one store batch (`max_batch` items) at a time and wakes the waiting
/// receipts once per store batch, not once per record.
struct Batch {
    state: Mutex<Outcome>,
    done: Condvar,
}

/// How the items of a batch ended, as far as the writer got.
#[derive(Default)]
struct Outcome {
    /// Items `0..resolved` are stored or failed.
    resolved: usize,
    /// By item: the record's `seq` (a checkpoint request's: the `seq` the checkpoint covers).
    seqs: Vec<u64>,
    /// Items that were not stored, by index range, and why. Looked up before `seqs`.
    failed: Vec<(Range<usize>, Arc<str>)>,
    /// Receipts blocked in [`Receipt::wait`] (no wake-up call when there are none).
    waiters: usize,
    /// Tasks awaiting [`Receipt::stored`], woken (and dropped from here) at every publish.
    wakers: Vec<Waker>,
    /// How many times `wakers` was emptied: a task registered in the current round is still
    /// in the list and need not add its waker again.
    wake_round: u64,
}

impl Outcome {
    fn take_wakers(&mut self) -> Vec<Waker> {
        if self.wakers.is_empty() {
            return Vec::new();
        }
        self.wake_round += 1;
        std::mem::take(&mut self.wakers)
    }

    fn result(&self, index: usize) -> Result<u64, AuditError> {
        if let Some((_, why)) = self.failed.iter().find(|(r, _)| r.contains(&index)) {
            return Err(AuditError(why.to_string()));
        }
        self.seqs
            .get(index)
            .copied()
            .ok_or_else(|| AuditError(STOPPED.into()))
    }
}

impl Batch {
    fn new() -> Arc<Self> {
        Arc::new(Batch {
            state: Mutex::new(Outcome::default()),
            done: Condvar::new(),
        })
    }

    /// Publishes the outcome of the next items (`seqs` has one entry per item; `failed`, in
    /// batch indices, those of them not stored) and wakes the receipts waiting.
    fn publish(&self, seqs: &[u64], failed: &[(Range<usize>, Arc<str>)]) {
        let mut state = lock(&self.state);
        state.resolved += seqs.len();
        state.seqs.extend_from_slice(seqs);
        state.failed.extend_from_slice(failed);
        let wake = state.waiters > 0;
        let tasks = state.take_wakers();
        drop(state);
        if wake {
            self.done.notify_all();
        }
        tasks.into_iter().for_each(Waker::wake);
    }

    /// Fails every item not yet published (the writer is gone).
    fn abandon(&self) {
        let mut state = lock(&self.state);
        let from = state.resolved;
        state.failed.push((from..usize::MAX, STOPPED.into()));
        state.resolved = usize::MAX;
        let tasks = state.take_wakers();
        drop(state);
        self.done.notify_all();
        tasks.into_iter().for_each(Waker::wake);
    }
}

/// The most capacity a reused buffer keeps (queue bodies, store batch).
const KEEP_BUFFER: usize = 8 << 20;

const STOPPED: &str = "the audit writer stopped";
const CLOSED: &str = "the audit log is closed";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// A record on its way to the log: [`Receipt::wait`] returns its `seq` once it is stored as
/// durably as configured, or the error that kept it (and the rest of its batch) out.
#[must_use = "a record is not known to be stored until its receipt is waited for"]
pub struct Receipt {
    batch: Arc<Batch>,
    index: usize,
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receipt")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Receipt {
    /// Blocks until the record's batch is stored; returns the record's `seq`.
    pub fn wait(self) -> Result<u64, AuditError> {
        let mut state = lock(&self.batch.state);
        loop {
            if self.index < state.resolved {
                return state.result(self.index);
            }
            state.waiters += 1;
            state = wait(&self.batch.done, state);
            state.waiters -= 1;
        }
    }

    /// Waits, without blocking the thread, until the record's batch is stored; returns the
    /// record's `seq`. For async callers: a task waiting here leaves its runtime thread free,
    /// so the records of many concurrent calls share one write (and one `fsync`). Dropping the
    /// future does not take the record back: it is written all the same.
    pub fn stored(self) -> Stored {
        Stored {
            receipt: self,
            registered: None,
        }
    }
}

/// The future of [`Receipt::stored`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Stored {
    receipt: Receipt,
    /// The round of the batch's waker list this task's waker is in, and that waker.
    registered: Option<(u64, Waker)>,
}

impl Future for Stored {
    type Output = Result<u64, AuditError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut state = lock(&this.receipt.batch.state);
        if this.receipt.index < state.resolved {
            return Poll::Ready(state.result(this.receipt.index));
        }
        let listed = this
            .registered
            .as_ref()
            .is_some_and(|(round, w)| *round == state.wake_round && w.will_wake(cx.waker()));
        if !listed {
            state.wakers.push(cx.waker().clone());
            this.registered = Some((state.wake_round, cx.waker().clone()));
        }
        Poll::Pending
    }
}

/// The bounded queue between the producers and the writer.
struct Queue {
    state: Mutex<QueueState>,
    /// The writer waits here for work.
    work: Condvar,
    /// Producers wait here while the queue is full.
    space: Condvar,
    capacity: usize,
}

struct QueueState {
    /// Items not yet taken by the writer, in arrival order.
    pending: Vec<Item>,
    /// The open bodies of the `pending` records, one after the other (one buffer, not an
    /// allocation per record, freed by another thread).
    bodies: Vec<u8>,
    /// The batch `pending` will become: its receipts' outcome.
    batch: Arc<Batch>,
    /// [`AuditLog::close`] was called: no more items are taken.
    closed: bool,
    /// The writer is gone (closed and drained, or it panicked).
    stopped: bool,
    /// The writer waits on `work` (a producer adding the first item wakes it).
    writer_idle: bool,
    /// Producers waiting on `space`.
    blocked: usize,
}

impl Queue {
    /// Adds a record (its open body) or, for `None`, a checkpoint request, blocking while the
    /// queue is full.
    fn push(&self, record: Option<&[u8]>) -> Result<Receipt, AuditError> {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return Err(AuditError(CLOSED.into()));
            }
            if state.stopped {
                return Err(AuditError(STOPPED.into()));
            }
            if state.pending.len() < self.capacity {
                break;
            }
            state.blocked += 1;
            state = wait(&self.space, state);
            state.blocked -= 1;
        }
        let index = state.pending.len();
        let item = match record {
            Some(body) => {
                let start = state.bodies.len();
                state.bodies.extend_from_slice(body);
                Item::Body(start..state.bodies.len())
            }
            None => Item::Checkpoint,
        };
        state.pending.push(item);
        let batch = Arc::clone(&state.batch);
        let wake = std::mem::take(&mut state.writer_idle);
        drop(state);
        if wake {
            self.work.notify_one();
        }
        Ok(Receipt { batch, index })
    }

    /// Stops taking items and wakes everyone who waits for the queue.
    fn close(&self) {
        lock(&self.state).closed = true;
        self.work.notify_one();
        self.space.notify_all();
    }
}

/// The tamper-evident, loss-free audit log (see the module docs). Cheap to clone; the writer
/// stops, after a final checkpoint and flush, on [`AuditLog::close`] or when the last clone is
/// dropped.
#[derive(Clone, Debug)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Arc<Queue>,
    worker: Mutex<Option<JoinHandle<Result<(), AuditError>>>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("queue", &self.queue.capacity)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (creating) a JSON-lines log at `path`, continuing its chain.
    pub fn open(path: impl AsRef<Path>, config: AuditLogConfig) -> Result<Self, AuditError> {
        let (store, head) = FileStore::open(path.as_ref())?;
        let mut log = Self::with_store(store, head, config)?;
        if let Some(shared) = Arc::get_mut(&mut log.shared) {
            shared.path = Some(path.as_ref().to_path_buf());
        }
        Ok(log)
    }

    /// A log over any store, continuing the chain at `head`.
    pub fn with_store(
        store: impl LogStore,
        head: ChainHead,
        config: AuditLogConfig,
    ) -> Result<Self, AuditError> {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                pending: Vec::with_capacity(config.queue),
                bodies: Vec::new(),
                batch: Batch::new(),
                closed: false,
                stopped: false,
                writer_idle: false,
                blocked: 0,
            }),
            work: Condvar::new(),
            space: Condvar::new(),
            capacity: config.queue,
        });
        let writer = Writer {
            queue: Arc::clone(&queue),
            store,
            head,
            since_checkpoint: 0,
            current: None,
            out: Vec::new(),
            checkpoints: Vec::new(),
            seqs: Vec::new(),
            failed: Vec::new(),
            config,
        };
        let worker = std::thread::Builder::new()
            .name("mcp-secure-audit".into())
            .spawn(move || writer.run())
            .map_err(|e| AuditError(format!("cannot start the audit writer: {e}")))?;
        Ok(AuditLog {
            shared: Arc::new(Shared {
                queue,
                worker: Mutex::new(Some(worker)),
                path: None,
            }),
        })
    }

    /// The file's path, for a log made by [`AuditLog::open`].
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// Queues a record, blocking while the queue is full. Wait on the receipt to know it is
    /// stored; many receipts may be outstanding at once, and waited for in any order.
    /// Takes an [`AuditEvent`] (`&event`) or a borrowed [`AuditEventRef`].
    pub fn submit<'e>(&self, event: impl Into<AuditEventRef<'e>>) -> Result<Receipt, AuditError> {
        let event = event.into();
        with_scratch(|body| {
            chain::open_body_into(event, body)?;
            self.shared.queue.push(Some(body))
        })
    }

    /// Writes a checkpoint now (if any record is not yet covered by one) and waits for it;
    /// returns the `seq` it covers.
    pub fn checkpoint(&self) -> Result<u64, AuditError> {
        self.shared.queue.push(None)?.wait()
    }

    /// Stops taking records, writes what is queued and a final checkpoint, flushes, and waits
    /// for the writer to finish. Later records are refused, and so are producers still blocked
    /// on a full queue. Calling it again does nothing.
    pub fn close(&self) -> Result<(), AuditError> {
        self.shared.close()
    }
}

/// Runs `f` with this thread's (empty) serialization buffer, so that serializing a record
/// allocates nothing in the steady state; with a fresh one where the thread's cannot be used.
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let mut f = Some(f);
    let done = SCRATCH.try_with(|cell| {
        let mut buffer = cell.try_borrow_mut().ok()?;
        let f = f.take()?;
        buffer.clear();
        let result = f(&mut buffer);
        if buffer.capacity() > 64 * 1024 {
            *buffer = Vec::new(); // an outsized record: do not keep its buffer
        }
        Some(result)
    });
    match (done, f) {
        (Ok(Some(result)), _) => result,
        (_, Some(f)) => f(&mut Vec::new()),
        (_, None) => unreachable!("`f` is taken only by a run that returns its result"),
    }
}

impl Shared {
    fn close(&self) -> Result<(), AuditError> {
        self.queue.close();
        let worker = lock(&self.worker).take();
        match worker.map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(AuditError("the audit writer panicked".into())),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing the audit log failed");
        }
    }
}

impl AuditSink for AuditLog {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        self.submit(event)?.wait().map(drop)
    }

    /// Queues the record at once (blocking only while the queue is full) and waits for its
    /// batch without blocking the thread.
    fn record_async<'a>(
        &'a self,
        record: AuditEventRef<'_>,
    ) -> BoxFuture<'a, Result<(), AuditError>> {
        match self.submit(record) {
            Ok(receipt) => Box::pin(async move { receipt.stored().await.map(drop) }),
            Err(e) => super::sink::settled(Err(e)),
        }
    }
}

struct Writer<S> {
    queue: Arc<Queue>,
    store: S,
    head: ChainHead,
    config: AuditLogConfig,
    since_checkpoint: u64,
    /// The batch being written (its unpublished items are failed by `Drop` if the writer
    /// unwinds).
    current: Option<Arc<Batch>>,
    /// The lines of the store batch being written, and its checkpoint lines.
    out: Vec<u8>,
    checkpoints: Vec<Vec<u8>>,
    /// The outcome of the store batch being written, by item, and its failures.
    seqs: Vec<u64>,
    failed: Vec<(Range<usize>, Arc<str>)>,
}

impl<S: LogStore> Writer<S> {
    fn run(mut self) -> Result<(), AuditError> {
        if !self.head.checkpointed {
            // Records from before a crash are not covered yet: cover them at the next chance.
            self.since_checkpoint = 1;
        }
        let mut items = Vec::with_capacity(self.queue.capacity);
        let mut bodies = Vec::new();
        while let Some(batch) = self.take(&mut items, &mut bodies) {
            let batch = self.current.insert(batch).clone();
            for (n, chunk) in items.chunks(self.config.max_batch).enumerate() {
                // A failed store batch is reported to each of its producers; the writer goes on.
                let _ = self.write(chunk, &bodies, n * self.config.max_batch);
                batch.publish(&self.seqs, &self.failed);
            }
            self.current = None;
            items.clear();
            bodies.clear();
            // Buffers are reused from batch to batch; an outsized one is not kept.
            bodies.shrink_to(KEEP_BUFFER);
            self.out.shrink_to(KEEP_BUFFER);
        }
        // Clean shutdown: every queued record is written; close with a checkpoint.
        if self.since_checkpoint > 0 {
            return self.write(&[Item::Checkpoint], &[], 0);
        }
        Ok(())
    }

    /// Waits for items and swaps them all, with their bodies, into `items` and `bodies` (empty,
    /// and becoming the queue's next buffers); returns their batch, or `None` once the log is
    /// closed and drained. Producers blocked on a full queue are woken once here, not once per
    /// item.
    fn take(&self, items: &mut Vec<Item>, bodies: &mut Vec<u8>) -> Option<Arc<Batch>> {
        let next = Batch::new();
        let mut state = lock(&self.queue.state);
        while state.pending.is_empty() {
            if state.closed {
                return None;
            }
            state.writer_idle = true;
            state = wait(&self.queue.work, state);
        }
        state.writer_idle = false;
        std::mem::swap(&mut state.pending, items);
        std::mem::swap(&mut state.bodies, bodies);
        let batch = std::mem::replace(&mut state.batch, next);
        let wake = state.blocked > 0;
        drop(state);
        if wake {
            self.queue.space.notify_all();
        }
        Some(batch)
    }

    /// Writes `chunk` (at most `max_batch` items, starting at index `first` of their batch) as
    /// one store batch, leaving each item's outcome in `seqs` and `failed`. A store batch that
    /// cannot be stored is rolled back whole: the chain goes on from where it was before it.
    fn write(&mut self, chunk: &[Item], bodies: &[u8], first: usize) -> Result<(), AuditError> {
        let saved = (self.head.clone(), self.since_checkpoint);
        self.out.clear();
        self.checkpoints.clear();
        self.seqs.clear();
        self.failed.clear();
        for item in chunk {
            let start = self.out.len();
            match item {
                Item::Body(body) => self.out.extend_from_slice(&bodies[body.clone()]),
                Item::Checkpoint => {
                    if self.since_checkpoint > 0 {
                        self.add_checkpoint();
                    }
                    self.seqs.push(self.head.seq);
                    continue;
                }
            }
            self.head.seq += 1;
            chain::seal_in_place(&mut self.out, start, self.head.seq, &mut self.head.hash);
            self.head.checkpointed = false;
            self.since_checkpoint += 1;
            self.seqs.push(self.head.seq);
            if self.since_checkpoint >= self.config.checkpoint_every {
                self.add_checkpoint();
            }
        }
        if self.out.is_empty() {
            return Ok(());
        }
        let written = self
            .store
            .write_batch(&self.out, &self.checkpoints, self.config.durability);
        written.map_err(|e| {
            (self.head, self.since_checkpoint) = saved;
            let why = format!("cannot write the audit log: {e}");
            self.failed
                .push((first..first + chunk.len(), why.as_str().into()));
            AuditError(why)
        })
    }

    fn add_checkpoint(&mut self) {
        let line = Checkpoint::new(
            self.head.seq,
            &self.head.hash,
            self.config.signing_key.as_ref(),
        )
        .to_line();
        self.out.extend_from_slice(&line);
        self.checkpoints.push(line);
        self.since_checkpoint = 0;
        self.head.checkpointed = true;
    }
}

impl<S> Drop for Writer<S> {
    /// The writer is gone (done, or unwinding from a panic in its store): nothing it took or
    /// that is still queued can be stored any more, so every waiting producer is told.
    fn drop(&mut self) {
        if let Some(batch) = self.current.take() {
            batch.abandon();
        }
        let mut state = lock(&self.queue.state);
        state.stopped = true;
        state.pending.clear();
        state.bodies.clear();
        let batch = std::mem::replace(&mut state.batch, Batch::new());
        drop(state);
        batch.abandon();
        self.queue.space.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    use super::*;
    use crate::audit::verify_log;

    fn event(id: String) -> AuditEvent {
        let mut e = AuditEvent::new(id, "update_order", "test");
        e.user = Some("alice".into());
        e.outcome = "ok".into();
        e
    }

    /// Record lines (not checkpoint lines) in a batch.
    fn records_in(batch: &[u8]) -> usize {
        batch
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty() && !l.starts_with(b"{\"checkpoint\""))
            .count()
    }

    /// A file store whose `fail_at`-th batch (counting from 1) fails; it says how many records
    /// that batch held.
    struct FailOnce {
        inner: FileStore,
        calls: usize,
        fail_at: usize,
        failed: Arc<AtomicUsize>,
    }

    impl LogStore for FailOnce {
        fn write_batch(
            &mut self,
            records: &[u8],
            checkpoints: &[Vec<u8>],
            durability: Durability,
        ) -> std::io::Result<()> {
            self.calls += 1;
            if self.calls == self.fail_at {
                self.failed.store(records_in(records), Ordering::SeqCst);
                return Err(std::io::Error::other("disk on fire"));
            }
            self.inner.write_batch(records, checkpoints, durability)
        }
    }

    #[test]
    fn a_failed_batch_fails_each_of_its_receipts_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (inner, head) = FileStore::open(&path).unwrap();
        let failed = Arc::new(AtomicUsize::new(usize::MAX));
        let store = FailOnce {
            inner,
            calls: 0,
            fail_at: 5,
            failed: failed.clone(),
        };
        // A queue larger than a batch: one hand-off is written as several store batches, and
        // only the failed one's receipts may err.
        let config = AuditLogConfig::default()
            .queue(64)
            .max_batch(16)
            .checkpoint_every(100);
        let log = AuditLog::with_store(store, head, config).unwrap();
        let (producers, each) = (8, 2_000);
        let results: Vec<Result<u64, AuditError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..producers)
                .map(|p| {
                    let log = &log;
                    s.spawn(move || {
                        // Every receipt stays outstanding until all are submitted.
                        let receipts: Vec<Receipt> = (0..each)
                            .map(|n| log.submit(&event(format!("{p}-{n}"))).unwrap())
                            .collect();
                        receipts.into_iter().map(Receipt::wait).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        log.close().unwrap();

        let failed = failed.load(Ordering::SeqCst);
        assert!(failed > 0 && failed <= 16, "a batch of records failed");
        let errors: Vec<&AuditError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(
            errors.len(),
            failed,
            "every record of the failed batch is told"
        );
        assert!(errors.iter().all(|e| e.0.contains("disk on fire")));
        let mut seqs: Vec<u64> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .copied()
            .collect();
        seqs.sort_unstable();
        let stored = (producers * each - failed) as u64;
        assert_eq!(seqs, (1..=stored).collect::<Vec<_>>(), "no gap, no repeat");
        let report = verify_log(&path, None).unwrap();
        assert!(report.is_intact(), "{report}");
        assert_eq!((report.records, report.last_seq), (stored, stored));
        assert_eq!(report.unanchored, 0, "closed with a checkpoint");
    }

    /// A file store whose first batch reports how many records it holds and waits for the
    /// test's go-ahead; it counts the batches of records it writes.
    struct Gate {
        inner: FileStore,
        entered: Option<mpsc::Sender<usize>>,
        go: mpsc::Receiver<()>,
        batches: Arc<AtomicUsize>,
    }

    impl Gate {
        /// A gate, the receiver its first batch reports to, and the sender that opens it.
        fn new(inner: FileStore) -> (Gate, mpsc::Receiver<usize>, mpsc::Sender<()>) {
            let (entered_tx, entered) = mpsc::channel();
            let (go, go_rx) = mpsc::channel();
            let gate = Gate {
                inner,
                entered: Some(entered_tx),
                go: go_rx,
                batches: Arc::new(AtomicUsize::new(0)),
            };
            (gate, entered, go)
        }
    }

    impl LogStore for Gate {
        fn write_batch(
            &mut self,
            records: &[u8],
            checkpoints: &[Vec<u8>],
            durability: Durability,
        ) -> std::io::Result<()> {
            if let Some(entered) = self.entered.take() {
                entered.send(records_in(records)).unwrap();
                self.go.recv().unwrap();
            }
            if records_in(records) > 0 {
                self.batches.fetch_add(1, Ordering::SeqCst);
            }
            self.inner.write_batch(records, checkpoints, durability)
        }
    }

    /// Spins (no timing) until the queue's state satisfies `done`.
    fn until(log: &AuditLog, done: impl Fn(&QueueState) -> bool) {
        while !done(&lock(&log.shared.queue.state)) {
            std::thread::yield_now();
        }
    }

    #[test]
    fn close_refuses_producers_blocked_on_a_full_queue_and_writes_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (inner, head) = FileStore::open(&path).unwrap();
        let (store, entered, go) = Gate::new(inner);
        let config = AuditLogConfig::default().queue(4).max_batch(4);
        let log = AuditLog::with_store(store, head, config).unwrap();
        let producers = 6;
        let (receipts, refusals) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..producers)
                .map(|p| {
                    let log = &log;
                    s.spawn(move || {
                        let mut receipts = Vec::new();
                        for n in 0.. {
                            match log.submit(&event(format!("{p}-{n}"))) {
                                Ok(r) => receipts.push(r),
                                Err(e) => return (receipts, e),
                            }
                        }
                        unreachable!()
                    })
                })
                .collect();
            // The writer is stuck in its first batch; the queue fills; every producer blocks.
            entered.recv().unwrap();
            until(&log, |q| q.blocked == producers && q.pending.len() == 4);
            let closer = s.spawn(|| log.close());
            until(&log, |q| q.closed);
            go.send(()).unwrap();
            closer.join().unwrap().unwrap();
            let mut receipts = Vec::new();
            let mut refusals = Vec::new();
            for h in handles {
                let (r, e) = h.join().unwrap();
                receipts.extend(r);
                refusals.push(e);
            }
            (receipts, refusals)
        });
        assert_eq!(refusals.len(), producers);
        assert!(refusals.iter().all(|e| e.0 == CLOSED), "{refusals:?}");
        // Everything accepted before the close is stored: the stuck batch and the full queue.
        let mut seqs: Vec<u64> = receipts.into_iter().map(|r| r.wait().unwrap()).collect();
        seqs.sort_unstable();
        let n = seqs.len() as u64;
        assert!(n >= 5, "the stuck batch and the full queue");
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
        assert_eq!(log.submit(&event("late".into())).unwrap_err().0, CLOSED);
        assert_eq!(log.checkpoint().unwrap_err().0, CLOSED);
        log.close().unwrap();
        let report = verify_log(&path, None).unwrap();
        assert!(report.is_intact(), "{report}");
        assert_eq!((report.records, report.unanchored), (n, 0));
    }

    #[test]
    fn async_waits_leave_the_thread_free_so_concurrent_records_share_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (inner, head) = FileStore::open(&path).unwrap();
        let (store, entered, go) = Gate::new(inner);
        let batches = store.batches.clone();
        let log = AuditLog::with_store(store, head, AuditLogConfig::default()).unwrap();
        let calls = 16;
        // One runtime thread: with a blocking wait, the first call would hold it until its
        // record is stored, and no other call could even hand its record over.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        std::thread::scope(|s| {
            let runner = s.spawn(|| {
                rt.block_on(futures::future::join_all((0..calls).map(|n| {
                    let log = log.clone();
                    async move {
                        log.record_async(event(format!("call-{n}")).borrowed())
                            .await
                    }
                })))
            });
            // The writer is stuck storing its first batch; every other call must still get
            // its record queued on the one thread.
            let first = entered.recv().unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let mut queued = first;
            while queued < calls && std::time::Instant::now() < deadline {
                std::thread::yield_now();
                queued = first + lock(&log.shared.queue.state).pending.len();
            }
            go.send(()).unwrap(); // (also when failing: the stuck call can then end)
            assert_eq!(
                queued, calls,
                "the calls waiting for the audit log blocked the runtime's thread"
            );
            let results = runner.join().unwrap();
            assert!(results.iter().all(Result::is_ok), "{results:?}");
        });
        // 16 records in at most two writes: the first batch, then all that queued behind it.
        let writes = batches.load(Ordering::SeqCst);
        assert!((1..=2).contains(&writes), "{writes} writes");
        log.close().unwrap();
        let report = verify_log(&path, None).unwrap();
        assert!(report.is_intact(), "{report}");
        assert_eq!(report.records, calls as u64);
    }

    #[test]
    fn a_dropped_async_wait_still_writes_its_record_and_a_closed_log_refuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, AuditLogConfig::default()).unwrap();
        // Polled once, then dropped: the record was handed over at the call.
        let mut pending = log.record_async(event("dropped".into()).borrowed());
        let waker = std::task::Waker::noop();
        let _ = pending.as_mut().poll(&mut Context::from_waker(waker));
        drop(pending);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(log.record_async(event("awaited".into()).borrowed()))
            .unwrap();
        log.close().unwrap();
        // A closed log refuses at once, through the future.
        let refused = rt.block_on(log.record_async(event("late".into()).borrowed()));
        assert_eq!(refused.unwrap_err().0, CLOSED);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"id\":\"dropped\""), "{text}");
        assert!(text.contains("\"id\":\"awaited\""));
        assert!(!text.contains("\"id\":\"late\""));
        let report = verify_log(&path, None).unwrap();
        assert!(report.is_intact() && report.records == 2, "{report}");
    }

    #[test]
    fn receipts_can_be_waited_for_in_any_order_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let config = AuditLogConfig::default().queue(50).max_batch(7);
        let log = AuditLog::open(&path, config).unwrap();
        let mut receipts: Vec<(u64, Receipt)> = (1..=3_000)
            .map(|n| (n, log.submit(&event(format!("c{n}"))).unwrap()))
            .collect();
        // One producer: seq is the submission order, whichever receipt is waited for first.
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for i in (1..receipts.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            receipts.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for (i, (n, receipt)) in receipts.into_iter().enumerate() {
            if i % 10 == 0 {
                drop(receipt); // never waited for: the record is stored all the same
            } else {
                assert_eq!(receipt.wait().unwrap(), n);
            }
        }
        assert_eq!(log.checkpoint().unwrap(), 3_000);
        let late = log.submit(&event("late".into())).unwrap();
        log.close().unwrap();
        assert_eq!(late.wait().unwrap(), 3_001, "a receipt outlives its log");
        let report = verify_log(&path, None).unwrap();
        assert!(report.is_intact(), "{report}");
        assert_eq!((report.records, report.unanchored), (3_001, 0));
    }

    /// A store that panics on its first batch, once the test lets it (so that the test can
    /// queue records before the writer dies).
    struct Panics(mpsc::Receiver<()>);

    impl LogStore for Panics {
        fn write_batch(&mut self, _: &[u8], _: &[Vec<u8>], _: Durability) -> std::io::Result<()> {
            let _ = self.0.recv();
            panic!("a broken store");
        }
    }

    #[test]
    fn a_writer_that_dies_fails_its_receipts_instead_of_leaving_them_waiting() {
        let (go, held) = mpsc::channel();
        let config = AuditLogConfig::default();
        let log = AuditLog::with_store(Panics(held), ChainHead::genesis(), config).unwrap();
        let first = log.submit(&event("a".into())).unwrap();
        let second = log.submit(&event("a2".into())).unwrap();
        go.send(()).unwrap();
        assert_eq!(first.wait().unwrap_err().0, STOPPED);
        // An async wait is woken with the same answer.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(second.stored()).unwrap_err().0, STOPPED);
        until(&log, |q| q.stopped);
        assert_eq!(log.submit(&event("b".into())).unwrap_err().0, STOPPED);
        assert!(log.close().unwrap_err().0.contains("panicked"));
    }
}
