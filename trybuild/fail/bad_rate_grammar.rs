use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Say hello.
#[tool(kind = "read", role = "read-only", rate = "sixty per minute")]
async fn hello(_ctx: Ctx<App>) -> Result<String, ToolError> {
    Ok("hello".into())
}
fn main() {}
