//! Guard 8: cap the size of what a tool returns.

use rmcp::model::CallToolResult;

use super::size::encoded_size;
use crate::error::{ErrorCode, ToolError};

/// Refuses with `too_large` when the encoded result exceeds `max` bytes.
pub fn check(result: &CallToolResult, max: usize) -> Result<(), ToolError> {
    match encoded_size(result, max) {
        Some(_) => Ok(()),
        None => Err(ToolError::new(
            ErrorCode::TooLarge,
            format!("the tool's output is larger than {max} bytes"),
        )
        .with_detail("max_bytes", max)),
    }
}
