//! The customer-service example as an operator runs it: `keygen` refuses a lifetime it cannot
//! store, the data folder is private to its owner, and `rotate_api_key` stays within the
//! server's environment, explains an expired key and names no server path to the client.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Client, call, code, keygen_with as keygen, text};
use mcp_secure::approval::{FileApprovalQueue, QueueState};
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::json;

async fn start(data: &Path, token: &str) -> Client {
    let mut cmd = tokio::process::Command::new(common::example_bin("customer_service"));
    cmd.args(["serve", "--approval-queue", "--data"])
        .arg(data)
        .env("MCP_SECURE_TOKEN", token)
        .env("RUST_LOG", "warn");
    ().serve(TokioChildProcess::new(cmd).unwrap())
        .await
        .expect("initialize")
}

/// The id of a token `mcs_<env>_<id>_<secret>`.
fn key_id(token: &str) -> &str {
    token.split('_').nth(2).unwrap()
}

/// Calls `rotate_api_key`, approving its human approval from the queue.
async fn rotate(client: &Client, data: &Path, id: &str) -> rmcp::model::CallToolResult {
    let approve = async {
        for _ in 0..1000 {
            let queue = FileApprovalQueue::open(data.join("approvals")).unwrap();
            if let Some(q) = queue
                .list()
                .unwrap()
                .into_iter()
                .find(|q| q.state == QueueState::Pending)
            {
                queue.approve(&q.id, "olga").unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no approval request was queued");
    };
    let (r, ()) = tokio::join!(
        call(client, None, "rotate_api_key", json!({ "key_id": id })),
        approve
    );
    r
}

#[test]
fn keygen_refuses_a_lifetime_past_the_calendar_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::example_bin("customer_service"))
        .args(["keygen", "--user", "u", "--role", "editor", "--expires"])
        .arg("10000000d")
        .arg("--data")
        .arg(dir.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: --expires") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no token is printed");
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = keygen(&data, "ed", "editor", "test", &[]);
    let client = start(&data, &token).await;
    let r = call(
        &client,
        None,
        "get_customer",
        json!({"customer_id": "c-1001"}),
    )
    .await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data folder");
    for name in ["customers.db", "audit.db", "audit.jsonl", "keys.toml"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn rotate_api_key_stays_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin = keygen(&data, "ada", "admin", "test", &[]);
    let live = keygen(&data, "lee", "editor", "live", &[]);
    let expiring = keygen(&data, "eve", "editor", "test", &["--expires", "1h"]);
    let plain = keygen(&data, "pat", "editor", "test", &[]);
    // Make `eve`'s key expired, as an hour later.
    let keys = data.join("keys.toml");
    let text_before = std::fs::read_to_string(&keys).unwrap();
    let edited: String = text_before
        .lines()
        .map(|l| {
            if l.starts_with("expires = ") {
                "expires = \"2001-01-01T00:00:00Z\"".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&keys, edited + "\n").unwrap();
    let client = start(&data, &admin).await;

    // A `test` server does not touch a `live` key.
    let r = rotate(&client, &data, key_id(&live)).await;
    assert_eq!(code(&r), "not_found", "{}", text(&r));
    let after = std::fs::read_to_string(&keys).unwrap();
    assert!(
        !after.contains("revoked = true") && after.matches("[[keys]]").count() == 4,
        "{after}"
    );

    // An expired key is explained, not an internal error.
    let r = rotate(&client, &data, key_id(&expiring)).await;
    assert_eq!(code(&r), "failed", "{}", text(&r));
    assert!(text(&r).contains("expired"), "{}", text(&r));

    // A rotation names no server path to the client.
    let r = rotate(&client, &data, key_id(&plain)).await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    let root = dir.path().to_str().unwrap();
    assert!(!text(&r).contains(root), "{}", text(&r));
    client.cancel().await.unwrap();
}
