//! Compile time: a crate with 100 `#[mcp_secure::tool]` tools versus the same 100 tools with
//! rmcp's own macros (`#[tool_router]`, `#[tool]`, `Parameters<T>`).
//!
//! Both crates are written under `<target>/compile-bench/`, depend on the workspace's crates by
//! path (with the workspace's `Cargo.lock`, offline) and share one target directory. Their
//! dependencies are built once first (the first run takes minutes; later runs reuse them);
//! then each round touches each crate's `lib.rs` and times `cargo build` of that crate alone,
//! so only macro expansion, type checking and code generation of the 100 tools are compared.
//! The secured crate uses mcp-secure without its default features (HTTP, fetch, SQLite), as
//! the bare crate uses rmcp without its transports: cargo checks fewer packages on each build.
//!
//! The machine may be busy with other work, which only ever adds time: so one untimed warm-up
//! round comes first (the first rebuild after a dependency changed also refreshes incremental
//! state), the two crates alternate within each round (bare first in even rounds, secured first
//! in odd ones, so neither always follows the other), and each side's median and minimum are
//! printed. The target is judged on the median of the per-round ratios (secured / bare): the
//! two builds of a round run seconds apart, so a change of load mostly moves both; the ratios
//! of the minimums and of the medians are printed beside it.
//!
//! `COMPILE_CLEAN=N` adds N rounds of builds from scratch: each crate in an empty target
//! directory, its dependencies included (what a fresh clone pays), alternating as above. Each
//! takes minutes, so none run by default.
//!
//! Run: `cargo bench --bench compile_time` (`COMPILE_ROUNDS=N` rounds, default 5;
//! `COMPILE_PROFILE=release` to time release builds; `COMPILE_FEATURES=default` builds the
//! secured crate with mcp-secure's default features; `COMPILE_CLEAN=N` clean rounds, default
//! 0; `COMPILE_BENCH=0` skips it).

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
# Like the bare crate, no HTTP transport, no SQLite: only what these tools use.
mcp-secure = {{ path = "{}", default-features = {} }}

[workspace]
"#,
        workspace().join("mcp-secure").display(),
        std::env::var("COMPILE_FEATURES").is_ok_and(|f| f == "default"),
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

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

fn min(v: &[Duration]) -> Duration {
    v.iter().copied().min().expect("at least one round")
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
        .unwrap_or(5)
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
    // Warm-up, not timed.
    for dir in [&bare, &secure] {
        touch(dir);
        build(dir, &target, release);
    }
    let (mut b, mut s) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let time = |dir: &Path, into: &mut Vec<Duration>| {
            touch(dir);
            into.push(build(dir, &target, release));
        };
        if round % 2 == 0 {
            time(&bare, &mut b);
            time(&secure, &mut s);
        } else {
            time(&secure, &mut s);
            time(&bare, &mut b);
        }
    }
    report("crate (rebuilt alone)", &b, &s);

    // From scratch: each crate built in an empty target directory, dependencies included (what
    // a fresh clone or CI pays), alternating which goes first.
    let clean: usize = std::env::var("COMPILE_CLEAN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if clean > 0 {
        let (mut b, mut s) = (Vec::new(), Vec::new());
        for round in 0..clean {
            let time = |dir: &Path, side: &str, into: &mut Vec<Duration>| {
                let fresh = root.join(format!("clean-{side}"));
                let _ = std::fs::remove_dir_all(&fresh);
                into.push(build(dir, &fresh, release));
                let _ = std::fs::remove_dir_all(&fresh);
            };
            if round % 2 == 0 {
                time(&bare, "bare", &mut b);
                time(&secure, "secure", &mut s);
            } else {
                time(&secure, "secure", &mut s);
                time(&bare, "bare", &mut b);
            }
        }
        report("crate (clean build, with deps)", &b, &s);
    }
}

/// Prints one table (minimum and median of each side, every round) and the target line, judged
/// on the median of the rounds' ratios (secured / bare).
fn report(what: &str, b: &[Duration], s: &[Duration]) {
    let secs = |d: Duration| d.as_secs_f64();
    let (b_med, s_med, b_min, s_min) = (median(b), median(s), min(b), min(s));
    let (ratio_min, ratio_med) = (secs(s_min) / secs(b_min), secs(s_med) / secs(b_med));
    let mut ratios: Vec<f64> = b.iter().zip(s).map(|(b, s)| secs(*s) / secs(*b)).collect();
    ratios.sort_unstable_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    println!("{what:<36} {:>10} {:>10}", "min s", "median s");
    println!(
        "{:<36} {:>10.2} {:>10.2}",
        "bare rmcp macros (baseline)",
        secs(b_min),
        secs(b_med)
    );
    println!(
        "{:<36} {:>10.2} {:>10.2}",
        "mcp-secure #[tool]",
        secs(s_min),
        secs(s_med)
    );
    println!(
        "every round (bare / secured, s): {}",
        b.iter()
            .zip(s)
            .map(|(b, s)| format!("{:.2}/{:.2}", secs(*b), secs(*s)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "target: <= 1.30x: {ratio:.2}x, median of {} rounds' ratios ({}); \
         {ratio_min:.2}x on minimums, {ratio_med:.2}x on medians",
        ratios.len(),
        if ratio <= 1.3 { "met" } else { "missed" }
    );
}
