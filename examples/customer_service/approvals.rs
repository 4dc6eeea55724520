//! Approvals for the example: the HMAC key (a private file in the data folder, made on first
//! run), the optional operator queue, and the `approvals list|approve|deny` commands that answer
//! it from another process.

use std::path::Path;
use std::time::Duration;

use mcp_secure::approval::{ApprovalKeys, FileApprovalQueue, QueueState};
use mcp_secure::{Approval, ServerBuilder};

use crate::tools::App;

/// The key file: hex lines, the first is current, the others still verify (rotation).
pub fn key_path(data: &Path) -> std::path::PathBuf {
    data.join("approval.key")
}

/// The operator queue's folder.
pub fn queue_dir(data: &Path) -> std::path::PathBuf {
    data.join("approvals")
}

/// The approval settings of `serve`.
pub struct Settings {
    /// Queue human approvals for an operator when the client cannot ask a human.
    pub queue: bool,
    /// How long a human is waited for.
    pub timeout: Duration,
    /// Approvals made stricter than the tools declare (`--approval TOOL=LEVEL`).
    pub stricter: Vec<(String, Approval)>,
}

/// Adds the approval configuration: keys from the data folder, approvals made stricter by
/// configuration (the builder refuses weaker ones), and with `queue`, the file queue an
/// operator answers for clients that cannot ask a human themselves.
pub fn configure(
    builder: ServerBuilder<App>,
    data: &Path,
    settings: Settings,
) -> Result<ServerBuilder<App>, String> {
    let Settings {
        queue,
        timeout,
        stricter,
    } = settings;
    let keys =
        ApprovalKeys::load_or_create(key_path(data)).map_err(|e| format!("approval key: {e}"))?;
    let builder = stricter.into_iter().fold(
        builder.approval_keys(keys).human_approval_timeout(timeout),
        |b, (tool, level)| b.require_approval(tool, level),
    );
    if !queue {
        return Ok(builder);
    }
    let queue =
        FileApprovalQueue::open(queue_dir(data)).map_err(|e| format!("approval queue: {e}"))?;
    tracing::info!(
        dir = %queue.dir().display(),
        "approval queue on: answer with `customer_service approvals approve ID` or `deny ID`"
    );
    Ok(builder.approver(queue))
}

/// `approvals list`: pending requests first, then the decided ones.
pub fn list(data: &Path, all: bool) -> Result<(), String> {
    let queue = FileApprovalQueue::open(queue_dir(data)).map_err(|e| e.to_string())?;
    let entries = queue.list().map_err(|e| e.to_string())?;
    let shown: Vec<_> = entries
        .iter()
        .filter(|q| all || q.state == QueueState::Pending)
        .collect();
    if shown.is_empty() {
        eprintln!(
            "no {}approval requests in {}",
            if all { "" } else { "pending " },
            queue.dir().display()
        );
    }
    for q in shown {
        let expires = q
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        println!(
            "{}  {:<8}  expires {expires}  {}",
            q.id,
            q.state.as_str(),
            q.summary
        );
    }
    Ok(())
}

/// `approvals approve ID` / `approvals deny ID`.
pub fn decide(data: &Path, id: &str, approve: bool, by: Option<String>) -> Result<(), String> {
    let queue = FileApprovalQueue::open(queue_dir(data)).map_err(|e| e.to_string())?;
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "operator".into());
    let q = if approve {
        queue.approve(id, &by)
    } else {
        queue.deny(id, &by)
    }
    .map_err(|e| e.to_string())?;
    println!("{} {}: {}", q.state.as_str(), q.id, q.summary);
    Ok(())
}
