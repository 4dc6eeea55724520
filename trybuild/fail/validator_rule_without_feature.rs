// mcp-secure is built here without its `validator` feature: a rule only validator checks is
// a compile error on that rule, and the only one.
use mcp_secure::{ToolError, roles, tool};

roles! { "read-only" }

/// Send a note.
#[tool(kind = "read", role = "read-only")]
async fn send(
    #[validate(length(max = 64))] text: String,
    #[validate(email, length(max = 64))] to: String,
) -> Result<String, ToolError> {
    Ok(format!("{text}{to}"))
}

fn main() {}
