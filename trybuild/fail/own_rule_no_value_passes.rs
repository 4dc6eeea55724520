use mcp_secure::{ToolError, roles, tool};

roles! { "read-only" }

/// Pick a page.
#[tool(kind = "read", role = "read-only")]
async fn page(
    #[validate(length(min = 10, max = 5))] name: String,
    #[validate(range(min = 1, exclusive_max = 1))] n: u32,
) -> Result<String, ToolError> {
    Ok(format!("{name}{n}"))
}

fn main() {}
