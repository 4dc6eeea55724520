//! The guards of the call pipeline, one per file, each small and testable alone. They are
//! composed, in order, in `server/pipeline.rs`.

pub mod approval;
pub mod authn;
pub mod authz;
pub mod concurrency;
pub mod output;
pub mod rate;
pub mod size;
pub mod timeout;
pub mod validate;

use crate::error::{ErrorCode, ToolError};

/// The `too_large` refusal of the size and output guards: "`what` larger than `max` bytes",
/// with `max_bytes`. Cold: refusals are off the path of the calls that pass.
#[cold]
pub(crate) fn too_large(what: &str, max: usize) -> ToolError {
    ToolError::new(
        ErrorCode::TooLarge,
        format!("{what} larger than {max} bytes"),
    )
    .with_detail("max_bytes", max)
}
