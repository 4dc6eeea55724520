//! The chained, durable audit log: a bounded queue in front of one writer thread.
//!
//! Producers serialize their record, put it on a bounded queue (blocking while it is full:
//! back-pressure, never a drop) and wait for the writer's acknowledgement. The writer takes
//! every queued record at once (group commit), gives each its `seq` and `prev_hash` in arrival
//! order, hashes it (see [`crate::audit::chain`] for the canonical form), adds a signed
//! checkpoint every `checkpoint_every` records, writes the batch, flushes or fsyncs once, and
//! only then acknowledges the batch. A batch that cannot be stored is rolled back whole and
//! every producer in it gets the error, so the chain on disk never has a gap or a fork.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use ed25519_dalek::SigningKey;

use super::chain::{self, Checkpoint, CheckpointLine, GENESIS_HASH};
use super::{AuditError, AuditEvent, AuditSink};

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
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut file = open_append(&path).map_err(err)?;
        let head = recover(&mut file, &path)?;
        let len = file.metadata().map_err(err)?.len();
        let sidecar_path = checkpoints_path(&path);
        let sidecar = open_append(&sidecar_path)
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

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true).read(true);
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
    let event: AuditEvent = serde_json::from_slice(line).map_err(|_| damaged())?;
    Ok(ChainHead {
        seq: event.seq,
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

type Ack = SyncSender<Result<u64, AuditError>>;

enum Msg {
    Record(Vec<u8>, Ack),
    Checkpoint(Ack),
}

/// A record on its way to the log: [`Receipt::wait`] returns its `seq` once it is stored as
/// durably as configured.
#[derive(Debug)]
#[must_use = "a record is not known to be stored until its receipt is waited for"]
pub struct Receipt(Receiver<Result<u64, AuditError>>);

impl Receipt {
    /// Blocks until the record's batch is stored; returns the record's `seq`.
    pub fn wait(self) -> Result<u64, AuditError> {
        self.0
            .recv()
            .unwrap_or_else(|_| Err(AuditError("the audit writer stopped".into())))
    }
}

/// The tamper-evident, loss-free audit log (see the module docs). Cheap to clone; the writer
/// stops, after a final checkpoint and flush, on [`AuditLog::close`] or when the last clone is
/// dropped.
#[derive(Clone, Debug)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    tx: RwLock<Option<SyncSender<Msg>>>,
    worker: Mutex<Option<JoinHandle<Result<(), AuditError>>>>,
    path: Option<PathBuf>,
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
        let (tx, rx) = sync_channel(config.queue);
        let worker = std::thread::Builder::new()
            .name("mcp-secure-audit".into())
            .spawn(move || {
                Writer {
                    store,
                    head,
                    config,
                    since_checkpoint: 0,
                }
                .run(rx)
            })
            .map_err(|e| AuditError(format!("cannot start the audit writer: {e}")))?;
        Ok(AuditLog {
            shared: Arc::new(Shared {
                tx: RwLock::new(Some(tx)),
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
    /// stored; many receipts may be outstanding at once.
    pub fn submit(&self, event: &AuditEvent) -> Result<Receipt, AuditError> {
        let body = chain::open_body(event)?;
        let (ack, receipt) = sync_channel(1);
        self.send(Msg::Record(body, ack))?;
        Ok(Receipt(receipt))
    }

    /// Writes a checkpoint now (if any record is not yet covered by one) and waits for it;
    /// returns the `seq` it covers.
    pub fn checkpoint(&self) -> Result<u64, AuditError> {
        let (ack, receipt) = sync_channel(1);
        self.send(Msg::Checkpoint(ack))?;
        Receipt(receipt).wait()
    }

    /// Stops taking records, writes what is queued and a final checkpoint, flushes, and waits
    /// for the writer to finish. Later records are refused. Calling it again does nothing.
    pub fn close(&self) -> Result<(), AuditError> {
        self.shared.close()
    }

    fn send(&self, msg: Msg) -> Result<(), AuditError> {
        let tx = self.shared.tx.read().unwrap_or_else(|p| p.into_inner());
        let tx = tx
            .as_ref()
            .ok_or_else(|| AuditError("the audit log is closed".into()))?;
        tx.send(msg)
            .map_err(|_| AuditError("the audit writer stopped".into()))
    }
}

impl Shared {
    fn close(&self) -> Result<(), AuditError> {
        drop(self.tx.write().unwrap_or_else(|p| p.into_inner()).take());
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
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
}

struct Writer<S> {
    store: S,
    head: ChainHead,
    config: AuditLogConfig,
    since_checkpoint: u64,
}

impl<S: LogStore> Writer<S> {
    fn run(mut self, rx: Receiver<Msg>) -> Result<(), AuditError> {
        if !self.head.checkpointed {
            // Records from before a crash are not covered yet: cover them at the next chance.
            self.since_checkpoint = 1;
        }
        let mut batch = Vec::with_capacity(self.config.max_batch);
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while batch.len() < self.config.max_batch {
                match rx.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            // A failed batch was reported to each of its producers; the writer goes on.
            let _ = self.write(&mut batch);
        }
        // Clean shutdown: every queued record is written; close with a checkpoint.
        if self.since_checkpoint > 0 {
            let (ack, _receipt) = sync_channel(1);
            let mut last = vec![Msg::Checkpoint(ack)];
            return self.write(&mut last);
        }
        Ok(())
    }

    /// Writes one batch and acknowledges each of its messages.
    fn write(&mut self, batch: &mut Vec<Msg>) -> Result<(), AuditError> {
        let saved = (self.head.clone(), self.since_checkpoint);
        let mut out = Vec::with_capacity(batch.len() * 512);
        let mut checkpoints = Vec::new();
        let mut acks = Vec::with_capacity(batch.len());
        for msg in batch.drain(..) {
            match msg {
                Msg::Record(body, ack) => {
                    self.head.seq += 1;
                    self.head.hash = chain::seal(&body, self.head.seq, &self.head.hash, &mut out);
                    self.since_checkpoint += 1;
                    acks.push((ack, self.head.seq));
                    if self.since_checkpoint >= self.config.checkpoint_every {
                        self.add_checkpoint(&mut out, &mut checkpoints);
                    }
                }
                Msg::Checkpoint(ack) => {
                    if self.since_checkpoint > 0 {
                        self.add_checkpoint(&mut out, &mut checkpoints);
                    }
                    acks.push((ack, self.head.seq));
                }
            }
        }
        let result = if out.is_empty() {
            Ok(())
        } else {
            self.store
                .write_batch(&out, &checkpoints, self.config.durability)
                .map_err(|e| {
                    (self.head, self.since_checkpoint) = saved;
                    AuditError(format!("cannot write the audit log: {e}"))
                })
        };
        for (ack, seq) in acks {
            let _ = ack.send(
                result
                    .as_ref()
                    .map(|()| seq)
                    .map_err(|e| AuditError(e.0.clone())),
            );
        }
        result
    }

    fn add_checkpoint(&mut self, out: &mut Vec<u8>, checkpoints: &mut Vec<Vec<u8>>) {
        let line = Checkpoint::new(
            self.head.seq,
            &self.head.hash,
            self.config.signing_key.as_ref(),
        )
        .to_line();
        out.extend_from_slice(&line);
        checkpoints.push(line);
        self.since_checkpoint = 0;
        self.head.checkpointed = true;
    }
}
