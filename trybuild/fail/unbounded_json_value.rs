use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Store a settings document.
#[tool(kind = "write", role = "editor")]
async fn store(_ctx: Ctx<App>, settings: serde_json::Value) -> Result<String, ToolError> {
    Ok(settings.to_string())
}
fn main() {}
