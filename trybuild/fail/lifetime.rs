use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Echo a word.
#[tool(kind = "read", role = "read-only")]
async fn echo<'a>(_ctx: Ctx<App>, word: u8) -> Result<String, ToolError> {
    Ok(word.to_string())
}
fn main() {}
