//! The audit side of the example: the sinks `serve` writes to, a clean flush on SIGTERM (and
//! on ctrl-c when serving stdio), and the `audit verify` / `audit query` subcommands.
//!
//! Files in the data folder: `audit.jsonl` (the chained log), `audit.jsonl.checkpoints` (its
//! checkpoints, repeated), `audit.db` (the same records in SQLite, for queries), `audit.key`
//! (the Ed25519 key that signs checkpoints, made on first use, mode 0600) and `audit.pub` (its
//! public half, for `audit verify`). In production keep `audit.key` and a copy of the
//! checkpoints file where whoever can write the log cannot (`MCP_SECURE_AUDIT_KEY` may give the
//! key as 64 hex digits instead of the file).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use mcp_secure::audit::{
    AuditLog, AuditLogConfig, AuditQuery, Durability, LogAlerter, SigningKey, SqliteSink,
    WebhookAlerter, generate_signing_key, read_signing_key, read_verifying_key,
    signing_key_from_hex, verify_log,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit chain: exit 0 when intact, non-zero naming the first bad record.
    Verify {
        /// The data folder.
        #[arg(long, default_value = "customer-service-data")]
        data: PathBuf,
        /// The checkpoints' public key file (default `DIR/audit.pub`).
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Print matching records (from `DIR/audit.db`) as JSON lines, oldest first.
    Query {
        /// The data folder.
        #[arg(long, default_value = "customer-service-data")]
        data: PathBuf,
        /// Only this user's records.
        #[arg(long)]
        user: Option<String>,
        /// Only this tool's records.
        #[arg(long)]
        tool: Option<String>,
        /// Only this outcome (`ok`, `forbidden`, `attempt`, ...).
        #[arg(long)]
        outcome: Option<String>,
        /// From this time (RFC 3339, inclusive).
        #[arg(long, value_parser = parse_time)]
        since: Option<OffsetDateTime>,
        /// Until this time (RFC 3339, exclusive).
        #[arg(long, value_parser = parse_time)]
        until: Option<OffsetDateTime>,
        /// At most this many records.
        #[arg(long)]
        limit: Option<u32>,
    },
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| format!("`{text}` is not an RFC 3339 time: {e}"))
}

pub fn run(command: AuditCommand) -> Result<(), String> {
    match command {
        AuditCommand::Verify { data, public_key } => verify(&data, public_key),
        AuditCommand::Query {
            data,
            user,
            tool,
            outcome,
            since,
            until,
            limit,
        } => {
            let sink =
                SqliteSink::open_read_only(data.join("audit.db")).map_err(|e| e.to_string())?;
            let mut query = AuditQuery::new().between(since, until);
            query.user = user;
            query.tool = tool;
            query.outcome = outcome;
            query.limit = limit;
            let mut out = std::io::stdout().lock();
            for event in sink.query(&query).map_err(|e| e.to_string())? {
                let line = serde_json::to_string(&event).map_err(|e| e.to_string())?;
                std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes())
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
    }
}

fn verify(data: &Path, public_key: Option<PathBuf>) -> Result<(), String> {
    let key_path = public_key.unwrap_or_else(|| data.join("audit.pub"));
    let key = if key_path.exists() {
        Some(read_verifying_key(&key_path).map_err(|e| e.to_string())?)
    } else {
        eprintln!(
            "warning: {} not found; checkpoint signatures are not checked",
            key_path.display()
        );
        None
    };
    let report = verify_log(data.join("audit.jsonl"), key.as_ref()).map_err(|e| e.to_string())?;
    print!("{report}");
    match report.broken {
        None => Ok(()),
        Some(b) => Err(format!(
            "the audit log is not intact: line {}{}: {}",
            b.line,
            b.seq.map(|s| format!(" (seq {s})")).unwrap_or_default(),
            b.reason
        )),
    }
}

/// The sinks `serve` writes to: the chained log (fsync per batch, signed checkpoints) and the
/// SQLite copy. Alerts go to the log, and to `MCP_SECURE_ALERT_WEBHOOK` (an `http://` URL)
/// when set.
pub struct Sinks {
    pub log: AuditLog,
    pub sqlite: SqliteSink,
    pub webhook: Option<WebhookAlerter>,
    pub log_alerter: LogAlerter,
}

pub fn open(data: &Path) -> Result<Sinks, String> {
    let key = signing_key(data)?;
    let config = AuditLogConfig::default()
        .durability(Durability::Fsync)
        .signing_key(key);
    let log =
        AuditLog::open(data.join("audit.jsonl"), config).map_err(|e| format!("audit log: {e}"))?;
    let sqlite =
        SqliteSink::open(data.join("audit.db")).map_err(|e| format!("audit database: {e}"))?;
    let webhook = match std::env::var("MCP_SECURE_ALERT_WEBHOOK") {
        Ok(url) => {
            Some(WebhookAlerter::new(&url).map_err(|e| format!("MCP_SECURE_ALERT_WEBHOOK: {e}"))?)
        }
        Err(_) => None,
    };
    Ok(Sinks {
        log,
        sqlite,
        webhook,
        log_alerter: LogAlerter,
    })
}

/// Loads the checkpoint signing key, making it (and `audit.pub`) on first use.
fn signing_key(data: &Path) -> Result<SigningKey, String> {
    if let Ok(hex) = std::env::var("MCP_SECURE_AUDIT_KEY") {
        return signing_key_from_hex(&hex).map_err(|e| format!("MCP_SECURE_AUDIT_KEY: {e}"));
    }
    let path = data.join("audit.key");
    let key = if path.exists() {
        read_signing_key(&path).map_err(|e| e.to_string())?
    } else {
        let key = generate_signing_key();
        write_private(&path, &hex(&key.to_bytes()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        key
    };
    let public = data.join("audit.pub");
    if !public.exists() {
        std::fs::write(&public, hex(key.verifying_key().as_bytes()) + "\n")
            .map_err(|e| format!("{}: {e}", public.display()))?;
    }
    Ok(key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, format!("{text}\n").as_bytes())
}

/// On SIGTERM (and on ctrl-c, when `interrupt` is set), flushes the audit log, seals it with a
/// checkpoint, and exits. Other shutdowns close the log where `serve` returns.
pub fn close_on_signal(log: AuditLog, interrupt: bool) {
    #[cfg(unix)]
    std::thread::spawn(move || {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let signal = runtime.block_on(async {
            let mut term = signal(SignalKind::terminate()).ok()?;
            if interrupt {
                tokio::select! {
                    _ = term.recv() => Some("SIGTERM"),
                    _ = tokio::signal::ctrl_c() => Some("SIGINT"),
                }
            } else {
                term.recv().await.map(|()| "SIGTERM")
            }
        });
        if let Some(name) = signal {
            tracing::info!("{name}: flushing the audit log");
            let code = match log.close() {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!(error = %e, "closing the audit log failed");
                    1
                }
            };
            std::process::exit(code);
        }
    });
    #[cfg(not(unix))]
    let _ = (log, interrupt);
}
