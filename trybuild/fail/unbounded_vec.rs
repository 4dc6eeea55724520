use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Fetch several orders.
#[tool(kind = "read", role = "read-only")]
async fn orders(_ctx: Ctx<App>, ids: Vec<u64>) -> Result<String, ToolError> {
    Ok(format!("{ids:?}"))
}
fn main() {}
