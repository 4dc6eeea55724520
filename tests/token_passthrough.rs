//! The caller's credential stops at authentication: a tool body reading its request context
//! (over a real rmcp client on an in-memory duplex) finds no `_meta.authToken`, while the rest of
//! `_meta` is still there, whether the call came through the server's own handler or through
//! an application's handler that calls the pipeline directly.

mod common;

use common::{call, code, connect, text};
use mcp_secure::auth::{ApiKeyStore, Credential, CredentialSource, Environment};
use mcp_secure::{Ctx, SecureServer, ToolError, roles, tool, tools};
use rmcp::model::{CallToolRequestParams, CallToolResponse, RequestMetaObject};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
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

/// A server with `meta_keys`, and a reader's token for it.
fn server() -> (SecureServer<()>, String) {
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
    (server, token)
}

/// Calls `meta_keys` with `token` in `_meta.authToken` next to another key, `trace`; checks
/// that the body saw `trace` and not the token.
async fn body_sees_trace_only(client: &common::Client, token: &str) {
    let mut params = CallToolRequestParams::new("meta_keys");
    let mut meta = RequestMetaObject::default();
    meta.0.insert("authToken".into(), Value::from(token));
    meta.0.insert("trace".into(), Value::from("t-1"));
    params.meta = Some(meta);
    let r = client.call_tool(params).await.unwrap();
    assert_eq!(code(&r), "ok", "{}", text(&r));
    assert!(text(&r).split(',').any(|k| k == "trace"), "{}", text(&r));
    assert!(!text(&r).contains("authToken"), "{}", text(&r));
}

#[tokio::test]
async fn tool_bodies_never_see_the_callers_token() {
    let (server, token) = server();
    let client = connect(server).await;

    let r = call(&client, Some(&token), "meta_keys", json!({})).await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    assert!(!text(&r).contains("authToken"), "{}", text(&r));

    // Other `_meta` keys reach the body: only the credential is taken out.
    body_sees_trace_only(&client, &token).await;
}

/// An application's own handler that runs the pipeline directly (`SecureServer::call`) with a
/// credential it resolved itself, and passes the request context on as it came, token and all.
struct Forwarding {
    server: SecureServer<()>,
    credential: Credential,
}

impl rmcp::ServerHandler for Forwarding {
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let result = self
            .server
            .call(
                &request.name,
                request.arguments,
                Some(self.credential.clone()),
                Some(context),
            )
            .await;
        Ok(result.into())
    }
}

#[tokio::test]
async fn a_direct_call_strips_the_token_its_request_still_carries() {
    let (server, token) = server();
    let client = connect(Forwarding {
        server,
        credential: Credential::new(token.as_str(), CredentialSource::Session),
    })
    .await;
    // The handler authenticates with its own credential and passes the request on as it is,
    // with a token of its own in `_meta`.
    body_sees_trace_only(&client, "mcs_test_stray_0").await;
}
