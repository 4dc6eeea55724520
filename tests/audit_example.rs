//! The example's audit: a served session leaves a chained, signed log and an SQLite copy;
//! `audit verify` passes it and names the first bad line once it is edited; `audit query`
//! finds records by user and outcome; SIGTERM flushes and seals the log.

mod common;

use std::path::Path;
use std::process::Command;

use common::{call, code, keygen};
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

fn audit(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::example_bin("customer_service"))
        .arg("audit")
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("the audit subcommand runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn serve(data: &Path, token: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(common::example_bin("customer_service"));
    cmd.args(["serve", "--data"])
        .arg(data)
        .env("MCP_SECURE_TOKEN", token)
        .env("RUST_LOG", "warn");
    cmd
}

#[tokio::test]
async fn verify_and_query_the_example_audit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let alice = keygen(data, "alice", "read-only", "test");
    let client = ().serve(TokioChildProcess::new(serve(data, &alice)).unwrap()).await.unwrap();
    let ok = call(
        &client,
        None,
        "get_customer",
        json!({"customer_id": "c-1001"}),
    )
    .await;
    assert_ne!(code(&ok), "forbidden");
    for _ in 0..2 {
        let r = call(&client, None, "execute_query", json!({"query": "SELECT 1"})).await;
        assert_eq!(code(&r), "forbidden");
    }
    client.cancel().await.unwrap();
    // The server closes the log (final checkpoint) when its client goes away.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut intact, mut report) = (false, String::new());
    while std::time::Instant::now() < deadline {
        let (ok, out, _) = audit(data, &["verify"]);
        (intact, report) = (ok, out);
        if intact && report.contains("0 records after it") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(intact && report.contains("intact: 3 records"), "{report}");
    assert!(data.join("audit.pub").exists() && data.join("audit.jsonl.checkpoints").exists());

    let (ok, out, err) = audit(
        data,
        &["query", "--user", "alice", "--outcome", "forbidden"],
    );
    assert!(ok, "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r["tool"] == "execute_query" && r["user"] == "alice")
    );
    let (_, out, _) = audit(data, &["query", "--tool", "get_customer", "--limit", "5"]);
    assert_eq!(out.lines().count(), 1);

    // Edit the second record: verify fails and names it.
    let log = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
    let edited = log.replacen("\"outcome\":\"forbidden\"", "\"outcome\":\"ok\"", 1);
    std::fs::write(data.join("audit.jsonl"), edited).unwrap();
    let (ok, out, err) = audit(data, &["verify"]);
    assert!(!ok, "an edited log must fail verification: {out}");
    assert!(err.contains("line 2 (seq 2)"), "{err}");
}

#[cfg(unix)]
#[test]
fn sigterm_flushes_and_seals_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let alice = keygen(data, "alice", "read-only", "test");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (client, pid) = runtime.block_on(async {
        let mut cmd = serve(data, &alice);
        cmd.kill_on_drop(true);
        let transport = TokioChildProcess::new(cmd).unwrap();
        let pid = transport.id().unwrap();
        let client = ().serve(transport).await.unwrap();
        let r = call(&client, None, "execute_query", json!({"query": "SELECT 1"})).await;
        assert_eq!(code(&r), "forbidden");
        (client, pid)
    });
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The server writes its final checkpoint and exits; the client sees the pipe close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut report = String::new();
    while std::time::Instant::now() < deadline {
        let (ok, out, _) = audit(data, &["verify"]);
        report = out;
        if ok && report.contains("0 records after it") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        report.contains("intact: 1 records") && report.contains("0 records after it"),
        "{report}"
    );
    drop(client);
}
