//! The whole pipeline, end to end, with a real rmcp client over an in-memory duplex: every
//! refusal class returns its stable code, the tool body never runs when refused (counted), and
//! every call leaves exactly one audit outcome record.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use common::{Client, call, code, connect, text};
use mcp_secure::approval::ApprovalInput;
use mcp_secure::audit::{AuditEvent, MemorySink, Phase};
use mcp_secure::auth::{ApiKeyStore, Credential, CredentialSource, Environment};
use mcp_secure::{
    Bounded, Clock, Ctx, Json, Secret, SecureServer, ServerBuilder, ToolError, roles, tool, tools,
};
use serde_json::{Value, json};
use tokio::sync::Notify;

roles! {
    "read-only",
    "editor": "read-only",
    "admin": *,
}

#[derive(Default)]
struct State {
    ran: Mutex<HashMap<&'static str, usize>>,
    release: Notify,
}

impl State {
    fn ran(&self, tool: &'static str) {
        *self.ran.lock().unwrap().entry(tool).or_default() += 1;
    }
}

/// Echo text back.
#[tool(kind = "read", role = "read-only", max_input = "256B")]
async fn echo(
    ctx: Ctx<State>,
    /// What to echo.
    #[validate(length(min = 1, max = 100))]
    text: String,
    /// How many times.
    #[validate(range(min = 1, max = 3))]
    times: Option<u8>,
) -> Result<String, ToolError> {
    ctx.ran("echo");
    Ok(text.repeat(usize::from(times.unwrap_or(1))))
}

/// A team, with a rule of its own.
#[derive(serde::Deserialize, schemars::JsonSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
struct Team {
    #[validate(length(min = 1, max = 16))]
    name: String,
}

impl Bounded for Team {}

/// Invite someone to a team: rules only validator's derive checks (`email`, `nested`), next
/// to ones `#[tool]` checks itself.
#[tool(kind = "read", role = "read-only")]
async fn invite(
    ctx: Ctx<State>,
    /// Who.
    #[validate(email, length(max = 64))]
    to: String,
    /// Where.
    #[validate(nested)]
    team: Team,
    /// How many seats.
    #[validate(range(min = 1, max = 5))]
    seats: u8,
) -> Result<String, ToolError> {
    ctx.ran("invite");
    Ok(format!("{to} {} {seats}", team.name))
}

/// A tool with a small quota.
#[tool(kind = "read", role = "read-only", rate = "3/hour")]
async fn limited(ctx: Ctx<State>) -> Result<String, ToolError> {
    ctx.ran("limited");
    Ok("fine".into())
}

/// Sleeps, and never finishes in time.
#[tool(kind = "read", role = "read-only", timeout = "100ms")]
async fn slow(ctx: Ctx<State>) -> Result<String, ToolError> {
    ctx.ran("slow.start");
    tokio::time::sleep(Duration::from_secs(30)).await;
    ctx.ran("slow.end");
    Ok("late".into())
}

/// One call at a time; waits until released.
#[tool(kind = "read", role = "read-only", concurrency = 1, timeout = "10s")]
async fn busy(ctx: Ctx<State>) -> Result<String, ToolError> {
    ctx.ran("busy");
    ctx.release.notified().await;
    Ok("done".into())
}

#[derive(Debug, Clone, Copy, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Priority {
    Low,
    High,
}
impl Bounded for Priority {}

/// Edit something (needs explicit approval).
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

/// Delete everything (needs a human).
#[tool(kind = "delete", role = "editor")]
async fn purge(ctx: Ctx<State>) -> Result<String, ToolError> {
    ctx.ran("purge");
    Ok("gone".into())
}

/// Privileged maintenance.
#[tool(kind = "admin", role = "admin")]
async fn maintenance(ctx: Ctx<State>) -> Result<String, ToolError> {
    ctx.ran("maintenance");
    Ok("ok".into())
}

/// Panics with a secret in the message.
#[tool(kind = "read", role = "read-only")]
async fn explode(ctx: Ctx<State>) -> Result<String, ToolError> {
    ctx.ran("explode");
    panic!("database password is hunter2");
}

#[derive(serde::Serialize, schemars::JsonSchema)]
struct Login {
    user: String,
    ok: bool,
}

/// Checks a password.
#[tool(kind = "read", role = "read-only")]
async fn login(
    ctx: Ctx<State>,
    /// The user.
    #[validate(length(min = 1, max = 32))]
    user: String,
    /// The password.
    #[validate(length(min = 1, max = 64))]
    password: Secret<String>,
) -> Result<Json<Login>, ToolError> {
    ctx.ran("login");
    Ok(Json(Login {
        ok: password.expose() == "correct horse",
        user,
    }))
}

struct Harness {
    client: Client,
    audit: MemorySink,
    server: SecureServer<State>,
    /// The server's key store (shared with it: a revocation here reaches the server).
    keys: ApiKeyStore,
    reader: String,
    editor: String,
    admin: String,
    live: String,
}

impl Harness {
    async fn new() -> Harness {
        Harness::with(|b| b).await
    }

    /// A harness whose server is built with `configure` applied to its builder.
    async fn with(configure: impl FnOnce(ServerBuilder<State>) -> ServerBuilder<State>) -> Harness {
        let keys = ApiKeyStore::new(Environment::Test);
        let key = |user: &str, role: &str, env| {
            keys.generate(user, &[role.to_string()], env, None)
                .unwrap()
                .token
        };
        let (reader, editor, admin) = (
            key("rita", "read-only", Environment::Test),
            key("ed", "editor", Environment::Test),
            key("ada", "admin", Environment::Test),
        );
        let live = key("lee", "admin", Environment::Live);
        let audit = MemorySink::new();
        let server = configure(SecureServer::builder(State::default()))
            .name("pipeline-test", "1.0.0")
            .roles(ROLES)
            .tools(tools![
                echo,
                limited,
                slow,
                busy,
                edit,
                purge,
                maintenance,
                explode,
                login,
                invite
            ])
            .authenticator(keys.clone())
            .audit(audit.clone())
            .build()
            .unwrap();
        let client = connect(server.clone().with_transport("memory")).await;
        Harness {
            client,
            audit,
            server,
            keys,
            reader,
            editor,
            admin,
            live,
        }
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

    fn outcomes(&self) -> Vec<AuditEvent> {
        self.audit
            .events()
            .into_iter()
            .filter(|e| e.phase == Phase::Outcome)
            .collect()
    }

    /// Calls and checks: the code, and exactly one new outcome record carrying it.
    async fn expect(
        &self,
        token: Option<&str>,
        tool: &str,
        args: Value,
        want: &str,
    ) -> rmcp::model::CallToolResult {
        let before = self.outcomes().len();
        let r = call(&self.client, token, tool, args).await;
        assert_eq!(code(&r), want, "{tool}: {}", text(&r));
        let outcomes = self.outcomes();
        assert_eq!(
            outcomes.len(),
            before + 1,
            "{tool}: exactly one audit outcome per call"
        );
        let last = outcomes.last().unwrap();
        assert_eq!((last.tool.as_str(), last.outcome.as_str()), (tool, want));
        assert_eq!(last.success, want == "ok");
        assert_eq!(last.transport, "memory");
        r
    }
}

#[tokio::test]
async fn tools_list_shows_each_caller_only_its_tools_with_constraints() {
    let h = Harness::new().await;
    let names = |tools: Vec<rmcp::model::Tool>| {
        let mut v: Vec<String> = tools.into_iter().map(|t| t.name.to_string()).collect();
        v.sort();
        v
    };
    let list = |token: String| {
        let client = &h.client;
        async move {
            let mut p = rmcp::model::PaginatedRequestParams::default();
            let mut meta = rmcp::model::RequestMetaObject::default();
            meta.0.insert("authToken".into(), Value::from(token));
            p.meta = Some(meta);
            client.peer().list_tools(Some(p)).await.unwrap().tools
        }
    };
    let reader = names(list(h.reader.clone()).await);
    assert_eq!(
        reader,
        [
            "busy", "echo", "explode", "invite", "limited", "login", "slow"
        ]
    );
    let editor = names(list(h.editor.clone()).await);
    assert_eq!(
        editor,
        [
            "busy", "echo", "edit", "explode", "invite", "limited", "login", "purge", "slow"
        ]
    );
    let admin = list(h.admin.clone()).await;
    assert_eq!(admin.len(), 10);
    // Unauthenticated callers see nothing.
    assert!(
        h.client
            .peer()
            .list_tools(None)
            .await
            .unwrap()
            .tools
            .is_empty()
    );

    let echo = admin.iter().find(|t| t.name == "echo").unwrap();
    let schema = Value::Object((*echo.input_schema).clone());
    assert_eq!(schema["properties"]["text"]["maxLength"], 100);
    assert_eq!(schema["properties"]["text"]["minLength"], 1);
    assert_eq!(schema["properties"]["times"]["maximum"], 3);
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["text"]["description"], "What to echo.");
    assert_eq!(echo.description.as_deref(), Some("Echo text back."));
    let ann = echo.annotations.as_ref().unwrap();
    assert_eq!(
        (ann.read_only_hint, ann.destructive_hint),
        (Some(true), Some(false))
    );
    let purge = admin.iter().find(|t| t.name == "purge").unwrap();
    assert_eq!(
        purge.annotations.as_ref().unwrap().destructive_hint,
        Some(true)
    );
    let login = admin.iter().find(|t| t.name == "login").unwrap();
    assert_eq!(
        login.output_schema.as_ref().unwrap()["properties"]["ok"]["type"],
        "boolean"
    );
}

#[tokio::test]
async fn allowed_calls_run_and_refusals_never_reach_the_body() {
    let h = Harness::new().await;
    let (reader, editor, admin) = (
        Some(h.reader.as_str()),
        Some(h.editor.as_str()),
        Some(h.admin.as_str()),
    );

    let r = h
        .expect(reader, "echo", json!({"text": "hi", "times": 2}), "ok")
        .await;
    assert_eq!(text(&r), "hihi");
    assert_eq!(h.ran("echo"), 1);

    // No token, a bad token, a key of the other environment.
    h.expect(None, "echo", json!({"text": "hi"}), "unauthorized")
        .await;
    h.expect(
        Some("mcs_test_abc_0000"),
        "echo",
        json!({"text": "hi"}),
        "unauthorized",
    )
    .await;
    let r = h
        .expect(
            Some(h.live.as_str()),
            "echo",
            json!({"text": "hi"}),
            "unauthorized",
        )
        .await;
    assert!(text(&r).contains("`live` key"), "{}", text(&r));
    // Wrong role, and an admin tool for a non-privileged role.
    h.expect(
        reader,
        "edit",
        json!({"note": "x", "priority": "low"}),
        "forbidden",
    )
    .await;
    h.expect(editor, "maintenance", json!({}), "forbidden")
        .await;
    // Invalid input: rule broken, wrong type, unknown field, missing field, bad enum.
    let r = h
        .expect(reader, "echo", json!({"text": ""}), "invalid_input")
        .await;
    assert!(text(&r).contains("`text`"), "{}", text(&r));
    h.expect(
        reader,
        "echo",
        json!({"text": "x", "times": 9}),
        "invalid_input",
    )
    .await;
    h.expect(reader, "echo", json!({"text": 5}), "invalid_input")
        .await;
    let r = h
        .expect(
            reader,
            "echo",
            json!({"text": "x", "admin": true}),
            "invalid_input",
        )
        .await;
    assert!(text(&r).contains("unknown field `admin`"), "{}", text(&r));
    h.expect(reader, "echo", json!({}), "invalid_input").await;
    h.expect(
        editor,
        "edit",
        json!({"note": "x", "priority": "urgent"}),
        "invalid_input",
    )
    .await;
    // Too large: over the tool's 256-byte cap, refused before parsing.
    h.expect(
        reader,
        "echo",
        json!({"text": "x".repeat(300)}),
        "too_large",
    )
    .await;
    // Approval required: write, delete and admin tools never run without approval.
    let r = h
        .expect(
            editor,
            "edit",
            json!({"note": "x", "priority": "high"}),
            "approval_required",
        )
        .await;
    assert_eq!(
        r.structured_content.as_ref().unwrap()["error"]["approval_kind"],
        "explicit"
    );
    h.expect(editor, "purge", json!({}), "approval_required")
        .await;
    h.expect(admin, "maintenance", json!({}), "approval_required")
        .await;
    // Unknown tool.
    h.expect(reader, "nope", json!({}), "invalid_input").await;

    assert_eq!(h.ran("echo"), 1, "no refused echo call ran");
    for t in ["edit", "purge", "maintenance"] {
        assert_eq!(h.ran(t), 0, "{t} must never run");
    }
}

#[tokio::test]
async fn rate_limit_trips_at_exactly_the_quota_plus_one() {
    let h = Harness::new().await;
    let reader = Some(h.reader.as_str());
    for _ in 0..3 {
        h.expect(reader, "limited", json!({}), "ok").await;
    }
    let r = h.expect(reader, "limited", json!({}), "rate_limited").await;
    let retry = r.structured_content.as_ref().unwrap()["error"]["retry_after_ms"]
        .as_u64()
        .unwrap();
    assert!(
        retry > 1_000_000,
        "3/hour refills every 20 minutes, got {retry} ms"
    );
    assert!(text(&r).starts_with("Rate limit reached. Please wait."));
    assert_eq!(h.ran("limited"), 3);
    // Limits are per principal.
    h.expect(Some(h.editor.as_str()), "limited", json!({}), "ok")
        .await;
}

/// Both limits count calls on the server's clock: the quota comes back when that clock moves
/// on, and only then.
#[tokio::test]
async fn rate_limits_refill_as_the_servers_clock_moves() {
    let clock = Clock::manual();
    let h = Harness::with({
        let clock = clock.clone();
        move |b| b.clock(clock).principal_rate("2/min").unwrap()
    })
    .await;
    let retry = |r: &rmcp::model::CallToolResult| {
        r.structured_content.as_ref().unwrap()["error"]["retry_after_ms"]
            .as_u64()
            .unwrap()
    };

    // The server-wide limit, per principal: 2 a minute, one every 30 s.
    let reader = Some(h.reader.as_str());
    for _ in 0..2 {
        h.expect(reader, "echo", json!({"text": "a"}), "ok").await;
    }
    let r = h
        .expect(reader, "echo", json!({"text": "a"}), "rate_limited")
        .await;
    assert_eq!(retry(&r), 30_000, "the clock has not moved");
    clock.advance(Duration::from_secs(29));
    let r = h
        .expect(reader, "echo", json!({"text": "a"}), "rate_limited")
        .await;
    assert_eq!(retry(&r), 1_000);
    clock.advance(Duration::from_secs(1));
    h.expect(reader, "echo", json!({"text": "a"}), "ok").await;
    h.expect(reader, "echo", json!({"text": "a"}), "rate_limited")
        .await;

    // The tool's own limit (3 an hour, one every 20 minutes), for another principal.
    let editor = Some(h.editor.as_str());
    for _ in 0..2 {
        h.expect(editor, "limited", json!({}), "ok").await;
    }
    clock.advance(Duration::from_secs(60));
    h.expect(editor, "limited", json!({}), "ok").await;
    let r = h.expect(editor, "limited", json!({}), "rate_limited").await;
    assert_eq!(retry(&r), 19 * 60_000, "20 minutes after the first call");
    clock.advance(Duration::from_secs(19 * 60));
    h.expect(editor, "limited", json!({}), "ok").await;
    h.expect(editor, "limited", json!({}), "rate_limited").await;
    assert_eq!(h.ran("limited"), 4);
}

#[tokio::test]
async fn output_over_the_cap_is_refused_and_recorded_without_it() {
    let h = Harness::with(|b| b.max_output(200)).await;
    let reader = Some(h.reader.as_str());
    let r = h
        .expect(reader, "echo", json!({"text": "y".repeat(100)}), "ok")
        .await;
    assert_eq!(text(&r), "y".repeat(100));
    let last = h.outcomes().pop().unwrap();
    assert_eq!(
        last.output,
        Some(json!([{"type": "text", "text": "y".repeat(100)}]))
    );
    // The body ran (the cap is on what it returns), but its 300 bytes never leave.
    let r = h
        .expect(
            reader,
            "echo",
            json!({"text": "z".repeat(100), "times": 3}),
            "too_large",
        )
        .await;
    assert_eq!(
        text(&r),
        "Error: Too large: the tool's output is larger than 200 bytes"
    );
    let error = &r.structured_content.as_ref().unwrap()["error"];
    assert_eq!(
        error["message"],
        "the tool's output is larger than 200 bytes"
    );
    assert_eq!(error["max_bytes"], 200);
    assert!(!format!("{r:?}").contains("zzz"), "{r:?}");
    let last = h.outcomes().pop().unwrap();
    assert_eq!(last.output, None);
    assert_eq!(
        last.error.as_deref(),
        Some("the tool's output is larger than 200 bytes")
    );
    assert_eq!(h.ran("echo"), 2);
}

#[tokio::test]
async fn timeout_stops_the_body() {
    let h = Harness::new().await;
    h.expect(Some(h.reader.as_str()), "slow", json!({}), "timeout")
        .await;
    assert_eq!((h.ran("slow.start"), h.ran("slow.end")), (1, 0));
}

#[tokio::test]
async fn concurrency_limit_refuses_the_second_call_in_flight() {
    let h = Harness::new().await;
    let token = h.reader.clone();
    let client = &h.client;
    let first = call(client, Some(&token), "busy", json!({}));
    let second = async {
        // Wait until the first call is inside its body.
        while h.ran("busy") == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let r = call(client, Some(&token), "busy", json!({})).await;
        h.server.state().release.notify_one();
        r
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(code(&first), "ok");
    assert_eq!(code(&second), "overloaded");
    assert_eq!(h.ran("busy"), 1);
    let outcomes: Vec<String> = h.outcomes().into_iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.contains(&"ok".into()) && outcomes.contains(&"overloaded".into()));
}

#[tokio::test]
async fn panics_become_internal_errors_that_reveal_nothing() {
    let h = Harness::new().await;
    let r = h
        .expect(Some(h.reader.as_str()), "explode", json!({}), "internal")
        .await;
    let all =
        serde_json::to_string(&r).unwrap() + &serde_json::to_string(&h.audit.events()).unwrap();
    assert!(!all.contains("hunter2"));
    // The server still serves.
    h.expect(
        Some(h.reader.as_str()),
        "echo",
        json!({"text": "alive"}),
        "ok",
    )
    .await;
}

#[tokio::test]
async fn secrets_are_redacted_in_audit_and_errors() {
    let h = Harness::new().await;
    let reader = Some(h.reader.as_str());
    let r = h
        .expect(
            reader,
            "login",
            json!({"user": "u", "password": "correct horse"}),
            "ok",
        )
        .await;
    assert_eq!(r.structured_content.as_ref().unwrap()["ok"], true);
    h.expect(
        reader,
        "login",
        json!({"user": "u", "password": 12345678}),
        "invalid_input",
    )
    .await;
    h.expect(
        reader,
        "login",
        json!({"user": "u", "password": "y".repeat(65)}),
        "invalid_input",
    )
    .await;
    let audit = serde_json::to_string(&h.audit.events()).unwrap();
    assert!(
        !audit.contains("correct horse") && !audit.contains("12345678") && !audit.contains("yyyyy")
    );
    assert!(audit.contains("[REDACTED]"));
    // Tokens never reach a record.
    assert!(!audit.contains(&h.reader));
    let input = &h.outcomes()[0].input;
    assert_eq!(input["user"], "u");
    assert_eq!(input["password"], "[REDACTED]");
}

#[tokio::test]
async fn session_token_authenticates_requests_without_meta() {
    let h = Harness::new().await;
    let server = h
        .server
        .clone()
        .with_transport("memory")
        .with_session_token(h.editor.clone());
    let client = connect(server).await;
    // The first call checks the key whole; the next ones get the principal the session's
    // credential keeps, and their records say who called just the same.
    for text in ["as editor", "again"] {
        let r = call(&client, None, "echo", json!({ "text": text })).await;
        assert_eq!(code(&r), "ok");
        let last = h.outcomes().pop().unwrap();
        assert_eq!(last.user.as_deref(), Some("ed"));
        assert_eq!(last.roles, vec!["editor".to_string()]);
    }
    // A per-request token wins over the session's.
    let r = call(&client, Some("not-a-key"), "echo", json!({"text": "x"})).await;
    assert_eq!(code(&r), "unauthorized");
    // The session's digest is computed once, but its key is checked on every call: once the
    // key is revoked, the session's next call is refused.
    let id = h
        .keys
        .entries()
        .into_iter()
        .find(|e| e.user == "ed")
        .expect("the editor's key")
        .id;
    assert!(h.keys.revoke(&id));
    let r = call(&client, None, "echo", json!({"text": "after revocation"})).await;
    assert_eq!(code(&r), "unauthorized");
    assert_eq!(h.outcomes().pop().unwrap().outcome, "unauthorized");
}

/// `SecureServer::respond` drafts the call's record when it makes the call's future: a future
/// dropped before it first runs still leaves the call's one record, `cancelled`, and runs
/// nothing.
#[tokio::test]
async fn a_call_dropped_before_it_runs_is_recorded_as_cancelled() {
    let h = Harness::new().await;
    let before = h.outcomes().len();
    let credential = Credential::new(h.reader.clone(), CredentialSource::RequestMeta);
    let args = json!({"text": "never run"}).as_object().cloned();
    let future = h.server.respond(
        "echo",
        args,
        Some(credential),
        None,
        ApprovalInput::from_meta([]),
    );
    drop(future);
    let outcomes = h.outcomes();
    assert_eq!(outcomes.len(), before + 1, "one record for the call");
    let last = outcomes.last().unwrap();
    assert_eq!(
        (last.tool.as_str(), last.outcome.as_str()),
        ("echo", "cancelled")
    );
    assert_eq!(last.input["text"], "never run");
    assert_eq!(h.ran("echo"), 0);
}

#[tokio::test]
async fn a_cancelled_request_stops_the_body_and_is_recorded() {
    let h = Harness::new().await;
    let token = h.reader.clone();
    // Dropping the client's future sends `notifications/cancelled` for the request.
    let pending = call(&h.client, Some(&token), "busy", json!({}));
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::pin!(pending);
        loop {
            tokio::select! {
                _ = &mut pending => panic!("busy must not finish before it is released"),
                () = tokio::time::sleep(Duration::from_millis(5)) => if h.ran("busy") == 1 { break },
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "the body started");
    // The future is dropped here; the server must record the call as cancelled.
    let recorded = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(e) = h.outcomes().last() {
                return e.outcome.clone();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("an outcome record within 5 s");
    assert_eq!(recorded, "cancelled");
    assert_eq!(h.outcomes().len(), 1);
    // The permit was released: the next call gets in.
    let next = call(&h.client, Some(&token), "busy", json!({}));
    let release = async {
        while h.ran("busy") < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        h.server.state().release.notify_one();
    };
    let (r, ()) = tokio::join!(next, release);
    assert_eq!(code(&r), "ok");
}

/// Rules `#[tool]` checks itself and rules validator's derive checks are refused alike over
/// rmcp: `invalid_input`, every broken rule named with its field (nested ones by their path),
/// no value repeated, the body never run.
#[tokio::test]
async fn own_and_validator_rules_are_refused_end_to_end() {
    let h = Harness::new().await;
    let reader = Some(h.reader.as_str());
    let ok = json!({"to": "ada@example.com", "team": {"name": "core"}, "seats": 2});
    h.expect(reader, "invite", ok, "ok").await;
    let r = h
        .expect(
            reader,
            "invite",
            json!({"to": "not-an-address", "team": {"name": ""}, "seats": 9}),
            "invalid_input",
        )
        .await;
    assert_eq!(
        text(&r),
        "Error: Invalid input: `seats`: must be between 1 and 5; `team.name`: length must be \
         between 1 and 16; `to`: must be an email address"
    );
    assert!(!text(&r).contains("not-an-address"));
    let r = h
        .expect(
            reader,
            "echo",
            json!({"text": "x", "times": 0}),
            "invalid_input",
        )
        .await;
    assert_eq!(
        text(&r),
        "Error: Invalid input: `times`: must be between 1 and 3"
    );
    let r = h
        .expect(reader, "echo", json!({"text": ""}), "invalid_input")
        .await;
    assert_eq!(
        text(&r),
        "Error: Invalid input: `text`: length must be between 1 and 100"
    );
    assert_eq!(h.ran("invite"), 1);
    assert_eq!(h.ran("echo"), 0);
}
