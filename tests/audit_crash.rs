//! A process writing the audit log is killed with SIGKILL in the middle of its load: every
//! record it acknowledged as durable is in the log, the chain is intact, and verification
//! reports nothing worse than the in-flight tail (a torn last line, attempts without outcome).
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_secure::audit::{AuditEvent, AuditLog, AuditLogConfig, verify_log};

#[test]
fn sigkill_mid_load_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut child = Command::new(common::example_bin("audit_crash_child"))
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the crash child");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut acked = Vec::new();
    // Let it get well into its stride (past several checkpoints), then kill it mid-write.
    while acked.len() < 5_000 && started.elapsed() < Duration::from_secs(30) {
        match lines.next() {
            Some(Ok(line)) => acked.push(line.parse::<u64>().unwrap()),
            _ => break,
        }
    }
    child.kill().expect("SIGKILL the child");
    child.wait().unwrap();
    // Whatever it printed before it died was acknowledged too.
    acked.extend(
        lines
            .map_while(Result::ok)
            .filter_map(|l| l.parse::<u64>().ok()),
    );
    assert!(
        acked.len() >= 5_000,
        "the child acknowledged only {} records",
        acked.len()
    );

    let report = verify_log(&path, None).unwrap();
    assert!(report.is_intact(), "{report}");
    let max_acked = acked.iter().copied().max().unwrap();
    // The chain is contiguous from 1, so every acknowledged seq up to `last_seq` is present.
    assert!(
        report.last_seq >= max_acked,
        "acknowledged seq {max_acked} is missing: {report}"
    );
    assert_eq!(report.records, report.last_seq);
    // At most one call per writer thread was between its attempt and its outcome, and it is
    // that thread's last call in the log: each thread stores an attempt, then its outcome,
    // then the next attempt, so a later record from the same thread means the outcome was
    // stored (a thread the scheduler held back can be any number of records behind the others,
    // so this is checked per thread, not by distance from the end).
    assert!(report.unfinished.len() <= 4, "{report}");
    let call = |id: &str| -> Option<(String, u64)> {
        let (thread, n) = id.split_once('-')?;
        Some((thread.to_owned(), n.parse().ok()?))
    };
    let mut last_call = std::collections::HashMap::<String, u64>::new();
    for line in std::fs::read_to_string(&path).unwrap().lines() {
        // The torn last line (if any) and checkpoints carry no call id.
        let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some((thread, n)) = record["id"].as_str().and_then(call) {
            let last = last_call.entry(thread).or_default();
            *last = (*last).max(n);
        }
    }
    assert_eq!(
        last_call.len(),
        4,
        "records from the four threads: {last_call:?}"
    );
    let mut threads = std::collections::HashSet::new();
    for u in &report.unfinished {
        let (thread, n) = call(&u.id).unwrap_or_else(|| panic!("call id {}: {report}", u.id));
        assert_eq!(
            last_call[&thread], n,
            "attempt {} ({}) is not its thread's last call: {report}",
            u.seq, u.id
        );
        assert!(
            threads.insert(thread),
            "two unfinished calls of one thread: {report}"
        );
    }

    // Reopening continues the chain after the last intact record, and a clean close seals it.
    let log = AuditLog::open(&path, AuditLogConfig::default()).unwrap();
    let seq = log
        .submit(&AuditEvent::new("after".into(), "get", "test"))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(seq, report.last_seq + 1);
    log.close().unwrap();
    let report = verify_log(&path, None).unwrap();
    assert!(report.is_intact() && !report.torn_tail, "{report}");
    assert_eq!(
        report.unanchored, 0,
        "a clean close ends with a checkpoint: {report}"
    );
}
