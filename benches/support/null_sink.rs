//! The benches' null audit sink, shared by `overhead`, `pipeline` and `scale` (each bench
//! includes this file with `#[path]`).

use mcp_secure::audit::{AuditError, AuditEvent, AuditEventRef, AuditSink, BoxFuture};

/// Drops every record: isolates the rest of the pipeline from the audit write. It takes the
/// borrowed record as the shipped sinks do, so no owned copy is made for it.
pub struct NullSink;

impl AuditSink for NullSink {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        std::hint::black_box(event);
        Ok(())
    }

    fn record_async<'a>(
        &'a self,
        record: AuditEventRef<'_>,
    ) -> BoxFuture<'a, Result<(), AuditError>> {
        std::hint::black_box(record);
        Box::pin(std::future::ready(Ok(())))
    }
}
