//! The audit record of one call: drafted when the call arrives, completed on whichever path the
//! call leaves by. If the call's future is dropped before it completes (the client went away),
//! `Drop` writes the outcome `cancelled`, so no call is left without its record.
//!
//! [`AuditGuard`] is the server's side of auditing: the sink, the failure policy (fail closed
//! refuses calls while the sink fails), and the alerts (refusal bursts, internal errors, sink
//! failures).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hmac::{Hmac, Mac};
use rmcp::model::{CallToolResult, JsonObject};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::audit::{AlertKind, Alerts, AuditEvent, AuditSink, FailurePolicy, Phase, Redactor};
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

    /// Stores a record, waiting for the sink without blocking the thread (see
    /// [`AuditSink::record_async`]).
    async fn store(&self, event: &AuditEvent) -> Result<(), crate::audit::AuditError> {
        let result = self.sink.record_async(event).await;
        self.stored(event, result)
    }

    /// Stores a record, blocking the thread: only where no `await` is possible (a call's
    /// future dropped before its record was written).
    fn store_blocking(&self, event: &AuditEvent) -> Result<(), crate::audit::AuditError> {
        let result = self.sink.record(event);
        self.stored(event, result)
    }

    /// Keeps track of the sink's health and alerts on a failed store.
    fn stored(
        &self,
        event: &AuditEvent,
        result: Result<(), crate::audit::AuditError>,
    ) -> Result<(), crate::audit::AuditError> {
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::SeqCst) {
                    tracing::warn!("the audit sink stores records again");
                }
                Ok(())
            }
            Err(e) => {
                self.failing.store(true, Ordering::SeqCst);
                let message = format!(
                    "audit record of call {} ({}) was not stored: {e}",
                    event.id, event.tool
                );
                self.alerts.fire(
                    AlertKind::AuditFailure,
                    event.user.as_deref(),
                    Some(&event.tool),
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
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.digest_key)
            .expect("HMAC takes any key length");
        mac.update(value.to_string().as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// The audit record of one call in the making. It owns the call's arguments: the pipeline
/// reads them through [`CallRecord::args`] (parsing borrows them), and the record turns them
/// into the audited input only when it writes, so a call's arguments are never copied for the
/// audit unless a secret must be redacted.
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

pub(super) struct CallRecord<'a> {
    guard: &'a AuditGuard,
    started: Instant,
    event: AuditEvent,
    /// The arguments as called (secrets included: never written as they are).
    args: JsonObject,
    /// What the size guard found.
    args_size: ArgsSize,
    /// Finds the secrets in the arguments; `None` for an unknown tool.
    redactor: Option<&'a Redactor>,
    principal: Option<Arc<Principal>>,
    done: bool,
}

impl<'a> CallRecord<'a> {
    pub(super) fn new(
        guard: &'a AuditGuard,
        tool: &str,
        transport: &str,
        args: JsonObject,
    ) -> Self {
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
        CallRecord {
            guard,
            started: Instant::now(),
            event: AuditEvent::new(hex_id(&id), tool, transport),
            args,
            args_size: ArgsSize::Unmeasured,
            redactor: None,
            principal: None,
            done: false,
        }
    }

    /// The call's arguments, as called.
    pub(super) fn args(&self) -> &JsonObject {
        &self.args
    }

    /// Fail closed: while the audit sink fails, no call runs. The refusal's own record is the
    /// probe: once it is stored, calls run again.
    pub(super) fn ready(&self) -> Result<(), ToolError> {
        if self.guard.policy == FailurePolicy::FailClosed
            && self.guard.failing.load(Ordering::SeqCst)
        {
            return Err(ToolError::new(
                ErrorCode::Internal,
                "the audit log is unavailable, so no call is run",
            ));
        }
        Ok(())
    }

    /// The tool's redactor: every secret value is replaced in the record, and its keyed
    /// digest kept. Without one (an unknown tool), nothing is known to be secret. Set before
    /// anything can end the call, so that no record shows a secret.
    pub(super) fn set_redactor(&mut self, redactor: Option<&'a Redactor>) {
        self.redactor = redactor;
    }

    /// What the size guard found. Over the cap, the record keeps no input at all: copying or
    /// hashing an oversized input for the record would multiply the work the refusal is there
    /// to prevent.
    pub(super) fn set_args_size(&mut self, size: ArgsSize) {
        self.args_size = size;
        if let ArgsSize::OverCap = size {
            self.args = JsonObject::new();
        }
    }

    pub(super) fn set_principal(&mut self, p: &Arc<Principal>) {
        self.principal = Some(Arc::clone(p));
    }

    /// How the call was approved (from the approval step).
    pub(super) fn set_approval(&mut self, decision: Value) {
        self.event.approval = Some(decision);
    }

    /// Writes the write-ahead record, and returns once the sink has stored it. An error means
    /// the attempt is not on record, so (failing closed) the body must not run.
    pub(super) async fn write_attempt(&mut self) -> Result<(), ToolError> {
        let mut attempt = self.event.clone();
        attempt.input = self.audited_input(false, &mut attempt.digests);
        self.fill_principal(&mut attempt, false);
        attempt.phase = Phase::Attempt;
        attempt.outcome = "attempt".into();
        attempt.ts = self.now();
        attempt.duration_ms = self.elapsed_ms();
        match self.guard.store(&attempt).await {
            Ok(()) => Ok(()),
            Err(e) if self.guard.policy == FailurePolicy::FailOpen => {
                tracing::error!(error = %e, tool = %attempt.tool, "write-ahead audit record failed; running anyway (fail open)");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, tool = %attempt.tool, "write-ahead audit record failed; refusing the call");
                Err(ToolError::new(
                    ErrorCode::Internal,
                    "the call could not be recorded, so it was not run",
                ))
            }
        }
    }

    /// Writes the one outcome record. It is handed to the sink before the first `await`, so
    /// it is written even if this future is dropped while it waits for the sink.
    pub(super) async fn finish(mut self, result: Result<&CallToolResult, &ToolError>) {
        match result {
            Ok(r) => {
                // A tool may build its own `isError` result: pass it on, record a failure.
                let failed = r.is_error == Some(true);
                self.event.outcome = if failed {
                    ErrorCode::Failed.as_str()
                } else {
                    "ok"
                }
                .into();
                self.event.success = !failed;
                let output = r
                    .structured_content
                    .clone()
                    .unwrap_or_else(|| json!(r.content));
                self.event.output = Some(bounded(output, None, self.guard.value_limit));
            }
            Err(e) => {
                self.event.outcome = e.code().as_str().into();
                self.event.error = Some(e.message().to_owned());
                self.alert_on(e.code());
            }
        }
        let event = self.outcome_event();
        if let Err(e) = self.guard.store(&event).await {
            outcome_not_stored(&event, &e);
        }
    }

    /// The arguments as the record shows them: secrets replaced (their digests added to
    /// `digests`), large inputs cut. `consume` hands the arguments over when the call is over.
    fn audited_input(&mut self, consume: bool, digests: &mut BTreeMap<String, String>) -> Value {
        let size = match self.args_size {
            ArgsSize::OverCap => return Value::Null,
            ArgsSize::Bytes(n) => Some(n),
            ArgsSize::Unmeasured => None,
        };
        let (args, size) = match self.redactor.filter(|r| r.has_secrets()) {
            Some(r) => {
                let mut redacted = self.args.clone();
                let guard = self.guard;
                r.redact(&mut redacted, |path, v| {
                    digests.insert(format!("input.{path}"), guard.digest(v));
                });
                // Redaction changed the size: measure again.
                (redacted, None)
            }
            None if consume => (std::mem::take(&mut self.args), size),
            None => (self.args.clone(), size),
        };
        bounded(Value::Object(args), size, self.guard.value_limit)
    }

    /// Copies the principal into a record (moves it out when the call is over and nothing
    /// else holds it).
    fn fill_principal(&mut self, event: &mut AuditEvent, consume: bool) {
        let principal = if consume {
            self.principal.take()
        } else {
            self.principal.clone()
        };
        let Some(p) = principal else { return };
        match Arc::try_unwrap(p) {
            Ok(p) => {
                event.user = Some(p.user);
                event.key_id = p.key_id;
                event.roles = p.roles;
            }
            Err(p) => {
                event.user = Some(p.user.clone());
                event.key_id.clone_from(&p.key_id);
                event.roles.clone_from(&p.roles);
            }
        }
    }

    fn alert_on(&self, code: ErrorCode) {
        // The principal is copied into the event only when it is written, after this.
        let user = self.principal.as_deref().map(|p| p.user.as_str());
        let tool = self.event.tool.as_str();
        match code {
            ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::RateLimited
            | ErrorCode::ApprovalDenied => {
                self.guard.alerts.refusal(user, tool, code.as_str());
            }
            ErrorCode::Internal => {
                let message = format!(
                    "call {} to `{tool}` failed inside the server",
                    self.event.id
                );
                self.guard
                    .alerts
                    .fire(AlertKind::Internal, user, Some(tool), 1, message);
            }
            _ => {}
        }
    }

    /// The outcome record, complete; the call has its record from here on (`Drop` writes no
    /// second one).
    fn outcome_event(&mut self) -> AuditEvent {
        self.done = true;
        let mut digests = std::mem::take(&mut self.event.digests);
        self.event.input = self.audited_input(true, &mut digests);
        self.event.digests = digests;
        let mut event = std::mem::replace(&mut self.event, AuditEvent::new(String::new(), "", ""));
        self.fill_principal(&mut event, true);
        event.ts = self.now();
        event.duration_ms = self.elapsed_ms();
        event
    }

    fn now(&self) -> String {
        self.guard.clock.now_rfc3339()
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
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
            self.event.outcome = code.as_str().into();
            self.event.error = Some("the call ended before it completed".into());
            if code == ErrorCode::Internal {
                self.alert_on(code);
            }
            let event = self.outcome_event();
            if let Err(e) = self.guard.store_blocking(&event) {
                outcome_not_stored(&event, &e);
            }
        }
    }
}

fn outcome_not_stored(event: &AuditEvent, e: &crate::audit::AuditError) {
    tracing::error!(error = %e, tool = %event.tool, outcome = %event.outcome, "audit record failed");
}

/// Lowercase hex of a call id, without `hex::encode`'s per-character `String` building (every
/// call makes one).
fn hex_id(bytes: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(32);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Keeps small values whole; replaces large ones by their size, digest and a prefix. `size` is
/// the value's compact JSON size when already measured.
fn bounded(value: Value, size: Option<usize>, limit: usize) -> Value {
    if size.map_or_else(
        || crate::guard::size::json_size(&value, limit).is_some(),
        |n| n <= limit,
    ) {
        return value;
    }
    let text = value.to_string();
    let mut cut = limit.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    json!({
        "truncated": true,
        "bytes": text.len(),
        "sha256": hex::encode(Sha256::digest(text.as_bytes())),
        "head": &text[..cut],
    })
}
