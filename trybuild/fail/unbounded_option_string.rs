use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Search, optionally by name.
#[tool(kind = "read", role = "read-only")]
async fn search(_ctx: Ctx<App>, name: Option<String>) -> Result<String, ToolError> {
    Ok(name.unwrap_or_default())
}
fn main() {}
