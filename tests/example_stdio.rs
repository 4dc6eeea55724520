//! The customer-service example, driven over stdio by a real rmcp client in a child process:
//! the same pipeline as in-process, the database untouched by refused calls, and one audit
//! line per call in `audit.jsonl`.

mod common;

use std::path::Path;

use common::{Client, call, code, keygen, text};
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

async fn start(data: &Path, session_token: Option<&str>, env: &str) -> Client {
    let mut cmd = tokio::process::Command::new(common::example_bin("customer_service"));
    cmd.args(["serve", "--env", env, "--data"])
        .arg(data)
        .env_remove("MCP_SECURE_TOKEN");
    if let Some(t) = session_token {
        cmd.env("MCP_SECURE_TOKEN", t);
    }
    cmd.env("RUST_LOG", "warn");
    let transport = TokioChildProcess::new(cmd).expect("spawn the example");
    ().serve(transport).await.expect("initialize")
}

fn outcomes(data: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(data.join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("every audit line is JSON"))
        .filter(|v| v["phase"] == "outcome")
        .collect()
}

async fn customer_count(client: &Client, token: &str) -> u64 {
    let r = call(
        client,
        Some(token),
        "execute_query",
        json!({"query": "SELECT count(*) AS n FROM customers"}),
    )
    .await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    r.structured_content.unwrap()["rows"][0][0]
        .as_u64()
        .unwrap()
}

async fn order_status(client: &Client, token: &str, id: &str) -> String {
    let q = format!("SELECT status FROM orders WHERE id = '{id}'");
    let r = call(client, Some(token), "execute_query", json!({ "query": q })).await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    r.structured_content.unwrap()["rows"][0][0]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn example_over_stdio_enforces_the_whole_policy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let editor = keygen(data, "ed", "editor", "test");
    let reader = keygen(data, "rita", "read-only", "test");
    let admin = keygen(data, "ada", "admin", "test");
    let live = keygen(data, "lee", "admin", "live");

    // The session token (MCP_SECURE_TOKEN) is the editor's.
    let client = start(data, Some(&editor), "test").await;
    let info = client.peer_info().unwrap();
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("customer-service")
    );

    // tools/list: the editor sees everything but the admin tool; schemas carry the rules.
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "create_ticket",
            "delete_customer",
            "execute_query",
            "get_customer",
            "list_orders",
            "read_report",
            "search_products",
            "update_order"
        ]
    );
    let schema = |name: &str| {
        Value::Object((*tools.iter().find(|t| t.name == name).unwrap().input_schema).clone())
    };
    assert_eq!(
        schema("get_customer")["properties"]["customer_id"]["maxLength"],
        64
    );
    assert_eq!(
        schema("get_customer")["properties"]["customer_id"]["minLength"],
        1
    );
    assert_eq!(schema("list_orders")["properties"]["limit"]["maximum"], 100);
    assert_eq!(
        schema("create_ticket")["properties"]["body"]["maxLength"],
        5000
    );
    assert_eq!(
        schema("execute_query")["properties"]["query"]["maxLength"],
        1000
    );
    assert_eq!(schema("update_order")["additionalProperties"], false);

    let mut expected = Vec::new();
    let mut expect = async |token: Option<&str>, tool: &str, args: Value, want: &str| {
        let r = call(&client, token, tool, args).await;
        assert_eq!(code(&r), want, "{tool}: {}", text(&r));
        expected.push((tool.to_owned(), want.to_owned()));
        r
    };

    // Allowed calls.
    let r = expect(None, "get_customer", json!({"customer_id": "c-1001"}), "ok").await;
    assert_eq!(r.structured_content.unwrap()["name"], "Ada Lovelace");
    let r = expect(
        Some(&reader),
        "list_orders",
        json!({"customer_id": "c-1001", "limit": 1}),
        "ok",
    )
    .await;
    assert_eq!(
        r.structured_content.unwrap()["orders"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    expect(
        Some(&reader),
        "search_products",
        json!({"query": "keyboard"}),
        "ok",
    )
    .await;
    // A sandboxed tool: its body runs in a worker that sees only `DIR/reports/`.
    let r = expect(
        Some(&reader),
        "read_report",
        json!({"name": "weekly-summary"}),
        "ok",
    )
    .await;
    let report = r.structured_content.unwrap();
    assert!(
        report["text"]
            .as_str()
            .unwrap()
            .starts_with("Weekly summary"),
        "{report}"
    );
    expect(
        None,
        "read_report",
        json!({"name": "../customers"}),
        "invalid_input",
    )
    .await;
    expect(None, "read_report", json!({"name": "q4"}), "not_found").await;
    expect(
        None,
        "get_customer",
        json!({"customer_id": "c-9999"}),
        "not_found",
    )
    .await;

    // Refusals.
    expect(
        Some("mcs_test_0_0"),
        "get_customer",
        json!({"customer_id": "c-1001"}),
        "unauthorized",
    )
    .await;
    let r = expect(
        Some(&live),
        "get_customer",
        json!({"customer_id": "c-1001"}),
        "unauthorized",
    )
    .await;
    assert!(text(&r).contains("`live` key"), "{}", text(&r));
    expect(
        Some(&reader),
        "execute_query",
        json!({"query": "SELECT 1"}),
        "forbidden",
    )
    .await;
    expect(
        Some(&reader),
        "delete_customer",
        json!({"customer_id": "c-1001"}),
        "forbidden",
    )
    .await;
    expect(
        None,
        "rotate_api_key",
        json!({"key_id": "abc"}),
        "forbidden",
    )
    .await;
    expect(
        None,
        "get_customer",
        json!({"customer_id": ""}),
        "invalid_input",
    )
    .await;
    expect(
        None,
        "get_customer",
        json!({"customer_id": "c-1", "extra": 1}),
        "invalid_input",
    )
    .await;
    expect(
        None,
        "list_orders",
        json!({"customer_id": "c-1001", "limit": 101}),
        "invalid_input",
    )
    .await;
    let r = expect(
        None,
        "update_order",
        json!({"order_id": "o-5001", "status": "teleported"}),
        "invalid_input",
    )
    .await;
    assert!(
        !text(&r).contains("teleported") && text(&r).contains("expected one of"),
        "says what is expected, never echoes the value: {}",
        text(&r)
    );
    let r = expect(
        None,
        "execute_query",
        json!({"query": "SELECT 1; DELETE FROM customers"}),
        "invalid_input",
    )
    .await;
    assert!(
        !text(&r).contains("DELETE FROM customers"),
        "the query is not echoed: {}",
        text(&r)
    );
    expect(
        None,
        "get_customer",
        json!({"customer_id": "x".repeat(70 * 1024)}),
        "too_large",
    )
    .await;
    // Approval: write, delete and admin tools never run without it.
    expect(
        None,
        "update_order",
        json!({"order_id": "o-5003", "status": "shipped"}),
        "approval_required",
    )
    .await;
    expect(
        None,
        "create_ticket",
        json!({"subject": "s", "body": "b"}),
        "approval_required",
    )
    .await;
    expect(
        Some(&admin),
        "rotate_api_key",
        json!({"key_id": "abc"}),
        "approval_required",
    )
    .await;
    // Rate: delete_customer allows 5/min per principal; the 6th is refused before approval.
    for _ in 0..5 {
        expect(
            None,
            "delete_customer",
            json!({"customer_id": "c-1002"}),
            "approval_required",
        )
        .await;
    }
    let r = expect(
        None,
        "delete_customer",
        json!({"customer_id": "c-1002"}),
        "rate_limited",
    )
    .await;
    assert!(
        r.structured_content.unwrap()["error"]["retry_after_ms"]
            .as_u64()
            .unwrap()
            > 0
    );

    // Nothing refused ran: the database is as seeded.
    assert_eq!(customer_count(&client, &editor).await, 5);
    assert_eq!(order_status(&client, &editor, "o-5003").await, "pending");
    expected.extend([
        ("execute_query".to_owned(), "ok".to_owned()),
        ("execute_query".to_owned(), "ok".to_owned()),
    ]);

    client.cancel().await.unwrap();
    // The server exits when stdin closes; its audit log has one outcome line per call.
    let lines = outcomes(data);
    let got: Vec<(String, String)> = lines
        .iter()
        .map(|v| {
            (
                v["tool"].as_str().unwrap().to_owned(),
                v["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    for line in &lines {
        assert_eq!(line["transport"], "stdio");
        let s = line.to_string();
        for token in [&editor, &reader, &admin, &live] {
            assert!(!s.contains(token.as_str()), "a token reached the audit log");
        }
    }
    assert_eq!(lines[0]["user"], "ed");
    assert_eq!(lines[1]["user"], "rita");
}

#[tokio::test]
async fn example_without_a_token_refuses_everything() {
    let dir = tempfile::tempdir().unwrap();
    let _ = keygen(dir.path(), "ed", "editor", "test");
    let client = start(dir.path(), None, "test").await;
    assert!(client.list_all_tools().await.unwrap().is_empty());
    let r = call(
        &client,
        None,
        "get_customer",
        json!({"customer_id": "c-1001"}),
    )
    .await;
    assert_eq!(code(&r), "unauthorized");
    assert!(text(&r).starts_with("Error: Not authenticated"));
    client.cancel().await.unwrap();
    let lines = outcomes(dir.path());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["outcome"], "unauthorized");
    assert_eq!(lines[0]["user"], Value::Null);
}

#[tokio::test]
async fn a_live_server_refuses_test_keys() {
    let dir = tempfile::tempdir().unwrap();
    let test_key = keygen(dir.path(), "ed", "editor", "test");
    let live_key = keygen(dir.path(), "ed", "editor", "live");
    let client = start(dir.path(), Some(&live_key), "live").await;
    let r = call(
        &client,
        None,
        "get_customer",
        json!({"customer_id": "c-1001"}),
    )
    .await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    let r = call(
        &client,
        Some(&test_key),
        "get_customer",
        json!({"customer_id": "c-1001"}),
    )
    .await;
    assert_eq!(code(&r), "unauthorized");
    assert!(
        text(&r).contains("this server runs in `live`"),
        "{}",
        text(&r)
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn configuration_makes_approvals_stricter_and_never_weaker() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let editor = keygen(data, "ed", "editor", "test");

    // Stricter: a read tool that now needs an explicit approval does not run without one.
    let mut cmd = tokio::process::Command::new(common::example_bin("customer_service"));
    cmd.args(["serve", "--approval", "get_customer=explicit", "--data"])
        .arg(data)
        .env("MCP_SECURE_TOKEN", &editor)
        .env("RUST_LOG", "warn");
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    let r = call(
        &client,
        None,
        "get_customer",
        json!({"customer_id": "c-1001"}),
    )
    .await;
    assert_eq!(code(&r), "approval_required", "{}", text(&r));
    client.cancel().await.unwrap();

    // Weaker: the server refuses to start, and says why.
    let out = std::process::Command::new(common::example_bin("customer_service"))
        .args(["serve", "--approval", "delete_customer=explicit", "--data"])
        .arg(data)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("delete_customer") && stderr.contains("stricter"),
        "{stderr}"
    );
}
