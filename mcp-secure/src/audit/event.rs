use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
