use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AuditOutput;

/// Which record of a call this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Written before the body of a mutating tool runs (write-ahead).
    Attempt,
    /// The one final record of every call.
    Outcome,
}

/// One audit record. Secrets never reach it: secret arguments are replaced by `"[REDACTED]"`
/// (their keyed digest is in `digests`) and credentials are never part of a call's arguments.
///
/// The field order below is the order of the canonical form the hash chain is computed over
/// (see [`crate::audit::AuditLog`]); `seq`, `prev_hash` and `hash` come last and are set by the
/// chained log, not by the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// The call's id (shared by its attempt and outcome records).
    pub id: String,
    /// When the record was made (RFC 3339, UTC).
    pub ts: String,
    /// `attempt` or `outcome`.
    pub phase: Phase,
    /// The tool name as called.
    pub tool: String,
    /// The authenticated user, if any.
    pub user: Option<String>,
    /// The id of the key or token used.
    pub key_id: Option<String>,
    /// The caller's roles.
    pub roles: Vec<String>,
    /// `stdio`, `http` or another transport label.
    pub transport: String,
    /// The arguments, redacted and truncated.
    pub input: Value,
    /// The output, truncated (outcome records of successful calls).
    pub output: Option<Value>,
    /// `ok` or an error code.
    pub outcome: String,
    /// The refusal or failure message, if any.
    pub error: Option<String>,
    /// True when the body ran and succeeded.
    pub success: bool,
    /// Time from receipt to this record.
    pub duration_ms: u64,
    /// How the call was approved, if it was.
    pub approval: Option<Value>,
    /// Keyed digests (`hmac-sha256:<hex>`) of redacted values, by path (`input.password`), so
    /// a record can be matched against a known value without holding it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digests: BTreeMap<String, String>,
    /// Position in the chained log (1, 2, ...); 0 when not written by a chained log.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u64,
    /// The previous record's `hash` (64 zeros for the first record).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prev_hash: String,
    /// SHA-256 (hex) of this record's canonical form.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How much of a record [`AuditEvent::write_json`] writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonForm {
    /// The whole object.
    Whole,
    /// Without `seq`, `prev_hash`, `hash` and the closing brace: the part of the canonical
    /// form a chained log's producer writes before the record's place in the chain is known.
    Open,
}

/// A borrowed audit record: the fields of an [`AuditEvent`] (without the chain's `seq`,
/// `prev_hash` and `hash`, which only a chained log sets), each borrowed from wherever the
/// producer keeps it. The server hands one of these to its sink for every record
/// ([`AuditSink::record_async`](crate::audit::AuditSink::record_async)), built from what the
/// call already holds, so a record costs no copies of the principal, the tool name or the
/// arguments; sinks that serialize (the chained [`AuditLog`](crate::audit::AuditLog),
/// [`JsonLinesSink`](crate::audit::JsonLinesSink)) write straight from it, and
/// [`AuditEventRef::to_event`] makes the owned record for those that keep one. It serializes
/// (`serde`) exactly as the owned record does without its chain fields.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AuditEventRef<'a> {
    /// The call's id (shared by its attempt and outcome records).
    pub id: &'a str,
    /// When the record was made (RFC 3339, UTC).
    pub ts: &'a str,
    /// `attempt` or `outcome`.
    pub phase: Phase,
    /// The tool name as called.
    pub tool: &'a str,
    /// The authenticated user, if any.
    pub user: Option<&'a str>,
    /// The id of the key or token used.
    pub key_id: Option<&'a str>,
    /// The caller's roles.
    pub roles: &'a [String],
    /// `stdio`, `http` or another transport label.
    pub transport: &'a str,
    /// The arguments, redacted and truncated.
    pub input: &'a Value,
    /// The output, truncated (outcome records of successful calls): a value, or the tool
    /// result's content as JSON text (see [`AuditOutput`]).
    pub output: Option<AuditOutput<'a>>,
    /// `ok` or an error code.
    pub outcome: &'a str,
    /// The refusal or failure message, if any.
    pub error: Option<&'a str>,
    /// True when the body ran and succeeded.
    pub success: bool,
    /// Time from receipt to this record.
    pub duration_ms: u64,
    /// How the call was approved, if it was.
    pub approval: Option<&'a Value>,
    /// Keyed digests of redacted values, by path (see [`AuditEvent::digests`]).
    #[serde(skip_serializing_if = "no_digests")]
    pub digests: &'a BTreeMap<String, String>,
}

fn no_digests(digests: &&BTreeMap<String, String>) -> bool {
    digests.is_empty()
}

impl AuditEvent {
    /// The record, borrowed (its chain fields left out).
    pub fn borrowed(&self) -> AuditEventRef<'_> {
        AuditEventRef {
            id: &self.id,
            ts: &self.ts,
            phase: self.phase,
            tool: &self.tool,
            user: self.user.as_deref(),
            key_id: self.key_id.as_deref(),
            roles: &self.roles,
            transport: &self.transport,
            input: &self.input,
            output: self.output.as_ref().map(AuditOutput::from),
            outcome: &self.outcome,
            error: self.error.as_deref(),
            success: self.success,
            duration_ms: self.duration_ms,
            approval: self.approval.as_ref(),
            digests: &self.digests,
        }
    }

    /// Appends the record as compact JSON: byte for byte what `serde_json` writes for it (its
    /// derived `Serialize`; a test holds the two together). See [`AuditEventRef::write_json`].
    pub(crate) fn write_json(&self, out: &mut Vec<u8>, form: JsonForm) -> serde_json::Result<()> {
        self.borrowed().write_open(out)?;
        if form == JsonForm::Open {
            return Ok(());
        }
        if self.seq != 0 {
            out.extend_from_slice(b",\"seq\":");
            json_u64(out, self.seq);
        }
        if !self.prev_hash.is_empty() {
            out.extend_from_slice(b",\"prev_hash\":");
            json_str(out, &self.prev_hash)?;
        }
        if !self.hash.is_empty() {
            out.extend_from_slice(b",\"hash\":");
            json_str(out, &self.hash)?;
        }
        out.push(b'}');
        Ok(())
    }
}

impl<'a> AuditEventRef<'a> {
    /// An outcome record of call `id` to `tool` with the given input, everything else empty,
    /// as [`AuditEvent::new`] makes it (set the public fields for the rest).
    pub fn new(id: &'a str, tool: &'a str, transport: &'a str, input: &'a Value) -> Self {
        static NO_DIGESTS: BTreeMap<String, String> = BTreeMap::new();
        AuditEventRef {
            id,
            ts: "",
            phase: Phase::Outcome,
            tool,
            user: None,
            key_id: None,
            roles: &[],
            transport,
            input,
            output: None,
            outcome: "",
            error: None,
            success: false,
            duration_ms: 0,
            approval: None,
            digests: &NO_DIGESTS,
        }
    }
}

impl<'a> From<&'a AuditEvent> for AuditEventRef<'a> {
    fn from(event: &'a AuditEvent) -> Self {
        event.borrowed()
    }
}

impl AuditEventRef<'_> {
    /// The owned record (no chain fields), for sinks that keep records.
    pub fn to_event(self) -> AuditEvent {
        AuditEvent {
            id: self.id.to_owned(),
            ts: self.ts.to_owned(),
            phase: self.phase,
            tool: self.tool.to_owned(),
            user: self.user.map(str::to_owned),
            key_id: self.key_id.map(str::to_owned),
            roles: self.roles.to_vec(),
            transport: self.transport.to_owned(),
            input: self.input.clone(),
            output: self.output.map(AuditOutput::to_value),
            outcome: self.outcome.to_owned(),
            error: self.error.map(str::to_owned),
            success: self.success,
            duration_ms: self.duration_ms,
            approval: self.approval.cloned(),
            digests: self.digests.clone(),
            seq: 0,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// Appends the record as compact JSON, the same bytes as `serde_json` writes for
    /// [`AuditEventRef::to_event`], with the keys written as constants and plain strings
    /// (values' strings and keys too) copied without serde's per-character escaping. Every
    /// call's record is written this way, so this is on every call's path.
    pub(crate) fn write_json(self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        self.write_open(out)?;
        out.push(b'}');
        Ok(())
    }

    /// The record without its closing brace: the part of the canonical form a chained log's
    /// producer writes before the record's place in the chain is known.
    pub(crate) fn write_open(self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"id\":");
        json_str(out, self.id)?;
        out.extend_from_slice(b",\"ts\":");
        json_str(out, self.ts)?;
        out.extend_from_slice(match self.phase {
            Phase::Attempt => b",\"phase\":\"attempt\",\"tool\":",
            Phase::Outcome => b",\"phase\":\"outcome\",\"tool\":",
        });
        json_str(out, self.tool)?;
        out.extend_from_slice(b",\"user\":");
        json_opt_str(out, self.user)?;
        out.extend_from_slice(b",\"key_id\":");
        json_opt_str(out, self.key_id)?;
        out.extend_from_slice(b",\"roles\":[");
        for (i, role) in self.roles.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_str(out, role)?;
        }
        out.extend_from_slice(b"],\"transport\":");
        json_str(out, self.transport)?;
        out.extend_from_slice(b",\"input\":");
        json_value(out, self.input)?;
        out.extend_from_slice(b",\"output\":");
        match self.output {
            Some(output) => output.write(out)?,
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"outcome\":");
        json_str(out, self.outcome)?;
        out.extend_from_slice(b",\"error\":");
        json_opt_str(out, self.error)?;
        out.extend_from_slice(if self.success {
            b",\"success\":true,\"duration_ms\":"
        } else {
            b",\"success\":false,\"duration_ms\":"
        });
        json_u64(out, self.duration_ms);
        out.extend_from_slice(b",\"approval\":");
        match self.approval {
            Some(approval) => json_value(out, approval)?,
            None => out.extend_from_slice(b"null"),
        }
        if !self.digests.is_empty() {
            out.extend_from_slice(b",\"digests\":");
            json_object(out, self.digests.iter(), |out, v: &String| json_str(out, v))?;
        }
        Ok(())
    }

    /// The whole record as a JSON string ([`AuditEventRef::write_json`]), for sinks that
    /// store text.
    pub(crate) fn to_json(self) -> Result<String, super::AuditError> {
        json_string(|out| self.write_json(out))
    }
}

impl AuditEvent {
    /// The whole record as a JSON string ([`AuditEvent::write_json`]), for sinks that store
    /// text.
    pub(crate) fn to_json(&self) -> Result<String, super::AuditError> {
        json_string(|out| self.write_json(out, JsonForm::Whole))
    }
}

/// What `write` writes, as a string.
fn json_string(
    write: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
) -> Result<String, super::AuditError> {
    let mut out = Vec::with_capacity(512);
    write(&mut out)
        .map_err(|e| super::AuditError(format!("cannot serialize an audit record: {e}")))?;
    // Only `&str` bytes and serde_json's own output were written: always UTF-8.
    String::from_utf8(out).map_err(|e| super::AuditError(e.to_string()))
}

/// A JSON string: copied between quotes when nothing in it needs escaping (what `serde_json`
/// escapes: `"`, `\\` and control characters below U+0020), else written by `serde_json`.
/// Inlined into the record's writer, which calls it about ten times per record, mostly on
/// short strings.
#[inline(always)]
pub(super) fn json_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    if needs_escape(s.as_bytes()) {
        return json_str_escaped(out, s);
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

#[cold]
fn json_str_escaped(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    serde_json::to_writer(out, s)
}

/// A JSON value, as `serde_json` writes it (compact; numbers written by `serde_json` itself),
/// with strings and keys copied by [`json_str`].
pub(crate) fn json_value(out: &mut Vec<u8>, value: &Value) -> serde_json::Result<()> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => serde_json::to_writer(&mut *out, n)?,
        Value::String(s) => json_str(out, s)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => json_object(out, map.iter(), json_value)?,
    }
    Ok(())
}

/// A JSON object of `entries`, each value written by `write`.
fn json_object<'v, V: ?Sized + 'v>(
    out: &mut Vec<u8>,
    entries: impl Iterator<Item = (&'v String, &'v V)>,
    write: impl Fn(&mut Vec<u8>, &V) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    out.push(b'{');
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, key)?;
        out.push(b':');
        write(out, value)?;
    }
    out.push(b'}');
    Ok(())
}

/// Whether any byte is one JSON escapes (`"`, `\\`, below U+0020), sixteen bytes at a time.
/// Each chunk is folded without an early exit, which the compiler turns into SSE2 compares
/// (about twenty instructions per chunk, half the cost of two 64-bit words of bit tricks).
/// The bytes after the last whole chunk are looked at as overlapping pieces that cover them:
/// the last sixteen bytes of a longer string, as one more chunk; the first and last eight (or
/// four) of a shorter one, as 64-bit words of bit tricks ([`word_flags`]), because the
/// compiler's vector code for eight or four bytes is a long chain of shuffles (a record's
/// short strings spent about 30 ns more per call in it: BENCHMARKS.md, section 1,
/// twenty-seventh round); byte by byte under four (copying a few bytes into a padded chunk
/// compiles to a call to `memcpy`, which costs more than looking at them).
#[inline]
pub(crate) fn needs_escape(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(16);
    for chunk in &mut chunks {
        if flagged::<16>(chunk.try_into().unwrap_or(&[0; 16])) {
            return true;
        }
    }
    if chunks.remainder().is_empty() {
        return false;
    }
    if let Some(last) = bytes.last_chunk::<16>() {
        return flagged(last);
    }
    let flags = if let (Some(first), Some(last)) =
        (bytes.first_chunk::<8>(), bytes.last_chunk::<8>())
    {
        word_flags(u64::from_le_bytes(*first)) | word_flags(u64::from_le_bytes(*last))
    } else if let (Some(first), Some(last)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        word_flags(
            u64::from(u32::from_le_bytes(*first)) | u64::from(u32::from_le_bytes(*last)) << 32,
        )
    } else {
        return bytes.iter().any(|&b| escaped(b));
    };
    flags != 0
}

/// Non-zero exactly when a byte of `w` is one JSON escapes (below `0x20`, `"` or `\\`).
/// `(v - 0x0101..) & !v` sets the high bit of a byte of `v` that is zero, and `(w - 0x2020..)
/// & !w` that of a byte of `w` below `0x20`. A borrow can also set the high bit of a byte
/// above one of those, but never when none is below it, so the word is flagged only for a
/// byte that is escaped (`needs_escape_finds_every_escaped_byte_at_every_position` checks
/// every byte at every position).
#[inline(always)]
fn word_flags(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let quote = w ^ (LO * u64::from(b'"'));
    let backslash = w ^ (LO * u64::from(b'\\'));
    ((w.wrapping_sub(LO * 0x20) & !w)
        | (quote.wrapping_sub(LO) & !quote)
        | (backslash.wrapping_sub(LO) & !backslash))
        & HI
}

/// Whether any of `N` bytes is escaped: every byte looked at, so that it compiles to vector
/// compares.
#[inline(always)]
fn flagged<const N: usize>(chunk: &[u8; N]) -> bool {
    chunk.iter().fold(false, |any, &b| any | escaped(b))
}

#[inline(always)]
fn escaped(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

fn json_opt_str(out: &mut Vec<u8>, s: Option<&str>) -> serde_json::Result<()> {
    match s {
        Some(s) => json_str(out, s),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// A `u64` in decimal, as JSON writes it.
pub(super) fn json_u64(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

impl AuditEvent {
    /// An outcome record of call `id` to `tool`, with everything else empty (the server fills
    /// it in; tests and other producers set the public fields).
    pub fn new(id: String, tool: &str, transport: &str) -> Self {
        AuditEvent {
            id,
            ts: String::new(),
            phase: Phase::Outcome,
            tool: tool.to_owned(),
            user: None,
            key_id: None,
            roles: Vec::new(),
            transport: transport.to_owned(),
            input: Value::Null,
            output: None,
            outcome: String::new(),
            error: None,
            success: false,
            duration_ms: 0,
            approval: None,
            digests: BTreeMap::new(),
            seq: 0,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn serde_bytes(e: &AuditEvent) -> Vec<u8> {
        serde_json::to_vec(e).unwrap()
    }

    fn written(e: &AuditEvent, form: JsonForm) -> Vec<u8> {
        let mut out = b"before".to_vec();
        e.write_json(&mut out, form).unwrap();
        out.split_off(6)
    }

    /// Any text, control characters, quotes, backslashes, braces and non-ASCII included.
    pub(in crate::audit) fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9_.:-]{0,12}",
            any::<String>(),
            proptest::collection::vec(
                prop_oneof![
                    Just('"'),
                    Just('\\'),
                    Just('\n'),
                    Just('\u{0}'),
                    Just('\u{1f}'),
                    Just('\u{7f}'),
                    Just('é'),
                    Just('\u{2028}'),
                    Just('}'),
                    Just('😀'),
                    Just('a'),
                ],
                0..8
            )
            .prop_map(|c| c.into_iter().collect()),
        ]
    }

    /// Any JSON value: every scalar kind (`u64`, `i64` and `f64` numbers), and arrays and
    /// objects (empty ones too) nested a few levels, with any text as keys and strings.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(text(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    prop_compose! {
        fn event()(
            strings in proptest::collection::vec(text(), 8),
            user in proptest::option::of(text()),
            key_id in proptest::option::of(text()),
            error in proptest::option::of(text()),
            roles in proptest::collection::vec(text(), 0..3),
            input in value(),
            output in proptest::option::of(value()),
            approval in proptest::option::of(value()),
            digests in proptest::collection::btree_map(text(), text(), 0..3),
            attempt in any::<bool>(),
            success in any::<bool>(),
            duration_ms in any::<u64>(),
            seq in prop_oneof![Just(0u64), any::<u64>()],
            chained in any::<bool>(),
        ) -> AuditEvent {
            let mut e = AuditEvent::new(strings[0].clone(), &strings[1], &strings[2]);
            e.ts = strings[3].clone();
            e.phase = if attempt { Phase::Attempt } else { Phase::Outcome };
            e.user = user;
            e.key_id = key_id;
            e.roles = roles;
            e.input = input;
            e.output = output;
            e.outcome = strings[4].clone();
            e.error = error;
            e.success = success;
            e.duration_ms = duration_ms;
            e.approval = approval;
            e.digests = digests;
            if chained {
                e.seq = seq;
                e.prev_hash = strings[5].clone();
                e.hash = strings[6].clone();
            }
            e
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn written_json_is_serde_json_byte_for_byte(e in event()) {
            prop_assert_eq!(written(&e, JsonForm::Whole), serde_bytes(&e));
            prop_assert_eq!(e.to_json().unwrap(), serde_json::to_string(&e).unwrap());
            // The borrowed record is the record without its chain fields, and writes as the
            // owned one does.
            let view = e.borrowed();
            let owned = view.to_event();
            prop_assert_eq!(owned.borrowed(), view);
            prop_assert_eq!(view.to_json().unwrap(), serde_json::to_string(&owned).unwrap());
            prop_assert_eq!(serde_json::to_string(&view).unwrap(), serde_json::to_string(&owned).unwrap());
            // The open form is the whole form of the record without its chain fields, less
            // the closing brace.
            let mut unchained = e.clone();
            (unchained.seq, unchained.prev_hash, unchained.hash) = (0, String::new(), String::new());
            prop_assert_eq!(&owned, &unchained);
            let mut open = serde_bytes(&unchained);
            open.pop();
            prop_assert_eq!(written(&e, JsonForm::Open), open);
        }
    }

    /// The chunked test against the byte-at-a-time rule: every byte value at every position
    /// of strings up to two and a half chunks long (every way the whole chunks, the last
    /// overlapping chunk and the short cases meet), among neighbours just above and below each
    /// limit and with the high bit set.
    #[test]
    fn needs_escape_finds_every_escaped_byte_at_every_position() {
        let rule = |b: &[u8]| b.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        for filler in [b'a', b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
            for len in 0..=40 {
                let plain = vec![filler; len];
                assert!(!needs_escape(&plain));
                for at in 0..len {
                    for byte in 0..=255u8 {
                        let mut v = plain.clone();
                        v[at] = byte;
                        assert_eq!(needs_escape(&v), rule(&v), "{filler} {len} {at} {byte}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_full_record_writes_as_serde_does() {
        let mut e = AuditEvent::new("c1".into(), "update_order", "stdio");
        e.ts = "2026-11-25T17:20:01.5Z".into();
        e.user = Some("alice".into());
        e.roles = vec!["editor".into(), "read-only".into()];
        e.input = json!({"order_id": "A-1", "password": "[REDACTED]"});
        e.output = Some(json!([{"type": "text", "text": "line \"one\"\n"}]));
        e.outcome = "ok".into();
        e.success = true;
        e.duration_ms = 12;
        e.approval = Some(json!({"kind": "explicit"}));
        e.digests
            .insert("input.password".into(), "hmac-sha256:00".into());
        e.seq = 7;
        e.prev_hash = "ab".repeat(32);
        e.hash = "cd".repeat(32);
        assert_eq!(written(&e, JsonForm::Whole), serde_bytes(&e));
    }
}
