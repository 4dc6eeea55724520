//! The chained audit log: no record lost under load through a slow sink, every single
//! mutation of a log detected, failed batches rolled back, unfinished attempts reported.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mcp_secure::audit::{
    AuditEvent, AuditLog, AuditLogConfig, Durability, FileStore, LogStore, Phase, checkpoints_path,
    generate_signing_key, verify_log,
};

/// A store that sleeps before every batch, and can be made to fail.
struct Slow {
    inner: FileStore,
    delay: Duration,
    broken: Arc<AtomicBool>,
}

impl LogStore for Slow {
    fn write_batch(
        &mut self,
        records: &[u8],
        checkpoints: &[Vec<u8>],
        durability: Durability,
    ) -> std::io::Result<()> {
        std::thread::sleep(self.delay);
        if self.broken.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("disk on fire"));
        }
        self.inner.write_batch(records, checkpoints, durability)
    }
}

fn slow_log(path: &Path, delay: Duration, config: AuditLogConfig) -> (AuditLog, Arc<AtomicBool>) {
    let (inner, head) = FileStore::open(path).unwrap();
    let broken = Arc::new(AtomicBool::new(false));
    let log = AuditLog::with_store(
        Slow {
            inner,
            delay,
            broken: broken.clone(),
        },
        head,
        config,
    )
    .unwrap();
    (log, broken)
}

fn event(id: String, phase: Phase) -> AuditEvent {
    let mut e = AuditEvent::new(id, "update_order", "test");
    e.phase = phase;
    e.user = Some("alice".into());
    e.outcome = if phase == Phase::Attempt {
        "attempt"
    } else {
        "ok"
    }
    .into();
    e
}

/// `AUDIT_EVENTS` overrides the count for quick local runs; CI runs the full million.
#[test]
fn a_million_events_from_16_tasks_through_a_slow_sink_lose_nothing() {
    let total: u64 = std::env::var("AUDIT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tasks = 16u64;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // 2 ms per batch, and a queue much smaller than the load: producers must wait, not drop.
    let config = AuditLogConfig::default()
        .queue(256)
        .max_batch(512)
        .checkpoint_every(10_000);
    let (log, _) = slow_log(&path, Duration::from_millis(2), config);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..tasks {
            let log = &log;
            s.spawn(move || {
                // Each task keeps up to 512 records in flight, then waits for their receipts.
                let mut receipts = Vec::with_capacity(512);
                let mut seqs = Vec::new();
                for n in 0..total / tasks {
                    receipts.push(
                        log.submit(&event(format!("{t}-{n}"), Phase::Outcome))
                            .unwrap(),
                    );
                    if receipts.len() == 512 {
                        seqs.extend(receipts.drain(..).map(|r| r.wait().unwrap()));
                    }
                }
                seqs.extend(receipts.drain(..).map(|r| r.wait().unwrap()));
                assert_eq!(seqs.len() as u64, total / tasks);
            });
        }
    });
    log.close().unwrap();
    let written = started.elapsed();
    let report = verify_log(&path, None).unwrap();
    eprintln!(
        "{total} events: written in {written:?}, verified in {:?}",
        started.elapsed() - written
    );
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, total / tasks * tasks, "0 lost");
    assert_eq!(report.unanchored, 0);
}

/// A tiny deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

#[test]
fn every_single_mutation_of_a_10_000_record_log_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let key = generate_signing_key();
    let log = AuditLog::open(
        &path,
        AuditLogConfig::default()
            .checkpoint_every(100)
            .signing_key(key.clone()),
    )
    .unwrap();
    for n in 0..10_000 {
        let phase = if n % 2 == 0 {
            Phase::Attempt
        } else {
            Phase::Outcome
        };
        drop(
            log.submit(&event(format!("call-{}", n / 2), phase))
                .unwrap(),
        ); // `close` waits for all
    }
    log.close().unwrap();
    let public = key.verifying_key();
    let clean = verify_log(&path, Some(&public)).unwrap();
    assert!(clean.is_intact() && clean.unfinished.is_empty(), "{clean}");
    assert_eq!((clean.records, clean.checkpoints), (10_000, 100));

    let original = std::fs::read(&path).unwrap();
    let lines: Vec<&[u8]> = original.split_inclusive(|&b| b == b'\n').collect();
    let sidecar = std::fs::read(checkpoints_path(&path)).unwrap();
    // 1,000 rounds, split over two threads (each with its own copy of the log's files).
    std::thread::scope(|s| {
        for half in 0..2u64 {
            let (lines, sidecar, public, dir) = (&lines, &sidecar, &public, dir.path());
            s.spawn(move || {
                let work = dir.join(format!("work-{half}"));
                std::fs::create_dir(&work).unwrap();
                let mutated_path = work.join("audit.jsonl");
                std::fs::write(checkpoints_path(&mutated_path), sidecar).unwrap();
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 + half);
                for round in (0..1_000).skip(half as usize).step_by(2) {
                    let (kind, mutated) = mutate(lines, round, &mut rng);
                    std::fs::write(&mutated_path, mutated).unwrap();
                    let report = verify_log(&mutated_path, Some(public)).unwrap();
                    assert!(
                        !report.is_intact(),
                        "round {round}: a `{kind}` went undetected: {report}"
                    );
                }
            });
        }
    });
}

/// One random single mutation of the log's lines: edit, delete, swap, insert or truncate.
fn mutate(lines: &[&[u8]], round: usize, rng: &mut Rng) -> (&'static str, Vec<u8>) {
    let kind = ["edit", "delete", "swap", "insert", "truncate"][round % 5];
    let mut mutated: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
    match kind {
        "edit" => {
            let line = &mut mutated[rng.below(lines.len())];
            let at = rng.below(line.len() - 1);
            let old = line[at];
            line[at] = loop {
                let b = b' ' + rng.below(95) as u8;
                if b != old {
                    break b;
                }
            };
        }
        "delete" => {
            mutated.remove(rng.below(lines.len()));
        }
        "swap" => {
            let a = rng.below(lines.len());
            let b = loop {
                let b = rng.below(lines.len());
                if b != a && lines[a] != lines[b] {
                    break b;
                }
            };
            mutated.swap(a, b);
        }
        "insert" => {
            let copy = lines[rng.below(lines.len())].to_vec();
            mutated.insert(rng.below(lines.len() + 1), copy);
        }
        _ => {
            let mut bytes = mutated.concat();
            bytes.truncate(rng.below(bytes.len()));
            return (kind, bytes);
        }
    }
    (kind, mutated.concat())
}

#[test]
fn a_failed_batch_is_rolled_back_and_the_chain_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (log, broken) = slow_log(&path, Duration::ZERO, AuditLogConfig::default());
    assert_eq!(
        log.submit(&event("a".into(), Phase::Outcome))
            .unwrap()
            .wait()
            .unwrap(),
        1
    );
    broken.store(true, Ordering::SeqCst);
    assert!(
        log.submit(&event("b".into(), Phase::Outcome))
            .unwrap()
            .wait()
            .is_err(),
        "the producer hears of it"
    );
    broken.store(false, Ordering::SeqCst);
    assert_eq!(
        log.submit(&event("c".into(), Phase::Outcome))
            .unwrap()
            .wait()
            .unwrap(),
        2,
        "no gap in the chain"
    );
    log.close().unwrap();
    assert!(
        log.submit(&event("d".into(), Phase::Outcome)).is_err(),
        "a closed log refuses records"
    );
    let report = verify_log(&path, None).unwrap();
    assert!(report.is_intact() && report.records == 2, "{report}");
}

#[test]
fn attempts_without_outcome_are_reported_and_reopening_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(
        &path,
        AuditLogConfig::default().durability(Durability::Fsync),
    )
    .unwrap();
    for (id, phase) in [
        ("x", Phase::Attempt),
        ("x", Phase::Outcome),
        ("y", Phase::Attempt),
    ] {
        log.submit(&event(id.into(), phase))
            .unwrap()
            .wait()
            .unwrap();
    }
    drop(log); // dropping the last handle flushes and checkpoints
    let report = verify_log(&path, None).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(
        report
            .unfinished
            .iter()
            .map(|u| (u.seq, u.id.as_str()))
            .collect::<Vec<_>>(),
        [(3, "y")]
    );
    assert_eq!((report.checkpoints, report.unanchored), (1, 0));
    assert!(
        report
            .to_string()
            .contains("attempt without outcome: seq 3")
    );

    // A torn last line (a crash mid-write) is reported as such, and cut when reopened.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"id\":\"z\",\"ts")
        .unwrap();
    let report = verify_log(&path, None).unwrap();
    assert!(report.is_intact() && report.torn_tail, "{report}");
    let log = AuditLog::open(&path, AuditLogConfig::default()).unwrap();
    assert_eq!(
        log.submit(&event("y".into(), Phase::Outcome))
            .unwrap()
            .wait()
            .unwrap(),
        4
    );
    log.close().unwrap();
    let report = verify_log(&path, None).unwrap();
    assert!(
        report.is_intact() && !report.torn_tail && report.unfinished.is_empty(),
        "{report}"
    );
    assert_eq!(report.last_seq, 4);
}

/// Removes the last line of `path`: the checkpoint `close` wrote there.
fn drop_closing_checkpoint(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let body = text.strip_suffix('\n').unwrap();
    let cut = body.rfind('\n').map_or(0, |i| i + 1);
    assert!(
        body[cut..].starts_with("{\"checkpoint\""),
        "{}",
        &body[cut..]
    );
    std::fs::write(path, &text[..cut]).unwrap();
}

/// A record nested deeper than serde_json parses into a whole `AuditEvent` (128 levels) is
/// still a record the log wrote and `verify_log` accepts: when it is the last one, after a
/// crash that left no closing checkpoint, the log opens again (a server failing closed could
/// not start otherwise) and the chain goes on from it.
#[test]
fn a_log_ending_with_a_deeply_nested_record_opens_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, AuditLogConfig::default()).unwrap();
    let mut deep = serde_json::Value::from("leaf");
    for _ in 0..200 {
        deep = serde_json::Value::Array(vec![deep]);
    }
    let mut e = event("deep".into(), Phase::Outcome);
    e.output = Some(deep);
    assert_eq!(log.submit(&e).unwrap().wait().unwrap(), 1);
    log.close().unwrap();
    drop(log);
    // The process dies before it closes the log: no closing checkpoint, in the log or beside it.
    drop_closing_checkpoint(&path);
    drop_closing_checkpoint(&checkpoints_path(&path));
    let report = verify_log(&path, None).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 1);

    let log = AuditLog::open(&path, AuditLogConfig::default())
        .expect("a log whose last record is intact opens again");
    assert_eq!(
        log.submit(&event("after".into(), Phase::Outcome))
            .unwrap()
            .wait()
            .unwrap(),
        2
    );
    log.close().unwrap();
    let report = verify_log(&path, None).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 2);
}
