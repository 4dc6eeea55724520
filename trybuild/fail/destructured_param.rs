use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Add two numbers.
#[tool(kind = "read", role = "read-only")]
async fn add(_ctx: Ctx<App>, (a, b): (u32, u32)) -> Result<String, ToolError> {
    Ok((a + b).to_string())
}
fn main() {}
