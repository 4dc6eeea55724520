//! Interop: the official MCP Python SDK (its `elicitation_callback`) approves and declines a
//! `delete_customer` call on the example server over stdio. Skipped, saying so, only when there
//! is no `python3`; a missing `mcp` package fails (CI installs the SDK in `.ci/run`).

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn python_sdk_client_approves_and_declines_delete_customer() {
    if !common::python_sdk("python_sdk_client_approves_and_declines_delete_customer") {
        return;
    }
    let bin = common::example_bin("customer_service");
    let data = tempfile::tempdir().unwrap();
    let keygen = Command::new(&bin)
        .args(["keygen", "--user", "ed", "--role", "editor", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        keygen.status.success(),
        "keygen: {}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let token = String::from_utf8(keygen.stdout).unwrap().trim().to_owned();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/elicitation_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&bin)
        .arg(data.path())
        .arg(&token)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "python client failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("deleted"), "{stdout}");

    // Both decisions are in the audit log, with how and by whom.
    let audit = std::fs::read_to_string(data.path().join("audit.jsonl")).unwrap();
    let deletes: Vec<serde_json::Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["tool"] == "delete_customer" && e["phase"] == "outcome")
        .collect();
    assert_eq!(deletes.len(), 2, "{audit}");
    assert_eq!(deletes[0]["outcome"], "ok");
    assert_eq!(deletes[0]["approval"]["method"], "elicitation");
    assert_eq!(deletes[0]["approval"]["decision"], "approved");
    assert_eq!(deletes[0]["approval"]["by"], "ed");
    assert_eq!(deletes[1]["outcome"], "approval_denied");
    assert_eq!(deletes[1]["approval"]["decision"], "denied");
}
