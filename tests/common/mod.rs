//! Shared test helpers: an rmcp client that can send `_meta.authToken`, and result readers.
#![allow(dead_code)]

use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject, RequestMetaObject};
use rmcp::service::{RoleClient, RunningService};
use serde_json::Value;

pub type Client = RunningService<RoleClient, ()>;

/// Serves `server` over a 64 KiB in-memory duplex (until the client goes away) and connects an
/// rmcp client to it.
pub async fn connect<S: rmcp::ServerHandler>(server: S) -> Client {
    use rmcp::ServiceExt;
    let (a, b) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(a).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(b).await.expect("the client connects")
}

/// Calls a tool, with a per-request token when given.
pub async fn call(client: &Client, token: Option<&str>, name: &str, args: Value) -> CallToolResult {
    let mut params = CallToolRequestParams::new(name.to_owned());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    if let Some(t) = token {
        let mut meta = RequestMetaObject::default();
        meta.0.insert("authToken".into(), Value::from(t));
        params.meta = Some(meta);
    }
    client
        .call_tool(params)
        .await
        .expect("the transport must answer")
}

/// The stable error code of a refusal, or `ok`.
pub fn code(r: &CallToolResult) -> String {
    if r.is_error != Some(true) {
        return "ok".into();
    }
    r.structured_content
        .as_ref()
        .and_then(|s| s["error"]["code"].as_str())
        .unwrap_or("<no code>")
        .to_owned()
}

/// The text of the first content block.
pub fn text(r: &CallToolResult) -> String {
    r.content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

/// Arguments as a JSON object.
pub fn obj(v: Value) -> JsonObject {
    v.as_object().cloned().unwrap_or_default()
}

/// The path of a built example binary (cargo builds examples before running tests).
pub fn example_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile dir");
    let bin = profile_dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "{} is not built; run `cargo test --workspace` (it builds examples)",
        bin.display()
    );
    bin
}

/// Runs `customer_service keygen` and returns the token it prints.
pub fn keygen(data: &std::path::Path, user: &str, role: &str, env: &str) -> String {
    keygen_with(data, user, role, env, &[])
}

/// [`keygen`] with more flags (`--expires 1h`).
pub fn keygen_with(
    data: &std::path::Path,
    user: &str,
    role: &str,
    env: &str,
    extra: &[&str],
) -> String {
    let out = std::process::Command::new(example_bin("customer_service"))
        .args(["keygen", "--user", user, "--role", role, "--env", env])
        .args(extra)
        .arg("--data")
        .arg(data)
        .output()
        .expect("keygen runs");
    assert!(
        out.status.success(),
        "keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        token.starts_with(&format!("mcs_{env}_")),
        "keygen printed the token alone"
    );
    token
}

/// Whether the interop tests can run: `false` (with a message saying so) only when there is
/// no `python3` at all. With Python present, the official MCP SDK must be importable: `.ci/run`
/// installs it, and a missing SDK is a failure, not a silent skip.
pub fn python_sdk(test: &str) -> bool {
    match std::process::Command::new("python3")
        .args(["-c", "import mcp"])
        .output()
    {
        Err(e) => {
            eprintln!("SKIPPED {test}: python3 is not available ({e})");
            false
        }
        Ok(o) if !o.status.success() => panic!(
            "{test}: python3 is present but the `mcp` package is not ({}); install it with `python3 -m pip install 'mcp>=2,<3'` (`.ci/run` does)",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ),
        Ok(_) => true,
    }
}

/// An alerter that keeps every alert, for tests to look at.
#[derive(Clone, Default)]
pub struct CollectAlerts(pub std::sync::Arc<std::sync::Mutex<Vec<mcp_secure::audit::Alert>>>);

impl mcp_secure::audit::Alerter for CollectAlerts {
    fn alert(&self, alert: &mcp_secure::audit::Alert) {
        self.0.lock().unwrap().push(alert.clone());
    }
}

impl CollectAlerts {
    /// The kinds of the alerts so far, in order.
    pub fn kinds(&self) -> Vec<mcp_secure::audit::AlertKind> {
        self.0.lock().unwrap().iter().map(|a| a.kind).collect()
    }
}
