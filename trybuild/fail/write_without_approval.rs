use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Cancel an order.
#[tool(kind = "write", role = "editor", approval = "none")]
async fn cancel_order(_ctx: Ctx<App>, order_id: u64) -> Result<String, ToolError> {
    Ok(order_id.to_string())
}
fn main() {}
