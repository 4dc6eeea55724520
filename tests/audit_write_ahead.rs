//! Write-ahead audit at the server: a mutating tool's `attempt` record is stored before its
//! body runs (the body itself finds it in the sink), a call whose attempt cannot be stored is
//! refused and its body never runs, and a failure inside a tool raises an `internal` alert.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{CollectAlerts, code};
use mcp_secure::approval::ApprovalInput;
use mcp_secure::audit::{AlertKind, AuditError, AuditEvent, AuditSink, MemorySink, Phase};
use mcp_secure::auth::{ApiKeyStore, Credential, CredentialSource, Environment};
use mcp_secure::rmcp::model::{CallToolResponse, CallToolResult, RequestMetaObject};
use mcp_secure::{Ctx, SecureServer, ToolError, roles, tool, tools};
use serde_json::{Value, json};

roles! {
    "clerk",
    "admin": *,
}

/// What the tool bodies share with the test.
struct Ledger {
    sink: MemorySink,
    /// Body runs of `stamp`.
    ran: AtomicUsize,
    /// What `stamp` saw in the audit sink when its body started: (phase, outcome) of each record.
    seen: Mutex<Vec<(Phase, String)>>,
}

/// Stamps a document.
#[tool(kind = "write", role = "clerk")]
async fn stamp(
    ctx: Ctx<Ledger>,
    /// The document.
    #[validate(length(min = 1, max = 32))]
    doc: String,
) -> Result<String, ToolError> {
    ctx.ran.fetch_add(1, Ordering::SeqCst);
    let seen = ctx
        .sink
        .events()
        .into_iter()
        .map(|e| (e.phase, e.outcome))
        .collect();
    *ctx.seen.lock().unwrap() = seen;
    Ok(format!("stamped {doc}"))
}

/// Fails inside the server.
#[tool(kind = "read", role = "clerk")]
async fn broken(_ctx: Ctx<Ledger>) -> Result<String, ToolError> {
    panic!("a bug in the tool");
}

/// A sink that stores outcome records but cannot store attempts (or stores everything).
#[derive(Clone)]
struct Sink {
    memory: MemorySink,
    refuse_attempts: bool,
}

impl AuditSink for Sink {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        if self.refuse_attempts && event.phase == Phase::Attempt {
            return Err(AuditError("disk full".into()));
        }
        self.memory.record(event)
    }
}

struct Fixture {
    server: SecureServer<Ledger>,
    clerk: Credential,
    alerts: CollectAlerts,
}

fn fixture(refuse_attempts: bool) -> Fixture {
    let store = ApiKeyStore::new(Environment::Test);
    let token = store
        .generate("cleo", &["clerk".to_string()], Environment::Test, None)
        .unwrap()
        .token;
    let memory = MemorySink::new();
    let alerts = CollectAlerts::default();
    let server = SecureServer::builder(Ledger {
        sink: memory.clone(),
        ran: AtomicUsize::new(0),
        seen: Mutex::new(Vec::new()),
    })
    .name("write-ahead", "1.0.0")
    .roles(ROLES)
    .tools(tools![stamp, broken])
    .authenticator(store)
    .audit(Sink {
        memory,
        refuse_attempts,
    })
    .alerter(alerts.clone())
    .build()
    .unwrap();
    Fixture {
        server,
        clerk: Credential::new(token, CredentialSource::RequestMeta),
        alerts,
    }
}

/// The two phases of an explicit approval: the first call's token, then the call with it.
async fn approved_stamp(f: &Fixture) -> CallToolResult {
    let args = json!({"doc": "d-1"}).as_object().cloned();
    let first = f
        .server
        .call("stamp", args.clone(), Some(f.clerk.clone()), None)
        .await;
    assert_eq!(code(&first), "approval_required");
    let token = first.structured_content.unwrap()["error"]["approval"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut meta = RequestMetaObject::default();
    meta.0.insert(
        mcp_secure::approval::META_APPROVAL_TOKEN.into(),
        Value::from(token),
    );
    match f
        .server
        .respond(
            "stamp",
            args,
            Some(f.clerk.clone()),
            None,
            ApprovalInput::from_meta([&meta]),
        )
        .await
    {
        CallToolResponse::Complete(r) => r,
        _ => panic!("an explicit approval never asks for input"),
    }
}

#[tokio::test]
async fn the_attempt_is_on_record_before_the_body_runs() {
    let f = fixture(false);
    let r = approved_stamp(&f).await;
    assert_eq!(code(&r), "ok");
    let state = f.server.state();
    assert_eq!(state.ran.load(Ordering::SeqCst), 1);
    // When the body started, the sink held the first call's outcome and this call's attempt,
    // and not yet this call's outcome.
    assert_eq!(
        *state.seen.lock().unwrap(),
        [
            (Phase::Outcome, "approval_required".to_owned()),
            (Phase::Attempt, "attempt".to_owned()),
        ]
    );
    let events = state.sink.events();
    let phases: Vec<(Phase, &str)> = events
        .iter()
        .map(|e| (e.phase, e.outcome.as_str()))
        .collect();
    assert_eq!(
        phases,
        [
            (Phase::Outcome, "approval_required"),
            (Phase::Attempt, "attempt"),
            (Phase::Outcome, "ok"),
        ]
    );
    assert_eq!(
        events[1].id, events[2].id,
        "attempt and outcome share the call id"
    );
}

#[tokio::test]
async fn a_call_whose_attempt_cannot_be_stored_never_runs() {
    let f = fixture(true);
    let r = approved_stamp(&f).await;
    assert_eq!(code(&r), "internal");
    assert!(
        r.content[0]
            .as_text()
            .unwrap()
            .text
            .contains("could not be recorded"),
        "{r:?}"
    );
    let state = f.server.state();
    assert_eq!(state.ran.load(Ordering::SeqCst), 0, "the body never ran");
    assert!(
        f.alerts
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|a| a.kind == AlertKind::AuditFailure)
    );
}

#[tokio::test]
async fn a_failure_inside_a_tool_raises_an_internal_alert() {
    let f = fixture(false);
    let r = f
        .server
        .call(
            "broken",
            Some(Default::default()),
            Some(f.clerk.clone()),
            None,
        )
        .await;
    assert_eq!(code(&r), "internal");
    let alerts = f.alerts.0.lock().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].kind, AlertKind::Internal);
    assert!(!format!("{:?}", alerts[0]).contains("a bug in the tool"));
}
