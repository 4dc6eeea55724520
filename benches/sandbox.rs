//! The per-call cost of the process sandbox: the same trivial tool run in the server process,
//! in a worker started for the call (`SandboxConfig::pool(0)`), and in a pre-started worker
//! from the pool (`pool(2)`, the default), through the whole pipeline (`SecureServer::call`,
//! API-key auth, validation, audit to a file). The pool is measured back to back (calls faster
//! than it refills, so some calls start their own worker) and paced (one call every 25 ms, so
//! a warm worker is always waiting). Prints a table with the ratios.
//!
//! This benchmark binary is also the worker program: `main` calls `sandbox::worker` first.
//!
//! Run: `cargo bench --bench sandbox` (`CALLS=N` changes the calls per row, default 300).

use std::time::{Duration, Instant};

use mcp_secure::audit::JsonLinesSink;
use mcp_secure::auth::{ApiKeyStore, Credential, CredentialSource, Environment};
use mcp_secure::sandbox::{self, SandboxConfig};
use mcp_secure::{SecureServer, ToolError, roles, tool, tools};
use serde_json::json;

roles! { "read-only" }

/// Echo, in a sandboxed worker.
#[tool(kind = "read", role = "read-only", sandbox = "process")]
async fn echo(
    /// The text.
    #[validate(length(max = 64))]
    text: String,
) -> Result<String, ToolError> {
    Ok(text)
}

/// Echo, in the server process.
#[tool(kind = "read", role = "read-only")]
async fn echo_inproc(
    /// The text.
    #[validate(length(max = 64))]
    text: String,
) -> Result<String, ToolError> {
    Ok(text)
}

struct Row {
    name: &'static str,
    mean: Duration,
    p50: Duration,
    p99: Duration,
}

async fn measure(
    name: &'static str,
    server: &SecureServer<()>,
    token: &str,
    tool: &str,
    calls: usize,
    pace: Option<Duration>,
) -> Row {
    let args = json!({"text": "hello"}).as_object().cloned().unwrap();
    let credential = || Some(Credential::new(token.to_owned(), CredentialSource::Session));
    // Warm up (and let a pool fill).
    for _ in 0..5 {
        server
            .call(tool, Some(args.clone()), credential(), None)
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut lat = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let r = server
            .call(tool, Some(args.clone()), credential(), None)
            .await;
        lat.push(t.elapsed());
        assert_ne!(r.is_error, Some(true), "{name}: {r:?}");
        if let Some(p) = pace {
            tokio::time::sleep(p).await;
        }
    }
    lat.sort_unstable();
    Row {
        name,
        mean: lat.iter().sum::<Duration>() / lat.len() as u32,
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
    }
}

fn main() -> std::process::ExitCode {
    if let Some(code) = sandbox::worker(tools![echo]) {
        return code;
    }
    let calls: usize = std::env::var("CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = ApiKeyStore::new(Environment::Test);
        let token = keys
            .generate("bench", &["read-only".to_string()], Environment::Test, None)
            .expect("key")
            .token;
        let server = |pool: usize, audit: &str| {
            SecureServer::builder(())
                .roles(ROLES)
                .tools(tools![echo, echo_inproc])
                .authenticator(keys.clone())
                .audit(JsonLinesSink::open(dir.path().join(audit)).expect("audit"))
                .sandbox(SandboxConfig::new().pool(pool))
                .build()
                .expect("server")
        };
        let spawn = server(0, "spawn.jsonl");
        let pooled = server(2, "pool.jsonl");
        let pace = Some(Duration::from_millis(25));
        let rows = [
            measure(
                "in-process (no sandbox)",
                &spawn,
                &token,
                "echo_inproc",
                calls,
                None,
            )
            .await,
            measure(
                "sandbox, spawn per call",
                &spawn,
                &token,
                "echo",
                calls,
                None,
            )
            .await,
            measure(
                "sandbox, pool of 2, back to back",
                &pooled,
                &token,
                "echo",
                calls,
                None,
            )
            .await,
            measure(
                "sandbox, pool of 2, paced 25 ms",
                &pooled,
                &token,
                "echo",
                calls,
                pace,
            )
            .await,
        ];
        let base = rows[0].mean.as_secs_f64();
        let spawn = rows[1].mean.as_secs_f64();
        println!("sandbox per-call cost, {calls} sequential calls per row (mean, p50, p99)");
        println!(
            "| {:<34} | {:>10} | {:>10} | {:>10} | {:>12} | {:>9} |",
            "configuration", "mean", "p50", "p99", "x in-process", "x spawn"
        );
        println!(
            "|{:-<36}|{:->12}|{:->12}|{:->12}|{:->14}|{:->11}|",
            "", "", "", "", "", ""
        );
        for r in &rows {
            println!(
                "| {:<34} | {:>10.3?} | {:>10.3?} | {:>10.3?} | {:>12.1} | {:>9.2} |",
                r.name,
                r.mean,
                r.p50,
                r.p99,
                r.mean.as_secs_f64() / base,
                r.mean.as_secs_f64() / spawn,
            );
        }
    });
    std::process::ExitCode::SUCCESS
}
