//! Audit: exactly one outcome record per call, on every path, refused calls included; and a
//! write-ahead `attempt` record before the body of a write, delete or admin tool runs.
//!
//! - [`AuditLog`]: the tamper-evident, loss-free log (hash chain, signed checkpoints, bounded
//!   queue with back-pressure, group commit with [`Durability`]); [`verify_log`] checks it.
//! - [`JsonLinesSink`]: one JSON object per line, no chain; [`SpooledJsonLinesSink`] (feature
//!   `spool`) stores each record by a copy into a memory-mapped spool instead of a `write`.
//! - [`SqliteSink`]: a queryable second sink ([`AuditQuery`]).
//! - [`Alerter`]s ([`LogAlerter`], [`WebhookAlerter`]) are told about refusal bursts, internal
//!   errors and audit failures ([`AlertPolicy`]).
//! - [`FailurePolicy`]: what the server does while its audit sink fails.

mod alert;
pub mod chain;
mod event;
mod group;
mod log;
#[cfg(all(feature = "spool", unix))]
mod mapped;
mod output;
/// Content blocks of every kind, for the output cap's tests.
#[cfg(test)]
pub(crate) use output::tests::block as content_block;
mod redact;
mod sink;
#[cfg(all(feature = "spool", unix))]
mod spool;
#[cfg(feature = "sqlite")]
mod sqlite;
mod verify;

pub(crate) use alert::Alerts;
pub use alert::{Alert, AlertKind, AlertPolicy, Alerter, LogAlerter, WebhookAlerter};
pub use chain::{
    Checkpoint, GENESIS_HASH, generate_signing_key, read_signing_key, read_verifying_key,
    signing_key_from_hex, verifying_key_from_hex,
};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub(crate) use event::needs_escape;
pub use event::{AuditEvent, AuditEventRef, Phase};
/// The future [`AuditSink::record_async`] returns (re-exported for sinks of your own).
pub use futures::future::BoxFuture;
pub use log::{
    AuditLog, AuditLogConfig, ChainHead, Durability, FileStore, LogStore, Receipt, Stored,
    checkpoints_path,
};
pub use output::{AuditOutput, ContentJson, MeasuredContent};
pub use redact::{REDACTED, Redactor};
pub use sink::{AuditError, AuditSink, JsonLinesSink, MemorySink, TracingSink};
#[cfg(all(feature = "spool", unix))]
pub use spool::SpooledJsonLinesSink;
#[cfg(feature = "sqlite")]
pub use sqlite::{AuditQuery, SqliteSink};
pub use verify::{Break, Unfinished, VerifyReport, verify_log};

/// What a server does while its audit sink fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Refuse calls (`internal`, "the audit log is unavailable") until a record is stored
    /// again; a write-ahead record that cannot be stored refuses its call. The default.
    #[default]
    FailClosed,
    /// Run calls anyway, and alert on every failure.
    FailOpen,
}
