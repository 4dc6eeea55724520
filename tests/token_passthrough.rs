//! The caller's credential stops at authentication: a tool body reading its request context
//! (over a real rmcp client on an in-memory duplex) finds no `_meta.authToken`, while the rest of
//! `_meta` is still there.

mod common;

use common::{call, code, connect, text};
use mcp_secure::auth::{ApiKeyStore, Environment};
use mcp_secure::{Ctx, SecureServer, ToolError, roles, tool, tools};
use rmcp::model::{CallToolRequestParams, RequestMetaObject};
use serde_json::{Value, json};

roles! { "reader" }

/// Lists the `_meta` keys the body can see.
#[tool(kind = "read", role = "reader")]
async fn meta_keys(ctx: Ctx<()>) -> Result<String, ToolError> {
    let mut keys: Vec<String> = ctx
        .request()
        .map(|r| r.meta.0.0.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    Ok(keys.join(","))
}

#[tokio::test]
async fn tool_bodies_never_see_the_callers_token() {
    let keys = ApiKeyStore::new(Environment::Test);
    let token = keys
        .generate("rae", &["reader".to_owned()], Environment::Test, None)
        .unwrap()
        .token;
    let server = SecureServer::builder(())
        .name("passthrough-test", "1.0.0")
        .roles(ROLES)
        .tools(tools![meta_keys])
        .authenticator(keys)
        .build()
        .unwrap();
    let client = connect(server).await;

    let r = call(&client, Some(&token), "meta_keys", json!({})).await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    assert!(!text(&r).contains("authToken"), "{}", text(&r));

    // Other `_meta` keys reach the body: only the credential is taken out.
    let mut params = CallToolRequestParams::new("meta_keys");
    let mut meta = RequestMetaObject::default();
    meta.0
        .insert("authToken".into(), Value::from(token.as_str()));
    meta.0.insert("trace".into(), Value::from("t-1"));
    params.meta = Some(meta);
    let r = client.call_tool(params).await.unwrap();
    assert_eq!(code(&r), "ok", "{}", text(&r));
    assert!(text(&r).split(',').any(|k| k == "trace"), "{}", text(&r));
    assert!(!text(&r).contains("authToken"), "{}", text(&r));
}
