//! Pipeline micro-benchmark (criterion): the guard chain without any JSON transport, stage by
//! stage through the public guard functions, then whole calls through `SecureServer::call`
//! (direct transport) with sinks that isolate the cost of auditing.
//!
//! Run: `cargo bench --bench pipeline` (`BENCH_SECS=N` measures each case for N seconds,
//! default 1; criterion's own arguments, e.g. a filter, work as usual). After criterion's
//! output it prints a table of medians, each with its ratio to the baseline of the same run
//! (parsing the arguments and running the body: what any server does for a call).
//!
//! The chain (auth + RBAC + rate + the call's record built and handed to the chained log) is
//! a stdio call's: its credential is the session's, whose digest is computed once (the
//! "cached digest" of the target); a token sent with each request adds its hashing
//! (the "per-request token" row), and the `SecureServer::call` rows use such tokens. It is
//! timed in runs of 1,024 calls with the writer draining between runs, untimed: the cost a call
//! adds while the writer keeps up. The record is built as the server builds it: its own parts
//! (call id, timestamp, the output's JSON text) made and freed in the loop, the rest
//! (principal, names, arguments, the tool's result) borrowed; the arguments themselves are
//! freed untimed, since every server frees a call's arguments (bare rmcp too). The same runs are
//! also timed by the calling thread's CPU time: when the writer thread (or another process)
//! runs on the caller's CPU during a run, the elapsed time holds its work too, the CPU time
//! only what the call spends. The same chain run back to back ("sustained") is bound by the
//! writer thread's pace instead, which `benches/audit.rs` measures as throughput.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion};
use mcp_secure::audit::{
    AuditError, AuditEvent, AuditEventRef, AuditLog, AuditLogConfig, AuditOutput, AuditSink,
    ContentJson, Durability, JsonLinesSink,
};
use mcp_secure::auth::{ApiKeyStore, Credential, CredentialSource, Environment, Principal};
use mcp_secure::guard::rate::{DEFAULT_KEY_THRESHOLD, KeyedLimit};
use mcp_secure::guard::{authn, authz, size};
use mcp_secure::rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use mcp_secure::{Clock, Rate, Roles, SecureServer, ToolError, ToolHandler, roles, tools};
use serde_json::json;

roles! { "read-only", "admin": * }

/// Echo text back.
#[mcp_secure::tool(kind = "read", role = "read-only", rate = "1000000/sec")]
async fn echo(
    /// The text.
    #[validate(length(max = 64))]
    text: String,
) -> Result<String, ToolError> {
    Ok(text)
}

#[path = "support/null_sink.rs"]
mod null_sink;
use null_sink::NullSink;

/// A sink that serializes each record and drops the bytes: the CPU part of auditing without
/// the write.
struct SerializeSink;

impl AuditSink for SerializeSink {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let bytes = serde_json::to_vec(event).map_err(|e| AuditError(e.to_string()))?;
        black_box(bytes);
        Ok(())
    }

    fn record_async<'a>(
        &'a self,
        record: AuditEventRef<'_>,
    ) -> mcp_secure::audit::BoxFuture<'a, Result<(), AuditError>> {
        let bytes = serde_json::to_vec(&record).map_err(|e| AuditError(e.to_string()));
        Box::pin(std::future::ready(bytes.map(|b| drop(black_box(b)))))
    }
}

fn args() -> JsonObject {
    json!({"text": "hello"})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// The echo tool's result: made by the body (the baseline) and, after the response is sent,
/// freed by rmcp, bare or not; the record only reads it.
static RESULT: std::sync::LazyLock<CallToolResult> =
    std::sync::LazyLock::new(|| CallToolResult::success(vec![ContentBlock::text("hello")]));

/// What a successful call's outcome record needs beyond what the call already holds, as the
/// server's record keeps it: a call id (hex, on the stack), the time it arrived, the result's
/// content as JSON text, and the arguments (taken over, not copied).
struct Parts {
    id: [u8; 32],
    started: Duration,
    input: serde_json::Value,
    output: ContentJson,
}

fn parts(clock: &Clock, args: JsonObject) -> Parts {
    let mut id = [0u8; 16];
    rand_fill(&mut id);
    Parts {
        id: hex_id(&id),
        started: clock.elapsed(),
        input: serde_json::Value::Object(args),
        output: ContentJson::new(&RESULT.content),
    }
}

/// Hands the outcome record, borrowed from `parts`, the principal and a fresh timestamp, to
/// `store` (what the server does when a call ends).
fn outcome<R>(
    clock: &Clock,
    principal: &Principal,
    parts: &Parts,
    store: impl FnOnce(AuditEventRef<'_>) -> R,
) -> R {
    let now = clock.elapsed();
    let ts = clock.stamp_at(now);
    let id = std::str::from_utf8(&parts.id).expect("hex");
    let mut e = AuditEventRef::new(id, "echo", "direct", &parts.input);
    e.ts = ts.as_str();
    e.user = Some(&principal.user);
    e.key_id = principal.key_id.as_deref();
    e.roles = &principal.roles;
    e.output = Some(AuditOutput::from(&parts.output));
    e.outcome = "ok";
    e.success = true;
    e.duration_ms =
        u64::try_from(now.saturating_sub(parts.started).as_millis()).unwrap_or(u64::MAX);
    store(e)
}

/// A stand-in for the server's call id, about as cheap (the server copies 16 bytes from a
/// per-thread pool of the kernel's random bytes, `random::call_id`, which is crate-private).
fn rand_fill(out: &mut [u8; 16]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let a = N.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    out[..8].copy_from_slice(&a.to_le_bytes());
    out[8..].copy_from_slice(&a.rotate_left(17).to_le_bytes());
}

/// Lowercase hex, by table, as the server writes its call ids.
fn hex_id(bytes: &[u8; 16]) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

fn bench_dir() -> PathBuf {
    // <target>/release/deps/pipeline-<hash>: keep criterion's files and the audit logs in
    // <target>/criterion and <target>/bench-tmp.
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

struct Setup {
    rt: tokio::runtime::Runtime,
    keys: ApiKeyStore,
    /// The key, for credentials made per request.
    token: String,
    /// The stdio session's credential, as `SecureServer::with_session_token` holds it: every
    /// call borrows it, and its digest is computed once.
    credential: Credential,
    roles: Roles,
    spec: &'static mcp_secure::ToolSpec,
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let keys = ApiKeyStore::new(Environment::Test);
    let token = keys
        .generate("bench", &["read-only".to_string()], Environment::Test, None)
        .expect("key")
        .token;
    let credential = Credential::shared(token.clone(), CredentialSource::Session);
    let roles = Roles::new(ROLES).expect("roles");
    let spec = ToolHandler::<()>::spec(&__mcs_tool_echo);
    let tmp = bench_dir().join("bench-tmp");
    std::fs::create_dir_all(&tmp).expect("bench-tmp");
    let dir = tempfile::tempdir_in(&tmp).expect("tempdir");
    Setup {
        rt,
        keys,
        token,
        credential,
        roles,
        spec,
        dir: dir.path().to_path_buf(),
        _dir: dir,
    }
}

fn server(s: &Setup, sink: impl AuditSink) -> SecureServer<()> {
    SecureServer::builder(())
        .name("bench", "1")
        .roles(ROLES)
        .tools(tools![echo])
        .authenticator(s.keys.clone())
        .audit(sink)
        .build()
        .expect("server")
}

fn stages(c: &mut Criterion, s: &Setup) {
    let principal =
        s.rt.block_on(authn::authenticate(&s.keys, Some(&s.credential)))
            .expect("authenticated");
    // A quota no run of this benchmark can use up (the stages must measure allowed calls,
    // not the refusal path).
    let clock = Clock::system();
    let limit = KeyedLimit::new(
        Rate::parse("1000000000/sec").expect("rate"),
        clock.clone(),
        DEFAULT_KEY_THRESHOLD,
    );
    let log =
        AuditLog::open(s.dir.join("enqueue.jsonl"), AuditLogConfig::default()).expect("audit log");
    let a = args();

    let mut g = c.benchmark_group("stage");
    g.bench_function("baseline: validate + body", |b| {
        b.iter(|| {
            let parsed = ToolHandler::<()>::parse(&__mcs_tool_echo, &a).expect("valid");
            let text = *parsed.downcast::<__mcs_args_echo>().expect("args");
            s.rt.block_on(echo(text.text)).expect("ok")
        })
    });
    g.bench_function("size", |b| b.iter(|| size::check(black_box(&a), 64 * 1024)));
    g.bench_function("auth (api key, cached digest)", |b| {
        b.iter(|| {
            // `ApiKeyStore` answers with a ready future: poll it once, no runtime needed. Each
            // call borrows the session's credential, as the server's do.
            futures_ready(authn::authenticate(&s.keys, Some(black_box(&s.credential))))
        })
    });
    // A token sent with each request (`_meta.authToken`, a bearer header): a new credential
    // per call, so its digest is computed in every run of the routine. Made and freed untimed,
    // as the request that carries it is.
    g.bench_function("auth (api key, per-request token)", |b| {
        b.iter_batched(
            || Credential::new(s.token.clone(), CredentialSource::RequestMeta),
            |c| {
                let answer =
                    futures_ready(authn::authenticate(&s.keys, Some(&c))).map(Cow::into_owned);
                (answer, c)
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("rbac", |b| {
        b.iter(|| authz::check(&s.roles, black_box(&principal), s.spec))
    });
    g.bench_function("rate", |b| {
        b.iter(|| {
            limit
                .check(black_box(&principal.user), "echo")
                .expect("within rate")
        })
    });
    g.bench_function("validate", |b| {
        b.iter(|| ToolHandler::<()>::parse(&__mcs_tool_echo, &a))
    });
    // The record's own parts, made and freed (the rest is borrowed from the call).
    g.bench_function("audit record build", |b| {
        b.iter_batched(
            || a.clone(),
            |args| drop(parts(&clock, args)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("audit enqueue (chained log)", |b| {
        let p = parts(&clock, a.clone());
        // The writer drains concurrently; a full queue blocks (back-pressure), so this is
        // the sustained cost per record, not just a channel send.
        b.iter(|| {
            outcome(&clock, black_box(&principal), &p, |e| {
                drop(log.submit(e).expect("queued"))
            })
        })
    });
    // What one call pays: auth, RBAC, rate, and its record built and handed to the chained
    // log, in runs the writer keeps up with. The arguments are handed back, to be freed
    // untimed: they are the call's own, and every server frees them (bare rmcp too, after
    // deserializing them); what the record adds (its id, timestamp and output) is freed here.
    // As in the server, the record's parts come first: the time the call arrived is the one
    // the rate limit counts it at.
    let chain = |args: JsonObject| {
        let parts = parts(&clock, args);
        let p = futures_ready(authn::authenticate(&s.keys, Some(&s.credential)))
            .expect("authenticated");
        authz::check(&s.roles, &p, s.spec).expect("allowed");
        limit
            .check_at(&p.user, "echo", parts.started)
            .expect("within rate");
        let receipt = outcome(&clock, &p, &parts, |e| log.submit(e));
        receipt.map(|r| (r, parts.input))
    };
    g.bench_function("chain: auth + rbac + rate + audit enqueue", |b| {
        b.iter_custom(|iters| unsaturated(iters, &a, Timer::Wall, chain))
    });
    // The same runs timed by the CPU time of the calling thread: what the call itself spends,
    // without the time the audit writer (or another process) runs on its CPU meanwhile.
    g.bench_function(CHAIN_CPU, |b| {
        b.iter_custom(|iters| unsaturated(iters, &a, Timer::ThreadCpu, chain))
    });
    g.bench_function("audit enqueue, writer keeping up", |b| {
        let p = parts(&clock, a.clone());
        b.iter_custom(|iters| {
            unsaturated(iters, &a, Timer::Wall, |args| {
                outcome(&clock, black_box(&principal), &p, |e| log.submit(e)).map(|r| (r, args))
            })
        })
    });
    // The same chain back to back for as long as criterion runs it: records arrive faster
    // than the writer stores them, so this measures the writer's pace (section 3's subject).
    g.bench_function("chain, sustained (writer-bound)", |b| {
        b.iter_batched(
            || a.clone(),
            |args| chain(args).expect("queued"),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    log.close().expect("close");
}

fn calls(c: &mut Criterion, s: &Setup) {
    let log = AuditLog::open(
        s.dir.join("calls-chained.jsonl"),
        AuditLogConfig::default().durability(Durability::Flush),
    )
    .expect("audit log");
    let servers: Vec<(&str, SecureServer<()>)> = vec![
        ("null sink", server(s, NullSink)),
        ("serializing sink", server(s, SerializeSink)),
        (
            "json-lines file",
            server(
                s,
                JsonLinesSink::open(s.dir.join("calls.jsonl")).expect("file"),
            ),
        ),
        ("chained log (flush)", server(s, log.clone())),
    ];
    let mut g = c.benchmark_group("SecureServer::call");
    for (name, server) in &servers {
        g.bench_with_input(BenchmarkId::from_parameter(name), server, |b, server| {
            b.iter(|| {
                let r = s.rt.block_on(server.call(
                    "echo",
                    Some(args()),
                    // A token sent with the request (`_meta.authToken`): the call computes
                    // its digest.
                    Some(Credential::new(
                        s.token.clone(),
                        CredentialSource::RequestMeta,
                    )),
                    None,
                ));
                assert_ne!(r.is_error, Some(true), "the call must succeed");
                r
            })
        });
    }
    g.finish();
    drop(servers);
    log.close().expect("close");
}

/// Times `iters` submissions (each given its own copy of `args`, made untimed, and handing
/// back what it leaves to be freed untimed) in runs shorter than the log's queue, letting the
/// writer drain between runs (untimed): what a call pays to hand its record over while the
/// writer keeps up, as opposed to the sustained cost when records arrive faster than they are
/// written.
fn unsaturated<T>(
    iters: u64,
    args: &JsonObject,
    timer: Timer,
    mut submit: impl FnMut(JsonObject) -> Result<(mcp_secure::audit::Receipt, T), AuditError>,
) -> Duration {
    const RUN: u64 = 1024; // well under the default queue of 4,096
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(RUN);
        let mut copies: Vec<JsonObject> = (0..n).map(|_| args.clone()).collect();
        let mut leftovers = Vec::with_capacity(copies.len());
        let started = timer.now();
        let mut last = None;
        while let Some(args) = copies.pop() {
            let (receipt, rest) = submit(args).expect("queued");
            leftovers.push(rest);
            last = Some(receipt);
        }
        total += timer.now().saturating_sub(started);
        drop(leftovers);
        if let Some(r) = last {
            r.wait().expect("stored");
        }
        left -= n;
    }
    total
}

/// The chain's CPU-time row.
const CHAIN_CPU: &str = "chain, calling thread's CPU time";

/// What a run of calls is timed by.
#[derive(Clone, Copy)]
enum Timer {
    /// Elapsed time.
    Wall,
    /// The CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`): the time the thread
    /// ran, not the time others ran on its CPU while it waited.
    ThreadCpu,
}

impl Timer {
    /// Now, on this timer's clock, from an arbitrary start.
    fn now(self) -> Duration {
        match self {
            Timer::Wall => {
                static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
                START.get_or_init(std::time::Instant::now).elapsed()
            }
            Timer::ThreadCpu => {
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: `ts` is a valid, writable timespec for the call's duration.
                let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
                assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
                Duration::new(
                    u64::try_from(ts.tv_sec).unwrap_or(0),
                    u32::try_from(ts.tv_nsec).unwrap_or(0),
                )
            }
        }
    }
}

/// Polls a future that is ready at once (the API-key authenticator's).
fn futures_ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the authenticator was expected to answer at once"),
    }
}

/// Median (ns) of a benchmark from criterion's `estimates.json`, if this run (started at
/// `since`) measured it: a case filtered out keeps an older run's file, which is not shown.
fn median_ns(
    root: &std::path::Path,
    since: std::time::SystemTime,
    group: &str,
    id: &str,
) -> Option<f64> {
    let clean = |s: &str| {
        s.chars()
            .map(|c| match c {
                '?' | '"' | '/' | '\\' | '*' | '<' | '>' | ':' | '|' | '^' => '_',
                c => c,
            })
            .collect::<String>()
    };
    let path = root
        .join(clean(group))
        .join(clean(id))
        .join("new/estimates.json");
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    if modified < since {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn table(root: &std::path::Path, since: std::time::SystemTime) {
    let rows = [
        ("stage", "baseline: validate + body"),
        ("stage", "size"),
        ("stage", "auth (api key, cached digest)"),
        ("stage", "auth (api key, per-request token)"),
        ("stage", "rbac"),
        ("stage", "rate"),
        ("stage", "validate"),
        ("stage", "audit record build"),
        ("stage", "audit enqueue (chained log)"),
        ("stage", "audit enqueue, writer keeping up"),
        ("stage", "chain: auth + rbac + rate + audit enqueue"),
        ("stage", CHAIN_CPU),
        ("stage", "chain, sustained (writer-bound)"),
        ("SecureServer::call", "null sink"),
        ("SecureServer::call", "serializing sink"),
        ("SecureServer::call", "json-lines file"),
        ("SecureServer::call", "chained log (flush)"),
    ];
    let baseline = median_ns(root, since, "stage", "baseline: validate + body");
    println!();
    println!("pipeline micro-benchmark: medians (ratio: to `baseline: validate + body`)");
    println!("{:<62} {:>12} {:>8}", "case", "median ns", "ratio");
    for (group, id) in rows {
        let Some(m) = median_ns(root, since, group, id) else {
            continue; // filtered out of this run
        };
        let ratio = baseline.map_or(String::new(), |b| format!("{:.2}", m / b));
        println!("{:<62} {:>12.0} {:>8}", format!("{group} / {id}"), m, ratio);
    }
    if let Some(chain) = median_ns(
        root,
        since,
        "stage",
        "chain: auth + rbac + rate + audit enqueue",
    ) {
        println!(
            "target: auth + rbac + rate + audit enqueue <= 1000 ns median (writer keeping \
             up): {:.0} ns ({})",
            chain,
            if chain <= 1000.0 { "met" } else { "missed" }
        );
    }
    if let Some(cpu) = median_ns(root, since, "stage", CHAIN_CPU) {
        println!(
            "  the same chain in the calling thread's CPU time (what the call spends; the \
             elapsed figure also holds whatever ran on its CPU meanwhile): {:.0} ns ({})",
            cpu,
            if cpu <= 1000.0 { "met" } else { "missed" }
        );
    }
}

fn main() {
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let root = bench_dir().join("criterion");
    let mut c = Criterion::default()
        .output_directory(&root)
        .warm_up_time(Duration::from_secs_f64((secs / 3.0).max(0.1)))
        .measurement_time(Duration::from_secs_f64(secs))
        .sample_size(30)
        .configure_from_args();
    let since = std::time::SystemTime::now();
    let s = setup();
    stages(&mut c, &s);
    calls(&mut c, &s);
    c.final_summary();
    table(&root, since);
}
