//! The server's audit behaviour end to end: alerts on refusal bursts reach a webhook once,
//! secrets never reach any sink, the SQLite sink answers queries, and the failure policy
//! refuses calls (fail closed) or runs them and alerts (fail open) while the sink is broken;
//! the spooled JSON-lines file keeps one record per call through rmcp and fails closed too.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::{CollectAlerts, code};
use mcp_secure::audit::{
    AlertKind, AlertPolicy, AuditError, AuditEvent, AuditLog, AuditLogConfig, AuditQuery,
    AuditSink, FailurePolicy, MemorySink, Phase, SpooledJsonLinesSink, SqliteSink, WebhookAlerter,
    verify_log,
};
use mcp_secure::auth::{ApiKeyStore, Credential, CredentialSource, Environment};
use mcp_secure::rmcp::model::CallToolResult;
use mcp_secure::{Json, Secret, SecureServer, ServerBuilder, ToolError, roles, tool, tools};
use serde_json::{Value, json};

roles! {
    "read-only",
    "admin": *,
}

const CANARY: &str = "canary-5f0c1e-do-not-log";

#[derive(serde::Serialize, schemars::JsonSchema)]
struct Account {
    user: String,
    pin: Secret<String>,
    history: String,
}

/// Opens an account with a PIN; returns it (the PIN is a secret field) and a long history.
#[tool(kind = "read", role = "read-only")]
async fn open_account(
    /// The user.
    #[validate(length(min = 1, max = 32))]
    user: String,
    /// The PIN (also accepted as `code`: a serde alias, which the schema does not show).
    #[serde(alias = "code")]
    #[validate(length(min = 1, max = 64))]
    pin: Secret<String>,
) -> Result<Json<Account>, ToolError> {
    Ok(Json(Account {
        history: "x".repeat(5_000),
        pin,
        user,
    }))
}

/// Says hello.
#[tool(kind = "read", role = "read-only")]
async fn hello() -> Result<String, ToolError> {
    Ok("hello".into())
}

/// Admin only.
#[tool(kind = "read", role = "admin")]
async fn secrets_vault() -> Result<String, ToolError> {
    Ok("vault".into())
}

struct Keys {
    store: ApiKeyStore,
    reader: Credential,
}

fn keys() -> Keys {
    let store = ApiKeyStore::new(Environment::Test);
    let token = store
        .generate("alice", &["read-only".to_string()], Environment::Test, None)
        .unwrap()
        .token;
    Keys {
        store,
        reader: Credential::new(token, CredentialSource::RequestMeta),
    }
}

fn builder(keys: &Keys) -> ServerBuilder<()> {
    SecureServer::builder(())
        .name("audit-test", "1.0.0")
        .roles(ROLES)
        .tools(tools![open_account, hello, secrets_vault])
        .authenticator(keys.store.clone())
}

/// The server, telling its alerts to the collector returned with it.
fn alerting(builder: ServerBuilder<()>) -> (SecureServer<()>, CollectAlerts) {
    let alerts = CollectAlerts::default();
    let server = builder.alerter(alerts.clone()).build().unwrap();
    (server, alerts)
}

/// Calls `hello` as the reader; the answer's code.
async fn hello_code(server: &SecureServer<()>, keys: &Keys) -> String {
    code(&call(server, &keys.reader, "hello", json!({})).await)
}

async fn call(
    server: &SecureServer<()>,
    who: &Credential,
    tool: &str,
    args: Value,
) -> CallToolResult {
    server
        .call(tool, args.as_object().cloned(), Some(who.clone()), None)
        .await
}

/// A webhook receiver on 127.0.0.1: answers 200 to each POST and hands its body over.
fn receiver() -> (String, Receiver<(Instant, Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            let body = loop {
                let Ok(n) = stream.read(&mut buf) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        assert!(text.starts_with("POST /alerts HTTP/1.1\r\n"));
                        break serde_json::from_slice::<Value>(&request[end + 4..end + 4 + length])
                            .ok();
                    }
                }
            };
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if let Some(body) = body
                && tx.send((Instant::now(), body)).is_err()
            {
                return;
            }
        }
    });
    (url, rx)
}

#[tokio::test]
async fn a_burst_of_refusals_alerts_the_webhook_exactly_once_within_a_second() {
    let keys = keys();
    let (url, alerts) = receiver();
    let server = builder(&keys)
        .alerter(WebhookAlerter::new(&url).unwrap())
        .alert_policy(AlertPolicy::refusals(5, Duration::from_secs(60)))
        .build()
        .unwrap();
    let burst = Instant::now();
    for _ in 0..50 {
        assert_eq!(
            code(&call(&server, &keys.reader, "secrets_vault", json!({})).await),
            "forbidden"
        );
    }
    let (at, alert) = alerts
        .recv_timeout(Duration::from_secs(1))
        .expect("an alert within a second");
    assert!(at.duration_since(burst) < Duration::from_secs(1));
    assert_eq!(alert["kind"], "refusals");
    assert_eq!(alert["principal"], "alice");
    assert_eq!(alert["tool"], "secrets_vault");
    assert_eq!(alert["count"], 6);
    // The rest of the burst is the same incident: no second alert.
    assert!(
        alerts.recv_timeout(Duration::from_millis(500)).is_err(),
        "exactly one alert per window"
    );
}

#[tokio::test]
async fn no_secret_value_reaches_any_sink() {
    let keys = keys();
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path().join("audit.jsonl"), AuditLogConfig::default()).unwrap();
    let sqlite = Arc::new(SqliteSink::open(dir.path().join("audit.db")).unwrap());
    let memory = MemorySink::new();
    let server = builder(&keys)
        .audit(log.clone())
        .audit(sqlite.clone())
        .audit(memory.clone())
        .audit(mcp_secure::audit::TracingSink)
        .audit_value_limit(256)
        .audit_digest_key([7; 32])
        .build()
        .unwrap();
    let ok = call(
        &server,
        &keys.reader,
        "open_account",
        json!({"user": "alice", "pin": CANARY}),
    )
    .await;
    assert_eq!(code(&ok), "ok");
    // Refused calls carry the secret too: a bad field, an unknown field, a forbidden caller.
    let bad = call(
        &server,
        &keys.reader,
        "open_account",
        json!({"user": "", "pin": CANARY}),
    )
    .await;
    assert_eq!(code(&bad), "invalid_input");
    let extra = call(
        &server,
        &keys.reader,
        "open_account",
        json!({"user": "a", "pin": CANARY, "x": 1}),
    )
    .await;
    assert_eq!(code(&extra), "invalid_input");
    // Refused before authentication: no caller at all.
    let anonymous = server
        .call(
            "open_account",
            json!({"user": "a", "pin": CANARY}).as_object().cloned(),
            None,
            None,
        )
        .await;
    assert_eq!(code(&anonymous), "unauthorized");
    // Refused before anything reads the arguments: over the size cap. The record keeps no
    // input at all (not even a truncated head, which would hold the secret's neighbours).
    let huge = call(
        &server,
        &keys.reader,
        "open_account",
        json!({"user": "x".repeat(100_000), "pin": CANARY}),
    )
    .await;
    assert_eq!(code(&huge), "too_large");
    // The secret under the field's serde alias: it fills the field, but the schema the
    // redactor is built from does not name it.
    let aliased = call(
        &server,
        &keys.reader,
        "open_account",
        json!({"user": "alice", "code": CANARY}),
    )
    .await;
    assert_eq!(code(&aliased), "ok");
    drop(server);
    log.close().unwrap();

    let events = memory.events();
    assert_eq!(events.len(), 6);
    assert_eq!(events[5].input["code"], "[REDACTED]");
    assert_eq!(events[5].input["user"], "alice");
    assert_eq!(events[3].outcome, "unauthorized");
    assert_eq!(events[3].input["pin"], "[REDACTED]");
    assert_eq!(events[4].outcome, "too_large");
    assert!(events[4].input.is_null(), "{}", events[4].input);
    let first = &events[0];
    assert_eq!(first.input["pin"], "[REDACTED]");
    let digest = first.digests["input.pin"].clone();
    assert!(digest.starts_with("hmac-sha256:"), "{digest}");
    assert!(
        events[..4].iter().all(|e| e.digests["input.pin"] == digest),
        "the same value has the same digest"
    );
    let output = first.output.as_ref().unwrap();
    assert_eq!(
        output["truncated"], true,
        "outputs over the limit are truncated: {output}"
    );
    assert_eq!(
        output["sha256"].as_str().unwrap().len(),
        64,
        "and recorded with their digest"
    );

    let mut stored = serde_json::to_vec(&events).unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        stored.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let found = stored.windows(CANARY.len()).any(|w| w == CANARY.as_bytes());
    assert!(!found, "the secret reached a sink");
    assert!(
        verify_log(dir.path().join("audit.jsonl"), None)
            .unwrap()
            .is_intact()
    );
    assert_eq!(
        sqlite
            .query(&AuditQuery::new().tool("open_account"))
            .unwrap()
            .len(),
        6
    );
}

#[tokio::test]
async fn the_sqlite_sink_answers_queries_by_user_tool_and_outcome() {
    let keys = keys();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(SqliteSink::open(dir.path().join("audit.db")).unwrap());
    // The records hold every call's input and output: the database is its owner's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("audit.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let server = builder(&keys).audit(sqlite.clone()).build().unwrap();
    for _ in 0..3 {
        call(&server, &keys.reader, "secrets_vault", json!({})).await;
    }
    call(&server, &keys.reader, "hello", json!({})).await;
    let forbidden = sqlite
        .query(&AuditQuery::new().user("alice").outcome("forbidden"))
        .unwrap();
    assert_eq!(forbidden.len(), 3);
    assert!(
        forbidden
            .iter()
            .all(|e| e.tool == "secrets_vault" && e.phase == Phase::Outcome && !e.success)
    );
    let hello = sqlite.query(&AuditQuery::new().tool("hello")).unwrap();
    assert_eq!((hello.len(), hello[0].outcome.as_str()), (1, "ok"));
    assert_eq!(
        sqlite.query(&AuditQuery::new().user("bob")).unwrap().len(),
        0
    );
    assert_eq!(sqlite.query(&AuditQuery::new().limit(2)).unwrap().len(), 2);
}

/// A sink that fails while `broken` is set.
#[derive(Clone, Default)]
struct Flaky {
    broken: Arc<AtomicBool>,
    memory: MemorySink,
}

impl AuditSink for Flaky {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(AuditError("disk full".into()));
        }
        self.memory.record(event)
    }
}

#[tokio::test]
async fn failing_closed_refuses_calls_while_the_sink_is_broken() {
    let keys = keys();
    let sink = Flaky::default();
    let (server, alerts) = alerting(builder(&keys).audit(sink.clone()));
    assert_eq!(hello_code(&server, &keys).await, "ok");
    sink.broken.store(true, Ordering::SeqCst);
    // This call's outcome record fails: the server learns the sink is broken, and the call's
    // result is withheld (no result leaves without its record).
    let unrecorded = call(&server, &keys.reader, "hello", json!({})).await;
    assert_eq!(code(&unrecorded), "internal");
    let shown = unrecorded.content[0].as_text().unwrap().text.clone();
    assert!(shown.contains("its result is withheld"), "{shown}");
    assert!(!shown.contains("hello"), "{shown}");
    let refused = call(&server, &keys.reader, "hello", json!({})).await;
    assert_eq!(code(&refused), "internal");
    assert!(
        refused.content[0]
            .as_text()
            .unwrap()
            .text
            .contains("audit log is unavailable")
    );
    assert!(alerts.kinds().contains(&AlertKind::AuditFailure));
    sink.broken.store(false, Ordering::SeqCst);
    // The next refusal's record is stored: that is the sign the sink is back.
    assert_eq!(hello_code(&server, &keys).await, "internal");
    assert_eq!(hello_code(&server, &keys).await, "ok");
    let outcomes: Vec<String> = sink
        .memory
        .events()
        .iter()
        .map(|e| e.outcome.clone())
        .collect();
    assert_eq!(outcomes, ["ok", "internal", "ok"]);
}

#[tokio::test]
async fn failing_open_runs_calls_and_alerts() {
    let keys = keys();
    let sink = Flaky::default();
    let (server, alerts) = alerting(
        builder(&keys)
            .audit(sink.clone())
            .audit_failure_policy(FailurePolicy::FailOpen),
    );
    sink.broken.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(hello_code(&server, &keys).await, "ok");
    }
    assert_eq!(
        alerts.kinds(),
        [AlertKind::AuditFailure; 3],
        "every failure alerts"
    );
}

/// The log's records (one JSON object per line, every line whole).
fn records_in(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a cut line: {text:?}"
    );
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spooled_file_has_one_record_per_call_through_rmcp() {
    let keys = keys();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = Arc::new(SpooledJsonLinesSink::open(&path).unwrap());
    let server = builder(&keys).audit(sink.clone()).build().unwrap();
    let client = Arc::new(common::connect(server).await);
    let token = keys.reader.expose().to_owned();
    let calls: Vec<_> = (0..32)
        .map(|i| {
            let (client, token) = (client.clone(), token.clone());
            tokio::spawn(async move {
                let tool = if i % 8 == 7 { "secrets_vault" } else { "hello" };
                code(&common::call(&client, Some(&token), tool, json!({})).await)
            })
        })
        .collect();
    let mut answered = Vec::new();
    for call in calls {
        answered.push(call.await.unwrap());
    }
    assert_eq!(answered.iter().filter(|c| *c == "forbidden").count(), 4);
    sink.flush().unwrap();
    let records = records_in(&path);
    // One outcome record per answered call, each with the answer its client saw.
    assert_eq!(records.len(), 32);
    let mut outcomes: Vec<_> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect();
    outcomes.sort();
    answered.sort();
    assert_eq!(outcomes, answered);
    assert!(records.iter().all(|r| r["user"] == "alice"));
    drop(client);
    sink.close().unwrap();
    assert!(!sink.spool_path().exists());
    assert_eq!(records_in(&path).len(), 32);
}

#[tokio::test]
async fn the_spooled_file_fails_closed_while_its_log_fails() {
    let keys = keys();
    let dir = tempfile::tempdir().unwrap();
    // A FIFO for the log: no reader makes every append fail (`EPIPE`), a reader makes it work.
    let path = dir.path().join("audit.fifo");
    let made = std::process::Command::new("mkfifo").arg(&path).status();
    assert!(made.expect("mkfifo runs").success(), "mkfifo failed");
    let open_reader = || {
        let path = path.clone();
        std::thread::spawn(move || std::fs::File::open(path).unwrap())
    };
    let reader = open_reader();
    let sink = Arc::new(SpooledJsonLinesSink::open(&path).unwrap());
    drop(reader.join().unwrap());
    let (server, alerts) = alerting(builder(&keys).audit(sink.clone()));
    // Stored in the spool: the log's failure is not known yet.
    assert_eq!(hello_code(&server, &keys).await, "ok");
    assert!(sink.flush().unwrap_err().0.contains("Broken pipe"));
    // This call's record tries the log and is refused: the server learns the sink fails.
    call(&server, &keys.reader, "hello", json!({})).await;
    let refused = call(&server, &keys.reader, "hello", json!({})).await;
    assert_eq!(code(&refused), "internal");
    assert!(alerts.kinds().contains(&AlertKind::AuditFailure));
    // A reader again: the record waiting in the spool comes first, then the refusal's record
    // (the sign the sink is back), then calls run again.
    let reader = open_reader().join().unwrap();
    assert_eq!(hello_code(&server, &keys).await, "internal");
    assert_eq!(hello_code(&server, &keys).await, "ok");
    sink.flush().unwrap();
    let mut text = String::new();
    let mut reader = std::io::BufReader::new(reader);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        text.clear();
        std::io::BufRead::read_line(&mut reader, &mut text).unwrap();
        let record: Value = serde_json::from_str(&text).unwrap();
        outcomes.push(record["outcome"].as_str().unwrap().to_owned());
    }
    assert_eq!(outcomes, ["ok", "internal", "ok"]);
}

/// Text with everything JSON escapes, and more.
const TRICKY: &str = "a \"quoted\" line\\\nand\ttabs \u{1} é 😀 }";

/// Echoes text back (the output is the result's content).
#[tool(kind = "read", role = "read-only")]
async fn echo(
    /// The text.
    #[validate(length(max = 20000))]
    text: String,
) -> Result<String, ToolError> {
    Ok(text)
}

/// A result of several kinds of block, one text block with annotations.
#[tool(kind = "read", role = "read-only")]
async fn mixed() -> Result<CallToolResult, ToolError> {
    use mcp_secure::rmcp::model::{Annotations, ContentBlock, Role, TextContent};
    Ok(CallToolResult::success(vec![
        ContentBlock::text(TRICKY),
        ContentBlock::Text(
            TextContent::new("noted").with_annotations(
                Annotations::default()
                    .with_audience(vec![Role::User])
                    .with_priority(0.3),
            ),
        ),
        ContentBlock::image("aGk=", "image/png"),
    ]))
}

/// Structured output (the record shows `structuredContent`).
#[tool(kind = "read", role = "read-only")]
async fn structured() -> Result<Json<Value>, ToolError> {
    Ok(Json(json!({"z": TRICKY, "a": [1, 2.5, null]})))
}

/// Each outcome record shows the tool's output as the JSON of its value: the result's content
/// (written straight from the result, not through a `Value`) or its structured content, cut
/// to the value limit; the same in the chained file (as bytes) and in a sink that keeps
/// owned records.
#[tokio::test]
async fn outputs_are_recorded_as_the_json_of_their_values() {
    let keys = keys();
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path().join("audit.jsonl"), AuditLogConfig::default()).unwrap();
    let memory = Arc::new(MemorySink::new());
    let sinks: Vec<Arc<dyn AuditSink>> = vec![Arc::new(log.clone()), memory.clone()];
    let server = SecureServer::builder(())
        .roles(ROLES)
        .tools(tools![echo, mixed, structured])
        .authenticator(keys.store.clone())
        .audit(sinks)
        .audit_value_limit(1000)
        .build()
        .unwrap();
    let long = "é".repeat(3000);
    let mut results = Vec::new();
    for (tool, args) in [
        ("echo", json!({"text": TRICKY})),
        ("mixed", json!({})),
        ("structured", json!({})),
        ("echo", json!({"text": long})),
    ] {
        let r = call(&server, &keys.reader, tool, args).await;
        assert_ne!(r.is_error, Some(true), "{tool}: {r:?}");
        results.push(r);
    }
    drop(server);
    log.close().unwrap();

    let expected: Vec<Value> = results
        .iter()
        .map(|r| {
            r.structured_content
                .clone()
                .unwrap_or_else(|| json!(r.content))
        })
        .collect();
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("\"phase\"")).collect();
    let events = memory.events();
    assert_eq!((lines.len(), events.len()), (4, 4));
    for (i, want) in expected.iter().enumerate().take(3) {
        // The bytes: what serde_json writes for the value (keys in order).
        let written = format!(",\"output\":{},\"outcome\":\"ok\"", want);
        assert!(lines[i].contains(&written), "{}\n{written}", lines[i]);
        assert_eq!(events[i].output.as_ref(), Some(want));
    }
    assert!(lines[0].contains(
        r#""output":[{"text":"a \"quoted\" line\\\nand\ttabs \u0001 é 😀 }","type":"text"}]"#
    ));
    // Over the limit: the size, digest and head are those of the value's JSON text.
    let whole = expected[3].to_string();
    let cut = events[3].output.as_ref().unwrap();
    assert_eq!(cut["truncated"], true);
    assert_eq!(cut["bytes"], whole.len());
    assert_eq!(
        cut["sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(whole.as_bytes()))
    );
    let head = cut["head"].as_str().unwrap();
    assert!(whole.starts_with(head) && head.len() <= 1000 && head.len() > 990);
    let line: Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!(&line["output"], cut);
    assert!(
        verify_log(dir.path().join("audit.jsonl"), None)
            .unwrap()
            .is_intact()
    );
}
