//! Interop: the customer-service example served over streamable HTTP (`serve --http`), driven by
//! the official MCP Python SDK (`pip install mcp`, installed by `.ci/run`) with a bearer API key.
//! Skipped, with a message saying why, only when there is no `python3`; a missing `mcp` package
//! fails.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn python_sdk_drives_the_example_over_streamable_http() {
    if !common::python_sdk("python_sdk_drives_the_example_over_streamable_http") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let token = common::keygen(dir.path(), "pat", "read-only", "test");

    let mut child = Command::new(common::example_bin("customer_service"))
        .args(["serve", "--http", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the example starts");
    let stderr = child.stderr.take().unwrap();
    let child = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the example prints `listening on URL`");
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
        "{url}"
    );

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/http_client.py");
    let started = Instant::now();
    let out = Command::new("python3")
        .args([script, &url, &token])
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python client failed after {:?}:\n{stderr}",
        started.elapsed()
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad report ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });

    assert_eq!(report["server_name"], "customer-service");
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(
        tools,
        [
            "get_customer",
            "list_orders",
            "read_report",
            "search_products"
        ],
        "a read-only key sees the read-only tools"
    );
    assert_eq!(report["get_customer_error"], false);
    assert_eq!(report["get_customer"]["name"], "Ada Lovelace", "{report}");
    assert_eq!(report["invalid_code"], "invalid_input");
    assert_eq!(report["forbidden_code"], "forbidden");
    assert_eq!(report["unauthenticated_status"], 401);
    assert!(
        report["unauthenticated_challenge"]
            .as_str()
            .unwrap()
            .contains("resource_metadata="),
        "{report}"
    );

    // Every call was audited with the HTTP transport label.
    drop(child);
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let http_records = audit
        .lines()
        .filter(|l| l.contains("\"transport\":\"http\""))
        .count();
    assert!(http_records >= 3, "audit:\n{audit}");
    assert!(!audit.contains(&token));
}
