use std::collections::HashMap;

use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Tag a customer.
#[tool(kind = "write", role = "editor")]
async fn tag(_ctx: Ctx<App>, tags: HashMap<u32, bool>) -> Result<String, ToolError> {
    Ok(format!("{}", tags.len()))
}
fn main() {}
