//! Audit throughput: the chained JSON-lines `AuditLog` (hash chain, group commit) fed by 16
//! producer threads, in flush and fsync mode, against the unchained `JsonLinesSink` (one write,
//! or one write and one fsync, per record) as the baseline of the same run. After each run the
//! log is read back: every acknowledged record must be there, in one intact chain.
//!
//! Producers either keep up to `WINDOW` receipts outstanding (how a server with many calls in
//! flight uses the log) or wait for each record (`AuditSink::record`, one call's view).
//! Server-shaped rows: 256 tasks (calls in flight) on a two-thread tokio runtime, each waiting
//! for its record before storing the next, with `AuditSink::record_async` (what the server
//! does) and with the blocking `AuditSink::record` (what it did before), side by side; and the
//! plain `JsonLinesSink` the same way with `record_async` (its group commit), and in flush
//! mode `SpooledJsonLinesSink` (a copy into its memory-mapped spool per record).
//!
//! Run: `cargo bench --bench audit` (`RECORDS_SCALE=N` multiplies every record count;
//! `WINDOW=N` changes the outstanding receipts per producer, default 256; `AUDIT_MODES=flush`
//! or `fsync` runs one mode; `AUDIT_CASES=pipelined` (or `baseline`, `waited`, comma-separated)
//! runs only those rows, e.g. under `perf stat`; `tasks` selects the server-shaped rows).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mcp_secure::audit::{
    AuditEvent, AuditLog, AuditLogConfig, AuditQuery, AuditSink, Durability, JsonLinesSink,
    SpooledJsonLinesSink, SqliteSink, verify_log,
};
use serde_json::json;

const PRODUCERS: usize = 16;

/// A record shaped like a server's outcome record for a small call. Each producer builds its
/// record once and stores it repeatedly, so the figures are the log's, not the bench's.
fn event(producer: usize) -> AuditEvent {
    let mut e = AuditEvent::new(format!("{producer:032x}"), "get_customer", "stdio");
    e.ts = "2026-11-25T10:47:37.123456789Z".into();
    e.user = Some(format!("user-{producer}"));
    e.key_id = Some("3f2a9c01b7de".into());
    e.roles = vec!["read-only".into()];
    e.input = json!({"customer_id": "c-1042"});
    e.output = Some(json!({"id": "c-1042", "name": "Ada Lovelace", "tier": "gold"}));
    e.outcome = "ok".into();
    e.success = true;
    e.duration_ms = 1;
    e
}

#[derive(Clone, Copy)]
enum Producer {
    /// Up to `window` receipts outstanding per producer.
    Pipelined(usize),
    /// Each record waited for before the next (`AuditSink::record`).
    Waiting,
}

struct Outcome {
    records: usize,
    elapsed: Duration,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `PRODUCERS` threads, each storing `per_producer` records through `store`.
fn drive(
    per_producer: usize,
    store: impl Fn(&AuditEvent, usize) + Send + Sync + 'static,
) -> Outcome {
    let store = Arc::new(store);
    let start = Arc::new(Barrier::new(PRODUCERS + 1));
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let record = event(p);
                start.wait();
                for i in 0..per_producer {
                    store(&record, i);
                }
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for t in threads {
        t.join().expect("producer");
    }
    Outcome {
        records: per_producer * PRODUCERS,
        elapsed: began.elapsed(),
    }
}

fn chained(path: &Path, durability: Durability, producer: Producer, records: usize) -> Outcome {
    let log =
        AuditLog::open(path, AuditLogConfig::default().durability(durability)).expect("audit log");
    let per = records / PRODUCERS;
    let out = match producer {
        Producer::Waiting => {
            let log = log.clone();
            drive(per, move |e, _| log.record(e).expect("stored"))
        }
        Producer::Pipelined(window) => {
            // Each producer runs its whole share in one `store` call so it can keep its
            // receipts; `drive` calls it once per producer.
            let log = log.clone();
            let o = drive(1, move |e, _| {
                let mut pending = VecDeque::with_capacity(window);
                for _ in 0..per {
                    if pending.len() == window {
                        let r: mcp_secure::audit::Receipt = pending.pop_front().expect("a receipt");
                        r.wait().expect("stored");
                    }
                    pending.push_back(log.submit(e).expect("queued"));
                }
                for r in pending {
                    r.wait().expect("stored");
                }
            });
            Outcome {
                records: per * PRODUCERS,
                elapsed: o.elapsed,
            }
        }
    };
    log.close().expect("close");
    check_chain(path, out.records);
    out
}

/// Calls in flight in the server-shaped rows.
const TASKS: usize = 256;

/// `TASKS` tasks on a two-thread runtime (a server on this machine), each storing its share one
/// record at a time into the chained log: awaited without blocking (`record_async`) or with the
/// blocking `record`.
fn tasks(path: &Path, durability: Durability, blocking: bool, records: usize) -> Outcome {
    let log =
        AuditLog::open(path, AuditLogConfig::default().durability(durability)).expect("audit log");
    let out = drive_tasks(Arc::new(log.clone()), blocking, records);
    log.close().expect("close");
    check_chain(path, out.records);
    out
}

/// The same, into the unchained `JsonLinesSink` with `record_async` (its group commit).
fn tasks_unchained(path: &Path, fsync: bool, records: usize) -> Outcome {
    let sink = JsonLinesSink::open(path)
        .expect("json-lines file")
        .with_fsync(fsync);
    let out = drive_tasks(Arc::new(sink), false, records);
    check_lines(path, out.records);
    out
}

/// The same, into `SpooledJsonLinesSink` (flush mode only: a copy into its spool per record).
/// Its time includes closing it, which appends what the spool still holds to the file.
fn tasks_spooled(path: &Path, records: usize) -> Outcome {
    let sink = Arc::new(SpooledJsonLinesSink::open(path).expect("spooled json-lines file"));
    let mut out = drive_tasks(Arc::clone(&sink) as Arc<dyn AuditSink>, false, records);
    let began = Instant::now();
    sink.close().expect("close");
    out.elapsed += began.elapsed();
    check_lines(path, out.records);
    out
}

/// The same, into `SqliteSink` (WAL, `synchronous = FULL`: durable like fsync mode).
fn tasks_sqlite(path: &Path, records: usize) -> Outcome {
    let sink = Arc::new(SqliteSink::open(path).expect("audit database"));
    let out = drive_tasks(Arc::clone(&sink) as Arc<dyn AuditSink>, false, records);
    let stored = sink.query(&AuditQuery::new()).expect("query").len();
    assert_eq!(stored, out.records, "records lost or duplicated");
    out
}

fn drive_tasks(sink: Arc<dyn AuditSink>, blocking: bool, records: usize) -> Outcome {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let per = records / TASKS;
    let began = Instant::now();
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for t in 0..TASKS {
            let sink = Arc::clone(&sink);
            set.spawn(async move {
                let record = event(t);
                for _ in 0..per {
                    if blocking {
                        sink.record(&record)
                    } else {
                        sink.record_async(record.borrowed()).await
                    }
                    .expect("stored");
                }
            });
        }
        set.join_all().await;
    });
    Outcome {
        records: per * TASKS,
        elapsed: began.elapsed(),
    }
}

/// Every acknowledged record is in the plain file, on a line of its own.
fn check_lines(path: &Path, expected: usize) {
    let text = std::fs::read_to_string(path).expect("read back");
    let mut lines = 0;
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("a whole JSON line");
        lines += 1;
    }
    assert_eq!(lines, expected, "records lost or duplicated");
}

/// Every acknowledged record is in the file, in one intact chain.
fn check_chain(path: &Path, expected: usize) {
    let report = verify_log(path, None).expect("verify");
    assert!(
        report.is_intact(),
        "the chain is broken: {:?}",
        report.broken
    );
    assert_eq!(
        report.records, expected as u64,
        "records lost or duplicated"
    );
    assert_eq!(report.last_seq, expected as u64, "sequence numbers");
}

fn unchained(path: &Path, fsync: bool, records: usize) -> Outcome {
    let sink = Arc::new(
        JsonLinesSink::open(path)
            .expect("json-lines file")
            .with_fsync(fsync),
    );
    let per = records / PRODUCERS;
    let s = Arc::clone(&sink);
    let out = drive(per, move |e, _| s.record(e).expect("stored"));
    check_lines(path, out.records);
    out
}

fn scratch() -> PathBuf {
    // <target>/release/deps/audit-<hash> -> <target>/bench-tmp (a real disk: fsync must cost
    // what it costs, which a tmpfs would hide).
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .ancestors()
        .nth(3)
        .map(|t| t.join("bench-tmp"))
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Whether `AUDIT_CASES` (unset: all) includes `name`.
fn case(name: &str) -> bool {
    std::env::var("AUDIT_CASES").map_or(true, |c| c.split(',').any(|x| x == name))
}

fn main() {
    let scale: f64 = std::env::var("RECORDS_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let window: usize = std::env::var("WINDOW")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let n = |base: usize| ((base as f64 * scale) as usize / PRODUCERS).max(1) * PRODUCERS;
    let dir = tempfile::tempdir_in(scratch()).expect("tempdir");
    let file = |name: &str| dir.path().join(name);

    println!(
        "audit throughput: {PRODUCERS} producers, window {window}; every run read back and \
         verified (count, sequence, chain)"
    );
    println!(
        "{:<8} {:<50} {:>9} {:>12} {:>8} {:>14}",
        "mode", "writer", "records", "records/s", "ratio", "target"
    );
    for (mode, durability, fsync, base, targets) in [
        ("flush", Durability::Flush, false, n(320_000), 500_000.0),
        ("fsync", Durability::Fsync, true, n(160_000), 50_000.0),
    ] {
        if std::env::var("AUDIT_MODES").is_ok_and(|m| !m.split(',').any(|x| x == mode)) {
            continue;
        }
        let baseline_n = if fsync { n(3_200) } else { n(160_000) };
        let baseline = case("baseline")
            .then(|| unchained(&file(&format!("plain-{mode}.jsonl")), fsync, baseline_n));
        let piped = case("pipelined").then(|| {
            chained(
                &file(&format!("chained-{mode}.jsonl")),
                durability,
                Producer::Pipelined(window),
                base,
            )
        });
        let waiting = case("waited").then(|| {
            chained(
                &file(&format!("chained-{mode}-waiting.jsonl")),
                durability,
                Producer::Waiting,
                if fsync { n(16_000) } else { n(64_000) },
            )
        });
        let task_records =
            ((if fsync { 16_000.0 } else { 64_000.0 } * scale) as usize / TASKS).max(1) * TASKS;
        let awaited = case("tasks").then(|| {
            tasks(
                &file(&format!("tasks-{mode}-async.jsonl")),
                durability,
                false,
                task_records,
            )
        });
        let blocked = case("tasks").then(|| {
            tasks(
                &file(&format!("tasks-{mode}-blocking.jsonl")),
                durability,
                true,
                task_records,
            )
        });
        let plain_awaited = case("tasks").then(|| {
            tasks_unchained(
                &file(&format!("tasks-{mode}-plain.jsonl")),
                fsync,
                task_records,
            )
        });
        let spooled_awaited = (!fsync && case("tasks"))
            .then(|| tasks_spooled(&file("tasks-flush-spooled.jsonl"), task_records));
        let sqlite_awaited =
            (fsync && case("tasks")).then(|| tasks_sqlite(&file("tasks-sqlite.db"), task_records));
        let rows = [
            (
                if fsync {
                    "JsonLinesSink, fsync per record (baseline)"
                } else {
                    "JsonLinesSink, write per record (baseline)"
                },
                &baseline,
                None,
            ),
            (
                "AuditLog chained, pipelined producers",
                &piped,
                Some(targets),
            ),
            ("AuditLog chained, each record waited for", &waiting, None),
            (
                "AuditLog, 256 tasks / 2 threads, record_async",
                &awaited,
                None,
            ),
            (
                "AuditLog, 256 tasks / 2 threads, blocking record",
                &blocked,
                None,
            ),
            (
                "JsonLinesSink, 256 tasks / 2 threads, record_async",
                &plain_awaited,
                None,
            ),
            (
                "SpooledJsonLinesSink, 256 tasks / 2 threads",
                &spooled_awaited,
                None,
            ),
            (
                "SqliteSink, 256 tasks / 2 threads, record_async",
                &sqlite_awaited,
                None,
            ),
        ];
        for (name, o, target) in rows {
            let Some(o) = o else { continue };
            let verdict = target.map_or(String::new(), |t: f64| {
                format!(
                    ">= {}k {}",
                    t / 1000.0,
                    if o.rate() >= t { "met" } else { "missed" }
                )
            });
            let ratio = baseline
                .as_ref()
                .map_or(String::new(), |b| format!("{:.2}", o.rate() / b.rate()));
            println!(
                "{:<8} {:<50} {:>9} {:>12.0} {:>8} {:>14}",
                mode,
                name,
                o.records,
                o.rate(),
                ratio,
                verdict
            );
        }
    }
    println!("0 records lost: every count and chain above was checked after the run");
}
