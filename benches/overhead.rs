//! End-to-end overhead: the same trivial tool served by bare rmcp (its own macros) and by
//! mcp-secure with the whole pipeline on (API-key auth, RBAC, a rate limit that never trips,
//! validation, audit to a JSON-lines file), both over an in-memory duplex with an rmcp client,
//! measured side by side in one run. Prints calls/s, p50 and p99, and the ratios.
//!
//! Run: `cargo bench --bench overhead` (set `CALLS=N` to change the call count).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_secure::audit::JsonLinesSink;
use mcp_secure::auth::{ApiKeyStore, Environment};
use mcp_secure::{SecureServer, ToolError, roles, tools};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolRequestParams, RequestMetaObject};
use rmcp::service::{RoleClient, RunningService};
use rmcp::{ServiceExt, tool_handler, tool_router};
use serde_json::{Value, json};

roles! { "read-only", "admin": * }

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    text: String,
}

/// Bare rmcp, with its router built once and stored (the fast configuration).
#[derive(Clone)]
struct Bare {
    tool_router: ToolRouter<Bare>,
}

#[tool_router]
impl Bare {
    #[rmcp::tool(description = "Echo text back.")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }
}

#[tool_handler(router = self.tool_router)]
impl rmcp::ServerHandler for Bare {}

/// Echo text back.
#[mcp_secure::tool(kind = "read", role = "read-only", rate = "1000000/sec")]
async fn echo(
    /// The text.
    #[validate(length(max = 64))]
    text: String,
) -> Result<String, ToolError> {
    Ok(text)
}

type Client = RunningService<RoleClient, ()>;

async fn connect<S: rmcp::ServerHandler>(server: S) -> Client {
    let (a, b) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(a).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(b).await.expect("client connects")
}

fn params(token: Option<&str>) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new("echo").with_arguments(
        json!({"text": "hello"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    if let Some(t) = token {
        let mut meta = RequestMetaObject::default();
        meta.0.insert("authToken".into(), Value::from(t));
        p.meta = Some(meta);
    }
    p
}

#[derive(Clone, Copy)]
struct Figures {
    calls_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

async fn run(
    client: Arc<Client>,
    token: Option<Arc<str>>,
    calls: usize,
    workers: usize,
) -> Figures {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let client = client.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(calls / workers);
            for _ in 0..calls / workers {
                let t = Instant::now();
                let r = client
                    .call_tool(params(token.as_deref()))
                    .await
                    .expect("call");
                assert_ne!(r.is_error, Some(true), "the benchmark call must succeed");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::with_capacity(calls);
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    Figures {
        calls_per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50: all[all.len() / 2],
        p99: all[all.len() * 99 / 100],
    }
}

fn main() {
    let calls: usize = std::env::var("CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = ApiKeyStore::new(Environment::Test);
        let token: Arc<str> = keys
            .generate("bench", &["read-only".to_string()], Environment::Test, None)
            .expect("key")
            .token
            .into();
        let secured = SecureServer::builder(())
            .name("bench", "1")
            .roles(ROLES)
            .tools(tools![echo])
            .authenticator(keys)
            .audit(JsonLinesSink::open(dir.path().join("audit.jsonl")).expect("audit file"))
            .build()
            .expect("server");
        let bare = Arc::new(
            connect(Bare {
                tool_router: Bare::tool_router(),
            })
            .await,
        );
        let secure = Arc::new(connect(secured).await);

        // Warm both up, then alternate rounds so drift hits both alike.
        run(bare.clone(), None, 2_000, 1).await;
        run(secure.clone(), Some(token.clone()), 2_000, 1).await;
        println!(
            "calls per scenario: {calls} (ratios: secured / bare; overhead: secured p50 - bare p50)"
        );
        println!(
            "{:<12} {:>8} {:>12} {:>10} {:>10} {:>8} {:>12}",
            "scenario", "server", "calls/s", "p50 µs", "p99 µs", "ratio", "p50 overhead"
        );
        for (label, workers) in [("sequential", 1), ("16-way", 16)] {
            let b = run(bare.clone(), None, calls, workers).await;
            let s = run(secure.clone(), Some(token.clone()), calls, workers).await;
            let b2 = run(bare.clone(), None, calls, workers).await;
            let s2 = run(secure.clone(), Some(token.clone()), calls, workers).await;
            let best = |x: Figures, y: Figures| {
                if x.calls_per_sec >= y.calls_per_sec {
                    x
                } else {
                    y
                }
            };
            let (b, s) = (best(b, b2), best(s, s2));
            for (name, f) in [("bare", b), ("secured", s)] {
                println!(
                    "{:<12} {:>8} {:>12.0} {:>10.1} {:>10.1}",
                    label,
                    name,
                    f.calls_per_sec,
                    f.p50.as_secs_f64() * 1e6,
                    f.p99.as_secs_f64() * 1e6
                );
            }
            println!(
                "{:<12} {:>8} {:>12} {:>10} {:>10} {:>8.3} {:>10.1} µs",
                label,
                "ratio",
                "",
                "",
                "",
                s.calls_per_sec / b.calls_per_sec,
                (s.p50.as_secs_f64() - b.p50.as_secs_f64()) * 1e6
            );
        }
    });
}
