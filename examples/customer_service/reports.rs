//! Reports: plain-text files in `DIR/reports/`, read by a sandboxed tool. The body runs in a
//! worker process that can read that folder and nothing else (no database, no keys, no audit
//! log, no network), so a bug in it, or a name crafted to walk out of the folder, reaches
//! nothing the server holds.

use std::path::Path;

use mcp_secure::{Json, ToolError, sandbox, tool};
use serde::Serialize;

/// One report.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Report {
    /// Its name.
    pub name: String,
    /// Its text.
    pub text: String,
}

/// Read a customer-service report by name, e.g. `weekly-summary` or `refunds-q3`.
#[tool(
    kind = "read",
    role = "read-only",
    rate = "30/min",
    timeout = "5s",
    sandbox = "process",
    net = "none",
    fs = "reports"
)]
pub async fn read_report(
    /// The report's name: lowercase letters, digits and `-`, without an extension.
    #[validate(length(min = 1, max = 64))]
    name: String,
) -> Result<Json<Report>, ToolError> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ToolError::invalid_input(
            "a report name uses only lowercase letters, digits and `-`",
        ));
    }
    let path = sandbox::root("reports")?.join(format!("{name}.txt"));
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Json(Report { name, text })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ToolError::not_found(format!("no report `{name}`")))
        }
        Err(e) => Err(ToolError::failed(format!(
            "cannot read report `{name}`: {e}"
        ))),
    }
}

/// Makes the reports folder with two reports on first run.
pub fn seed(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("weekly-summary.txt"),
        "Weekly summary\n\nOrders: 42 placed, 37 shipped, 2 cancelled.\nTickets: 11 opened, 9 closed.\n",
    )?;
    std::fs::write(
        dir.join("refunds-q3.txt"),
        "Refunds, third quarter\n\n5 refunds, 312.40 EUR in total; the largest, 129.00 EUR, for order o-5002.\n",
    )?;
    Ok(())
}
