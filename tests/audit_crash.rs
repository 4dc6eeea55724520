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
    // At most one call per writer thread was between its attempt and its outcome.
    assert!(report.unfinished.len() <= 4, "{report}");
    for u in &report.unfinished {
        assert!(
            u.seq + 16 > report.last_seq,
            "attempt {} is not in the in-flight tail: {report}",
            u.seq
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
