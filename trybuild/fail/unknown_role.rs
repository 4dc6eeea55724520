use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Rename a customer.
#[tool(kind = "write", role = "edtor")]
async fn rename(
    _ctx: Ctx<App>,
    #[validate(length(max = 64))] name: String,
) -> Result<String, ToolError> {
    Ok(name)
}
fn main() {}
