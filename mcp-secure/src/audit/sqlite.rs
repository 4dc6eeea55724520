//! An SQLite audit sink: every record in a real, indexed, queryable table.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::future::BoxFuture;
use rusqlite::{Connection, OpenFlags, params_from_iter, types::Value as SqlValue};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::group::{BatchStore, GroupWriter};
use super::{AuditError, AuditEvent, AuditEventRef, AuditSink, Phase};

/// Stores records in an SQLite table `audit_events` (WAL, `synchronous = FULL`), indexed by
/// user, tool, outcome and time. Query it with [`SqliteSink::query`], or with any SQLite tool.
///
/// **Group commit.** The records of concurrent calls share one transaction (one sync of the
/// WAL), as with [`JsonLinesSink`](super::JsonLinesSink): a record that arrives while another
/// caller's transaction is under way joins the next batch, which one of its own callers
/// commits as soon as that one is over; async callers wait without blocking their thread. A
/// batch that cannot be committed is rolled back whole and each of its callers gets the error.
#[derive(Debug)]
pub struct SqliteSink {
    writer: GroupWriter<Database>,
}

/// The connection, shared by the batches' transactions and the queries.
#[derive(Debug)]
struct Database {
    conn: Mutex<Connection>,
}

impl Database {
    fn new(conn: Connection) -> Self {
        Database {
            conn: Mutex::new(conn),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One row of `audit_events`, owned until its batch is committed.
struct Row {
    id: String,
    ts: String,
    ts_ms: i64,
    phase: &'static str,
    tool: String,
    user: Option<String>,
    outcome: String,
    success: bool,
    seq: Option<i64>,
    record: String,
}

impl Row {
    /// The row of a record (`seq` 0: not from a chained log) with its JSON text.
    fn of(event: AuditEventRef<'_>, seq: u64, record: String) -> Self {
        Row {
            id: event.id.to_owned(),
            ts: event.ts.to_owned(),
            ts_ms: OffsetDateTime::parse(event.ts, &Rfc3339).map_or(0, unix_ms),
            phase: phase_str(event.phase),
            tool: event.tool.to_owned(),
            user: event.user.map(str::to_owned),
            outcome: event.outcome.to_owned(),
            success: event.success,
            seq: (seq > 0).then(|| i64::try_from(seq).unwrap_or(i64::MAX)),
            record,
        }
    }
}

impl BatchStore for Database {
    type Batch = Vec<Row>;

    /// One transaction for the whole batch: all of it is stored, or none.
    fn store(&self, rows: &Vec<Row>) -> Result<(), Arc<str>> {
        let mut conn = self.lock();
        let committed = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .and_then(|tx| {
                {
                    let mut insert = tx.prepare_cached(
                        "INSERT INTO audit_events
                         (id, ts, ts_ms, phase, tool, user, outcome, success, seq, record)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )?;
                    for r in rows {
                        insert.execute(rusqlite::params![
                            r.id, r.ts, r.ts_ms, r.phase, r.tool, r.user, r.outcome, r.success,
                            r.seq, r.record,
                        ])?;
                    }
                }
                tx.commit()
            });
        committed.map_err(|e| sql_err(e).0.into())
    }

    fn reuse(rows: &mut Vec<Row>) {
        rows.clear();
        rows.shrink_to(4096);
    }

    fn is_empty(rows: &Vec<Row>) -> bool {
        rows.is_empty()
    }
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS audit_events (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    ts TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    phase TEXT NOT NULL,
    tool TEXT NOT NULL,
    user TEXT,
    outcome TEXT NOT NULL,
    success INTEGER NOT NULL,
    seq INTEGER,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_user ON audit_events(user, ts_ms);
CREATE INDEX IF NOT EXISTS audit_events_tool ON audit_events(tool, ts_ms);
CREATE INDEX IF NOT EXISTS audit_events_outcome ON audit_events(outcome, ts_ms);
CREATE INDEX IF NOT EXISTS audit_events_ts ON audit_events(ts_ms);
CREATE INDEX IF NOT EXISTS audit_events_id ON audit_events(id);
";

fn sql_err(e: rusqlite::Error) -> AuditError {
    AuditError(format!("sqlite: {e}"))
}

impl SqliteSink {
    /// Opens (creating, mode 0600, as the JSON-lines sinks do; SQLite gives its `-wal` and
    /// `-shm` files the same mode) the database and its table.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let path = path.as_ref();
        // Created empty before SQLite opens it, which would make it world-readable under the
        // usual umask: the records hold every call's input and output.
        super::log::open_append(path, false)
            .map_err(|e| AuditError(format!("{}: {e}", path.display())))?;
        let conn = Connection::open(path).map_err(sql_err)?;
        conn.execute_batch(SCHEMA).map_err(sql_err)?;
        Ok(SqliteSink {
            writer: GroupWriter::new(Database::new(conn)),
        })
    }

    /// Opens an existing database read-only, for queries.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_err)?;
        Ok(SqliteSink {
            writer: GroupWriter::new(Database::new(conn)),
        })
    }

    /// The records matching every filter of `query`, oldest first.
    pub fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, AuditError> {
        let mut sql = String::from("SELECT record FROM audit_events WHERE 1 = 1");
        let mut args: Vec<SqlValue> = Vec::new();
        let mut text = |sql: &mut String, column: &str, value: &Option<String>| {
            if let Some(v) = value {
                sql.push_str(&format!(" AND {column} = ?"));
                args.push(SqlValue::Text(v.clone()));
            }
        };
        text(&mut sql, "user", &query.user);
        text(&mut sql, "tool", &query.tool);
        text(&mut sql, "outcome", &query.outcome);
        text(
            &mut sql,
            "phase",
            &query.phase.map(|p| phase_str(p).to_owned()),
        );
        if let Some(since) = query.since {
            sql.push_str(" AND ts_ms >= ?");
            args.push(SqlValue::Integer(unix_ms(since)));
        }
        if let Some(until) = query.until {
            sql.push_str(" AND ts_ms < ?");
            args.push(SqlValue::Integer(unix_ms(until)));
        }
        sql.push_str(" ORDER BY ts_ms, row LIMIT ?");
        args.push(SqlValue::Integer(query.limit.map_or(-1, i64::from)));
        let conn = self.writer.store().lock();
        let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| r.get::<_, String>(0))
            .map_err(sql_err)?;
        let mut out = Vec::new();
        for row in rows {
            let json = row.map_err(sql_err)?;
            out.push(
                serde_json::from_str(&json)
                    .map_err(|e| AuditError(format!("a stored record is damaged: {e}")))?,
            );
        }
        Ok(out)
    }
}

impl AuditSink for SqliteSink {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let row = Row::of(event.borrowed(), event.seq, event.to_json()?);
        self.writer.append_blocking(|rows| rows.push(row))
    }

    /// Adds the row at once, straight from the borrowed record (no owned copy of it); the
    /// future resolves when its batch is committed, without blocking the thread meanwhile.
    fn record_async<'a>(
        &'a self,
        record: AuditEventRef<'_>,
    ) -> BoxFuture<'a, Result<(), AuditError>> {
        match record.to_json() {
            Ok(json) => {
                let row = Row::of(record, 0, json);
                self.writer.append_async(|rows| rows.push(row)).boxed()
            }
            Err(e) => super::sink::settled(Err(e)),
        }
    }
}

fn phase_str(phase: Phase) -> &'static str {
    match phase {
        Phase::Attempt => "attempt",
        Phase::Outcome => "outcome",
    }
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Filters for [`SqliteSink::query`]; every filter given must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditQuery {
    /// The user.
    pub user: Option<String>,
    /// The tool.
    pub tool: Option<String>,
    /// The outcome (`ok`, `forbidden`, `attempt`, ...).
    pub outcome: Option<String>,
    /// Only attempts or only outcomes.
    pub phase: Option<Phase>,
    /// At or after this time.
    pub since: Option<OffsetDateTime>,
    /// Before this time.
    pub until: Option<OffsetDateTime>,
    /// At most this many records.
    pub limit: Option<u32>,
}

impl AuditQuery {
    /// Every record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only `user`'s records.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Only records of `tool`.
    pub fn tool(mut self, tool: impl Into<String>) -> Self {
        self.tool = Some(tool.into());
        self
    }

    /// Only records with this outcome.
    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = Some(outcome.into());
        self
    }

    /// Only this phase.
    pub fn phase(mut self, phase: Phase) -> Self {
        self.phase = Some(phase);
        self
    }

    /// From `since` (inclusive) to `until` (exclusive); either may be open.
    pub fn between(mut self, since: Option<OffsetDateTime>, until: Option<OffsetDateTime>) -> Self {
        self.since = since;
        self.until = until;
        self
    }

    /// At most `n` records.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, user: &str, tool: &str, outcome: &str, ts: &str) -> AuditEvent {
        let mut e = AuditEvent::new(id.into(), tool, "test");
        e.user = Some(user.into());
        e.outcome = outcome.into();
        e.ts = ts.into();
        e
    }

    /// Records that arrive while a transaction is under way share the next one; a batch that
    /// cannot be committed is rolled back whole and each of its callers gets the error.
    #[test]
    fn concurrent_records_share_one_transaction_all_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let sink = SqliteSink::open(dir.path().join("audit.db")).unwrap();
        let ts = "2026-01-01T10:00:00Z";
        let events: Vec<_> = ["held", "a", "bad", "b", "c", "d"]
            .iter()
            .map(|tool| event(tool, "alice", tool, "ok", ts))
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        // Holding the connection holds up the first record's transaction.
        let held = sink.writer.store().lock();
        held.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_events WHEN NEW.tool = 'bad'
             BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END;",
        )
        .unwrap();
        std::thread::scope(|scope| {
            let first = scope.spawn(|| sink.record(&events[0]));
            while !sink.writer.storing() {
                std::thread::yield_now();
            }
            // Three records, one of them refused by the database: one batch.
            let mut doomed: Vec<_> = events[1..4]
                .iter()
                .map(|e| sink.record_async(e.borrowed()))
                .collect();
            for f in &mut doomed {
                assert!(f.as_mut().poll(&mut cx).is_pending());
            }
            drop(held);
            first.join().unwrap().expect("stored");
            for f in doomed {
                let e = rt.block_on(f).expect_err("the batch was refused");
                assert!(e.0.contains("refused by a trigger"), "{e}");
            }
            assert_eq!(sink.writer.stores(), 2);
            // Two more, without the refused one: one more transaction.
            let held = sink.writer.store().lock();
            let late = scope.spawn(|| sink.record(&events[4]));
            while !sink.writer.storing() {
                std::thread::yield_now();
            }
            let mut last = sink.record_async(events[5].borrowed());
            assert!(last.as_mut().poll(&mut cx).is_pending());
            drop(held);
            late.join().unwrap().expect("stored");
            rt.block_on(last).expect("stored");
            assert_eq!(sink.writer.stores(), 4);
        });
        let tools: Vec<_> = sink
            .query(&AuditQuery::new())
            .unwrap()
            .into_iter()
            .map(|e| e.tool)
            .collect();
        // None of the refused batch, not even its good records.
        assert_eq!(tools, ["held", "c", "d"]);
    }

    /// A record lent by the server is stored as the owned record would be, and found by the
    /// same filters.
    #[test]
    fn borrowed_records_are_stored_like_owned_ones() {
        let dir = tempfile::tempdir().unwrap();
        let sink = SqliteSink::open(dir.path().join("audit.db")).unwrap();
        let mut lent = event("1", "alice", "get", "ok", "2026-01-01T10:00:00.25Z");
        lent.roles = vec!["reader".into()];
        lent.input = serde_json::json!({"order": "A-1"});
        lent.digests
            .insert("input.pin".into(), "hmac-sha256:00".into());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(sink.record_async(lent.borrowed())).unwrap();
        let owned = event("2", "alice", "get", "ok", "2026-01-01T11:00:00Z");
        sink.record(&owned).unwrap();
        let found = sink.query(&AuditQuery::new().user("alice")).unwrap();
        assert_eq!(found, [lent.clone(), owned]);
        let early = sink
            .query(&AuditQuery::new().between(
                None,
                Some(OffsetDateTime::parse("2026-01-01T10:30:00Z", &Rfc3339).unwrap()),
            ))
            .unwrap();
        assert_eq!(early, [lent]);
    }

    #[test]
    fn queries_filter_by_user_tool_outcome_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let sink = SqliteSink::open(dir.path().join("audit.db")).unwrap();
        sink.record(&event(
            "1",
            "alice",
            "get",
            "forbidden",
            "2026-01-01T10:00:00Z",
        ))
        .unwrap();
        sink.record(&event("2", "alice", "get", "ok", "2026-01-01T11:00:00Z"))
            .unwrap();
        sink.record(&event(
            "3",
            "bob",
            "get",
            "forbidden",
            "2026-01-01T12:00:00Z",
        ))
        .unwrap();
        sink.record(&event(
            "4",
            "alice",
            "put",
            "forbidden",
            "2026-01-01T13:00:00.5Z",
        ))
        .unwrap();
        let ids = |q: AuditQuery| {
            sink.query(&q)
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(AuditQuery::new().user("alice").outcome("forbidden")),
            ["1", "4"]
        );
        assert_eq!(ids(AuditQuery::new().tool("get")), ["1", "2", "3"]);
        let at = |s| OffsetDateTime::parse(s, &Rfc3339).unwrap();
        assert_eq!(
            ids(AuditQuery::new().between(
                Some(at("2026-01-01T11:00:00Z")),
                Some(at("2026-01-01T13:00:00Z"))
            )),
            ["2", "3"]
        );
        assert_eq!(
            ids(AuditQuery::new().outcome("forbidden").limit(2)),
            ["1", "3"]
        );
        drop(sink);
        let ro = SqliteSink::open_read_only(dir.path().join("audit.db")).unwrap();
        assert_eq!(ro.query(&AuditQuery::new().user("bob")).unwrap().len(), 1);
    }
}
