//! The audit record of one call: drafted when the call arrives, completed on whichever path the
//! call leaves by. If the call's future is dropped before it completes (the client went away),
//! `Drop` writes the outcome `cancelled`, so no call is left without its record.
//!
//! [`AuditGuard`] is the server's side of auditing: the sink, the failure policy (fail closed
//! refuses calls while the sink fails), and the alerts (refusal bursts, internal errors, sink
//! failures).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::audit::{
    AlertKind, Alerts, AuditEventRef, AuditOutput, AuditSink, ContentJson, FailurePolicy,
    MeasuredContent, Phase, Redactor,
};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::{ErrorCode, ToolError};

/// Everything a call's record needs from the server, shared by all calls.
pub(super) struct AuditGuard {
    sink: Arc<dyn AuditSink>,
    clock: Clock,
    value_limit: usize,
    policy: FailurePolicy,
    alerts: Alerts,
    digest_key: [u8; 32],
    /// Set by a failed write, cleared by the next successful one.
    failing: AtomicBool,
}

impl AuditGuard {
    pub(super) fn new(
        sink: Arc<dyn AuditSink>,
        clock: Clock,
        value_limit: usize,
        policy: FailurePolicy,
        alerts: Alerts,
        digest_key: [u8; 32],
    ) -> Self {
        AuditGuard {
            sink,
            clock,
            value_limit,
            policy,
            alerts,
            digest_key,
            failing: AtomicBool::new(false),
        }
    }

    /// Keeps track of the sink's health and alerts on a failed store.
    fn stored(
        &self,
        call: &CallRecord<'_>,
        result: Result<(), crate::audit::AuditError>,
    ) -> Result<(), crate::audit::AuditError> {
        match result {
            Ok(()) => {
                // Read before written: a healthy sink's calls leave the flag's cache line
                // shared between cores instead of writing it on every record.
                if self.failing.load(Ordering::Relaxed)
                    && self.failing.swap(false, Ordering::SeqCst)
                {
                    tracing::warn!("the audit sink stores records again");
                }
                Ok(())
            }
            Err(e) => {
                self.failing.store(true, Ordering::SeqCst);
                let message = format!(
                    "audit record of call {} ({}) was not stored: {e}",
                    call.id(),
                    call.tool
                );
                self.alerts.fire(
                    AlertKind::AuditFailure,
                    call.user(),
                    Some(call.tool),
                    1,
                    message,
                );
                Err(e)
            }
        }
    }

    /// A keyed digest of a redacted value: matches the same value under the same key, and
    /// cannot be reversed by guessing without the key.
    fn digest(&self, value: &Value) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.digest_key)
            .expect("HMAC takes any key length");
        mac.update(value.to_string().as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// The arguments' size as the size guard found it.
#[derive(Clone, Copy)]
pub(super) enum ArgsSize {
    /// Not measured yet (the call ended before the size guard).
    Unmeasured,
    /// Their compact JSON size.
    Bytes(usize),
    /// Over the cap: the record keeps no input at all (only the refusal).
    OverCap,
}

/// The audit record of one call in the making. It holds what the call's records say, and
/// lends it to the sink as an [`AuditEventRef`] when a record is written: the arguments, the
/// principal and the names are never copied for the audit (the arguments only when a secret
/// must be redacted or the input is too large to keep whole).
pub(super) struct CallRecord<'a> {
    guard: &'a AuditGuard,
    /// When the call arrived, on the server's clock ([`Clock::elapsed`]).
    started: Duration,
    /// The call id, lowercase hex.
    id: [u8; 32],
    tool: &'a str,
    transport: &'static str,
    /// The arguments as called, always a JSON object (secrets included: never written as
    /// they are).
    args: Value,
    /// What the size guard found.
    args_size: ArgsSize,
    /// Finds the secrets in the arguments; `None` for an unknown tool.
    redactor: Option<&'a Redactor>,
    /// Borrowed from the session's credential, which outlives the call, or the call's own.
    principal: Option<Cow<'a, Arc<Principal>>>,
    approval: Option<Value>,
    /// The result's content as the output cap measured it.
    content: Option<MeasuredContent>,
    /// Set once the outcome record is being written (`Drop` writes none then).
    done: bool,
}

/// Where the call stands, as a record says: `attempt` before the body of a mutating tool
/// runs, then how it ended.
struct Status<'r> {
    outcome: &'static str,
    error: Option<String>,
    output: Option<Output<'r>>,
    success: bool,
}

/// The output an outcome record shows: lent from the tool's result, or made for the record.
enum Output<'r> {
    /// The result's `structuredContent`, as it is.
    Structured(&'r Value),
    /// The result's `content`, every block plain text, as it is (written with the record).
    PlainText(&'r [ContentBlock]),
    /// The result's other `content`, written once as JSON text (no `Value` tree built and
    /// freed).
    Content(ContentJson),
    /// Too large to keep whole: its size, digest and first bytes.
    Cut(Value),
}

impl<'r> Output<'r> {
    /// The output of a result, cut to `limit` bytes of JSON; `measured` is its content as the
    /// output cap measured it, when it did.
    fn of(result: &'r CallToolResult, measured: Option<MeasuredContent>, limit: usize) -> Self {
        match &result.structured_content {
            Some(value) => match bounded(Cow::Borrowed(value), None, limit) {
                Cow::Borrowed(value) => Output::Structured(value),
                Cow::Owned(cut) => Output::Cut(cut),
            },
            None => {
                let measured = measured.unwrap_or_else(|| MeasuredContent::of(&result.content));
                debug_assert_eq!(
                    measured,
                    MeasuredContent::of(&result.content),
                    "another result's content"
                );
                match measured {
                    MeasuredContent::PlainText(size) if size <= limit => {
                        Output::PlainText(&result.content)
                    }
                    MeasuredContent::PlainText(_) => {
                        Output::Cut(cut(ContentJson::new(&result.content).as_str(), limit))
                    }
                    MeasuredContent::Written(json) if json.as_str().len() <= limit => {
                        Output::Content(json)
                    }
                    MeasuredContent::Written(json) => Output::Cut(cut(json.as_str(), limit)),
                }
            }
        }
    }

    fn lend(&self) -> AuditOutput<'_> {
        match self {
            Output::Structured(value) => AuditOutput::from(*value),
            Output::PlainText(content) => AuditOutput::plain_text(content),
            Output::Content(json) => AuditOutput::from(json),
            Output::Cut(value) => AuditOutput::from(value),
        }
    }
}

// The small methods the pipeline calls are `#[inline]`: the pipeline is generic over the
// server's state, so it is compiled in the server's crate, where a method of this crate is
// otherwise a call whose answer goes through memory (BENCHMARKS.md, section 1, twenty-sixth
// round).
impl<'a> CallRecord<'a> {
    pub(super) fn new(
        guard: &'a AuditGuard,
        tool: &'a str,
        transport: &'static str,
        args: JsonObject,
    ) -> Self {
        let id = crate::random::call_id();
        CallRecord {
            guard,
            started: guard.clock.elapsed(),
            id: hex_id(&id),
            tool,
            transport,
            args: Value::Object(args),
            args_size: ArgsSize::Unmeasured,
            redactor: None,
            principal: None,
            approval: None,
            content: None,
            done: false,
        }
    }

    /// When the call arrived, on the server's clock ([`Clock::elapsed`]).
    #[inline]
    pub(super) fn started(&self) -> Duration {
        self.started
    }

    /// The call's arguments, as called.
    #[inline]
    pub(super) fn args(&self) -> &JsonObject {
        match &self.args {
            Value::Object(args) => args,
            _ => unreachable!("a call's arguments are always held as an object"),
        }
    }

    /// Fail closed: while the audit sink fails, no call runs. The refusal's own record is the
    /// probe: once it is stored, calls run again.
    #[inline]
    pub(super) fn ready(&self) -> Result<(), ToolError> {
        if self.guard.policy == FailurePolicy::FailClosed
            && self.guard.failing.load(Ordering::SeqCst)
        {
            return Err(audit_unavailable());
        }
        Ok(())
    }

    /// The tool's redactor: every secret value is replaced in the record, and its keyed
    /// digest kept. Without one (an unknown tool), nothing is known to be secret. Set before
    /// anything can end the call, so that no record shows a secret.
    #[inline]
    pub(super) fn set_redactor(&mut self, redactor: Option<&'a Redactor>) {
        self.redactor = redactor;
    }

    /// What the size guard found. Over the cap, the record keeps no input at all: copying or
    /// hashing an oversized input for the record would multiply the work the refusal is there
    /// to prevent.
    #[inline]
    pub(super) fn set_args_size(&mut self, size: ArgsSize) {
        self.args_size = size;
        if let ArgsSize::OverCap = size {
            self.args = Value::Object(JsonObject::new());
        }
    }

    /// The arguments' size as the size guard measured it (0 before it did, `usize::MAX` over
    /// its cap).
    #[inline]
    pub(super) fn args_bytes(&self) -> usize {
        match self.args_size {
            ArgsSize::Bytes(n) => n,
            ArgsSize::Unmeasured => 0,
            ArgsSize::OverCap => usize::MAX,
        }
    }

    #[inline]
    pub(super) fn set_principal(&mut self, p: Cow<'a, Arc<Principal>>) {
        self.principal = Some(p);
    }

    /// How the call was approved (from the approval step).
    #[inline]
    pub(super) fn set_approval(&mut self, decision: Value) {
        self.approval = Some(decision);
    }

    /// The result's content as the output cap measured it: the outcome record shows it
    /// without measuring (or writing) it again. Only for the result `finish` is then given.
    #[inline]
    pub(super) fn set_content(&mut self, content: Option<MeasuredContent>) {
        self.content = content;
    }

    /// Writes the write-ahead record, and returns once the sink has stored it. An error means
    /// the attempt is not on record, so (failing closed) the body must not run.
    pub(super) async fn write_attempt(&mut self) -> Result<(), ToolError> {
        let attempt = Status {
            outcome: "attempt",
            error: None,
            output: None,
            success: false,
        };
        match self.store(Phase::Attempt, &attempt).await {
            Ok(()) => Ok(()),
            Err(e) if self.guard.policy == FailurePolicy::FailOpen => {
                tracing::error!(error = %e, tool = %self.tool, "write-ahead audit record failed; running anyway (fail open)");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, tool = %self.tool, "write-ahead audit record failed; refusing the call");
                Err(ToolError::new(
                    ErrorCode::Internal,
                    "the call could not be recorded, so it was not run",
                ))
            }
        }
    }

    /// Writes the one outcome record. It is handed to the sink before the first `await`, so
    /// it is written even if this future is dropped while it waits for the sink.
    ///
    /// Returns whether the call's result may be delivered: false when, failing closed, the
    /// record could not be stored (no result leaves without its record).
    pub(super) async fn finish(&mut self, result: Result<&CallToolResult, &ToolError>) -> bool {
        let status = match result {
            Ok(r) => {
                // A tool may build its own `isError` result: pass it on, record a failure.
                let failed = r.is_error == Some(true);
                Status {
                    outcome: if failed {
                        ErrorCode::Failed.as_str()
                    } else {
                        "ok"
                    },
                    error: None,
                    output: Some(Output::of(r, self.content.take(), self.guard.value_limit)),
                    success: !failed,
                }
            }
            Err(e) => {
                self.alert_on(e.code());
                Status {
                    outcome: e.code().as_str(),
                    error: Some(e.message().to_owned()),
                    output: None,
                    success: false,
                }
            }
        };
        self.done = true;
        match self.store(Phase::Outcome, &status).await {
            Ok(()) => true,
            Err(e) => {
                outcome_not_stored(self.tool, status.outcome, &e);
                self.guard.policy == FailurePolicy::FailOpen
            }
        }
    }

    /// Stores a record, waiting for the sink without blocking the thread (see
    /// [`AuditSink::record_async`]: the sink takes the record before the first `await`).
    async fn store(
        &self,
        phase: Phase,
        status: &Status<'_>,
    ) -> Result<(), crate::audit::AuditError> {
        let sink = &self.guard.sink;
        let result = self
            .write(phase, status, |record| sink.record_async(record))
            .await;
        self.guard.stored(self, result)
    }

    /// Stores a record, blocking the thread: only where no `await` is possible (a call's
    /// future dropped before its record was written).
    fn store_blocking(
        &self,
        phase: Phase,
        status: &Status<'_>,
    ) -> Result<(), crate::audit::AuditError> {
        let sink = &self.guard.sink;
        let result = self.write(phase, status, |record| sink.record(&record.to_event()));
        self.guard.stored(self, result)
    }

    /// Lends the record (`phase`, with `status`, stamped now) to `store`, which takes it
    /// before it returns.
    fn write<R>(
        &self,
        phase: Phase,
        status: &Status<'_>,
        store: impl FnOnce(AuditEventRef<'_>) -> R,
    ) -> R {
        let mut digests = BTreeMap::new();
        let input = self.audited_input(&mut digests);
        // One look at the clock gives both the record's time and the call's duration.
        let now = self.guard.clock.elapsed();
        let ts = self.guard.clock.stamp_at(now);
        let (key_id, roles) = match self.principal.as_deref().map(Arc::as_ref) {
            Some(p) => (p.key_id.as_deref(), p.roles.as_slice()),
            None => (None, &[][..]),
        };
        store(AuditEventRef {
            id: self.id(),
            ts: ts.as_str(),
            phase,
            tool: self.tool,
            user: self.user(),
            key_id,
            roles,
            transport: self.transport,
            input: &input,
            output: status.output.as_ref().map(Output::lend),
            outcome: status.outcome,
            error: status.error.as_deref(),
            success: status.success,
            duration_ms: u64::try_from(now.saturating_sub(self.started).as_millis())
                .unwrap_or(u64::MAX),
            approval: self.approval.as_ref(),
            digests: &digests,
        })
    }

    /// The arguments as the record shows them: secrets replaced (their digests added to
    /// `digests`), large inputs cut; borrowed when neither applies.
    fn audited_input(&self, digests: &mut BTreeMap<String, String>) -> Cow<'_, Value> {
        let size = match self.args_size {
            ArgsSize::OverCap => return Cow::Owned(Value::Null),
            ArgsSize::Bytes(n) => Some(n),
            ArgsSize::Unmeasured => None,
        };
        match self.redactor.filter(|r| r.has_secrets()) {
            Some(r) => {
                let mut redacted = self.args().clone();
                let guard = self.guard;
                r.redact(&mut redacted, |path, v| {
                    digests.insert(format!("input.{path}"), guard.digest(v));
                });
                // Redaction changed the size: measure again.
                bounded(
                    Cow::Owned(Value::Object(redacted)),
                    None,
                    self.guard.value_limit,
                )
            }
            None => bounded(Cow::Borrowed(&self.args), size, self.guard.value_limit),
        }
    }

    /// The call id.
    fn id(&self) -> &str {
        // Only hex digits are written.
        std::str::from_utf8(&self.id).unwrap_or_default()
    }

    /// The authenticated user, once there is one.
    fn user(&self) -> Option<&str> {
        self.principal.as_deref().map(|p| p.user.as_str())
    }

    fn alert_on(&self, code: ErrorCode) {
        let user = self.user();
        let tool = self.tool;
        match code {
            ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::RateLimited
            | ErrorCode::ApprovalDenied => {
                self.guard.alerts.refusal(user, tool, code.as_str());
            }
            ErrorCode::Internal => {
                let message = format!("call {} to `{tool}` failed inside the server", self.id());
                self.guard
                    .alerts
                    .fire(AlertKind::Internal, user, Some(tool), 1, message);
            }
            _ => {}
        }
    }
}

impl Drop for CallRecord<'_> {
    fn drop(&mut self) {
        if !self.done {
            let code = if std::thread::panicking() {
                ErrorCode::Internal
            } else {
                ErrorCode::Cancelled
            };
            if code == ErrorCode::Internal {
                self.alert_on(code);
            }
            let status = Status {
                outcome: code.as_str(),
                error: Some("the call ended before it completed".into()),
                output: None,
                success: false,
            };
            if let Err(e) = self.store_blocking(Phase::Outcome, &status) {
                outcome_not_stored(self.tool, status.outcome, &e);
            }
        }
    }
}

/// What a call answers, failing closed, when its outcome record could not be stored: its
/// result is withheld.
#[cold]
pub(super) fn outcome_unrecorded() -> ToolError {
    ToolError::new(
        ErrorCode::Internal,
        "the audit log is unavailable: the call's outcome could not be recorded, so its result is withheld",
    )
}

/// The refusal of a call while the audit sink fails (fail closed).
#[cold]
fn audit_unavailable() -> ToolError {
    ToolError::new(
        ErrorCode::Internal,
        "the audit log is unavailable, so no call is run",
    )
}

fn outcome_not_stored(tool: &str, outcome: &str, e: &crate::audit::AuditError) {
    tracing::error!(error = %e, tool = %tool, outcome = %outcome, "audit record failed");
}

/// Lowercase hex of a call id (every call makes one). Each digit is computed, not looked up
/// in a table: `b'0' + n`, plus the 39 between `b'9' + 1` and `b'a'` when `n > 9`; the
/// compiler does the 32 digits in vector registers, where a table costs a load per digit.
fn hex_id(bytes: &[u8; 16]) -> [u8; 32] {
    let digit = |n: u8| b'0' + n + 39 * u8::from(n > 9);
    let mut out = [0u8; 32];
    for i in 0..16 {
        out[2 * i] = digit(bytes[i] >> 4);
        out[2 * i + 1] = digit(bytes[i] & 0xf);
    }
    out
}

/// Keeps small values whole; replaces large ones by their size, digest and a prefix. `size` is
/// the value's compact JSON size when already measured.
fn bounded(value: Cow<'_, Value>, size: Option<usize>, limit: usize) -> Cow<'_, Value> {
    if size.map_or_else(
        || crate::guard::size::json_size(&value, limit).is_some(),
        |n| n <= limit,
    ) {
        return value;
    }
    Cow::Owned(cut(&value.to_string(), limit))
}

/// What a record keeps of a value whose JSON `text` is over `limit` bytes.
fn cut(text: &str, limit: usize) -> Value {
    let mut end = limit.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    json!({
        "truncated": true,
        "bytes": text.len(),
        "sha256": hex::encode(Sha256::digest(text.as_bytes())),
        "head": &text[..end],
    })
}

#[cfg(test)]
mod tests {
    use super::hex_id;

    /// Every byte value, at every position, as `hex` writes it.
    #[test]
    fn call_ids_are_lowercase_hex() {
        for first in 0..=255u8 {
            let bytes: [u8; 16] = std::array::from_fn(|i| first.wrapping_add(i as u8));
            assert_eq!(hex_id(&bytes).as_slice(), hex::encode(bytes).as_bytes());
        }
    }
}
