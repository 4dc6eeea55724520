use mcp_secure::roles;

roles! { "read-only", "editor": "reader" }

fn main() {}
