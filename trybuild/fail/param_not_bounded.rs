use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// A filter; its `Vec` makes it unbounded.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct Filter {
    pub tags: Vec<String>,
}

/// Search orders.
#[tool(kind = "read", role = "read-only")]
async fn search(_ctx: Ctx<App>, filter: Filter) -> Result<String, ToolError> {
    Ok(filter.tags.len().to_string())
}
fn main() {}
