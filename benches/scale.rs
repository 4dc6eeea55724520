//! Scale: a call's cost and `tools/list` with 10, 100 and 1,000 tools (mcp-secure and bare rmcp
//! side by side), and a rate limiter's memory with 1,000,000 distinct principals, before and
//! after eviction.
//!
//! The tools are built programmatically (a `ToolHandler` per tool for mcp-secure, a
//! `ToolRoute::new_dyn` per tool for rmcp), all with the same arguments and body as the
//! `#[tool]` echo of the other benchmarks.
//!
//! Memory is measured by a counting global allocator (live heap bytes, exact) and from
//! `/proc/self/status` (`VmRSS`, for reference: the allocator may keep freed pages).
//!
//! Run: `cargo bench --bench scale` (`CALLS=N` calls per measurement, default 20,000;
//! `PRINCIPALS=N` for the limiter, default 1,000,000).

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use mcp_secure::auth::{ApiKeyStore, Credential, CredentialSource, Environment};
use mcp_secure::guard::rate::{DEFAULT_KEY_THRESHOLD, KeyedLimit};
use mcp_secure::rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use mcp_secure::{
    Approval, Clock, Ctx, Kind, ParsedArgs, Rate, SecureServer, ToolError, ToolHandler, ToolSpec,
    Tools, roles,
};
use rmcp::handler::server::router::tool::{ToolRoute, ToolRouter};
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolRequestParams, CallToolResponse, RequestMetaObject, Tool as RmcpTool};
use rmcp::service::{RoleClient, RunningService};
use rmcp::{ServiceExt, tool_handler};
use serde_json::{Value, json};

roles! { "read-only", "admin": * }

// A counting allocator: the bench's only unsafe code, forwarding to the system allocator and
// keeping a count of live bytes so memory is measured exactly.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counter
// is only arithmetic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `dealloc` is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract for `realloc` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The arguments of every generated tool.
#[derive(serde::Deserialize, schemars::JsonSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
struct EchoArgs {
    /// The text.
    #[validate(length(max = 64))]
    text: String,
}

/// One generated mcp-secure tool (what `#[tool]` emits, written by hand so a thousand can be
/// made in a loop).
struct GenTool {
    spec: &'static ToolSpec,
}

impl GenTool {
    fn new(i: usize) -> Self {
        let name: &'static str = Box::leak(format!("tool_{i:04}").into_boxed_str());
        let spec = ToolSpec::__new(
            name,
            None,
            "Echo text back.",
            Kind::Read,
            "read-only",
            Approval::None,
            Rate::new(1_000_000, Duration::from_secs(1)),
            None,
            None,
            None,
            &[],
            None,
        );
        GenTool {
            spec: Box::leak(Box::new(spec)),
        }
    }
}

impl ToolHandler<()> for GenTool {
    fn spec(&self) -> &'static ToolSpec {
        self.spec
    }
    fn input_schema(&self) -> JsonObject {
        mcp_secure::__private::input_schema::<EchoArgs>()
    }
    fn output_schema(&self) -> Option<JsonObject> {
        None
    }
    fn parse(&self, args: &JsonObject) -> Result<ParsedArgs, ToolError> {
        mcp_secure::__private::parse_args::<EchoArgs>(args)
    }
    fn call(
        &self,
        _ctx: Ctx<()>,
        args: ParsedArgs,
    ) -> Pin<Box<dyn Future<Output = Result<CallToolResult, ToolError>> + Send + 'static>> {
        let args = mcp_secure::__private::downcast::<EchoArgs>(args);
        Box::pin(async move {
            Ok(CallToolResult::success(vec![ContentBlock::text(
                args?.text,
            )]))
        })
    }
}

/// Bare rmcp with `n` tools in a router built once.
#[derive(Clone)]
struct Bare {
    tool_router: ToolRouter<Bare>,
}

#[tool_handler(router = self.tool_router)]
impl rmcp::ServerHandler for Bare {}

fn bare(n: usize) -> Bare {
    let schema = rmcp::handler::server::tool::schema_for_input::<EchoArgs>().expect("schema");
    let mut router = ToolRouter::new();
    for i in 0..n {
        let tool = RmcpTool::new(format!("tool_{i:04}"), "Echo text back.", schema.clone());
        router.add_route(ToolRoute::new_dyn(
            tool,
            |ctx: ToolCallContext<'_, Bare>| {
                Box::pin(async move {
                    let args: EchoArgs =
                        serde_json::from_value(Value::Object(ctx.arguments.unwrap_or_default()))
                            .map_err(|e| rmcp::ErrorData::invalid_params(e.to_string(), None))?;
                    Ok(CallToolResponse::from(CallToolResult::success(vec![
                        ContentBlock::text(args.text),
                    ])))
                })
            },
        ));
    }
    Bare {
        tool_router: router,
    }
}

#[path = "support/null_sink.rs"]
mod null_sink;
use null_sink::NullSink;

fn secured(n: usize, keys: &ApiKeyStore) -> SecureServer<()> {
    let tools: Vec<Arc<dyn ToolHandler<()>>> = (0..n)
        .map(|i| Arc::new(GenTool::new(i)) as Arc<dyn ToolHandler<()>>)
        .collect();
    SecureServer::builder(())
        .name("bench", "1")
        .roles(ROLES)
        .tools(Tools::new(tools))
        .authenticator(keys.clone())
        .audit(NullSink)
        .build()
        .expect("server")
}

type Client = RunningService<RoleClient, ()>;

async fn connect<S: rmcp::ServerHandler>(server: S) -> Client {
    let (a, b) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(a).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(b).await.expect("client connects")
}

fn meta(token: Option<&str>) -> Option<RequestMetaObject> {
    token.map(|t| {
        let mut meta = RequestMetaObject::default();
        meta.0.insert("authToken".into(), Value::from(t));
        meta
    })
}

fn args() -> JsonObject {
    json!({"text": "hello"})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// Median of `runs` timings of `f`.
async fn median<F, Fut>(runs: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f().await;
        v.push(t.elapsed());
    }
    v.sort_unstable();
    v[v.len() / 2]
}

struct Row {
    n: usize,
    direct: Duration,
    secured_call: Duration,
    bare_call: Duration,
    secured_list: Duration,
    bare_list: Duration,
    listed: usize,
}

async fn dispatch(calls: usize) -> Vec<Row> {
    let keys = ApiKeyStore::new(Environment::Test);
    let token = keys
        .generate("bench", &["read-only".to_string()], Environment::Test, None)
        .expect("key")
        .token;
    let credential = Credential::new(token.clone(), CredentialSource::RequestMeta);
    let mut rows = Vec::new();
    for n in [10, 100, 1000] {
        let server = secured(n, &keys);
        let target = format!("tool_{:04}", n - 1);
        let secure = connect(server.clone()).await;
        let plain = connect(bare(n)).await;
        let call = |token: Option<&str>| {
            let mut p = CallToolRequestParams::new(target.clone()).with_arguments(args());
            p.meta = meta(token);
            p
        };
        let lists = (calls / 100).clamp(20, 200);
        // Warm up, then alternate measurements so drift hits both servers alike.
        for _ in 0..2 {
            median(calls / 10, || async {
                secure.call_tool(call(Some(&token))).await.expect("call");
                plain.call_tool(call(None)).await.expect("call");
            })
            .await;
        }
        let direct = median(calls, || async {
            let r = server
                .call(&target, Some(args()), Some(credential.clone()), None)
                .await;
            assert_ne!(r.is_error, Some(true), "the call must succeed");
        })
        .await;
        let secured_call = median(calls / 4, || async {
            let r = secure.call_tool(call(Some(&token))).await.expect("call");
            assert_ne!(r.is_error, Some(true), "the call must succeed");
        })
        .await;
        let bare_call = median(calls / 4, || async {
            plain.call_tool(call(None)).await.expect("call");
        })
        .await;
        let mut listed = 0;
        let secured_list = {
            let mut v = Vec::with_capacity(lists);
            for _ in 0..lists {
                let t = Instant::now();
                let mut p = rmcp::model::PaginatedRequestParams::default();
                p.meta = meta(Some(&token));
                let r = secure.list_tools(Some(p)).await.expect("list");
                v.push(t.elapsed());
                listed = r.tools.len();
            }
            v.sort_unstable();
            v[v.len() / 2]
        };
        assert_eq!(listed, n, "every tool is listed to a caller with the role");
        let bare_list = median(lists, || async {
            plain.list_tools(None).await.expect("list");
        })
        .await;
        rows.push(Row {
            n,
            direct,
            secured_call,
            bare_call,
            secured_list,
            bare_list,
            listed,
        });
        let _ = secure.cancel().await;
        let _ = plain.cancel().await;
    }
    rows
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn print_dispatch(rows: &[Row]) {
    let base = &rows[0];
    println!("dispatch and tools/list by number of tools (medians; growth: to 10 tools)");
    println!(
        "{:>6} {:>16} {:>7} {:>16} {:>7} {:>14} {:>9} {:>15} {:>7} {:>13} {:>9}",
        "tools",
        "direct call µs",
        "growth",
        "secured call µs",
        "growth",
        "bare call µs",
        "sec/bare",
        "secured list µs",
        "growth",
        "bare list µs",
        "sec/bare"
    );
    for r in rows {
        println!(
            "{:>6} {:>16.2} {:>7.2} {:>16.1} {:>7.2} {:>14.1} {:>9.2} {:>15.0} {:>7.2} {:>13.0} {:>9.2}",
            r.n,
            us(r.direct),
            us(r.direct) / us(base.direct),
            us(r.secured_call),
            us(r.secured_call) / us(base.secured_call),
            us(r.bare_call),
            us(r.secured_call) / us(r.bare_call),
            us(r.secured_list),
            us(r.secured_list) / us(base.secured_list),
            us(r.bare_list),
            us(r.secured_list) / us(r.bare_list),
        );
        debug_assert_eq!(r.listed, r.n);
    }
    let worst = rows
        .iter()
        .map(|r| us(r.direct) / us(base.direct))
        .fold(0.0, f64::max);
    println!(
        "a call's cost with up to 1,000 tools vs 10 (the largest growth of any row): {:.2}x \
         direct ({})",
        worst,
        if worst <= 1.2 {
            "does not grow"
        } else {
            "grows"
        }
    );
}

fn mib(b: isize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn limiter_memory(principals: usize) {
    let rate = Rate::parse("60/min").expect("rate");
    let names: Vec<String> = (0..principals).map(|i| format!("principal-{i}")).collect();

    println!();
    println!(
        "rate limiter memory, {principals} distinct principals, 60/min each \
         (limiter bytes = live heap minus the heap before the limiter existed)"
    );
    println!(
        "{:<52} {:>10} {:>14} {:>10} {:>12}",
        "state", "keys held", "limiter MiB", "ratio", "process RSS MiB"
    );

    // Burst: every principal calls within one period, so no key may be forgotten yet.
    let clock = Clock::manual();
    let before = live_bytes();
    let limit = KeyedLimit::new(rate, clock.clone(), DEFAULT_KEY_THRESHOLD);
    let baseline = (live_bytes() - before).max(1);
    let row = |state: &str, limit: &KeyedLimit| {
        let bytes = live_bytes() - before;
        println!(
            "{:<52} {:>10} {:>14.3} {:>10.2} {:>12.1}",
            state,
            limit.len(),
            mib(bytes),
            bytes as f64 / baseline as f64,
            rss_bytes().map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0)),
        );
        bytes
    };
    row("burst: empty limiter (baseline)", &limit);
    for name in &names {
        limit.check(name, "bench").expect("within rate");
    }
    let peak = row("burst: all principals within one period", &limit);
    clock.advance(Duration::from_secs(61));
    limit.evict_idle();
    let after = row("burst: a period later, after eviction", &limit);
    println!(
        "bounded: {:.0} bytes per held key at the peak; after eviction {:.2}x the baseline \
         (target <= 1.10: {})",
        (peak - baseline) as f64 / principals as f64,
        after as f64 / baseline as f64,
        if after as f64 <= baseline as f64 * 1.10 {
            "met"
        } else {
            "missed"
        }
    );
    drop(limit);

    // Steady stream: the same principals arriving over time (1,000 a second); the limiter's
    // own eviction (past DEFAULT_KEY_THRESHOLD keys) keeps memory bounded with no help.
    let clock = Clock::manual();
    let before = live_bytes();
    let limit = KeyedLimit::new(rate, clock.clone(), DEFAULT_KEY_THRESHOLD);
    let mut most_keys = 0;
    let mut most_bytes = 0;
    for (i, name) in names.iter().enumerate() {
        limit.check(name, "bench").expect("within rate");
        clock.advance(Duration::from_millis(1));
        if i % 1000 == 0 {
            most_keys = most_keys.max(limit.len());
            most_bytes = most_bytes.max(live_bytes() - before);
        }
    }
    println!(
        "{:<52} {:>10} {:>14.3} {:>10.2} {:>12.1}",
        "stream (1,000 new/s): most held, automatic eviction",
        most_keys,
        mib(most_bytes),
        most_bytes as f64 / baseline as f64,
        rss_bytes().map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0)),
    );
}

fn main() {
    let calls: usize = std::env::var("CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let principals: usize = std::env::var("PRINCIPALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows = rt.block_on(dispatch(calls));
    drop(rt);
    print_dispatch(&rows);
    limiter_memory(principals);
}
