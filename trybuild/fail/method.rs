use mcp_secure::{ToolError, roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

pub struct App;

impl App {
    /// Say hello.
    #[tool(kind = "read", role = "read-only")]
    async fn hello(&self) -> Result<String, ToolError> {
        Ok("hello".into())
    }
}
fn main() {}
