//! A sandboxed tool: no `Ctx`, so its handler serves any state, and the same `tools!` list goes
//! to the server and to the worker entry; its spec carries the sandbox.

use mcp_secure::policy::{FsTarget, Network};
use mcp_secure::{Json, ToolError, ToolHandler, Tools, roles, tool, tools};

roles! { "read-only" }

pub struct App;

#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Report {
    name: String,
    text: String,
}

/// Read one report.
#[tool(
    kind = "read",
    role = "read-only",
    timeout = "5s",
    sandbox = "process",
    net = "none",
    fs = "reports, scratch, /usr/share/zoneinfo:ro"
)]
pub async fn read_report(
    /// The report's name.
    #[validate(length(min = 1, max = 64))]
    name: String,
) -> Result<Json<Report>, ToolError> {
    let dir = mcp_secure::sandbox::root("reports")?;
    let text = std::fs::read_to_string(dir.join(&name)).map_err(|e| ToolError::failed(e.to_string()))?;
    let _caller = &mcp_secure::sandbox::principal()?.user;
    let _scratch = mcp_secure::sandbox::scratch()?;
    Ok(Json(Report { name, text }))
}

/// Talk to a local service.
#[tool(kind = "read", role = "read-only", sandbox = "process", net = "loopback")]
async fn ping() -> Result<String, ToolError> {
    Ok("pong".into())
}

fn main() -> std::process::ExitCode {
    // Not started as a worker: nothing happens.
    if let Some(code) = mcp_secure::sandbox::worker(tools![read_report, ping]) {
        return code;
    }
    let for_server: Tools<App> = tools![read_report, ping];
    assert_eq!(for_server.len(), 2);

    let spec = ToolHandler::<()>::spec(&__mcs_tool_read_report);
    let sandbox = spec.sandbox.as_ref().expect("sandboxed");
    assert_eq!(sandbox.net, Network::None);
    assert_eq!(sandbox.fs.len(), 3);
    assert_eq!(sandbox.fs[0].target, FsTarget::Root("reports"));
    assert!(!sandbox.fs[0].write);
    assert_eq!(sandbox.fs[1].target, FsTarget::Scratch);
    assert!(sandbox.fs[1].write);
    assert_eq!(sandbox.fs[2].target, FsTarget::Path("/usr/share/zoneinfo"));
    let spec = ToolHandler::<()>::spec(&__mcs_tool_ping);
    assert_eq!(spec.sandbox.as_ref().unwrap().net, Network::Loopback);
    assert!(spec.sandbox.as_ref().unwrap().fs.is_empty());

    // Outside a worker, the sandbox accessors refuse.
    assert!(mcp_secure::sandbox::root("reports").is_err());
    std::process::ExitCode::SUCCESS
}
