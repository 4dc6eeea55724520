use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Echo anything.
#[tool(kind = "read", role = "read-only")]
async fn echo<T: serde::de::DeserializeOwned>(
    _ctx: Ctx<App>,
    value: T,
) -> Result<String, ToolError> {
    let _ = value;
    Ok("echo".into())
}
fn main() {}
