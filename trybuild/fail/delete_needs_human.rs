use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Delete a customer.
#[tool(kind = "delete", role = "editor", approval = "explicit")]
async fn delete_customer(_ctx: Ctx<App>, customer_id: u64) -> Result<String, ToolError> {
    Ok(customer_id.to_string())
}
fn main() {}
