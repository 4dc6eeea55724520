use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Say hello.
#[tool(kind = "read", role = "read-only")]
async fn hello(ctx: Ctx<App>, again: Ctx<App>) -> Result<String, ToolError> {
    let _ = (ctx, again);
    Ok("hello".into())
}
fn main() {}
