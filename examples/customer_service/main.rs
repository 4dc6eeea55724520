//! The customer-service MCP server, secured by mcp-secure.
//!
//! ```text
//! customer_service serve  [--data DIR] [--env test|live] [--http ADDR [--allowed-host H] [--resource URI]
//!                         [--jwt-issuer URL --jwks-url URL] [--max-body BYTES]]
//!                         [--approval-queue] [--approval-timeout 2m] [--approval TOOL=LEVEL]...
//! customer_service keygen --user U --role R [--role R2] [--env test|live] [--expires 30d] [--data DIR]
//! customer_service approvals list [--all] [--data DIR]
//! customer_service approvals approve ID [--by NAME] [--data DIR]
//! customer_service approvals deny ID [--by NAME] [--data DIR]
//! customer_service audit verify [--data DIR] [--public-key FILE]
//! customer_service audit query [--data DIR] [--user U] [--tool T] [--outcome O] [--since T] [--until T] [--limit N]
//! ```
//!
//! `DIR` (default `./customer-service-data`) holds `customers.db` (seeded on first run),
//! `reports/` (text reports, seeded on first run, read by the sandboxed `read_report`),
//! `keys.toml` (key digests), `audit.jsonl` (one record per call), `approval.key` (the HMAC key
//! for approvals, mode 0600, made on first run; add a new first line to rotate) and, with
//! `serve --approval-queue`, `approvals/` (human approvals an operator answers with
//! `approvals approve|deny`). Logs go to stderr; stdout is the MCP channel.

mod approvals;
mod audit_cmd;
mod db;
mod reports;
mod tools;
mod transport;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mcp_secure::auth::{ApiKeyStore, Environment};
use mcp_secure::sandbox::SandboxConfig;
use mcp_secure::{Approval, SecureServer, roles, tools};

use tools::*;

roles! {
    "read-only",
    "editor": "read-only",
    "admin": *,
}

#[derive(Parser)]
#[command(
    name = "customer_service",
    about = "A customer-service MCP server secured by mcp-secure"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over stdio. The caller's key comes from `MCP_SECURE_TOKEN` or each request's
    /// `_meta.authToken`.
    Serve {
        /// The data folder.
        #[arg(long, default_value = "customer-service-data")]
        data: PathBuf,
        /// The environment whose keys this server accepts.
        #[arg(long, default_value = "test")]
        env: Environment,
        /// Queue human approvals in `DIR/approvals/` for an operator (`approvals approve ID`)
        /// when the client cannot ask a human itself (no elicitation).
        #[arg(long)]
        approval_queue: bool,
        /// How long to wait for a human, e.g. `2m`, `30s`.
        #[arg(long, default_value = "2m", value_parser = parse_wait)]
        approval_timeout: Duration,
        /// Make a tool's approval stricter than it declares, e.g. `--approval
        /// update_order=human` (repeatable). A weaker one refuses to start.
        #[arg(long = "approval", value_name = "TOOL=none|explicit|human", value_parser = parse_stricter)]
        stricter: Vec<(String, Approval)>,
        /// Streamable HTTP instead of stdio, and JWT access tokens.
        #[command(flatten)]
        http: transport::HttpArgs,
    },
    /// Make an API key: prints the token alone on stdout, stores only its digest.
    Keygen {
        /// The user the key acts as.
        #[arg(long)]
        user: String,
        /// A role to grant (repeat for several).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// The environment the key is valid in.
        #[arg(long, default_value = "test")]
        env: Environment,
        /// Lifetime, e.g. `90d`, `12h`, `30m` (default: no expiry).
        #[arg(long, value_parser = parse_lifetime)]
        expires: Option<Duration>,
        /// The data folder.
        #[arg(long, default_value = "customer-service-data")]
        data: PathBuf,
    },
    /// Answer the human-approval queue of a server started with `serve --approval-queue`.
    Approvals {
        #[command(subcommand)]
        action: ApprovalAction,
        /// The data folder.
        #[arg(long, default_value = "customer-service-data", global = true)]
        data: PathBuf,
    },
    /// Check the audit chain (`verify`) or search the audit records (`query`).
    Audit {
        #[command(subcommand)]
        action: audit_cmd::AuditCommand,
    },
}

#[derive(Subcommand)]
enum ApprovalAction {
    /// Show pending requests (all with `--all`).
    List {
        /// Include decided and expired requests.
        #[arg(long)]
        all: bool,
    },
    /// Approve a pending request: the waiting call runs.
    Approve {
        /// The request id, as `list` shows it.
        id: String,
        /// Who approves (default: `$USER`).
        #[arg(long)]
        by: Option<String>,
    },
    /// Deny a pending request: the waiting call is refused.
    Deny {
        /// The request id, as `list` shows it.
        id: String,
        /// Who denies (default: `$USER`).
        #[arg(long)]
        by: Option<String>,
    },
}

fn parse_wait(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}` must look like `2m` or `30s`"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("`{text}` must end in `ms`, `s` or `m`")),
    };
    if d.is_zero() {
        Err(format!("`{text}` must be longer than zero"))
    } else {
        Ok(d)
    }
}

fn parse_stricter(text: &str) -> Result<(String, Approval), String> {
    let (tool, level) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` must look like `update_order=human`"))?;
    let level = match level {
        "none" => Approval::None,
        "explicit" => Approval::Explicit,
        "human" => Approval::Human,
        other => {
            return Err(format!(
                "approval `{other}` is not one of `none`, `explicit`, `human`"
            ));
        }
    };
    Ok((tool.to_owned(), level))
}

fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}` must look like `90d`, `12h` or `30m`"))?;
    let secs = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}` must end in `m`, `h` or `d`")),
    };
    match n.checked_mul(secs) {
        Some(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err(format!("`{text}` is not a usable lifetime")),
    }
}

fn main() -> ExitCode {
    // First thing, before any thread starts: a sandbox worker started by the server runs its
    // one call of a sandboxed tool here and exits.
    if let Some(code) = mcp_secure::sandbox::worker(tools![reports::read_report]) {
        return code;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rmcp=warn".into()),
        )
        .init();
    let result = match Cli::parse().command {
        Command::Serve {
            data,
            env,
            approval_queue,
            approval_timeout,
            stricter,
            http,
        } => serve(
            &data,
            env,
            approvals::Settings {
                queue: approval_queue,
                timeout: approval_timeout,
                stricter,
            },
            &http,
        ),
        Command::Approvals { action, data } => match action {
            ApprovalAction::List { all } => approvals::list(&data, all),
            ApprovalAction::Approve { id, by } => approvals::decide(&data, &id, true, by),
            ApprovalAction::Deny { id, by } => approvals::decide(&data, &id, false, by),
        },
        Command::Keygen {
            user,
            roles,
            env,
            expires,
            data,
        } => keygen(&data, &user, &roles, env, expires),
        Command::Audit { action } => audit_cmd::run(action),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn keygen(
    data: &Path,
    user: &str,
    roles: &[String],
    env: Environment,
    expires: Option<Duration>,
) -> Result<(), String> {
    let declared: Vec<&str> = ROLES.iter().map(|r| r.name).collect();
    if let Some(bad) = roles.iter().find(|r| !declared.contains(&r.as_str())) {
        return Err(format!(
            "role `{bad}` is not declared; declared roles: {}",
            declared.join(", ")
        ));
    }
    let expires = match expires {
        None => None,
        Some(d) => Some(
            time::Duration::try_from(d)
                .ok()
                .and_then(|d| time::OffsetDateTime::now_utc().checked_add(d))
                .filter(|t| t.year() <= 9999)
                .ok_or("--expires: the lifetime reaches past the year 9999")?,
        ),
    };
    private_dir(data)?;
    let key = ApiKeyStore::append_to_file(data.join("keys.toml"), user, roles, env, expires)
        .map_err(|e| e.to_string())?;
    eprintln!(
        "key `{}` for `{user}` ({env}) stored in {}",
        key.entry.id,
        data.join("keys.toml").display()
    );
    println!("{}", key.token);
    Ok(())
}

/// Creates the data folder (and missing parents) readable by its owner only.
fn private_dir(dir: &Path) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Creates `path` empty, readable by its owner only, unless it exists: SQLite then opens it
/// (and makes its `-wal` and `-shm` files) with the same mode.
fn private_file(path: &Path) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map(drop)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn serve(
    data: &Path,
    env: Environment,
    approval: approvals::Settings,
    http: &transport::HttpArgs,
) -> Result<(), String> {
    private_dir(data)?;
    let db_path = data.join("customers.db");
    let keys_path = data.join("keys.toml");
    private_file(&db_path)?;
    let conn = db::open(&db_path).map_err(|e| format!("{}: {e}", db_path.display()))?;
    let keys = ApiKeyStore::load(&keys_path, env).map_err(|e| e.to_string())?;
    if keys.entries().is_empty() {
        tracing::warn!(
            "no API keys in {}; make one with `keygen`",
            keys_path.display()
        );
    }
    let reports_dir = data.join("reports");
    reports::seed(&reports_dir).map_err(|e| format!("{}: {e}", reports_dir.display()))?;
    let sinks = audit_cmd::open(data)?;
    let app = App {
        db: Mutex::new(conn),
        db_path,
        keys_path: keys_path.clone(),
        keys: keys.clone(),
        rotated_dir: data.join("rotated-keys"),
    };
    let server = SecureServer::builder(app)
        .name("customer-service", env!("CARGO_PKG_VERSION"))
        .instructions(
            "Customer-service tools. Writes need explicit approval; deletes need a human.",
        )
        .roles(ROLES)
        .tools(tools![
            get_customer,
            list_orders,
            search_products,
            execute_query,
            update_order,
            create_ticket,
            delete_customer,
            rotate_api_key,
            reports::read_report,
        ])
        // `read_report` runs in a sandboxed worker that sees only `DIR/reports/`.
        .sandbox(SandboxConfig::new().root("reports", &reports_dir))
        .authenticator(transport::authenticator(keys.clone(), http)?)
        .audit(sinks.log.clone())
        .audit(sinks.sqlite)
        .alerter(sinks.log_alerter);
    let server = match sinks.webhook {
        Some(webhook) => server.alerter(webhook),
        None => server,
    };
    let server = approvals::configure(server, data, approval)?
        .build()
        .map_err(|e| e.to_string())?;
    audit_cmd::close_on_signal(sinks.log.clone(), http.http.is_none());
    let served = transport::run(server, keys, &keys_path, http);
    // A clean end: what is queued is written, and a final checkpoint seals the log.
    let closed = sinks.log.close().map_err(|e| format!("audit log: {e}"));
    served.and(closed)
}
