//! Checks a chained audit log: every record follows the one before it and matches its own
//! hash, every checkpoint matches the chain (and its signature, given the public key), every
//! checkpoint in the `.checkpoints` file is still in the log, and every write-ahead attempt has
//! its outcome.
//!
//! What it can and cannot see: an edit, deletion, insertion or reordering anywhere breaks the
//! chain at the first record it touches. Cutting records off the end leaves a valid shorter
//! chain; the cut is detected when it removes a checkpoint that the `.checkpoints` file still
//! holds. Records written after the last checkpoint (at most `checkpoint_every - 1` of them, or
//! the tail before a crash) can be cut without detection; the report counts them as
//! `unanchored`. Whoever holds the signing key can forge a whole new log: keep the key, and the
//! `.checkpoints` file, out of reach of whoever can write the log.

use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use super::chain::{self, Checkpoint, CheckpointLine, GENESIS_HASH};
use super::{AuditError, Phase, checkpoints_path};

/// Where the log stops being trustworthy.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Break {
    /// The 1-based line of the log.
    pub line: u64,
    /// The record's `seq` as stored, if it could be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

/// A write-ahead attempt with no outcome record: the process stopped while the tool ran.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unfinished {
    /// The attempt's `seq`.
    pub seq: u64,
    /// The call's id.
    pub id: String,
    /// The tool.
    pub tool: String,
}

/// What [`verify_log`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Intact records read (up to the first break).
    pub records: u64,
    /// The last record's `seq`.
    pub last_seq: u64,
    /// Checkpoints read.
    pub checkpoints: u64,
    /// The `seq` the last checkpoint covers.
    pub last_checkpoint: Option<u64>,
    /// Records after the last checkpoint: these could be cut off without detection.
    pub unanchored: u64,
    /// The log ends in a partial line (a write in flight when the process died).
    pub torn_tail: bool,
    /// Whether checkpoint signatures were checked (a public key was given).
    pub signatures_checked: bool,
    /// The first problem, if any.
    pub broken: Option<Break>,
    /// Attempts without an outcome.
    pub unfinished: Vec<Unfinished>,
}

impl VerifyReport {
    /// True when nothing was edited, removed, inserted, reordered or cut before a checkpoint.
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.broken {
            Some(b) => {
                let seq = b.seq.map(|s| format!(" (seq {s})")).unwrap_or_default();
                writeln!(f, "BROKEN at line {}{seq}: {}", b.line, b.reason)?;
            }
            None => writeln!(
                f,
                "intact: {} records, {} checkpoints",
                self.records, self.checkpoints
            )?,
        }
        match self.last_checkpoint {
            Some(seq) => writeln!(
                f,
                "last checkpoint covers seq {seq}; {} records after it",
                self.unanchored
            )?,
            None => writeln!(
                f,
                "no checkpoint yet; {} records are not covered by one",
                self.unanchored
            )?,
        }
        if !self.signatures_checked {
            writeln!(
                f,
                "checkpoint signatures were not checked (no public key given)"
            )?;
        }
        if self.torn_tail {
            writeln!(
                f,
                "the last line is partial: a write was in flight when the writer stopped"
            )?;
        }
        for u in &self.unfinished {
            writeln!(
                f,
                "attempt without outcome: seq {} call {} tool {}",
                u.seq, u.id, u.tool
            )?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    prev_hash: String,
    phase: Option<Phase>,
    id: Option<String>,
    tool: Option<String>,
    checkpoint: Option<Checkpoint>,
}

/// Verifies the log at `path` (and its `.checkpoints` file, when present). With `key`, every
/// checkpoint must carry a valid signature.
pub fn verify_log(
    path: impl AsRef<Path>,
    key: Option<&VerifyingKey>,
) -> Result<VerifyReport, AuditError> {
    let path = path.as_ref();
    let io = |p: &Path, e: std::io::Error| AuditError(format!("{}: {e}", p.display()));
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut report = VerifyReport {
        signatures_checked: key.is_some(),
        ..VerifyReport::default()
    };
    let mut head = GENESIS_HASH.to_owned();
    let mut in_log: HashMap<u64, String> = HashMap::new();
    // Attempts not yet matched by an outcome, by call id (their lines, read again at the end).
    let mut open: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        if reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| io(path, e))?
            == 0
        {
            break;
        }
        line_no += 1;
        if buf.last() != Some(&b'\n') {
            report.torn_tail = true;
            break;
        }
        buf.pop();
        let fail = |seq, reason: &str| {
            Some(Break {
                line: line_no,
                seq,
                reason: reason.to_owned(),
            })
        };
        // Records as the writer lays them out are read without a JSON parser (fast); anything
        // else is parsed as JSON.
        let (seq, prev_hash, id, attempt) = match chain::line_fields(&buf) {
            Some(f) => (f.seq, f.prev_hash.to_vec(), f.id.to_vec(), f.attempt),
            None => {
                let Ok(line) = serde_json::from_slice::<Line>(&buf) else {
                    report.broken = fail(None, "not a valid record");
                    break;
                };
                if let Some(cp) = line.checkpoint {
                    if report.unanchored == 0 {
                        report.broken = fail(
                            Some(cp.seq),
                            "a checkpoint that covers no new record (inserted)",
                        );
                        break;
                    }
                    if cp.seq != report.last_seq || cp.hash != head {
                        report.broken = fail(
                            Some(cp.seq),
                            "the checkpoint does not match the chain before it",
                        );
                        break;
                    }
                    if let Some(Err(e)) = key.map(|k| cp.verify(k)) {
                        report.broken = fail(Some(cp.seq), &e);
                        break;
                    }
                    in_log.insert(cp.seq, cp.hash);
                    report.checkpoints += 1;
                    report.last_checkpoint = Some(cp.seq);
                    report.unanchored = 0;
                    continue;
                }
                let id = line.id.unwrap_or_default().into_bytes();
                (
                    line.seq,
                    line.prev_hash.into_bytes(),
                    id,
                    line.phase == Some(Phase::Attempt),
                )
            }
        };
        if seq != report.last_seq + 1 {
            let reason = format!(
                "expected seq {}, found {seq}: a record was deleted, inserted or moved",
                report.last_seq + 1
            );
            report.broken = fail(Some(seq), &reason);
            break;
        }
        if prev_hash != head.as_bytes() {
            report.broken = fail(Some(seq), "the record does not follow the one before it");
            break;
        }
        match chain::check_line_hash(&buf) {
            Ok(hash) => head = hash,
            Err(e) => {
                report.broken = fail(Some(seq), &e);
                break;
            }
        }
        report.records += 1;
        report.last_seq = seq;
        report.unanchored += 1;
        if attempt {
            open.insert(id, buf.clone());
        } else {
            open.remove(&id);
        }
    }
    let sidecar = checkpoints_path(path);
    if report.broken.is_none() && sidecar.exists() {
        let text = std::fs::read(&sidecar).map_err(|e| io(&sidecar, e))?;
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(CheckpointLine { checkpoint: cp }) = serde_json::from_slice(line) else {
                continue;
            };
            if key.is_some_and(|k| cp.verify(k).is_err()) {
                continue; // not made with our key: proves nothing either way
            }
            if in_log.get(&cp.seq) != Some(&cp.hash) {
                report.broken = Some(Break {
                    line: line_no + 1,
                    seq: Some(cp.seq),
                    reason: format!(
                        "the checkpoint at seq {} (in {}) is not in the log: the log was cut or its checkpoint removed",
                        cp.seq,
                        sidecar.display()
                    ),
                });
                break;
            }
        }
    }
    let mut unfinished: Vec<Unfinished> = open
        .into_values()
        .filter_map(|line| serde_json::from_slice::<Line>(&line).ok())
        .map(|l| Unfinished {
            seq: l.seq,
            id: l.id.unwrap_or_default(),
            tool: l.tool.unwrap_or_default(),
        })
        .collect();
    unfinished.sort_by_key(|u| u.seq);
    report.unfinished = unfinished;
    Ok(report)
}
