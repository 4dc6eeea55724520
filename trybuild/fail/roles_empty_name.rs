use mcp_secure::roles;

roles! { "read-only", "": "read-only" }

fn main() {}
