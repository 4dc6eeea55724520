//! The server waits for its audit records without blocking its runtime's threads: while one
//! call's record is being written, the other calls run, and their records share the next write
//! (one `fsync` for all of them in `Fsync` mode). The chained log on a runtime with a single
//! thread, where a blocking wait would stall every call; the JSON-lines sink on a FIFO whose
//! first write is held up, and the SQLite sink whose database another connection holds. A real
//! rmcp client over an in-memory duplex.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{call, code, connect};
use mcp_secure::audit::{
    AuditLog, AuditLogConfig, AuditQuery, Durability, FileStore, JsonLinesSink, LogStore,
    SqliteSink, verify_log,
};
use mcp_secure::auth::{ApiKeyStore, Environment};
use mcp_secure::{Ctx, SecureServer, ToolError, roles, tool, tools};
use serde_json::json;

roles! { "clerk" }

const CALLS: usize = 8;

/// Counts the bodies that ran.
struct Counter {
    ran: Arc<AtomicUsize>,
}

/// Counts a call.
#[tool(kind = "read", role = "clerk")]
async fn tick(ctx: Ctx<Counter>) -> Result<String, ToolError> {
    ctx.ran.fetch_add(1, Ordering::SeqCst);
    Ok("tick".into())
}

/// A file store whose first write waits until every call's body has run (or a generous
/// deadline passes, so that a blocking server fails the test instead of hanging it), noting
/// how many had, and that counts its writes.
struct WaitForAll {
    inner: FileStore,
    ran: Arc<AtomicUsize>,
    seen_at_first_write: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
}

impl LogStore for WaitForAll {
    fn write_batch(
        &mut self,
        records: &[u8],
        checkpoints: &[Vec<u8>],
        durability: Durability,
    ) -> std::io::Result<()> {
        let is_records = records
            .split(|&b| b == b'\n')
            .any(|l| !l.is_empty() && !l.starts_with(b"{\"checkpoint\""));
        if is_records && self.writes.fetch_add(1, Ordering::SeqCst) == 0 {
            self.seen_at_first_write.store(
                bodies_within(&self.ran, Duration::from_secs(20)),
                Ordering::SeqCst,
            );
        }
        self.inner.write_batch(records, checkpoints, durability)
    }
}

#[test]
fn concurrent_calls_run_while_a_record_is_written_and_share_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (inner, head) = FileStore::open(&path).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let seen_at_first_write = Arc::new(AtomicUsize::new(0));
    let writes = Arc::new(AtomicUsize::new(0));
    let log = AuditLog::with_store(
        WaitForAll {
            inner,
            ran: ran.clone(),
            seen_at_first_write: seen_at_first_write.clone(),
            writes: writes.clone(),
        },
        head,
        AuditLogConfig::default().durability(Durability::Fsync),
    )
    .unwrap();
    let (server, token) = server_with(log.clone(), &ran);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let codes = call_all(&rt, server, &token);
    assert_eq!(codes, vec!["ok"; CALLS]);
    assert_eq!(
        seen_at_first_write.load(Ordering::SeqCst),
        CALLS,
        "every call ran while the first record was being written"
    );
    let writes = writes.load(Ordering::SeqCst);
    assert!(writes <= 2, "{CALLS} records took {writes} writes");

    log.close().unwrap();
    let report = verify_log(&path, None).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, CALLS as u64);
}

/// Makes a key and a server that audits to `sink` and counts its bodies in `ran`.
fn server_with(
    sink: impl mcp_secure::audit::AuditSink,
    ran: &Arc<AtomicUsize>,
) -> (SecureServer<Counter>, String) {
    let keys = ApiKeyStore::new(Environment::Test);
    let token = keys
        .generate("cleo", &["clerk".to_string()], Environment::Test, None)
        .unwrap()
        .token;
    let server = SecureServer::builder(Counter { ran: ran.clone() })
        .name("audit-async", "1.0.0")
        .roles(ROLES)
        .tools(tools![tick])
        .authenticator(keys)
        .audit(sink)
        .build()
        .unwrap();
    (server, token)
}

/// `CALLS` concurrent `tick` calls over a duplex on `rt`; their codes.
fn call_all(
    rt: &tokio::runtime::Runtime,
    server: SecureServer<Counter>,
    token: &str,
) -> Vec<String> {
    rt.block_on(async {
        let client = Arc::new(connect(server).await);
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..CALLS {
            let (client, token) = (client.clone(), token.to_string());
            calls.spawn(async move { code(&call(&client, Some(&token), "tick", json!({})).await) });
        }
        calls.join_all().await
    })
}

/// How many bodies ran once all have or `within` has passed.
fn bodies_within(ran: &AtomicUsize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    while ran.load(Ordering::SeqCst) < CALLS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    ran.load(Ordering::SeqCst)
}

/// `CALLS` concurrent calls to a server auditing to `sink`, on a two-thread runtime, dropped
/// (with the server and its sink) when they are answered; their codes.
fn calls_on_two_threads(
    sink: impl mcp_secure::audit::AuditSink,
    ran: &Arc<AtomicUsize>,
) -> Vec<String> {
    let (server, token) = server_with(sink, ran);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    call_all(&rt, server, &token)
}

/// The JSON-lines sink's first write is held up (its file is a FIFO whose pipe is full, and the
/// reader waits for every body to run): the other calls run on the runtime's other thread, and
/// wait for their records without blocking it. With a lock held across each `write` instead,
/// the second call's record would block that thread too, and no third body would run.
#[test]
fn json_lines_calls_run_while_a_record_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.fifo");
    let made = std::process::Command::new("mkfifo").arg(&path).status();
    assert!(made.expect("mkfifo runs").success(), "mkfifo failed");
    let reader = {
        let path = path.clone();
        std::thread::spawn(move || std::fs::File::open(path).expect("open the FIFO to read"))
    };
    let sink = JsonLinesSink::open(&path).unwrap();
    let mut reader = reader.join().unwrap();
    // Fill the pipe (64 KiB), so the first record's write blocks until the reader reads.
    const FILL: usize = 64 * 1024;
    let mut filler = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let mut fill = vec![b' '; FILL - 1];
    fill.push(b'\n');
    filler.write_all(&fill).unwrap();
    drop(filler);

    let ran = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let drained = {
        let (ran, seen) = (ran.clone(), seen.clone());
        std::thread::spawn(move || {
            seen.store(
                bodies_within(&ran, Duration::from_secs(20)),
                Ordering::SeqCst,
            );
            let mut all = Vec::new();
            reader.read_to_end(&mut all).unwrap();
            all
        })
    };
    // The server and its sink are dropped after the calls: the FIFO's last writer closes.
    let codes = calls_on_two_threads(sink, &ran);
    assert_eq!(codes, vec!["ok"; CALLS]);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        CALLS,
        "every call ran while the first record was being written"
    );
    let all = drained.join().unwrap();
    let lines: Vec<serde_json::Value> = all[FILL..]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("whole JSON lines"))
        .collect();
    assert_eq!(lines.len(), CALLS);
    assert!(
        lines
            .iter()
            .all(|r| r["outcome"] == "ok" && r["tool"] == "tick")
    );
}

/// Another connection holds the database's write lock, so the SQLite sink's first transaction
/// waits (within SQLite's 5 s busy timeout): the other calls run on the runtime's other thread
/// and wait for their records without blocking it, and once the lock is let go every record is
/// committed.
#[test]
fn sqlite_calls_run_while_a_transaction_is_held_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let sink = SqliteSink::open(&path).unwrap();
    let mut other = rusqlite::Connection::open(&path).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let holder = {
        let (ran, seen) = (ran.clone(), seen.clone());
        let (locked, is_locked) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let tx = other
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .unwrap();
            locked.send(()).unwrap();
            // Let go well within the sink's busy timeout.
            seen.store(
                bodies_within(&ran, Duration::from_secs(3)),
                Ordering::SeqCst,
            );
            tx.commit().unwrap();
        });
        is_locked.recv().unwrap();
        holder
    };
    let codes = calls_on_two_threads(sink, &ran);
    holder.join().unwrap();
    assert_eq!(codes, vec!["ok"; CALLS]);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        CALLS,
        "every call ran while the first transaction was held up"
    );
    let stored = SqliteSink::open_read_only(&path)
        .unwrap()
        .query(&AuditQuery::new().tool("tick"))
        .unwrap();
    assert_eq!(stored.len(), CALLS);
    assert!(stored.iter().all(|r| r.outcome == "ok"));
}
