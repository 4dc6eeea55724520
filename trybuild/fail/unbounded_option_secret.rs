use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

use mcp_secure::Secret;

/// Log in.
#[tool(kind = "read", role = "read-only")]
async fn login(_ctx: Ctx<App>, password: Option<Secret<String>>) -> Result<String, ToolError> {
    Ok(password.is_some().to_string())
}
fn main() {}
