//! Every key of `#[tool]`, and every spelling of its value grammars.

use std::time::Duration;

use mcp_secure::{Approval, Ctx, Kind, Rate, ToolError, ToolHandler, roles, tool};

roles! {
    "read-only",
    "editor": "read-only",
    "support",
    "lead": ["editor", "support"],
    "root": *,
}

pub struct App;

/// Ignored: `description` wins over the doc comment.
#[tool(
    kind = "delete",
    role = "lead",
    approval = "human",
    rate = "10/hour",
    concurrency = 3,
    timeout = "500ms",
    max_input = "16KiB",
    name = "orders.purge-v2",
    title = "Purge old orders",
    description = "Delete orders older than the given number of days."
)]
async fn purge(_ctx: Ctx<App>, days: u32) -> Result<String, ToolError> {
    Ok(format!("purged orders older than {days} days"))
}

/// Rotate the signing key.
#[tool(
    kind = "admin",
    role = "root",
    rate = "1/d",
    timeout = "2m",
    max_input = "1MB"
)]
async fn rotate_key(_ctx: Ctx<App>) -> Result<String, ToolError> {
    Ok("rotated".into())
}

/// Read with every optional key left out.
#[tool(
    kind = "read",
    role = "read-only",
    approval = "explicit",
    rate = "5/s",
    timeout = "1h"
)]
async fn peek(
    _ctx: Ctx<App>,
    #[validate(range(min = 1, max = 10))] n: u8,
) -> Result<String, ToolError> {
    Ok(n.to_string())
}

fn main() {
    let s = ToolHandler::<App>::spec(&__mcs_tool_purge);
    assert_eq!(s.name, "orders.purge-v2");
    assert_eq!(s.title, Some("Purge old orders"));
    assert_eq!(
        s.description,
        "Delete orders older than the given number of days."
    );
    assert_eq!(s.kind, Kind::Delete);
    assert_eq!(s.role, "lead");
    assert_eq!(s.approval, Approval::Human);
    assert_eq!(s.rate, Rate::new(10, Duration::from_secs(3600)));
    assert_eq!(s.concurrency, Some(3));
    assert_eq!(s.timeout, Some(Duration::from_millis(500)));
    assert_eq!(s.max_input, 16 * 1024);

    let s = ToolHandler::<App>::spec(&__mcs_tool_rotate_key);
    assert_eq!((s.kind, s.approval), (Kind::Admin, Approval::Human));
    assert_eq!(s.rate, Rate::new(1, Duration::from_secs(86_400)));
    assert_eq!(s.timeout, Some(Duration::from_secs(120)));
    assert_eq!(s.max_input, 1_000_000);

    let s = ToolHandler::<App>::spec(&__mcs_tool_peek);
    assert_eq!(s.approval, Approval::Explicit);
    assert_eq!(s.rate, Rate::new(5, Duration::from_secs(1)));
    assert_eq!(s.timeout, Some(Duration::from_secs(3600)));
    assert_eq!(s.max_input, mcp_secure::ToolSpec::DEFAULT_MAX_INPUT);
    let schema = serde_json::Value::Object(ToolHandler::<App>::input_schema(&__mcs_tool_peek));
    assert_eq!(schema["properties"]["n"]["maximum"], 10, "{schema}");

    let roles = mcp_secure::Roles::new(ROLES).unwrap();
    assert!(roles.reaches(&["lead"], "read-only"));
    assert!(roles.is_privileged(&["root"]));
}
