//! A tool body's cancellation token (`Ctx::cancellation`) reaches whatever the body started:
//! it is cancelled when the call times out and when the client cancels the request (a real
//! rmcp client on an in-memory duplex), and it is the request's own token (`ctx.request().ct`
//! says the same). A body that takes no `Ctx` is stopped by the same token: its future is
//! dropped.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{call, code, connect, text};
use mcp_secure::audit::MemorySink;
use mcp_secure::auth::{ApiKeyStore, Environment};
use mcp_secure::{Ctx, SecureServer, ToolError, roles, tool, tools};
use serde_json::json;
use tokio::sync::mpsc;

roles! { "reader" }

/// What a body and the task it started report.
#[derive(Debug, PartialEq)]
enum Seen {
    /// The body is running.
    Started(&'static str),
    /// The body's task saw its token cancelled; `request_too`: the request's token was too.
    Cancelled {
        tool: &'static str,
        request_too: bool,
    },
}

struct Watch {
    seen: mpsc::UnboundedSender<Seen>,
}

/// Starts a task that waits for its cancellation, then never finishes (times out).
#[tool(kind = "read", role = "reader", timeout = "100ms")]
async fn stalls(ctx: Ctx<Watch>) -> Result<String, ToolError> {
    watch(&ctx, "stalls");
    std::future::pending().await
}

/// Starts a task that waits for its cancellation, then never finishes (no timeout).
#[tool(kind = "read", role = "reader")]
async fn waits(ctx: Ctx<Watch>) -> Result<String, ToolError> {
    watch(&ctx, "waits");
    std::future::pending().await
}

fn watch(ctx: &Ctx<Watch>, tool: &'static str) {
    let token = ctx.cancellation().clone();
    let request = ctx.request().map(|r| r.ct.clone());
    let seen = ctx.seen.clone();
    let _ = seen.send(Seen::Started(tool));
    tokio::spawn(async move {
        token.cancelled().await;
        let request_too = request.is_some_and(|ct| ct.is_cancelled());
        let _ = seen.send(Seen::Cancelled { tool, request_too });
    });
}

/// The ctx-less bodies whose futures were dropped (a body without a `Ctx` has no token to
/// watch: it is stopped by having its future dropped).
static DROPPED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Notes its body's name in [`DROPPED`] when the body's future is dropped.
struct OnDrop(&'static str);

impl Drop for OnDrop {
    fn drop(&mut self) {
        DROPPED.lock().unwrap().push(self.0);
    }
}

/// Takes no `Ctx` (the server builds none for it); never finishes (times out).
#[tool(kind = "read", role = "reader", timeout = "100ms")]
async fn stalls_alone() -> Result<String, ToolError> {
    let _dropped = OnDrop("stalls_alone");
    std::future::pending().await
}

/// Takes no `Ctx`; never finishes (no timeout).
#[tool(kind = "read", role = "reader")]
async fn waits_alone() -> Result<String, ToolError> {
    let _dropped = OnDrop("waits_alone");
    std::future::pending().await
}

/// Waits up to 5 s for `tool`'s body to be dropped.
async fn dropped(tool: &'static str) {
    let seen = async {
        while !DROPPED.lock().unwrap().contains(&tool) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), seen)
        .await
        .unwrap_or_else(|_| panic!("`{tool}`'s body was not stopped within 5 s"));
}

/// A key store with one `reader` key, and that key's token.
fn reader_key() -> (ApiKeyStore, String) {
    let keys = ApiKeyStore::new(Environment::Test);
    let token = keys
        .generate("rae", &["reader".to_owned()], Environment::Test, None)
        .unwrap()
        .token;
    (keys, token)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("reported within 5 s")
        .expect("the server is still up")
}

#[tokio::test]
async fn timeouts_and_client_cancellations_reach_what_the_body_started() {
    let (keys, token) = reader_key();
    let (seen, mut rx) = mpsc::unbounded_channel();
    let server = SecureServer::builder(Watch { seen })
        .name("cancellation-test", "1.0.0")
        .roles(ROLES)
        .tools(tools![stalls, waits])
        .authenticator(keys)
        .build()
        .unwrap();
    let client = connect(server).await;

    // A timeout: the call is answered `timeout`, and the body's task learns of it.
    let r = call(&client, Some(&token), "stalls", json!({})).await;
    assert_eq!(code(&r), "timeout", "{}", text(&r));
    assert_eq!(next(&mut rx).await, Seen::Started("stalls"));
    assert_eq!(
        next(&mut rx).await,
        Seen::Cancelled {
            tool: "stalls",
            request_too: true
        }
    );

    // The client cancels (dropping its call sends `notifications/cancelled`).
    {
        let pending = call(&client, Some(&token), "waits", json!({}));
        tokio::pin!(pending);
        tokio::select! {
            _ = &mut pending => panic!("`waits` never finishes"),
            started = next(&mut rx) => assert_eq!(started, Seen::Started("waits")),
        }
    }
    assert_eq!(
        next(&mut rx).await,
        Seen::Cancelled {
            tool: "waits",
            request_too: true
        }
    );
}

/// A body that takes no `Ctx` runs under the request's own token too: the timeout and the
/// client's cancellation stop it (its future is dropped), and every call has its record.
#[tokio::test]
async fn timeouts_and_client_cancellations_stop_a_body_without_ctx() {
    let (keys, token) = reader_key();
    let (seen, _rx) = mpsc::unbounded_channel();
    let audit = MemorySink::new();
    let server = SecureServer::builder(Watch { seen })
        .name("cancellation-test", "1.0.0")
        .roles(ROLES)
        .tools(tools![stalls_alone, waits_alone])
        .authenticator(keys)
        .audit(Arc::new(audit.clone()))
        .build()
        .unwrap();
    let client = connect(server).await;

    let r = call(&client, Some(&token), "stalls_alone", json!({})).await;
    assert_eq!(code(&r), "timeout", "{}", text(&r));
    dropped("stalls_alone").await;

    // The client cancels (dropping its call sends `notifications/cancelled`): only the
    // request's own token carries that to the server.
    {
        let pending = call(&client, Some(&token), "waits_alone", json!({}));
        tokio::pin!(pending);
        let started = tokio::time::timeout(Duration::from_millis(300), &mut pending).await;
        assert!(started.is_err(), "`waits_alone` never finishes");
    }
    dropped("waits_alone").await;
    let outcomes = async {
        loop {
            let events = audit.events();
            if events.len() == 2 {
                break events;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let events = tokio::time::timeout(Duration::from_secs(5), outcomes)
        .await
        .expect("two records within 5 s");
    let outcomes: Vec<_> = events
        .iter()
        .map(|e| (e.tool.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [("stalls_alone", "timeout"), ("waits_alone", "cancelled")]
    );
}
