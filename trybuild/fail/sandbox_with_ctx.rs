use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only" }

pub struct App {
    reports: std::path::PathBuf,
}

/// Read a report.
#[tool(kind = "read", role = "read-only", sandbox = "process", fs = "reports")]
async fn read_report(
    ctx: Ctx<App>,
    /// The report.
    #[validate(length(max = 64))]
    name: String,
) -> Result<String, ToolError> {
    std::fs::read_to_string(ctx.reports.join(name)).map_err(|e| ToolError::failed(e.to_string()))
}
fn main() {}
