//! The run-time limits end to end, with a real rmcp client over an in-memory duplex: the size
//! cap tells a stranger nothing about which tools exist, waiting `retry_after_ms` is enough,
//! and a body's own error is under the output cap.

mod common;

use std::time::Duration;

use common::{call, code, connect, text};
use mcp_secure::audit::{MemorySink, Phase};
use mcp_secure::auth::{ApiKeyStore, Environment};
use mcp_secure::{Clock, SecureServer, ToolError, roles, tool, tools};
use serde_json::json;

roles! { "reader" }

/// Echo, with a small input cap.
#[tool(kind = "read", role = "reader", max_input = "64B")]
async fn small(
    /// What to echo.
    #[validate(length(max = 1000))]
    text: String,
) -> Result<String, ToolError> {
    Ok(text)
}

/// Three calls a second.
#[tool(kind = "read", role = "reader", rate = "3/sec")]
async fn thrice() -> Result<String, ToolError> {
    Ok("fine".into())
}

/// Fails with a long message of its own.
#[tool(kind = "read", role = "reader")]
async fn loud() -> Result<String, ToolError> {
    Err(ToolError::failed("e".repeat(5_000)))
}

struct Setup {
    client: common::Client,
    audit: MemorySink,
    token: String,
    clock: Clock,
}

async fn setup(max_output: usize) -> Setup {
    let keys = ApiKeyStore::new(Environment::Test);
    let token = keys
        .generate("rae", &["reader".to_owned()], Environment::Test, None)
        .unwrap()
        .token;
    let audit = MemorySink::new();
    let clock = Clock::manual();
    let server: SecureServer<()> = SecureServer::builder(())
        .name("limits", "1.0.0")
        .roles(ROLES)
        .tools(tools![small, thrice, loud])
        .authenticator(keys)
        .audit(audit.clone())
        .clock(clock.clone())
        .max_output(max_output)
        .build()
        .unwrap();
    let client = connect(server.with_transport("memory")).await;
    Setup {
        client,
        audit,
        token,
        clock,
    }
}

/// A stranger (no credential) must learn nothing about which tools exist: a call to an existing
/// tool and one to a made-up name, with the same arguments, answer alike.
#[tokio::test]
async fn strangers_cannot_probe_tool_names_through_the_size_cap() {
    let s = setup(1 << 20).await;
    let args = json!({"text": "x".repeat(100)});
    let known = call(&s.client, None, "small", args.clone()).await;
    let unknown = call(&s.client, None, "no_such_tool", args).await;
    assert_eq!(code(&unknown), "unauthorized", "{}", text(&unknown));
    assert_eq!(
        (code(&known), text(&known)),
        (code(&unknown), text(&unknown)),
        "an unauthenticated caller tells an existing tool (and its max_input) from a made-up one"
    );
    // The tool's own cap still holds for its callers, and is recorded.
    let r = call(
        &s.client,
        Some(&s.token),
        "small",
        json!({"text": "x".repeat(100)}),
    )
    .await;
    assert_eq!(code(&r), "too_large", "{}", text(&r));
    let r = call(&s.client, Some(&s.token), "small", json!({"text": "x"})).await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    let outcomes: Vec<String> = s
        .audit
        .events()
        .into_iter()
        .filter(|e| e.phase == Phase::Outcome)
        .map(|e| e.outcome)
        .collect();
    assert_eq!(
        outcomes,
        ["unauthorized", "unauthorized", "too_large", "ok"]
    );
}

/// A client that waits exactly `retry_after_ms` before retrying must be let through.
#[tokio::test]
async fn waiting_retry_after_ms_is_enough() {
    let s = setup(1 << 20).await;
    let t = Some(s.token.as_str());
    for _ in 0..3 {
        let r = call(&s.client, t, "thrice", json!({})).await;
        assert_eq!(code(&r), "ok");
    }
    let r = call(&s.client, t, "thrice", json!({})).await;
    assert_eq!(code(&r), "rate_limited");
    let retry = r.structured_content.as_ref().unwrap()["error"]["retry_after_ms"]
        .as_u64()
        .unwrap();
    s.clock.advance(Duration::from_millis(retry));
    let r = call(&s.client, t, "thrice", json!({})).await;
    assert_eq!(
        code(&r),
        "ok",
        "retried after retry_after_ms = {retry}: {}",
        text(&r)
    );
}

/// The output cap holds for what a body returns as its error too.
#[tokio::test]
async fn a_bodys_error_is_under_the_output_cap_too() {
    let s = setup(1_000).await;
    let r = call(&s.client, Some(&s.token), "loud", json!({})).await;
    let size = serde_json::to_vec(&r).unwrap().len();
    assert!(
        size <= 1_000,
        "a {size}-byte result left a server capped at 1000 bytes ({})",
        code(&r)
    );
    assert_eq!(code(&r), "too_large");
    let last = s.audit.events().pop().unwrap();
    assert!(
        last.error.as_deref().is_none_or(|e| e.len() < 1_000),
        "the record keeps the whole message"
    );
}
