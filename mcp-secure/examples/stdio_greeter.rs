//! The README's "tool in twenty lines" as a whole program: a stdio server that needs none of
//! mcp-secure's optional features. CI builds it without them (`cargo clippy -p mcp-secure
//! --no-default-features --all-targets`), so it shows what a stdio server can use without
//! HTTP, the fetcher or SQLite.
//!
//! Run: `cargo run -p mcp-secure --no-default-features --example stdio_greeter -- keys.toml`,
//! with a key store made by `customer_service keygen` (or `ApiKeyStore::generate`), and the
//! client's token in `MCP_SECURE_TOKEN`.

use mcp_secure::auth::{ApiKeyStore, Environment};
use mcp_secure::{Ctx, Json, SecureServer, ToolError, roles, tool, tools};

roles! { "read-only", "editor": "read-only", "admin": * }

struct App;

#[derive(serde::Serialize, schemars::JsonSchema)]
struct Greeting {
    text: String,
}

/// Greets someone by name.
#[tool(kind = "read", role = "read-only", rate = "60/min", timeout = "2s")]
async fn greet(
    _ctx: Ctx<App>,
    /// Who to greet.
    #[validate(length(min = 1, max = 64))]
    name: String,
) -> Result<Json<Greeting>, ToolError> {
    Ok(Json(Greeting {
        text: format!("Hello, {name}!"),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "keys.toml".into());
    let server = SecureServer::builder(App)
        .name("greeter", "1.0.0")
        .roles(ROLES)
        .tools(tools![greet])
        .authenticator(ApiKeyStore::load(&keys, Environment::Test)?)
        .audit(mcp_secure::audit::JsonLinesSink::open(
            "greeter-audit.jsonl",
        )?)
        .build()?;
    server.serve_stdio().await?;
    Ok(())
}
