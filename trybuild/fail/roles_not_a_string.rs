use mcp_secure::roles;

roles! { "read-only", editor: "read-only" }

fn main() {}
