//! Compile time: a crate with 100 `#[mcp_secure::tool]` tools versus the same 100 tools with
//! rmcp's own macros (`#[tool_router]`, `#[tool]`, `Parameters<T>`).
//!
//! Both crates are written under `<target>/compile-bench/`, depend on the workspace's crates by
//! path (with the workspace's `Cargo.lock`, offline) and share one target directory. Their
//! dependencies are built once first (the first run takes minutes; later runs reuse them);
//! then each round touches each crate's `lib.rs` and times `cargo build` of that crate alone,
//! so only macro expansion, type checking and code generation of the 100 tools are compared.
//!
//! Run: `cargo bench --bench compile_time` (`COMPILE_ROUNDS=N` rounds, default 3;
//! `COMPILE_PROFILE=release` to time release builds; `COMPILE_BENCH=0` skips it).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TOOLS: usize = 100;

fn secure_crate() -> (String, String) {
    let manifest = format!(
        r#"[package]
name = "bench_secure_tools"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
mcp-secure = {{ path = "{}" }}

[workspace]
"#,
        workspace().join("mcp-secure").display()
    );
    let mut src = String::from(
        "//! 100 tools declared with mcp-secure.\n\
         use mcp_secure::auth::{ApiKeyStore, Environment};\n\
         use mcp_secure::{SecureServer, ToolError, roles, tools};\n\n\
         roles! { \"read-only\", \"admin\": * }\n\n",
    );
    for i in 0..TOOLS {
        let _ = write!(
            src,
            r#"/// Tool number {i}: echoes its text and number.
#[mcp_secure::tool(kind = "read", role = "read-only", rate = "60/min")]
pub async fn tool_{i:03}(
    /// The text.
    #[validate(length(max = 64))]
    text: String,
    /// A number.
    n: u32,
) -> Result<String, ToolError> {{
    Ok(format!("{{text}} {{n}} {i}"))
}}

"#
        );
    }
    let names: Vec<String> = (0..TOOLS).map(|i| format!("tool_{i:03}")).collect();
    let _ = write!(
        src,
        "/// The server with every tool.\n\
         pub fn server() -> SecureServer<()> {{\n    \
             SecureServer::builder(())\n        \
                 .roles(ROLES)\n        \
                 .tools(tools![{}])\n        \
                 .authenticator(ApiKeyStore::new(Environment::Test))\n        \
                 .build()\n        \
                 .expect(\"server\")\n\
         }}\n",
        names.join(", ")
    );
    (manifest, src)
}

fn bare_crate() -> (String, String) {
    let manifest = r#"[package]
name = "bench_bare_tools"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
rmcp = { version = "3.11", default-features = false, features = ["server", "macros"] }
serde = { version = "1", features = ["derive"] }
schemars = "1"

[workspace]
"#
    .to_owned();
    let mut src = String::from(
        "//! The same 100 tools declared with rmcp's own macros.\n\
         use rmcp::handler::server::router::tool::ToolRouter;\n\
         use rmcp::handler::server::wrapper::Parameters;\n\
         use rmcp::{tool, tool_handler, tool_router};\n\n",
    );
    for i in 0..TOOLS {
        let _ = write!(
            src,
            r#"/// The arguments of tool {i}.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct Args{i:03} {{
    /// The text.
    pub text: String,
    /// A number.
    pub n: u32,
}}

"#
        );
    }
    src.push_str(
        "/// The server with every tool.\n\
         #[derive(Clone)]\n\
         pub struct Server {\n    tool_router: ToolRouter<Server>,\n}\n\n\
         #[tool_router]\n\
         impl Server {\n",
    );
    for i in 0..TOOLS {
        let _ = write!(
            src,
            r#"    /// Tool number {i}: echoes its text and number.
    #[tool]
    pub async fn tool_{i:03}(&self, Parameters(Args{i:03} {{ text, n }}): Parameters<Args{i:03}>) -> String {{
        format!("{{text}} {{n}} {i}")
    }}

"#
        );
    }
    src.push_str(
        "}\n\n\
         #[tool_handler(router = self.tool_router)]\n\
         impl rmcp::ServerHandler for Server {}\n\n\
         /// The server with every tool.\n\
         pub fn server() -> Server {\n    Server { tool_router: Server::tool_router() }\n}\n",
    );
    (manifest, src)
}

/// The workspace root (the root package's manifest directory).
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    // <target>/release/deps/compile_time-<hash>
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn write_crate(dir: &Path, (manifest, src): (String, String)) {
    std::fs::create_dir_all(dir.join("src")).expect("crate dir");
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("manifest");
    std::fs::write(dir.join("src/lib.rs"), src).expect("lib.rs");
    // The workspace's versions, resolved offline.
    std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).expect("Cargo.lock");
}

fn build(dir: &Path, target: &Path, release: bool) -> Duration {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--offline")
        .arg("--quiet")
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_MANIFEST_DIR");
    if release {
        cmd.arg("--release");
    }
    let started = Instant::now();
    let status = cmd.status().expect("run cargo");
    let took = started.elapsed();
    assert!(status.success(), "cargo build failed in {}", dir.display());
    took
}

/// Marks the crate's source as changed, so the next build compiles it (and only it) again.
fn touch(dir: &Path) {
    let lib = dir.join("src/lib.rs");
    let text = std::fs::read(&lib).expect("lib.rs");
    std::fs::write(&lib, text).expect("lib.rs");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    if std::env::var("COMPILE_BENCH").is_ok_and(|v| v == "0") {
        println!("compile_time: skipped (COMPILE_BENCH=0)");
        return;
    }
    // `cargo bench` passes `--bench`; a filter that is not ours skips this benchmark.
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with("--"))
        && !"compile_time".contains(filter.as_str())
    {
        return;
    }
    let rounds: usize = std::env::var("COMPILE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let release = std::env::var("COMPILE_PROFILE").is_ok_and(|p| p == "release");
    let root = target_dir().join("compile-bench");
    let target = root.join("target");
    let secure = root.join("secure");
    let bare = root.join("bare");
    write_crate(&secure, secure_crate());
    write_crate(&bare, bare_crate());

    println!(
        "compile time: {TOOLS} tools, {} profile; building dependencies once (slow the first time)",
        if release { "release" } else { "dev" }
    );
    let first = (
        build(&bare, &target, release),
        build(&secure, &target, release),
    );
    println!(
        "first builds (dependencies included): bare {:.1} s, secured {:.1} s",
        first.0.as_secs_f64(),
        first.1.as_secs_f64()
    );
    let (mut b, mut s) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        touch(&bare);
        b.push(build(&bare, &target, release));
        touch(&secure);
        s.push(build(&secure, &target, release));
    }
    let (b, s) = (median(b), median(s));
    let ratio = s.as_secs_f64() / b.as_secs_f64();
    println!(
        "{:<44} {:>10} {:>8}",
        "crate (rebuilt alone, median of rounds)", "seconds", "ratio"
    );
    println!(
        "{:<44} {:>10.2} {:>8.2}",
        "bare rmcp macros (baseline)",
        b.as_secs_f64(),
        1.0
    );
    println!(
        "{:<44} {:>10.2} {:>8.2}",
        "mcp-secure #[tool]",
        s.as_secs_f64(),
        ratio
    );
    println!(
        "target: <= 1.30x: {:.2}x ({}), {rounds} rounds",
        ratio,
        if ratio <= 1.3 { "met" } else { "missed" }
    );
}
