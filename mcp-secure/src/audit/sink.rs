use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use super::event::JsonForm;
use super::group::{GroupWriter, LinesFile};
use super::log::{open_append, with_scratch};
use super::{AuditEvent, AuditEventRef};

/// An audit sink failed to record an event.
#[derive(Debug, thiserror::Error)]
#[error("audit sink failed: {0}")]
pub struct AuditError(pub String);

/// The future of a record whose outcome is known when `record_async` returns. A stored
/// record's future is [`AlreadyStored`], which holds nothing, so boxing it allocates nothing: a
/// call that finds the sink idle and writes its own record pays no allocation to say so.
pub(super) fn settled<'a>(
    outcome: Result<(), AuditError>,
) -> BoxFuture<'a, Result<(), AuditError>> {
    match outcome {
        Ok(()) => Box::pin(AlreadyStored),
        Err(e) => Box::pin(std::future::ready(Err(e))),
    }
}

/// A record known to be stored (see [`settled`]).
struct AlreadyStored;

impl std::future::Future for AlreadyStored {
    type Output = Result<(), AuditError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Where audit records go. `record` returns only when the record is stored as well as the
/// sink can store it; an error makes the server refuse calls that need a write-ahead record.
pub trait AuditSink: Send + Sync + 'static {
    /// Stores one record.
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError>;

    /// Stores one record, borrowed, for async callers: the server hands every record to its
    /// sink this way, built from what the call holds (see [`AuditEventRef`]). The record is
    /// taken when this is called (a dropped future does not take it back); the future resolves
    /// once it is stored. The default makes the owned record and stores it with
    /// [`AuditSink::record`] right away. The chained [`AuditLog`](crate::audit::AuditLog) and
    /// [`JsonLinesSink`] serialize straight from the borrowed record, and the log waits for its
    /// writer without blocking the runtime's thread, so concurrent calls share a write.
    fn record_async<'a>(
        &'a self,
        record: AuditEventRef<'_>,
    ) -> BoxFuture<'a, Result<(), AuditError>> {
        settled(self.record(&record.to_event()))
    }
}

/// Emits each record as a `tracing` event at `info` (target `mcp_secure::audit`).
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

impl TracingSink {
    fn emit(record: AuditEventRef<'_>, json: &str) {
        tracing::info!(target: "mcp_secure::audit", tool = %record.tool, outcome = %record.outcome, record = %json);
    }
}

impl AuditSink for TracingSink {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        // The owned record's JSON keeps its chain fields, if it has any.
        Self::emit(event.borrowed(), &event.to_json()?);
        Ok(())
    }

    fn record_async<'a>(
        &'a self,
        record: AuditEventRef<'_>,
    ) -> BoxFuture<'a, Result<(), AuditError>> {
        settled(record.to_json().map(|json| Self::emit(record, &json)))
    }
}

/// Appends one JSON object per line to a file. A record is handed to the kernel (`write`, and
/// `fsync` if asked) before `record` returns or `record_async` resolves.
///
/// **Group commit.** The records of concurrent calls share one `write` (and one `fsync`): a
/// record that arrives while another caller is writing joins the next batch, which one of that
/// batch's own callers writes as soon as the write under way is over. An async caller waits
/// without blocking its runtime thread; a call alone pays exactly one `write`, as without
/// batching. A batch that cannot be written fails every record in it (each caller gets the
/// error), and the next write starts on a fresh line if the failed one stopped inside a line.
/// Every `write` is whole lines with `O_APPEND`, so lines from several processes never
/// interleave.
#[derive(Debug)]
pub struct JsonLinesSink {
    writer: GroupWriter<LinesFile>,
}

impl JsonLinesSink {
    /// Opens (creating, mode 0600) a file for appending.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = open_append(&path, false)?;
        let metadata = file.metadata()?;
        let torn = metadata.is_file() && ends_inside_a_line(&path, metadata.len())?;
        let mut lines = LinesFile::new(file, path, false);
        if torn {
            lines.set_torn();
        }
        Ok(JsonLinesSink {
            writer: GroupWriter::new(lines),
        })
    }

    /// Calls `fsync` after every write (durable across power loss, slower; concurrent records
    /// share one).
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.writer.store_mut().set_fsync(fsync);
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.writer.store().path()
    }
}

/// Whether the file at `path`, `len` bytes long, ends inside a line: a record cut short (by a
/// crash, or a write that failed) before it was opened. The next record must start with a
/// newline, or it would be glued to the cut one.
pub(super) fn ends_inside_a_line(path: &Path, len: u64) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if len == 0 {
        return Ok(false);
    }
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// Serializes a record's line (with its newline) into this thread's buffer and hands it to `f`.
pub(super) fn with_line<R>(
    write: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
    f: impl FnOnce(&[u8]) -> Result<R, AuditError>,
) -> Result<R, AuditError> {
    with_scratch(|line| {
        write(line).map_err(|e| AuditError(e.to_string()))?;
        line.push(b'\n');
        f(line)
    })
}

impl AuditSink for JsonLinesSink {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        with_line(
            |line| event.write_json(line, JsonForm::Whole),
            |line| self.writer.write_line_blocking(line),
        )
    }

    /// Appends the record at once; the future resolves when its batch is written (see the
    /// type's docs), without blocking the thread meanwhile.
    fn record_async<'a>(
        &'a self,
        record: AuditEventRef<'_>,
    ) -> BoxFuture<'a, Result<(), AuditError>> {
        match with_line(
            |line| record.write_json(line),
            |line| Ok(self.writer.write_line(line)),
        ) {
            Ok(pending) => pending.boxed(),
            Err(e) => settled(Err(e)),
        }
    }
}

/// Keeps records in memory; for tests and for embedding a server in another program.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    events: Arc<Mutex<Vec<AuditEvent>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the records so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl AuditSink for MemorySink {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.clone());
        Ok(())
    }
}

/// Sends every record to several sinks; fails if any fails (after trying all).
impl AuditSink for Vec<Arc<dyn AuditSink>> {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let mut first_error = None;
        for sink in self {
            if let Err(e) = sink.record(event) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Hands the record to every sink first, then waits for them all.
    fn record_async<'a>(
        &'a self,
        record: AuditEventRef<'_>,
    ) -> BoxFuture<'a, Result<(), AuditError>> {
        let pending: Vec<_> = self.iter().map(|sink| sink.record_async(record)).collect();
        Box::pin(async move {
            let mut first_error = None;
            for result in futures::future::join_all(pending).await {
                if let Err(e) = result {
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }
}

/// A shared sink (keep a handle to query or close it while the server uses it).
impl<T: AuditSink + ?Sized> AuditSink for Arc<T> {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        (**self).record(event)
    }

    fn record_async<'a>(
        &'a self,
        record: AuditEventRef<'_>,
    ) -> BoxFuture<'a, Result<(), AuditError>> {
        (**self).record_async(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refuses every record.
    struct Broken;

    impl AuditSink for Broken {
        fn record(&self, _: &AuditEvent) -> Result<(), AuditError> {
            Err(AuditError("disk full".into()))
        }
    }

    #[test]
    fn a_file_left_inside_a_line_gets_its_newline_before_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"id\":\"whole\"}\n{\"id\":\"cu").unwrap();
        let sink = JsonLinesSink::open(&path).unwrap();
        sink.record(&AuditEvent::new("next".into(), "echo", "test"))
            .unwrap();
        sink.record(&AuditEvent::new("after".into(), "echo", "test"))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines[1], "{\"id\":\"cu");
        assert!(lines[2].starts_with("{\"id\":\"next\""), "{text}");
        assert!(lines[3].starts_with("{\"id\":\"after\""), "{text}");
        // A file that ends with a whole line gets no empty one.
        drop(sink);
        let sink = JsonLinesSink::open(&path).unwrap();
        sink.record(&AuditEvent::new("last".into(), "echo", "test"))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(!text.contains("\n\n"));
    }

    #[test]
    fn several_sinks_get_every_record_and_one_failure_fails_it_sync_and_async() {
        let (first, last) = (MemorySink::new(), MemorySink::new());
        let sinks: Vec<Arc<dyn AuditSink>> = vec![
            Arc::new(first.clone()),
            Arc::new(Broken),
            Arc::new(last.clone()),
        ];
        let event = AuditEvent::new("c1".into(), "echo", "test");
        assert_eq!(sinks.record(&event).unwrap_err().0, "disk full");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let failed = rt.block_on(sinks.record_async(event.borrowed()));
        assert_eq!(failed.unwrap_err().0, "disk full");
        // The sinks after the failing one were tried too, both times.
        assert_eq!(first.events().len(), 2);
        assert_eq!(last.events().len(), 2);
        let healthy: Vec<Arc<dyn AuditSink>> = vec![Arc::new(first.clone())];
        rt.block_on(healthy.record_async(event.borrowed())).unwrap();
        assert_eq!(first.events().len(), 3);
    }
}
