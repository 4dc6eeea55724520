//! Sandboxed tools, for real: the `sandbox_probe` example served over stdio to an rmcp client,
//! its tools trying to get out of their worker processes on this machine's kernel (Landlock,
//! seccomp, rlimits). Each attempt is denied or killed, reported as a clean error, and has no
//! effect; allowed paths still work; no worker is left a zombie, even after 1,000 timeouts.
//! Also: a kernel without a needed feature makes `build` refuse, unless configuration accepts
//! the weaker sandbox.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Client, call, code, text};
use mcp_secure::auth::{ApiKeyStore, Environment};
use mcp_secure::sandbox::{KernelFeature, KernelSupport, SandboxConfig};
use mcp_secure::server::BuildError;
use mcp_secure::{SecureServer, ToolError, roles, tool, tools};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

roles! { "read-only" }

struct Probe {
    client: Client,
    pid: u32,
    dir: tempfile::TempDir,
}

impl Probe {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn audit(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    async fn call(&self, tool: &str, args: Value) -> CallToolResult {
        call(&self.client, None, tool, args).await
    }
}

async fn start(pool: Option<usize>, port: Option<u16>) -> Probe {
    start_with(pool, port, None).await
}

/// The probe, holding `inherit` on descriptor 50 (not close-on-exec) when given: a descriptor
/// the server got from whatever started it.
async fn start_with(
    pool: Option<usize>,
    port: Option<u16>,
    inherit: Option<std::fs::File>,
) -> Probe {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "hello from data").unwrap();
    std::fs::create_dir_all(dir.path().join("outside")).unwrap();
    std::fs::write(dir.path().join("outside/secret.txt"), "outside secret").unwrap();
    let keys = dir.path().join("keys.toml");
    let key = ApiKeyStore::append_to_file(
        &keys,
        "tess",
        &["read-only".to_string()],
        Environment::Test,
        None,
    )
    .unwrap();

    let mut cmd = tokio::process::Command::new(common::example_bin("sandbox_probe"));
    cmd.arg("--keys")
        .arg(&keys)
        .arg("--data")
        .arg(&data)
        .arg("--audit")
        .arg(dir.path().join("audit.jsonl"))
        .env("MCP_SECURE_TOKEN", &key.token)
        .env("RUST_LOG", "warn");
    if let Some(port) = port {
        cmd.arg("--port").arg(port.to_string());
    }
    if let Some(pool) = pool {
        cmd.arg("--pool").arg(pool.to_string());
    }
    if let Some(file) = inherit {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: `dup2` is async-signal-safe; `file` lives until after the spawn.
        unsafe {
            cmd.pre_exec(move || {
                // (`dup2` onto itself would keep close-on-exec.)
                let rc = if fd == 50 {
                    libc::fcntl(50, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, 50)
                };
                if rc < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let transport = TokioChildProcess::new(cmd).expect("spawn the probe");
        drop(file);
        let pid = transport.id().expect("the probe's pid");
        let client = ().serve(transport).await.expect("initialize");
        return Probe { client, pid, dir };
    }
    let transport = TokioChildProcess::new(cmd).expect("spawn the probe");
    let pid = transport.id().expect("the probe's pid");
    let client = ().serve(transport).await.expect("initialize");
    Probe { client, pid, dir }
}

/// The direct children of `pid`, with their state (`S`, `R`, `Z`, ...).
fn children(pid: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == pid {
            out.push((child, state));
        }
    }
    out
}

fn zombies(pid: u32) -> usize {
    children(pid).iter().filter(|(_, s)| *s == 'Z').count()
}

fn message(r: &CallToolResult) -> String {
    r.structured_content
        .as_ref()
        .and_then(|s| s["error"]["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn detail(r: &CallToolResult, key: &str) -> Value {
    r.structured_content
        .as_ref()
        .map(|s| s["error"][key].clone())
        .unwrap_or(Value::Null)
}

/// Asserts a refusal: its code, and that its message contains `needle`.
fn refused(r: &CallToolResult, want: &str, needle: &str) {
    assert_eq!(code(r), want, "{}", text(r));
    assert!(
        message(r).contains(needle),
        "expected {needle:?} in {:?}",
        message(r)
    );
}

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// What the probe's connecting tools send (`connect` and `mptcp_connect`, `connect_loopback`).
const PROBE_PAYLOADS: [&str; 2] = ["escaped", "hello"];

/// What a probe sent, when the listener has a connection from one waiting (waits up to 200 ms
/// for a late one). Other connections are not the probe's: on a shared machine any process may
/// connect to a port it once knew, and they prove nothing about the sandbox.
fn accepted(l: &TcpListener) -> Option<String> {
    let until = Instant::now() + Duration::from_millis(200);
    loop {
        match l.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut got = String::new();
                let _ = s.read_to_string(&mut got);
                if PROBE_PAYLOADS.contains(&got.as_str()) {
                    return Some(got);
                }
                eprintln!("a connection that is not the probe's ({got:?}): ignored");
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > until {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[tokio::test]
async fn escapes_are_denied_and_reported_cleanly() {
    let (allowed, allowed_port) = listener();
    let (other, other_port) = listener();
    let p = start(None, Some(allowed_port)).await;
    let data = p.data();
    let outside = p.dir.path().join("outside");
    let mut calls = 0;
    let mut run = async |tool: &str, args: Value| {
        calls += 1;
        p.call(tool, args).await
    };

    // Allowed paths still work: the `data` root (read-only) and the scratch folder.
    let r = run("read_data", json!({"name": "hello.txt"})).await;
    assert_eq!(
        (code(&r), text(&r)),
        ("ok".into(), "hello from data".into())
    );
    let r = run(
        "read_file",
        json!({"path": data.join("hello.txt").to_str().unwrap()}),
    )
    .await;
    assert_eq!(text(&r), "hello from data");
    let r = run("scratch_roundtrip", json!({"content": "note"})).await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    let report = r.structured_content.unwrap();
    assert_eq!(report["content"], "note");
    assert_eq!(
        report["entries_before"], 0,
        "the scratch folder starts empty"
    );
    let scratch = PathBuf::from(report["path"].as_str().unwrap());
    // A worker that has answered is reaped in the background, and its scratch folder removed
    // then: wait for that (bounded), without asserting how fast it is.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while scratch.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        !scratch.exists(),
        "the scratch folder is removed after the call"
    );
    let r = run("whoami", json!({})).await;
    assert_eq!(text(&r), "tess [\"read-only\"]");

    // Reading outside the allowed set.
    for path in [
        "/etc/passwd".to_string(),
        outside.join("secret.txt").display().to_string(),
        "/proc/1/environ".to_string(),
    ] {
        let r = run("read_file", json!({ "path": path })).await;
        refused(&r, "failed", "Permission denied");
        assert!(!text(&r).contains("root:") && !text(&r).contains("outside secret"));
    }

    // Writing outside the scratch folder: the read-only root, elsewhere in the tree, /tmp.
    let tmp_target = std::env::temp_dir().join(format!("mcs-escape-{}", std::process::id()));
    for target in [data.join("new.txt"), outside.join("evil.txt"), tmp_target] {
        let r = run(
            "write_file",
            json!({"path": target.to_str().unwrap(), "content": "pwned"}),
        )
        .await;
        refused(&r, "failed", "Permission denied");
        assert!(!target.exists(), "{} was written", target.display());
    }

    // The network: none at all for `net = "none"`, even to the loopback port others may use.
    let r = run("connect", json!({ "port": allowed_port })).await;
    refused(&r, "failed", "Operation not permitted");
    assert!(accepted(&allowed).is_none(), "net = none connected");
    // `net = "loopback"`: only the configured port, TCP only.
    let r = run("connect_loopback", json!({ "port": other_port })).await;
    refused(&r, "failed", "Permission denied");
    assert!(accepted(&other).is_none(), "an unlisted port was reached");
    let r = run("udp_loopback", json!({ "port": other_port })).await;
    refused(&r, "failed", "Operation not permitted");
    let r = run("connect_loopback", json!({ "port": allowed_port })).await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    assert_eq!(accepted(&allowed).as_deref(), Some("hello"));

    // Running a program: fork+exec, and a bare execve.
    let marker = outside.join("marker");
    let r = run("exec_shell", json!({"marker": marker.to_str().unwrap()})).await;
    refused(&r, "failed", "Operation not permitted");
    let r = run("exec_in_place", json!({"marker": marker.to_str().unwrap()})).await;
    refused(&r, "failed", "execve: Operation not permitted");
    assert!(!marker.exists(), "a shell ran");

    // A fork bomb, raw and through std::process.
    let r = run("fork_bomb", json!({"rounds": 64})).await;
    refused(&r, "failed", "fork after 0: Operation not permitted");
    let r = run("spawn_bomb", json!({"rounds": 64})).await;
    refused(&r, "failed", "spawn after 0: Operation not permitted");

    // Memory: 1 GiB is over the 512 MiB address space. Reserving fails cleanly; allocating
    // aborts the worker, reported as out of memory.
    let r = run("try_allocate", json!({"mib": 1024})).await;
    refused(&r, "failed", "memory allocation failed");
    let r = run("allocate", json!({"mib": 1024})).await;
    refused(&r, "internal", "ran out of memory (its limit is 512 MiB)");
    assert_eq!(detail(&r, "sandbox"), "out_of_memory");
    let r = run("allocate", json!({"mib": 16})).await;
    assert_eq!(code(&r), "ok", "small allocations work: {}", text(&r));

    // An infinite loop: the timeout kills it; without a timeout, the CPU limit does.
    let started = Instant::now();
    let r = run("spin", json!({})).await;
    refused(&r, "timeout", "did not finish within 300 ms");
    assert!(started.elapsed() < Duration::from_secs(5));
    let r = run("spin_forever", json!({})).await;
    refused(&r, "internal", "it used up its 1 s of CPU time");
    assert_eq!(detail(&r, "sandbox"), "cpu_limit");

    // Signals to the server are refused; it still serves.
    let r = run("signal_parent", json!({})).await;
    refused(&r, "failed", "Operation not permitted");

    // The worker's stdout is not the channel: a forged answer there changes nothing.
    let r = run("forge_stdout", json!({})).await;
    assert_eq!((code(&r), text(&r)), ("ok".into(), "genuine".into()));
    // Nothing from stderr or a panic reaches the client.
    let r = run("noisy_panic", json!({})).await;
    refused(&r, "internal", "internal error");
    assert!(!format!("{r:?}").contains("SECRET-"), "{r:?}");
    // A worker that exits, or answers too much, is a clean internal error.
    let r = run("exit_early", json!({})).await;
    refused(
        &r,
        "internal",
        "the sandboxed tool failed: it exited with status 3 without answering",
    );
    let r = run("huge_reply", json!({})).await;
    refused(&r, "internal", "its answer is larger than 2097152 bytes");
    assert_eq!(detail(&r, "sandbox"), "reply_too_large");
    let r = run("whoami", json!({})).await;
    assert_eq!(code(&r), "ok", "the server survived: {}", text(&r));

    // Every worker was reaped (a worker that answered is reaped just after its answer).
    let until = Instant::now() + Duration::from_secs(20);
    while zombies(p.pid) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(zombies(p.pid), 0, "{:?}", children(p.pid));
    let audit = p.audit();
    p.client.cancel().await.unwrap();

    // One audit outcome per call, written by the server, with nothing from the workers.
    let log = std::fs::read_to_string(audit).unwrap();
    let outcomes: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["phase"] == "outcome")
        .collect();
    assert_eq!(outcomes.len(), calls);
    assert!(!log.contains("SECRET-"));
    let oom = outcomes.iter().find(|v| v["tool"] == "allocate").unwrap();
    assert_eq!(oom["outcome"], "internal");
}

#[tokio::test]
async fn no_zombies_after_a_thousand_timeouts() {
    let p = start(None, None).await;
    let peer = p.client.peer().clone();
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
    let mut calls = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..1000 {
        let (peer, gate) = (peer.clone(), Arc::clone(&gate));
        calls.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let r = peer
                .call_tool(CallToolRequestParams::new("sleepy"))
                .await
                .expect("the transport answers");
            code(&r)
        });
    }
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    while let Some(c) = calls.join_next().await {
        *outcomes.entry(c.unwrap()).or_default() += 1;
    }
    assert_eq!(outcomes.get("timeout"), Some(&1000), "{outcomes:?}");
    eprintln!("1000 timed-out sandboxed calls in {:?}", started.elapsed());
    // Every timed-out worker was killed and reaped before its call returned.
    assert_eq!(zombies(p.pid), 0, "{:?}", children(p.pid));
    // What is left is the pools' idle workers: 2 for each of the probe's 27 sandboxed tools.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = children(p.pid);
    assert!(left.len() <= 2 * 27, "{} children: {left:?}", left.len());
    assert_eq!(zombies(p.pid), 0, "{left:?}");
    p.client.cancel().await.unwrap();
}

#[tokio::test]
async fn spawn_per_call_works_the_same() {
    let p = start(Some(0), None).await;
    let r = p.call("read_data", json!({"name": "hello.txt"})).await;
    assert_eq!(text(&r), "hello from data");
    let r = p.call("read_file", json!({"path": "/etc/passwd"})).await;
    refused(&r, "failed", "Permission denied");
    for _ in 0..20 {
        let r = p.call("sleepy", json!({})).await;
        refused(&r, "timeout", "did not finish within 50 ms");
    }
    // No pool: no worker is left at all.
    assert!(children(p.pid).is_empty(), "{:?}", children(p.pid));
    p.client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_cancelled_request_kills_and_reaps_its_worker() {
    let p = start(Some(0), None).await;
    // Dropping the call makes the rmcp client send `notifications/cancelled`.
    let call = p
        .client
        .call_tool(CallToolRequestParams::new("spin_forever"));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), call)
            .await
            .is_err()
    );
    let until = Instant::now() + Duration::from_secs(5);
    let outcome = loop {
        let log = std::fs::read_to_string(p.audit()).unwrap_or_default();
        let found = log
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v["phase"] == "outcome" && v["tool"] == "spin_forever");
        if let Some(v) = found {
            break v;
        }
        assert!(Instant::now() < until, "no outcome record");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(outcome["outcome"], "cancelled", "{outcome}");
    // Stopped by the cancellation, well before its 1 s CPU limit would have.
    assert!(outcome["duration_ms"].as_u64().unwrap() < 900, "{outcome}");
    assert!(children(p.pid).is_empty(), "{:?}", children(p.pid));
    p.client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_worker_inherits_no_descriptor_from_the_server() {
    // The server was started holding an open file it may read (a socket-activated listener, a
    // secret handed over by its supervisor, ...): its workers must not hold it too.
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("secret.txt");
    std::fs::write(&secret, "inherited secret").unwrap();
    for pool in [None, Some(0)] {
        let file = std::fs::File::open(&secret).unwrap();
        let p = start_with(pool, None, Some(file)).await;
        let r = p.call("read_fd", json!({"fd": 50})).await;
        assert!(
            !text(&r).contains("inherited secret"),
            "pool {pool:?}: {r:?}"
        );
        refused(&r, "failed", "Bad file descriptor");
        p.client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn loopback_cannot_listen() {
    let (_allowed, allowed_port) = listener();
    let p = start(None, Some(allowed_port)).await;
    // `listen` without `bind`: the kernel picks a port, and Landlock sees no `bind`. (Before the
    // fix the body listened, and accepted whoever connected; nothing here connects to it, so
    // that other tests' listeners on this machine are never touched.)
    let r = p.call("listen_loopback", json!({"wait_ms": 0})).await;
    refused(&r, "failed", "listen: Operation not permitted");
    p.client.cancel().await.unwrap();
}

#[tokio::test]
async fn loopback_reaches_no_other_port_over_mptcp() {
    let (allowed, allowed_port) = listener();
    let (other, other_port) = listener();
    let p = start(None, Some(allowed_port)).await;
    // A stream socket that is not TCP (MPTCP, falling back to TCP to a TCP listener).
    let r = p.call("mptcp_connect", json!({"port": other_port})).await;
    assert!(
        accepted(&other).is_none(),
        "an unlisted port was reached over MPTCP: {}",
        text(&r)
    );
    refused(&r, "failed", "Operation not permitted");
    assert!(accepted(&allowed).is_none());
    p.client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_worker_dies_with_the_server_even_if_it_asks_not_to() {
    let p = start(Some(0), None).await;
    let peer = p.client.peer().clone();
    let call = tokio::spawn(async move {
        peer.call_tool(CallToolRequestParams::new("outlive_server"))
            .await
    });
    // Its worker, and time for its body to run: the body is refused, or it sleeps.
    let until = Instant::now() + Duration::from_secs(10);
    let mut worker = None;
    while worker.is_none() && !call.is_finished() {
        if let [(pid, _)] = children(p.pid)[..] {
            worker = Some(pid);
        }
        assert!(Instant::now() < until, "no worker started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    if call.is_finished() {
        let r = call.await.unwrap().expect("the transport answers");
        refused(&r, "failed", "prctl: Operation not permitted");
        p.client.cancel().await.unwrap();
        return;
    }
    let worker = worker.expect("the worker runs");
    // The server dies without a chance to kill it.
    // SAFETY: a plain system call; `p.pid` is the probe this test started.
    unsafe { libc::kill(p.pid as i32, libc::SIGKILL) };
    let _ = call.await;
    let until = Instant::now() + Duration::from_secs(2);
    let gone = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
            .unwrap_or(true)
    };
    while !gone(worker) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alive = !gone(worker);
    if alive {
        // SAFETY: the worker this test's probe started, outliving it.
        unsafe { libc::kill(worker as i32, libc::SIGKILL) };
    }
    assert!(!alive, "worker {worker} outlived the server");
}

/// Reads a report.
#[tool(kind = "read", role = "read-only", sandbox = "process", fs = "reports")]
async fn read_report(
    /// Its name.
    #[validate(length(max = 64))]
    name: String,
) -> Result<String, ToolError> {
    let dir = mcp_secure::sandbox::root("reports")?;
    std::fs::read_to_string(dir.join(name)).map_err(|e| ToolError::failed(e.to_string()))
}

/// Fetches from a local service.
#[tool(kind = "read", role = "read-only", sandbox = "process", net = "any")]
async fn fetch() -> Result<String, ToolError> {
    Ok(String::new())
}

fn build(config: SandboxConfig) -> Result<SecureServer<()>, BuildError> {
    SecureServer::builder(())
        .roles(ROLES)
        .tools(tools![read_report, fetch])
        .authenticator(ApiKeyStore::new(Environment::Test))
        .sandbox(config.pool(0))
        .build()
}

#[test]
fn a_kernel_without_a_needed_feature_refuses_to_build() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path();
    let full = KernelSupport::new(6, true);
    build(SandboxConfig::new().root("reports", reports).kernel(full)).unwrap();

    // Landlock ABI 5: no scopes.
    let e = build(
        SandboxConfig::new()
            .root("reports", reports)
            .kernel(KernelSupport::new(5, true)),
    )
    .unwrap_err();
    assert_eq!(
        e,
        BuildError::SandboxFeature {
            tool: "read_report".into(),
            feature: KernelFeature::LandlockScopes
        }
    );
    assert!(e.to_string().contains(
        "accept the weaker sandbox with `SandboxConfig::new().accept_weaker(KernelFeature::LandlockScopes)`"
    ));
    // Landlock ABI 3: no TCP rules either; `net = "any"` does not need them, `none` does.
    let e = build(
        SandboxConfig::new()
            .root("reports", reports)
            .kernel(KernelSupport::new(3, true))
            .accept_weaker(KernelFeature::LandlockScopes),
    )
    .unwrap_err();
    assert_eq!(
        e,
        BuildError::SandboxFeature {
            tool: "read_report".into(),
            feature: KernelFeature::LandlockNet
        }
    );
    // No seccomp.
    let e = build(
        SandboxConfig::new()
            .root("reports", reports)
            .kernel(KernelSupport::new(6, false)),
    )
    .unwrap_err();
    assert!(
        matches!(
            &e,
            BuildError::SandboxFeature {
                feature: KernelFeature::Seccomp,
                ..
            }
        ),
        "{e}"
    );
    // No Landlock at all: refused, unless every missing feature is accepted explicitly.
    let none = KernelSupport::new(0, true);
    let e = build(SandboxConfig::new().root("reports", reports).kernel(none)).unwrap_err();
    assert!(
        matches!(
            &e,
            BuildError::SandboxFeature {
                feature: KernelFeature::LandlockFs,
                ..
            }
        ),
        "{e}"
    );
    build(
        SandboxConfig::new()
            .root("reports", reports)
            .kernel(none)
            .accept_weaker(KernelFeature::LandlockFs)
            .accept_weaker(KernelFeature::LandlockNet)
            .accept_weaker(KernelFeature::LandlockScopes),
    )
    .unwrap();

    // A root the tool names but configuration does not give.
    let e = build(SandboxConfig::new().kernel(full)).unwrap_err();
    assert_eq!(
        e,
        BuildError::SandboxRoot {
            tool: "read_report".into(),
            root: "reports".into()
        }
    );
    // A root that does not exist.
    let e = build(
        SandboxConfig::new()
            .root("reports", Path::new("/nonexistent/reports"))
            .kernel(full),
    )
    .unwrap_err();
    assert!(e.to_string().contains("sandbox root `reports`"), "{e}");
}
