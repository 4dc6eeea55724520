use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Search customers.
#[tool(kind = "read", role = "read-only")]
async fn search(_ctx: Ctx<App>, query: String) -> Result<String, ToolError> {
    Ok(query)
}
fn main() {}
