//! Approval flows end to end with real rmcp clients: explicit tokens, human approval by MCP
//! elicitation (2025-11-25 sessions), by the input-required round trip (2026-07-28 sessions)
//! and by the out-of-band file queue answered from a second process. In every refused case the
//! tool body never runs (counted) and the "database" is unchanged; every decision is in the
//! call's audit record.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_secure::approval::{ApprovalKeys, FileApprovalQueue, QueueState};
use mcp_secure::audit::{AuditEvent, MemorySink, Phase};
use mcp_secure::auth::{ApiKeyStore, Environment};
use mcp_secure::server::BuildError;
use mcp_secure::{
    Approval, Bounded, Clock, Ctx, Secret, SecureServer, ToolError, roles, tool, tools,
};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    ElicitRequestParams, ElicitResult, ElicitationAction, Implementation, ProtocolVersion,
    RequestMetaObject,
};
use rmcp::service::{RequestContext, RoleClient, RunningService};
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData, ServiceExt};
use serde_json::{Value, json};

roles! {
    "read-only",
    "editor": "read-only",
    "admin": *,
}

const META_TOKEN: &str = "mcp-secure/approval";

struct State {
    ran: Mutex<HashMap<&'static str, usize>>,
    customers: Mutex<BTreeSet<String>>,
}

impl Default for State {
    fn default() -> Self {
        let customers = ["c-1", "c-2", "c-3"]
            .into_iter()
            .map(String::from)
            .collect();
        State {
            ran: Mutex::default(),
            customers: Mutex::new(customers),
        }
    }
}

impl State {
    fn ran(&self, tool: &'static str) {
        *self.ran.lock().unwrap().entry(tool).or_default() += 1;
    }
}

#[derive(Debug, Clone, Copy, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Priority {
    Low,
    High,
}
impl Bounded for Priority {}

/// Edit a note.
#[tool(kind = "write", role = "editor")]
async fn edit(
    ctx: Ctx<State>,
    /// A note.
    #[validate(length(max = 50))]
    note: String,
    /// How urgent.
    priority: Priority,
) -> Result<String, ToolError> {
    ctx.ran("edit");
    Ok(format!("{note} {priority:?}"))
}

/// Relabel a note.
#[tool(kind = "write", role = "editor")]
async fn relabel(
    ctx: Ctx<State>,
    /// A note.
    #[validate(length(max = 50))]
    note: String,
    /// How urgent.
    priority: Priority,
) -> Result<String, ToolError> {
    ctx.ran("relabel");
    Ok(format!("{note} {priority:?}"))
}

/// A write with a tiny quota.
#[tool(kind = "write", role = "editor", rate = "1/hour")]
async fn scarce(ctx: Ctx<State>) -> Result<String, ToolError> {
    ctx.ran("scarce");
    Ok("done".into())
}

/// Delete a customer (needs a human).
#[tool(kind = "delete", role = "editor")]
async fn purge(
    ctx: Ctx<State>,
    /// The customer.
    #[validate(length(min = 1, max = 16))]
    customer_id: String,
    /// The operator's PIN.
    #[validate(length(max = 16))]
    pin: Secret<String>,
) -> Result<String, ToolError> {
    ctx.ran("purge");
    let _ = pin;
    if ctx.customers.lock().unwrap().remove(&customer_id) {
        Ok(format!("{customer_id} deleted"))
    } else {
        Err(ToolError::not_found(format!("no {customer_id}")))
    }
}

/// Say hello.
#[tool(kind = "read", role = "read-only")]
async fn hello(ctx: Ctx<State>) -> Result<String, ToolError> {
    ctx.ran("hello");
    Ok("hello".into())
}

struct Fixture {
    server: SecureServer<State>,
    audit: MemorySink,
    clock: Clock,
    ed: String,
    eve: String,
}

fn keys() -> (ApiKeyStore, String, String) {
    let keys = ApiKeyStore::new(Environment::Test);
    let ed = keys
        .generate("ed", &["editor".to_string()], Environment::Test, None)
        .unwrap()
        .token;
    let eve = keys
        .generate("eve", &["editor".to_string()], Environment::Test, None)
        .unwrap()
        .token;
    (keys, ed, eve)
}

fn fixture(
    configure: impl FnOnce(mcp_secure::ServerBuilder<State>) -> mcp_secure::ServerBuilder<State>,
) -> Fixture {
    let (keys, ed, eve) = keys();
    fixture_with(keys, ed, eve, configure)
}

fn fixture_with(
    keys: ApiKeyStore,
    ed: String,
    eve: String,
    configure: impl FnOnce(mcp_secure::ServerBuilder<State>) -> mcp_secure::ServerBuilder<State>,
) -> Fixture {
    let audit = MemorySink::new();
    let clock = Clock::manual();
    let builder = SecureServer::builder(State::default())
        .name("approval-test", "1.0.0")
        .roles(ROLES)
        .tools(tools![edit, relabel, scarce, purge, hello])
        .authenticator(keys)
        .audit(audit.clone())
        .clock(clock.clone())
        .human_approval_timeout(Duration::from_secs(10));
    let server = configure(builder).build().unwrap();
    Fixture {
        server,
        audit,
        clock,
        ed,
        eve,
    }
}

impl Fixture {
    /// `ed` calls `edit` with the same arguments each time, with `token` or without (which
    /// asks for one), over a client of its own.
    async fn edit(&self, token: Option<&str>) -> CallToolResult {
        let args = json!({"note": "n", "priority": "low"});
        call(&self.connect(()).await, &self.ed, token, "edit", args).await
    }

    fn ran(&self, tool: &str) -> usize {
        self.server
            .state()
            .ran
            .lock()
            .unwrap()
            .get(tool)
            .copied()
            .unwrap_or(0)
    }

    fn customers(&self) -> Vec<String> {
        self.server
            .state()
            .customers
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect()
    }

    fn outcomes(&self) -> Vec<AuditEvent> {
        self.audit
            .events()
            .into_iter()
            .filter(|e| e.phase == Phase::Outcome)
            .collect()
    }

    fn last(&self) -> AuditEvent {
        self.outcomes().pop().expect("an outcome record")
    }

    /// Serves on an in-memory duplex and connects a client with the given handler.
    async fn connect<C: ClientHandler>(&self, client: C) -> RunningService<RoleClient, C> {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let s = self.server.clone().with_transport("memory");
        tokio::spawn(async move {
            if let Ok(running) = s.serve(a).await {
                let _ = running.waiting().await;
            }
        });
        client.serve(b).await.unwrap()
    }

    /// Same, negotiating protocol 2026-07-28 (`server/discover`, no server-to-client requests).
    async fn connect_2026<C: ClientHandler>(&self, client: C) -> RunningService<RoleClient, C> {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let s = self.server.clone().with_transport("memory");
        tokio::spawn(async move {
            if let Ok(running) = s.serve(a).await {
                let _ = running.waiting().await;
            }
        });
        let mode = ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        };
        client.serve_with_lifecycle(b, mode).await.unwrap()
    }
}

fn params(auth: &str, approval: Option<&str>, name: &str, args: Value) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new(name.to_owned());
    if let Value::Object(map) = args {
        p = p.with_arguments(map);
    }
    let mut meta = RequestMetaObject::default();
    meta.0.insert("authToken".into(), Value::from(auth));
    if let Some(token) = approval {
        meta.0.insert(META_TOKEN.into(), Value::from(token));
    }
    p.meta = Some(meta);
    p
}

async fn call<C: ClientHandler>(
    client: &RunningService<RoleClient, C>,
    auth: &str,
    approval: Option<&str>,
    name: &str,
    args: Value,
) -> CallToolResult {
    client
        .call_tool(params(auth, approval, name, args))
        .await
        .expect("the transport must answer")
}

fn code(r: &CallToolResult) -> String {
    if r.is_error != Some(true) {
        return "ok".into();
    }
    r.structured_content
        .as_ref()
        .and_then(|s| s["error"]["code"].as_str())
        .unwrap_or("<no code>")
        .to_owned()
}

fn text(r: &CallToolResult) -> String {
    r.content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

fn approval_of(r: &CallToolResult) -> Value {
    r.structured_content
        .as_ref()
        .map(|s| s["error"]["approval"].clone())
        .unwrap_or(Value::Null)
}

fn token_of(r: &CallToolResult) -> String {
    approval_of(r)["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {r:?}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// explicit

#[tokio::test]
async fn explicit_token_happy_path_runs_once_and_is_audited() {
    let f = fixture(|b| b);
    let client = f.connect(()).await;
    let args = json!({"note": "ship it", "priority": "high"});

    let first = call(&client, &f.ed, None, "edit", args.clone()).await;
    assert_eq!(code(&first), "approval_required", "{}", text(&first));
    let approval = approval_of(&first);
    assert_eq!(
        approval["summary"],
        r#"edit will run as ed with note = "ship it", priority = "high""#
    );
    let expires = time::OffsetDateTime::parse(
        approval["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ttl = expires - f.clock.now_utc();
    assert!(
        ttl <= time::Duration::minutes(5) && ttl > time::Duration::minutes(4),
        "default expiry is 5 minutes: {ttl}"
    );
    assert_eq!(
        first.structured_content.as_ref().unwrap()["error"]["approval_kind"],
        "explicit"
    );
    assert!(
        text(&first).contains(META_TOKEN),
        "the message says how to confirm: {}",
        text(&first)
    );
    assert_eq!(f.ran("edit"), 0, "the first call runs nothing");
    let requested = f.last();
    assert_eq!(requested.outcome, "approval_required");
    assert_eq!(
        requested.approval.as_ref().unwrap()["decision"],
        "requested"
    );

    let second = call(&client, &f.ed, Some(&token_of(&first)), "edit", args).await;
    assert_eq!(code(&second), "ok", "{}", text(&second));
    assert_eq!(text(&second), "ship it High");
    assert_eq!(f.ran("edit"), 1);
    let approved = f.last();
    assert_eq!(approved.outcome, "ok");
    let a = approved.approval.expect("the approval is on record");
    assert_eq!(
        (
            a["method"].as_str(),
            a["decision"].as_str(),
            a["by"].as_str()
        ),
        (Some("explicit"), Some("approved"), Some("ed"))
    );
    assert!(a["at"].is_string());
    // The write-ahead record carries the approval too.
    let attempt = f
        .audit
        .events()
        .into_iter()
        .find(|e| e.phase == Phase::Attempt)
        .unwrap();
    assert_eq!(attempt.approval.unwrap()["decision"], "approved");
}

#[tokio::test]
async fn explicit_tokens_are_refused_on_replay_other_args_tool_principal_expiry_and_forgery() {
    let f = fixture(|b| b);
    let client = f.connect(()).await;
    let args = json!({"note": "n", "priority": "low"});
    let fresh = |args: Value| {
        let (client, ed) = (&client, f.ed.clone());
        async move { token_of(&call(client, &ed, None, "edit", args).await) }
    };

    // Replay.
    let token = fresh(args.clone()).await;
    assert_eq!(
        code(&call(&client, &f.ed, Some(&token), "edit", args.clone()).await),
        "ok"
    );
    let replay = call(&client, &f.ed, Some(&token), "edit", args.clone()).await;
    assert_eq!(code(&replay), "approval_denied");
    assert!(text(&replay).contains("already used"), "{}", text(&replay));
    assert_eq!(f.ran("edit"), 1);

    // Other arguments (even one field).
    let token = fresh(args.clone()).await;
    let r = call(
        &client,
        &f.ed,
        Some(&token),
        "edit",
        json!({"note": "n", "priority": "high"}),
    )
    .await;
    assert_eq!(code(&r), "approval_denied");
    // Another tool with the same arguments.
    let r = call(&client, &f.ed, Some(&token), "relabel", args.clone()).await;
    assert_eq!(code(&r), "approval_denied");
    // Another principal of the same role.
    let r = call(&client, &f.eve, Some(&token), "edit", args.clone()).await;
    assert_eq!(code(&r), "approval_denied");
    // Forged HMAC: one hex digit of the tag changed; a later expiry with the old tag.
    let last = token.chars().last().unwrap();
    let forged = format!(
        "{}{}",
        &token[..token.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    assert_eq!(
        code(&call(&client, &f.ed, Some(&forged), "edit", args.clone()).await),
        "approval_denied"
    );
    let parts: Vec<&str> = token.split('.').collect();
    let extended = format!(
        "{}.{}.{}.{}",
        parts[0],
        parts[1],
        parts[2].parse::<i64>().unwrap() + 3600,
        parts[3]
    );
    assert_eq!(
        code(&call(&client, &f.ed, Some(&extended), "edit", args.clone()).await),
        "approval_denied"
    );
    assert_eq!(
        code(&call(&client, &f.ed, Some("garbage"), "edit", args.clone()).await),
        "approval_denied"
    );
    // None of those consumed the genuine token.
    assert_eq!(
        code(&call(&client, &f.ed, Some(&token), "edit", args.clone()).await),
        "ok"
    );
    assert_eq!(f.ran("edit"), 2);
    assert_eq!(f.ran("relabel"), 0);

    // Expired: five minutes and a second later.
    let token = fresh(args.clone()).await;
    f.clock.advance(Duration::from_secs(5 * 60 + 1));
    let r = call(&client, &f.ed, Some(&token), "edit", args.clone()).await;
    assert_eq!(code(&r), "approval_denied");
    assert!(text(&r).contains("expired"), "{}", text(&r));
    assert_eq!(f.ran("edit"), 2);
    let denied = f.last();
    assert_eq!(denied.outcome, "approval_denied");
    assert_eq!(denied.approval.unwrap()["decision"], "denied");
}

#[tokio::test]
async fn explicit_tokens_from_another_key_are_refused_and_rotation_keeps_old_ones_valid() {
    let (store, ed, eve) = keys();
    let with_keys = |k: ApprovalKeys| {
        fixture_with(store.clone(), ed.clone(), eve.clone(), move |b| {
            b.approval_keys(k)
        })
    };
    let issuing = with_keys(ApprovalKeys::new([1u8; 32]).unwrap());
    let rotated = with_keys(
        ApprovalKeys::new([3u8; 32])
            .unwrap()
            .with_previous([1u8; 32])
            .unwrap(),
    );
    let stranger = with_keys(ApprovalKeys::new([2u8; 32]).unwrap());
    let args = json!({"note": "n", "priority": "low"});
    let token = token_of(&call(&issuing.connect(()).await, &ed, None, "edit", args.clone()).await);

    // Same caller, same store, another key: refused.
    let r = call(
        &stranger.connect(()).await,
        &ed,
        Some(&token),
        "edit",
        args.clone(),
    )
    .await;
    assert_eq!(code(&r), "approval_denied");
    assert_eq!(stranger.ran("edit"), 0);
    // After rotation the previous key still verifies.
    let r = call(
        &rotated.connect(()).await,
        &ed,
        Some(&token),
        "edit",
        args.clone(),
    )
    .await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    assert_eq!(rotated.ran("edit"), 1);
    // And tokens the rotated server issues are sealed with the new key.
    let fresh = token_of(&call(&rotated.connect(()).await, &ed, None, "edit", args.clone()).await);
    let r = call(
        &issuing.connect(()).await,
        &ed,
        Some(&fresh),
        "edit",
        args.clone(),
    )
    .await;
    assert_eq!(code(&r), "approval_denied");
}

/// A fixture whose server seals approvals with `keys`.
fn with_approval_keys(
    (store, ed, eve): &(ApiKeyStore, String, String),
    keys: ApprovalKeys,
) -> Fixture {
    fixture_with(store.clone(), ed.clone(), eve.clone(), move |b| {
        b.approval_keys(keys)
    })
}

#[tokio::test]
async fn explicit_tokens_from_a_key_file_stay_single_use_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("approval.key");
    let users = keys();
    let start = || with_approval_keys(&users, ApprovalKeys::load_or_create(&key_file).unwrap());
    let before = start();
    let token = token_of(&before.edit(None).await);
    let r = before.edit(Some(&token)).await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    drop(before);

    // The same key file, a new process: the token still verifies, and was already used.
    let after = start();
    let r = after.edit(Some(&token)).await;
    assert_eq!(code(&r), "approval_denied");
    assert!(text(&r).contains("already used"), "{}", text(&r));
    assert_eq!(after.ran("edit"), 0);
    // An unused token from before the restart still runs once.
    let unused = token_of(&after.edit(None).await);
    drop(after);
    let again = start();
    let r = again.edit(Some(&unused)).await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
}

#[tokio::test]
async fn explicit_tokens_from_a_key_file_stay_single_use_while_another_process_shares_it() {
    // Two server processes on one data folder (say two stdio clients of `customer_service`,
    // each starting its own server) share `approval.key` and its journal.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("approval.key");
    let users = keys();
    let start = || with_approval_keys(&users, ApprovalKeys::load_or_create(&key_file).unwrap());
    let first = start();
    let second = start();
    let token = token_of(&first.edit(None).await);
    let r = first.edit(Some(&token)).await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    // The other process refuses the token the first one redeemed.
    let r = second.edit(Some(&token)).await;
    assert_eq!(
        code(&r),
        "approval_denied",
        "replayed in the second process"
    );
    assert_eq!(second.ran("edit"), 0);
    // And so does a process started after both stopped: the first one's redemption was
    // recorded although the second one rewrote the journal when it started.
    drop((first, second));
    let again = start();
    let r = again.edit(Some(&token)).await;
    assert_eq!(code(&r), "approval_denied", "replayed after a restart");
    assert_eq!(again.ran("edit"), 0);
}

#[tokio::test]
async fn explicit_tokens_stay_single_use_across_servers_sharing_keys() {
    // One set of keys (from a secret store, not a file) given to two servers in one process,
    // e.g. one on stdio and one on HTTP.
    let users = keys();
    let shared = ApprovalKeys::new([5u8; 32]).unwrap();
    let (one, two) = (
        with_approval_keys(&users, shared.clone()),
        with_approval_keys(&users, shared),
    );
    let token = token_of(&one.edit(None).await);
    let r = one.edit(Some(&token)).await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    let r = two.edit(Some(&token)).await;
    assert_eq!(code(&r), "approval_denied", "replayed on the other server");
    assert_eq!(two.ran("edit"), 0);
}

#[tokio::test]
async fn approval_comes_after_validation_and_rate_and_read_tools_never_ask() {
    let f = fixture(|b| b);
    let client = f.connect(()).await;
    // Invalid: refused as such, no token handed out.
    let r = call(
        &client,
        &f.ed,
        None,
        "edit",
        json!({"note": "n", "priority": "urgent"}),
    )
    .await;
    assert_eq!(code(&r), "invalid_input");
    assert!(f.last().approval.is_none());
    // Rate: the quota is spent by the first (unapproved) call; the second is refused before approval.
    assert_eq!(
        code(&call(&client, &f.ed, None, "scarce", json!({})).await),
        "approval_required"
    );
    let r = call(&client, &f.ed, None, "scarce", json!({})).await;
    assert_eq!(code(&r), "rate_limited");
    assert!(approval_of(&r).is_null());
    // Read tools never ask.
    assert_eq!(
        code(&call(&client, &f.ed, None, "hello", json!({})).await),
        "ok"
    );
    assert!(f.last().approval.is_none());
}

#[tokio::test]
async fn configuration_may_make_approvals_stricter_never_weaker() {
    let f = fixture(|b| {
        b.require_approval("hello", Approval::Explicit)
            .require_approval("edit", Approval::Human)
    });
    let client = f.connect(()).await;
    let r = call(&client, &f.ed, None, "hello", json!({})).await;
    assert_eq!(code(&r), "approval_required");
    assert_eq!(
        code(&call(&client, &f.ed, Some(&token_of(&r)), "hello", json!({})).await),
        "ok"
    );
    // `edit` now needs a human; this client cannot ask and there is no approver.
    let r = call(
        &client,
        &f.ed,
        None,
        "edit",
        json!({"note": "n", "priority": "low"}),
    )
    .await;
    assert_eq!(code(&r), "approval_required");
    assert_eq!(
        r.structured_content.as_ref().unwrap()["error"]["approval_kind"],
        "human"
    );
    assert!(text(&r).contains("elicitation"), "{}", text(&r));
    assert_eq!(f.ran("edit"), 0);

    let (store, _, _) = keys();
    let weaker = SecureServer::builder(State::default())
        .roles(ROLES)
        .tools(tools![purge])
        .authenticator(store)
        .require_approval("purge", Approval::Explicit)
        .build();
    assert!(
        matches!(weaker, Err(BuildError::WeakerApproval { .. })),
        "{weaker:?}"
    );
    let (store, _, _) = keys();
    let unknown = SecureServer::builder(State::default())
        .roles(ROLES)
        .tools(tools![purge])
        .authenticator(store)
        .require_approval("nope", Approval::Human)
        .build();
    assert!(
        matches!(unknown, Err(BuildError::Invalid(_))),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn approval_durations_past_the_calendar_fail_build_not_calls() {
    // `Duration::MAX` ("never expire") must not make every call that needs approval panic
    // (the client then waits forever): refused by `build`, or answered.
    for configure in [
        (|b: mcp_secure::ServerBuilder<State>| b.approval_ttl(Duration::MAX))
            as fn(mcp_secure::ServerBuilder<State>) -> mcp_secure::ServerBuilder<State>,
        |b| b.human_approval_timeout(Duration::MAX),
    ] {
        let (store, ed, _) = keys();
        let built = configure(
            SecureServer::builder(State::default())
                .roles(ROLES)
                .tools(tools![edit, purge])
                .authenticator(store),
        )
        .build();
        let server = match built {
            Err(e) => {
                assert!(matches!(e, BuildError::Invalid(_)), "{e:?}");
                continue;
            }
            Ok(server) => server,
        };
        let f = Fixture {
            server,
            audit: MemorySink::new(),
            clock: Clock::manual(),
            ed,
            eve: String::new(),
        };
        let client = f.connect(()).await;
        for (tool, args) in [
            ("edit", json!({"note": "n", "priority": "low"})),
            ("purge", json!({"customer_id": "c-1", "pin": "1"})),
        ] {
            let answered = tokio::time::timeout(
                Duration::from_secs(5),
                client.call_tool(params(&f.ed, None, tool, args)),
            )
            .await;
            assert!(
                matches!(answered, Ok(Ok(_))),
                "{tool}: no answer: {answered:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// human: elicitation and the input-required round trip

#[derive(Clone, Copy, Debug)]
enum Answer {
    Accept,
    AcceptNo,
    Decline,
    Cancel,
    Stall,
    Garbage,
    AcceptEmpty,
}

/// A client whose human always gives the same answer, and remembers what it was shown.
#[derive(Clone)]
struct Human {
    answer: Answer,
    shown: Arc<Mutex<Vec<String>>>,
}

impl Human {
    fn new(answer: Answer) -> Self {
        Human {
            answer,
            shown: Arc::default(),
        }
    }
}

impl ClientHandler for Human {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("test-human", "1.0.0"),
        )
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        if let ElicitRequestParams::FormElicitationParams {
            message,
            requested_schema,
            ..
        } = &request
        {
            let schema = serde_json::to_value(requested_schema).unwrap();
            assert_eq!(
                schema["properties"]["approve"]["type"], "boolean",
                "{schema}"
            );
            self.shown.lock().unwrap().push(message.clone());
        }
        Ok(match self.answer {
            Answer::Accept => {
                ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": true}))
            }
            Answer::AcceptNo => {
                ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": false}))
            }
            Answer::Decline => ElicitResult::new(ElicitationAction::Decline),
            Answer::Cancel => ElicitResult::new(ElicitationAction::Cancel),
            Answer::Garbage => ElicitResult::new(ElicitationAction::Accept)
                .with_content(json!({"approve": "sure"})),
            Answer::AcceptEmpty => ElicitResult::new(ElicitationAction::Accept),
            Answer::Stall => std::future::pending().await,
        })
    }
}

#[tokio::test]
async fn elicitation_only_accept_runs_the_body() {
    let f = fixture(|b| b);
    // A stalling human meets a short timeout; the others answer at once.
    let stalled = fixture(|b| b.human_approval_timeout(Duration::from_millis(300)));
    let cases = [
        (&f, Answer::Decline, "declined"),
        (&f, Answer::Cancel, "cancelled"),
        (&f, Answer::AcceptNo, "answered no"),
        (&f, Answer::Garbage, "not understood"),
        (&f, Answer::AcceptEmpty, "not understood"),
        (&stalled, Answer::Stall, "no answer within 0.3 s"),
    ];
    for (f, answer, why) in cases {
        let human = Human::new(answer);
        let client = f.connect(human.clone()).await;
        let r = call(
            &client,
            &f.ed,
            None,
            "purge",
            json!({"customer_id": "c-1", "pin": "pin-zq-4321"}),
        )
        .await;
        assert_eq!(code(&r), "approval_denied", "{answer:?}: {}", text(&r));
        assert!(text(&r).contains(why), "{answer:?}: {}", text(&r));
        assert_eq!(f.ran("purge"), 0, "{answer:?} must not run the body");
        assert_eq!(
            f.customers(),
            ["c-1", "c-2", "c-3"],
            "{answer:?} left the database unchanged"
        );
        let record = f.last();
        assert_eq!(record.outcome, "approval_denied");
        let a = record.approval.unwrap();
        assert_eq!(
            (a["method"].as_str(), a["decision"].as_str()),
            (Some("elicitation"), Some("denied"))
        );
        assert_eq!(human.shown.lock().unwrap().len(), 1);
    }

    let human = Human::new(Answer::Accept);
    let client = f.connect(human.clone()).await;
    let r = call(
        &client,
        &f.ed,
        None,
        "purge",
        json!({"customer_id": "c-1", "pin": "pin-zq-4321"}),
    )
    .await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    assert_eq!(f.ran("purge"), 1);
    assert_eq!(f.customers(), ["c-2", "c-3"]);
    let a = f.last().approval.unwrap();
    assert_eq!(
        (
            a["method"].as_str(),
            a["decision"].as_str(),
            a["by"].as_str()
        ),
        (Some("elicitation"), Some("approved"), Some("ed"))
    );
    // The human saw the tool, the caller and the arguments, with the secret redacted.
    let shown = human.shown.lock().unwrap()[0].clone();
    for part in ["purge", "ed", "c-1", "[REDACTED]"] {
        assert!(shown.contains(part), "`{part}` missing from: {shown}");
    }
    // The secret has letters no hex digest, call id or timestamp can hold: a
    // digits-only secret turned up by chance inside a record's hash.
    let everything = serde_json::to_string(&f.audit.events()).unwrap() + &shown;
    assert!(
        !everything.contains("zq-4321"),
        "the secret never leaves the call"
    );
}

#[tokio::test]
async fn approval_prompts_show_invisible_and_bidi_characters_escaped() {
    // Characters that make text display as other text: a right-to-left override, a line
    // separator, a zero-width space, a next-line control.
    let hidden = ['\u{202E}', '\u{2028}', '\u{200B}', '\u{0085}'];
    let sneaky: String = format!("c-1{}1-c", hidden.iter().collect::<String>());
    let f = fixture(|b| b);
    let check = |what: &str, shown: &str| {
        for c in hidden {
            assert!(
                !shown.contains(c),
                "{what} shows U+{:04X} raw: {shown:?}",
                u32::from(c)
            );
        }
        assert!(
            shown.contains("\\u202e"),
            "{what} names the character: {shown:?}"
        );
    };
    // Elicitation (and the round trip, which shows the same form).
    let human = Human::new(Answer::Decline);
    let client = f.connect(human.clone()).await;
    let r = call(
        &client,
        &f.ed,
        None,
        "purge",
        json!({"customer_id": sneaky, "pin": "1"}),
    )
    .await;
    assert_eq!(code(&r), "approval_denied", "{}", text(&r));
    check("the elicitation prompt", &human.shown.lock().unwrap()[0]);
    // The explicit token's summary (which an out-of-band approver shows too).
    let r = call(
        &client,
        &f.ed,
        None,
        "edit",
        json!({"note": sneaky, "priority": "low"}),
    )
    .await;
    assert_eq!(code(&r), "approval_required", "{}", text(&r));
    check("the summary", approval_of(&r)["summary"].as_str().unwrap());
    assert_eq!(f.ran("purge") + f.ran("edit"), 0);
}

#[tokio::test]
async fn input_required_round_trip_on_2026_07_28() {
    let f = fixture(|b| b);
    let args = json!({"customer_id": "c-2", "pin": "1"});

    // Declined: refused, nothing runs. Two rounds, two audit records.
    let client = f.connect_2026(Human::new(Answer::Decline)).await;
    let before = f.outcomes().len();
    let r = call(&client, &f.ed, None, "purge", args.clone()).await;
    assert_eq!(code(&r), "approval_denied", "{}", text(&r));
    let rounds: Vec<String> = f.outcomes()[before..]
        .iter()
        .map(|e| e.outcome.clone())
        .collect();
    assert_eq!(rounds, ["approval_required", "approval_denied"]);
    assert_eq!((f.ran("purge"), f.customers().len()), (0, 3));

    // Accepted: the rmcp client drives the round trip and the body runs once.
    let human = Human::new(Answer::Accept);
    let client = f.connect_2026(human.clone()).await;
    let before = f.outcomes().len();
    let r = call(&client, &f.ed, None, "purge", args.clone()).await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    assert_eq!(f.ran("purge"), 1);
    assert_eq!(f.customers(), ["c-1", "c-3"]);
    let rounds: Vec<AuditEvent> = f.outcomes()[before..].to_vec();
    assert_eq!(
        rounds
            .iter()
            .map(|e| e.outcome.as_str())
            .collect::<Vec<_>>(),
        ["approval_required", "ok"]
    );
    let a = rounds[1].approval.clone().unwrap();
    assert_eq!(
        (a["method"].as_str(), a["decision"].as_str()),
        (Some("input_required"), Some("approved"))
    );
    assert!(human.shown.lock().unwrap()[0].contains("[REDACTED]"));
}

#[tokio::test]
async fn input_required_state_tampered_replayed_or_moved_is_refused() {
    let f = fixture(|b| b);
    let client = f.connect_2026(Human::new(Answer::Accept)).await;
    let args = json!({"customer_id": "c-3", "pin": "1"});
    let accept: rmcp::model::InputResponses = [(
        "mcp-secure/approval".to_owned(),
        json!({"action": "accept", "content": {"approve": true}}),
    )]
    .into();

    let ask = |args: Value| {
        let (client, ed) = (&client, f.ed.clone());
        async move {
            match client
                .peer()
                .call_tool_once(params(&ed, None, "purge", args))
                .await
                .unwrap()
            {
                CallToolResponse::InputRequired(r) => r,
                other => panic!("expected input required, got {other:?}"),
            }
        }
    };
    let retry = |state: String, args: Value, auth: String| {
        let (client, accept) = (&client, accept.clone());
        async move {
            let p = params(&auth, None, "purge", args)
                .with_input_responses(accept)
                .with_request_state(state);
            match client.peer().call_tool_once(p).await.unwrap() {
                CallToolResponse::Complete(r) => r,
                other => panic!("expected a result, got {other:?}"),
            }
        }
    };

    let first = ask(args.clone()).await;
    let requests = first.input_requests.as_ref().unwrap();
    assert!(requests.contains_key("mcp-secure/approval"));
    let state = first.request_state.clone().unwrap();
    // Tampered: one character of the tag changed.
    let last = state.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &state[..state.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let r = retry(tampered, args.clone(), f.ed.clone()).await;
    assert_eq!(code(&r), "approval_denied");
    assert!(text(&r).contains("request state"), "{}", text(&r));
    // Moved: the state for c-3 presented for c-1, or by another caller.
    let r = retry(
        state.clone(),
        json!({"customer_id": "c-1", "pin": "1"}),
        f.ed.clone(),
    )
    .await;
    assert_eq!(code(&r), "approval_denied");
    let r = retry(state.clone(), args.clone(), f.eve.clone()).await;
    assert_eq!(code(&r), "approval_denied");
    assert_eq!((f.ran("purge"), f.customers().len()), (0, 3));
    // Genuine: runs once. Replayed: refused.
    assert_eq!(
        code(&retry(state.clone(), args.clone(), f.ed.clone()).await),
        "ok"
    );
    let r = retry(state, args.clone(), f.ed.clone()).await;
    assert_eq!(code(&r), "approval_denied");
    assert!(text(&r).contains("already answered"), "{}", text(&r));
    assert_eq!(f.ran("purge"), 1);
    assert_eq!(f.customers(), ["c-1", "c-2"]);
    // Expired: the human took longer than the approval timeout.
    let state = ask(json!({"customer_id": "c-2", "pin": "1"}))
        .await
        .request_state
        .unwrap();
    f.clock.advance(Duration::from_secs(11));
    let r = retry(
        state,
        json!({"customer_id": "c-2", "pin": "1"}),
        f.ed.clone(),
    )
    .await;
    assert_eq!(code(&r), "approval_denied");
    assert_eq!(f.ran("purge"), 1);
}

// ---------------------------------------------------------------------------------------------
// out of band: the file queue, answered by `customer_service approvals` in another process

fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(Path::parent).unwrap();
    let bin = debug
        .join("examples")
        .join(format!("customer_service{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: `cargo test` builds it",
        bin.display()
    );
    bin
}

/// Waits for the server to queue a request, and returns its id.
async fn pending_id(queue: &FileApprovalQueue) -> String {
    for _ in 0..500 {
        if let Some(q) = queue
            .list()
            .unwrap()
            .into_iter()
            .find(|q| q.state == QueueState::Pending)
        {
            return q.id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no approval request was queued");
}

fn operator(data: &Path, verb: &str, id: &str) -> String {
    let out = std::process::Command::new(example_binary())
        .args(["approvals", verb, id, "--by", "olga", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "approvals {verb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn out_of_band_queue_answered_from_a_second_process() {
    let data = tempfile::tempdir().unwrap();
    let queue = FileApprovalQueue::open(data.path().join("approvals")).unwrap();
    let f = fixture(|b| {
        b.approver(
            FileApprovalQueue::open(data.path().join("approvals"))
                .unwrap()
                .poll_interval(Duration::from_millis(10)),
        )
        .human_approval_timeout(Duration::from_secs(30))
    });
    // A client without elicitation.
    let client = f.connect(()).await;

    // Approve.
    let call_it = call(
        &client,
        &f.ed,
        None,
        "purge",
        json!({"customer_id": "c-1", "pin": "pin-zq-99"}),
    );
    let approve = async {
        let id = pending_id(&queue).await;
        let listed = std::process::Command::new(example_binary())
            .args(["approvals", "list", "--data"])
            .arg(data.path())
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(
            listed.contains(&id) && listed.contains("purge will run as ed"),
            "{listed}"
        );
        assert!(
            !listed.contains("zq-99"),
            "secrets are redacted in the queue: {listed}"
        );
        assert_eq!(f.ran("purge"), 0, "nothing runs before the decision");
        operator(data.path(), "approve", &id)
    };
    let (r, said) = tokio::join!(call_it, approve);
    assert!(said.starts_with("approved"), "{said}");
    assert_eq!(code(&r), "ok", "{}", text(&r));
    assert_eq!(
        (f.ran("purge"), f.customers()),
        (1, vec!["c-2".to_string(), "c-3".to_string()])
    );
    let a = f.last().approval.unwrap();
    assert_eq!(
        (
            a["method"].as_str(),
            a["decision"].as_str(),
            a["by"].as_str()
        ),
        (Some("approver"), Some("approved"), Some("olga"))
    );

    // Deny.
    let call_it = call(
        &client,
        &f.ed,
        None,
        "purge",
        json!({"customer_id": "c-2", "pin": "99"}),
    );
    let deny = async { operator(data.path(), "deny", &pending_id(&queue).await) };
    let (r, _) = tokio::join!(call_it, deny);
    assert_eq!(code(&r), "approval_denied", "{}", text(&r));
    assert_eq!((f.ran("purge"), f.customers().len()), (1, 2));
    let a = f.last().approval.unwrap();
    assert_eq!(
        (a["decision"].as_str(), a["by"].as_str()),
        (Some("denied"), Some("olga"))
    );
}

#[tokio::test]
async fn out_of_band_queue_times_out_as_a_denial() {
    let data = tempfile::tempdir().unwrap();
    let f = fixture(|b| {
        b.approver(
            FileApprovalQueue::open(data.path().join("approvals"))
                .unwrap()
                .poll_interval(Duration::from_millis(10)),
        )
        .human_approval_timeout(Duration::from_millis(200))
    });
    let client = f.connect(()).await;
    let r = call(
        &client,
        &f.ed,
        None,
        "purge",
        json!({"customer_id": "c-1", "pin": "1"}),
    )
    .await;
    assert_eq!(code(&r), "approval_denied", "{}", text(&r));
    assert!(text(&r).contains("no operator decided"), "{}", text(&r));
    assert_eq!((f.ran("purge"), f.customers().len()), (0, 3));
    let queue = FileApprovalQueue::open(data.path().join("approvals")).unwrap();
    let entries = queue.list().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].state, QueueState::Expired);
    // Too late to approve.
    let out = std::process::Command::new(example_binary())
        .args(["approvals", "approve", &entries[0].id, "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
}
