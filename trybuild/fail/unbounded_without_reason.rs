use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Take a note.
#[tool(kind = "write", role = "editor")]
async fn note(_ctx: Ctx<App>, #[unbounded] text: String) -> Result<String, ToolError> {
    Ok(text)
}
fn main() {}
