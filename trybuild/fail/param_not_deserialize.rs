use mcp_secure::{Ctx, ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

/// Described, but `serde::Deserialize` was forgotten.
#[derive(schemars::JsonSchema)]
pub struct Point {
    pub x: u8,
}

impl mcp_secure::Bounded for Point {}

/// Move to a point.
#[tool(kind = "write", role = "editor")]
async fn move_to(_ctx: Ctx<App>, to: Point) -> Result<String, ToolError> {
    Ok(to.x.to_string())
}
fn main() {}
