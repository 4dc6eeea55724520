//! The hash chain and its signed checkpoints.
//!
//! **Canonical form.** A record's canonical form is its compact `serde_json` serialization with
//! the fields in the order of [`AuditEvent`](super::AuditEvent)'s declaration (`id`, `ts`, `phase`, `tool`, `user`,
//! `key_id`, `roles`, `transport`, `input`, `output`, `outcome`, `error`, `success`,
//! `duration_ms`, `approval`, `digests` (omitted when empty), `seq`, `prev_hash`) and without
//! `hash`. `hash` is the lowercase hex SHA-256 of those bytes, and the stored line is the
//! canonical form with `,"hash":"<hex>"` inserted before its final `}`. A verifier therefore
//! hashes the stored bytes themselves (no re-serialization, so no float or key-order drift).
//! The first record's `prev_hash` is 64 zeros.
//!
//! **Checkpoints** are lines `{"checkpoint":{"seq":N,"hash":H,"ts":T,"sig":S}}` stating that
//! the chain's record `N` has hash `H`; `sig` is an Ed25519 signature (hex) over
//! `mcp-secure audit checkpoint v1\n{N}\n{H}\n{T}`.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::event::json_u64;
use super::{AuditError, AuditEventRef};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const HASH_PREFIX: &[u8] = b",\"hash\":\"";
/// `,"hash":"` + 64 hex digits + `"}`.
const HASH_SUFFIX_LEN: usize = HASH_PREFIX.len() + 64 + 2;

/// Appends to `out` the canonical form of `event` without `seq`, `prev_hash`, `hash` and the
/// closing brace (its "open body"): the part that can be serialized before the record's place
/// in the chain is known. On error `out` is left as it was.
pub(crate) fn open_body_into(
    event: AuditEventRef<'_>,
    out: &mut Vec<u8>,
) -> Result<(), AuditError> {
    let start = out.len();
    event.write_open(out).map_err(|e| {
        out.truncate(start);
        AuditError(format!("cannot serialize an audit record: {e}"))
    })
}

/// Completes an open body as record `seq` after `prev_hash`: appends the line (with its
/// newline) to `out` and returns the record's hash.
#[cfg(test)]
pub(crate) fn seal(body: &[u8], seq: u64, prev_hash: &str, out: &mut Vec<u8>) -> String {
    let start = out.len();
    out.extend_from_slice(body);
    let mut hash = prev_hash.to_owned();
    seal_in_place(out, start, seq, &mut hash);
    hash
}

/// Completes the open body at `out[start..]` as record `seq`: appends `seq`, `prev_hash` (the
/// previous record's hash, which `hash` holds on entry), the record's own hash (which `hash`
/// holds on return) and the newline. No allocation: the writer thread seals every record.
pub(crate) fn seal_in_place(out: &mut Vec<u8>, start: usize, seq: u64, hash: &mut String) {
    out.extend_from_slice(b",\"seq\":");
    json_u64(out, seq);
    out.extend_from_slice(b",\"prev_hash\":\"");
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(b"\"}");
    let digest = Sha256::digest(&out[start..]);
    out.pop();
    out.extend_from_slice(HASH_PREFIX);
    hash.clear();
    for byte in digest {
        hash.push(char::from(HEX[usize::from(byte >> 4)]));
        hash.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Checks a stored record line (without its newline) against its own `hash`: returns the hash
/// when it matches, or why not.
pub(crate) fn check_line_hash(line: &[u8]) -> Result<String, String> {
    let n = line.len();
    if n < HASH_SUFFIX_LEN + 2
        || !line.ends_with(b"\"}")
        || &line[n - HASH_SUFFIX_LEN..n - 66] != HASH_PREFIX
    {
        return Err("the record does not end with its `hash`".into());
    }
    let stated = &line[n - 66..n - 2];
    let mut hasher = Sha256::new();
    hasher.update(&line[..n - HASH_SUFFIX_LEN]);
    hasher.update(b"}");
    let actual = hex::encode(hasher.finalize());
    if actual.as_bytes() == stated {
        Ok(actual)
    } else {
        Err("the record's content does not match its hash (edited)".into())
    }
}

/// The chain fields of a record line as the writer lays it out, read without a JSON parser:
/// `{"id":"I","ts":"T","phase":"P",...,"seq":N,"prev_hash":"H","hash":"..."}`. `None` when the
/// line is laid out otherwise (the caller then parses it as JSON).
pub(crate) struct LineFields<'a> {
    pub(crate) id: &'a [u8],
    pub(crate) attempt: bool,
    pub(crate) seq: u64,
    pub(crate) prev_hash: &'a [u8],
}

pub(crate) fn line_fields(line: &[u8]) -> Option<LineFields<'_>> {
    let rest = line.strip_prefix(b"{\"id\":\"")?;
    let (id, rest) = split_quoted(rest)?;
    let rest = rest.strip_prefix(b",\"ts\":\"")?;
    let (_, rest) = split_quoted(rest)?;
    let rest = rest.strip_prefix(b",\"phase\":\"")?;
    let (phase, _) = split_quoted(rest)?;
    const PREV: &[u8] = b",\"prev_hash\":\"";
    let end = line.len().checked_sub(HASH_SUFFIX_LEN)?;
    let prev_start = end.checked_sub(PREV.len() + 65)?;
    if &line[prev_start..prev_start + PREV.len()] != PREV || line[end - 1] != b'"' {
        return None;
    }
    let prev_hash = &line[prev_start + PREV.len()..end - 1];
    let digits_start = line[..prev_start]
        .iter()
        .rposition(|b| !b.is_ascii_digit())?
        + 1;
    if !line[..digits_start].ends_with(b",\"seq\":") || digits_start == prev_start {
        return None;
    }
    let seq = std::str::from_utf8(&line[digits_start..prev_start])
        .ok()?
        .parse()
        .ok()?;
    Some(LineFields {
        id,
        attempt: phase == b"attempt",
        seq,
        prev_hash,
    })
}

/// Splits at the closing quote of a JSON string without escapes.
fn split_quoted(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == b'"' || b == b'\\')?;
    (bytes[end] == b'"').then(|| (&bytes[..end], &bytes[end + 1..]))
}

/// A signed statement that the chain's record `seq` has hash `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The last record covered.
    pub seq: u64,
    /// That record's hash.
    pub hash: String,
    /// When the checkpoint was made (RFC 3339, UTC).
    pub ts: String,
    /// Ed25519 signature (hex) over [`Checkpoint::message`]; absent when the log has no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct CheckpointLine {
    pub(crate) checkpoint: Checkpoint,
}

impl Checkpoint {
    pub(crate) fn new(seq: u64, hash: &str, key: Option<&SigningKey>) -> Self {
        let ts = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut cp = Checkpoint {
            seq,
            hash: hash.to_owned(),
            ts,
            sig: None,
        };
        cp.sig = key.map(|k| hex::encode(k.sign(&cp.message()).to_bytes()));
        cp
    }

    /// The bytes the signature covers.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "mcp-secure audit checkpoint v1\n{}\n{}\n{}",
            self.seq, self.hash, self.ts
        )
        .into_bytes()
    }

    /// Checks the signature against `key`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), String> {
        let sig = self.sig.as_deref().ok_or("the checkpoint is not signed")?;
        let bytes: [u8; 64] = hex::decode(sig)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("the checkpoint's signature is malformed")?;
        key.verify(&self.message(), &Signature::from_bytes(&bytes))
            .map_err(|_| "the checkpoint's signature is not valid for this key".to_string())
    }

    pub(crate) fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(&CheckpointLine {
            checkpoint: self.clone(),
        })
        .unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// A new random Ed25519 signing key for checkpoints.
pub fn generate_signing_key() -> SigningKey {
    let mut seed = [0u8; 32];
    crate::random::fill(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// A signing key from 64 hex digits (its 32-byte seed).
pub fn signing_key_from_hex(text: &str) -> Result<SigningKey, AuditError> {
    key_bytes(text).map(|b| SigningKey::from_bytes(&b))
}

/// A verifying (public) key from 64 hex digits.
pub fn verifying_key_from_hex(text: &str) -> Result<VerifyingKey, AuditError> {
    VerifyingKey::from_bytes(&key_bytes(text)?)
        .map_err(|e| AuditError(format!("not an Ed25519 public key: {e}")))
}

/// Reads a signing key file (64 hex digits, surrounding whitespace ignored).
pub fn read_signing_key(path: impl AsRef<Path>) -> Result<SigningKey, AuditError> {
    signing_key_from_hex(&read_key_file(path.as_ref())?)
}

/// Reads a verifying key file (64 hex digits, surrounding whitespace ignored).
pub fn read_verifying_key(path: impl AsRef<Path>) -> Result<VerifyingKey, AuditError> {
    verifying_key_from_hex(&read_key_file(path.as_ref())?)
}

fn read_key_file(path: &Path) -> Result<String, AuditError> {
    std::fs::read_to_string(path).map_err(|e| AuditError(format!("{}: {e}", path.display())))
}

fn key_bytes(text: &str) -> Result<[u8; 32], AuditError> {
    hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| AuditError("a key must be 64 hex digits (32 bytes)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEvent;

    #[test]
    fn sealed_lines_check_and_edits_do_not() {
        let event = AuditEvent::new("c1".into(), "echo", "test");
        let mut body = Vec::new();
        open_body_into(event.borrowed(), &mut body).unwrap();
        let mut out = Vec::new();
        let hash = seal(&body, 1, GENESIS_HASH, &mut out);
        let line = &out[..out.len() - 1];
        assert_eq!(check_line_hash(line).unwrap(), hash);
        let parsed: AuditEvent = serde_json::from_slice(line).unwrap();
        assert_eq!(
            (parsed.seq, parsed.prev_hash.as_str(), parsed.hash.as_str()),
            (1, GENESIS_HASH, hash.as_str())
        );
        // The canonical form is the struct's own serialization without `hash`.
        let mut canonical = parsed.clone();
        canonical.hash.clear();
        assert_eq!(
            hex::encode(Sha256::digest(serde_json::to_vec(&canonical).unwrap())),
            hash
        );
        let fields = line_fields(line).unwrap();
        assert_eq!(
            (fields.id, fields.attempt, fields.seq, fields.prev_hash),
            (&b"c1"[..], false, 1, GENESIS_HASH.as_bytes())
        );
        let edited = String::from_utf8(line.to_vec())
            .unwrap()
            .replace("echo", "ecko");
        assert!(check_line_hash(edited.as_bytes()).is_err());
    }

    #[test]
    fn sealing_in_place_chains_and_writes_every_seq() {
        let mut body = Vec::new();
        open_body_into(
            AuditEvent::new("c2".into(), "echo", "test").borrowed(),
            &mut body,
        )
        .unwrap();
        let mut hash = GENESIS_HASH.to_owned();
        for seq in [1, 9, 10, 99, 100, 1_234_567_890, u64::MAX] {
            let prev = hash.clone();
            let mut out = b"earlier lines\n".to_vec();
            let start = out.len();
            out.extend_from_slice(&body);
            seal_in_place(&mut out, start, seq, &mut hash);
            let line = &out[start..out.len() - 1];
            assert_eq!(check_line_hash(line).unwrap(), hash);
            let parsed: AuditEvent = serde_json::from_slice(line).unwrap();
            assert_eq!(
                (parsed.seq, parsed.prev_hash, parsed.hash),
                (seq, prev, hash.clone())
            );
        }
    }

    #[test]
    fn checkpoints_verify_only_with_their_key() {
        let key = generate_signing_key();
        let cp = Checkpoint::new(7, GENESIS_HASH, Some(&key));
        assert!(cp.verify(&key.verifying_key()).is_ok());
        assert!(cp.verify(&generate_signing_key().verifying_key()).is_err());
        let mut forged = cp.clone();
        forged.seq = 8;
        assert!(forged.verify(&key.verifying_key()).is_err());
        let hexed = hex::encode(key.to_bytes());
        assert_eq!(
            signing_key_from_hex(&hexed).unwrap().verifying_key(),
            key.verifying_key()
        );
        assert!(signing_key_from_hex("abc").is_err());
    }
}
