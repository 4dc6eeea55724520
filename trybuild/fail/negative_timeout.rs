use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Say hello.
#[tool(kind = "read", role = "read-only", timeout = "-1s")]
async fn hello(_ctx: Ctx<App>) -> Result<String, ToolError> {
    Ok("hello".into())
}
fn main() {}
