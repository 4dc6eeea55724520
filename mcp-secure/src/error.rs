//! The one error type of a call, with the stable codes clients can rely on.

use std::borrow::Cow;

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Map, Value, json};

/// A stable, machine-readable reason a call did not succeed.
///
/// The string forms (`as_str`) are part of the public contract: they appear in
/// `structuredContent.error.code` and in the audit record's `outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No valid credential.
    Unauthorized,
    /// The caller's roles do not reach the tool.
    Forbidden,
    /// A rate limit was reached; `retry_after_ms` says when to try again.
    RateLimited,
    /// The arguments are not what the tool accepts.
    InvalidInput,
    /// The arguments or the output are over the size cap.
    TooLarge,
    /// The call needs approval; `approval` says how to give it.
    ApprovalRequired,
    /// Approval was refused, cancelled or not given in time.
    ApprovalDenied,
    /// The call ran past its timeout and was stopped.
    Timeout,
    /// Too many calls of this tool are in flight.
    Overloaded,
    /// Something failed inside the server; details are in the server's logs only.
    Internal,
    /// The tool ran and reported that the thing it was asked about does not exist.
    NotFound,
    /// The tool ran and reported a failure of its own.
    Failed,
    /// The client cancelled the request before it finished.
    Cancelled,
}

impl ErrorCode {
    /// The stable wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::ApprovalRequired => "approval_required",
            ErrorCode::ApprovalDenied => "approval_denied",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Failed => "failed",
            ErrorCode::Cancelled => "cancelled",
        }
    }

    /// The human sentence that opens the error text shown to the model and the user.
    pub const fn headline(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "Error: Not authenticated",
            ErrorCode::Forbidden => "Error: Not authorized",
            ErrorCode::RateLimited => "Rate limit reached. Please wait.",
            ErrorCode::InvalidInput => "Error: Invalid input",
            ErrorCode::TooLarge => "Error: Too large",
            ErrorCode::ApprovalRequired => "Approval required",
            ErrorCode::ApprovalDenied => "Error: Approval denied",
            ErrorCode::Timeout => "Error: The tool took too long and was stopped",
            ErrorCode::Overloaded => "Error: Server busy. Please retry shortly.",
            ErrorCode::Internal => "Error: Internal error",
            ErrorCode::NotFound => "Error: Not found",
            ErrorCode::Failed => "Error: The tool failed",
            ErrorCode::Cancelled => "Error: Cancelled",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error a tool body returns, and the refusal a guard returns: one type for both, so every
/// path ends in the same shape of result and audit record.
///
/// Messages are shown to the client. Never put a secret in one; for failures whose detail must
/// stay on the server use [`ToolError::internal`], which logs the detail and shows a generic text.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolError {
    code: ErrorCode,
    message: Cow<'static, str>,
    details: Map<String, Value>,
}

impl ToolError {
    /// An error with a code and a client-visible message.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ToolError {
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// The arguments are not acceptable (the tool's own check, beyond the declared rules).
    pub fn invalid_input(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// The thing the call names does not exist.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// The tool could not do what was asked; the message says why.
    pub fn failed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Failed, message)
    }

    /// An internal failure. The detail goes to the server log (`tracing` at `error`), the
    /// client sees only "internal error".
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(target: "mcp_secure::tool", %detail, "tool failed internally");
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// Adds a machine-readable detail under `structuredContent.error.<key>`.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The client-visible message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Extra machine-readable details.
    pub fn details(&self) -> &Map<String, Value> {
        &self.details
    }

    /// The `isError` tool result: a human sentence first, then the structured error.
    pub fn to_call_result(&self) -> CallToolResult {
        let mut error = Map::with_capacity(2 + self.details.len());
        error.insert("code".into(), Value::from(self.code.as_str()));
        error.insert("message".into(), Value::from(self.message.as_ref()));
        for (k, v) in &self.details {
            error.insert(k.clone(), v.clone());
        }
        let text = format!("{}: {}", self.code.headline(), self.message);
        let mut result = CallToolResult::structured_error(json!({ "error": error }));
        result.content = vec![ContentBlock::text(text)];
        result
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ToolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_shape_is_stable() {
        let e =
            ToolError::new(ErrorCode::RateLimited, "try later").with_detail("retry_after_ms", 1500);
        let r = e.to_call_result();
        assert_eq!(r.is_error, Some(true));
        let s = r.structured_content.unwrap();
        assert_eq!(s["error"]["code"], "rate_limited");
        assert_eq!(s["error"]["retry_after_ms"], 1500);
        let text = r.content[0].as_text().unwrap().text.clone();
        assert!(
            text.starts_with("Rate limit reached. Please wait."),
            "{text}"
        );
    }
}
