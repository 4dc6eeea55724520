use mcp_secure::{ToolError, roles, tool};

roles! { "read-only" }

/// Read a report.
#[tool(kind = "read", role = "read-only", sandbox = "container")]
async fn read_report(
    /// The report.
    #[validate(length(max = 64))]
    name: String,
) -> Result<String, ToolError> {
    Ok(name)
}
fn main() {}
