// Rules `#[tool]` checks itself are type-checked by rustc against the parameter: a bound of
// the wrong kind, and a length on a type that has none, are reported where they are written.
use mcp_secure::{ToolError, roles, tool};

roles! { "read-only" }

/// Pick a page.
#[tool(kind = "read", role = "read-only")]
async fn page(
    #[validate(range(min = 1.0))] ratio: u32,
    #[validate(length(max = 3))] count: u32,
) -> Result<String, ToolError> {
    Ok(format!("{ratio}{count}"))
}

fn main() {}
