use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Search customers.
#[tool(kind = "read", role = "read-only")]
async fn search(
    _ctx: Ctx<App>,
    #[validate(length(max = 64))] query: &str,
) -> Result<String, ToolError> {
    Ok(query.to_owned())
}
fn main() {}
