//! End-to-end overhead: the same trivial tool served by bare rmcp (its own macros) and by
//! mcp-secure with the whole pipeline on (API-key auth, RBAC, a rate limit that never trips,
//! validation, audit to a JSON-lines file), both over an in-memory duplex with an rmcp client,
//! measured side by side in one run. Prints calls/s, p50 and p99, and the ratios.
//!
//! Rows beside the two that the targets compare: bare rmcp receiving the same `_meta.authToken`
//! (what carrying a token per request costs inside rmcp), mcp-secure with the stdio model's
//! session token (no token in the requests), mcp-secure without the audit write, and
//! mcp-secure with the chained, hash-linked `AuditLog` (flush) instead of the plain file,
//! mcp-secure with the session token auditing to `SpooledJsonLinesSink` (the same JSON-lines
//! file, each record stored by a copy into a memory-mapped spool instead of a `write`), and
//! a calibration: bare rmcp running, once per call, about as much straight-line code as the
//! pipeline does (`support/footprint.rs`), and nothing else of its work.
//!
//! Run: `cargo bench --bench overhead` (`CALLS=N` calls per scenario and round, default
//! 6,000; `ROUNDS=N`, default 11;
//! `PROFILE=bare|bare-meta|secured|session|unaudited|chained|bare-code|spooled` drives only that
//! server, for a profiler, sequentially or `WORKERS=N` calls at a time).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_secure::audit::{AuditLog, AuditLogConfig, AuditSink, JsonLinesSink, SpooledJsonLinesSink};
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

#[path = "support/footprint.rs"]
mod footprint;

/// [`Bare`], its tool running [`footprint::run`] first: the calibration row.
#[derive(Clone)]
struct BareCode {
    tool_router: ToolRouter<BareCode>,
}

#[tool_router]
impl BareCode {
    #[rmcp::tool(description = "Echo text back.")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        std::hint::black_box(footprint::run(text.len() as u64));
        text
    }
}

#[tool_handler(router = self.tool_router)]
impl rmcp::ServerHandler for BareCode {}

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

impl Figures {
    /// The figures `at` (0 to 1) of the way from `self` to `to`, each linearly.
    fn towards(&self, to: &Figures, at: f64) -> Figures {
        let mix = |a: f64, b: f64| a + (b - a) * at;
        let d = |a: Duration, b: Duration| {
            Duration::from_secs_f64(mix(a.as_secs_f64(), b.as_secs_f64()))
        };
        Figures {
            calls_per_sec: mix(self.calls_per_sec, to.calls_per_sec),
            p50: d(self.p50, to.p50),
            p99: d(self.p99, to.p99),
        }
    }
}

/// One scenario's rounds, summed up against the baseline's figures where each of them ran.
struct Summary {
    calls_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    /// The paired ratios' first quartile, median and third quartile.
    ratio: [f64; 3],
    /// The paired ratios' median's 95% interval, if there are rounds enough for one.
    ratio_interval: Option<(f64, f64)>,
    /// The median of the paired p50 differences.
    overhead_us: f64,
    /// That median's 95% interval, if there are rounds enough for one.
    overhead_interval: Option<(f64, f64)>,
}

impl Summary {
    fn of(rounds: &[Figures], base: &[Figures]) -> Summary {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let median = |f: fn(&Figures) -> f64| quantile(rounds.iter().map(f).collect(), 0.5);
        let ratios: Vec<f64> = rounds
            .iter()
            .zip(base)
            .map(|(r, b)| r.calls_per_sec / b.calls_per_sec)
            .collect();
        let overheads: Vec<f64> = rounds
            .iter()
            .zip(base)
            .map(|(r, b)| us(r.p50) - us(b.p50))
            .collect();
        Summary {
            calls_per_sec: median(|r| r.calls_per_sec),
            p50_us: median(|r| r.p50.as_secs_f64() * 1e6),
            p99_us: median(|r| r.p99.as_secs_f64() * 1e6),
            ratio: [0.25, 0.5, 0.75].map(|q| quantile(ratios.clone(), q)),
            ratio_interval: median_interval(ratios),
            overhead_us: quantile(overheads.clone(), 0.5),
            overhead_interval: median_interval(overheads),
        }
    }
}

/// A distribution-free 95% interval for the median of `values`: the pair of order statistics
/// `(x[j], x[n - 1 - j])`, sorted, with the largest `j` for which a binomial(n, 1/2) count
/// falls at or below `j` with a probability of at most 2.5% (so the interval holds the median
/// with at least 95%). `None` below 6 values, where no pair of ranks does.
fn median_interval(mut values: Vec<f64>) -> Option<(f64, f64)> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    // P(count <= j), summed in logs: 2^-n underflows past about a thousand rounds.
    let mut ln_term = -(n as f64) * std::f64::consts::LN_2;
    let mut below = 0.0;
    let mut j = None;
    for i in 0..n / 2 {
        below += ln_term.exp();
        if below > 0.025 {
            break;
        }
        j = Some(i);
        ln_term += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
    }
    j.map(|j| (values[j], values[n - 1 - j]))
}

/// Whether the median's `interval` settles a target (`met` says which values meet it): "met"
/// when both ends meet it, "missed" when neither does, otherwise not settled by this run.
/// Figures are written with `digits` decimals and `unit`.
fn verdict(
    median: f64,
    interval: Option<(f64, f64)>,
    met: impl Fn(f64) -> bool,
    digits: usize,
    unit: &str,
) -> String {
    let Some((lo, hi)) = interval else {
        return format!(
            "not settled (median {median:.digits$}{unit}; an interval needs ROUNDS >= 6)"
        );
    };
    let word = match (met(lo), met(hi)) {
        (true, true) => "met",
        (false, false) => "missed",
        _ => "not settled by this run",
    };
    format!(
        "{word} (median {median:.digits$}{unit}, its 95% interval [{lo:.digits$}, {hi:.digits$}])"
    )
}

/// The `q` quantile of `values` (linear between the two nearest ranks).
fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let at = q * (values.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (at - lo as f64)
}

async fn run(
    client: Arc<Client>,
    token: Option<Arc<str>>,
    calls: usize,
    workers: usize,
) -> Figures {
    // Every worker makes at least one call: `CALLS` below `WORKERS` still measures something.
    let each = (calls / workers).max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let client = client.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(each);
            for _ in 0..each {
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

#[path = "support/null_sink.rs"]
mod null_sink;
use null_sink::NullSink;

struct Scenario {
    name: &'static str,
    client: Arc<Client>,
    token: Option<Arc<str>>,
}

/// A count from the environment, or `default`.
fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let calls = env_usize("CALLS", 6_000);
    let rounds = env_usize("ROUNDS", 11).max(1);
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
        let secured = |sink: Arc<dyn AuditSink>| {
            SecureServer::builder(())
                .name("bench", "1")
                .roles(ROLES)
                .tools(tools![echo])
                .authenticator(keys.clone())
                .audit(sink)
                .build()
                .expect("server")
        };
        let file: Arc<dyn AuditSink> =
            Arc::new(JsonLinesSink::open(dir.path().join("audit.jsonl")).expect("audit file"));
        let bare = Arc::new(
            connect(Bare {
                tool_router: Bare::tool_router(),
            })
            .await,
        );
        let secure = Arc::new(connect(secured(file.clone())).await);
        let session = Arc::new(
            connect(secured(file.clone()).with_session_token(token.to_string())).await,
        );
        let unaudited = Arc::new(connect(secured(Arc::new(NullSink))).await);
        let log = AuditLog::open(dir.path().join("chained.jsonl"), AuditLogConfig::default())
            .expect("audit log");
        let chained = Arc::new(connect(secured(Arc::new(log.clone()))).await);
        let code = Arc::new(
            connect(BareCode {
                tool_router: BareCode::tool_router(),
            })
            .await,
        );
        let spooled = SpooledJsonLinesSink::open(dir.path().join("spooled.jsonl"))
            .expect("spooled audit file");
        let spooled = Arc::new(
            connect(secured(Arc::new(spooled)).with_session_token(token.to_string())).await,
        );
        let t = Some(token.clone());
        let scenarios = [
            Scenario {
                name: "bare rmcp (baseline)",
                client: bare.clone(),
                token: None,
            },
            Scenario {
                name: "bare rmcp, same _meta.authToken",
                client: bare.clone(),
                token: t.clone(),
            },
            Scenario {
                name: "mcp-secure, _meta.authToken",
                client: secure.clone(),
                token: t.clone(),
            },
            Scenario {
                name: "mcp-secure, session token",
                client: session,
                token: None,
            },
            Scenario {
                name: "mcp-secure, _meta token, no audit",
                client: unaudited,
                token: t.clone(),
            },
            Scenario {
                name: "mcp-secure, _meta token, chained log",
                client: chained,
                token: t.clone(),
            },
            Scenario {
                name: "bare rmcp + the pipeline's code size",
                client: code,
                token: None,
            },
            Scenario {
                name: "mcp-secure, session, spooled file",
                client: spooled,
                token: None,
            },
        ];

        // `PROFILE=bare|bare-meta|secured|session|unaudited|chained|bare-code|spooled`: only drive one
        // server, for a profiler.
        if let Ok(which) = std::env::var("PROFILE") {
            let s = match which.as_str() {
                "bare" => &scenarios[0],
                "bare-meta" => &scenarios[1],
                "session" => &scenarios[3],
                "unaudited" => &scenarios[4],
                "chained" => &scenarios[5],
                "bare-code" => &scenarios[6],
                "spooled" => &scenarios[7],
                _ => &scenarios[2],
            };
            let workers = env_usize("WORKERS", 1);
            let f = run(s.client.clone(), s.token.clone(), calls, workers).await;
            println!("{which}: {:.0} calls/s ({workers}-way)", f.calls_per_sec);
            return;
        }
        // Warm every server up, then run rounds of every scenario, in an order reversed every
        // other round, with a baseline run between rounds: `B S1 .. S5 B S5 .. S1 B ..`. Each
        // scenario's run is compared with the baseline interpolated to its place between the
        // two baseline runs around its round (a machine that speeds up or slows down through a
        // round moves both alike), and the medians over rounds are reported: one disturbed run
        // moves a median less than it moves a best-of or a mean.
        for s in &scenarios {
            run(s.client.clone(), s.token.clone(), 2_000, 1).await;
        }
        println!(
            "calls per scenario and round: {calls}, rounds: {rounds}; every figure is the median \
             over rounds; ratio: calls/s over the baseline's where the run took place (between \
             the baseline's runs before and after its round) [quartiles]; overhead: p50 minus \
             the baseline's p50 there; a target is met or missed when the median's 95% interval \
             over this run's rounds is on one side of it (runs also differ from one another: \
             repeat them before concluding)"
        );
        println!(
            "{:<12} {:<36} {:>10} {:>9} {:>9} {:>21} {:>10}",
            "mode", "server", "calls/s", "p50 µs", "p99 µs", "ratio [q1, q3]", "overhead"
        );
        for (label, workers) in [("sequential", 1), ("16-way", 16)] {
            let n = scenarios.len();
            let go = |s: &Scenario| run(s.client.clone(), s.token.clone(), calls, workers);
            let mut rounds_of: Vec<Vec<Figures>> = vec![Vec::new(); n];
            // Per scenario and round: the baseline's figures where the scenario ran.
            let mut paired: Vec<Vec<Figures>> = vec![Vec::new(); n];
            rounds_of[0].push(go(&scenarios[0]).await);
            for round in 0..rounds {
                let mut order: Vec<usize> = (1..n).collect();
                if round % 2 == 1 {
                    order.reverse();
                }
                let mut ran = Vec::with_capacity(order.len());
                for &i in &order {
                    ran.push((i, go(&scenarios[i]).await));
                }
                let before = rounds_of[0][round];
                let after = go(&scenarios[0]).await;
                for (k, (i, f)) in ran.into_iter().enumerate() {
                    let at = (k + 1) as f64 / n as f64;
                    rounds_of[i].push(f);
                    paired[i].push(before.towards(&after, at));
                }
                rounds_of[0].push(after);
            }
            paired[0] = rounds_of[0].clone();
            let summaries: Vec<Summary> = rounds_of
                .iter()
                .zip(&paired)
                .map(|(f, base)| Summary::of(f, base))
                .collect();
            for (s, m) in scenarios.iter().zip(&summaries) {
                println!(
                    "{:<12} {:<36} {:>10.0} {:>9.1} {:>9.1} {:>7.3} [{:.3}, {:.3}] {:>7.1} µs",
                    label,
                    s.name,
                    m.calls_per_sec,
                    m.p50_us,
                    m.p99_us,
                    m.ratio[1],
                    m.ratio[0],
                    m.ratio[2],
                    m.overhead_us,
                );
            }
            // The p50 target is one call's latency: read sequentially. At 16-way, p50 is the
            // latency of 16 calls in flight, and its overhead the queueing of their costs.
            // A target is met or missed when the median's 95% interval over the rounds lies on
            // one side of it; otherwise more rounds (`ROUNDS`) are needed to say. The interval
            // is this run's: separate runs differ by more than their rounds' spread suggests.
            for (i, row) in [
                (2, "_meta.authToken"),
                (3, "session token"),
                (7, "session, spooled file"),
            ] {
                let m = &summaries[i];
                let ratio = verdict(m.ratio[1], m.ratio_interval, |r| r >= 0.95, 3, "");
                let p50 = match workers {
                    1 => verdict(m.overhead_us, m.overhead_interval, |us| us <= 2.0, 1, " µs"),
                    _ => "read sequentially".to_string(),
                };
                println!(
                    "{label:<12} targets (mcp-secure, {row}): ratio >= 0.95: {ratio}; p50 overhead <= 2 µs: {p50}"
                );
            }
        }
    });
}
