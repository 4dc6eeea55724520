use mcp_secure::{roles, tool};

roles! { "read-only", "editor": "read-only", "admin": * }

/// Not a tool.
#[tool(kind = "read", role = "read-only")]
struct Hello;
fn main() {}
