use mcp_secure::roles;

roles! { "a": "c", "b": "a", "c": "b" }

fn main() {}
