use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Rotate the signing key.
#[tool(kind = "admin", role = "editor")]
async fn rotate_key(_ctx: Ctx<App>) -> Result<String, ToolError> {
    Ok("rotated".into())
}
fn main() {}
