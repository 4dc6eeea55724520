//! A tool body's cancellation token (`Ctx::cancellation`) reaches whatever the body started:
//! it is cancelled when the call times out and when the client cancels the request (a real
//! rmcp client on an in-memory duplex), and it is the request's own token (`ctx.request().ct`
//! says the same).

mod common;

use std::time::Duration;

use common::{call, code, connect, text};
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

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("reported within 5 s")
        .expect("the server is still up")
}

#[tokio::test]
async fn timeouts_and_client_cancellations_reach_what_the_body_started() {
    let keys = ApiKeyStore::new(Environment::Test);
    let token = keys
        .generate("rae", &["reader".to_owned()], Environment::Test, None)
        .unwrap()
        .token;
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
