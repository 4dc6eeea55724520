//! A child process for the audit crash test (`tests/audit_crash.rs`): writes write-ahead
//! attempts and outcomes to the audit log at `argv[1]` from several threads, as fast as it
//! can, printing the `seq` of every record acknowledged as durable, until it is killed (or
//! after 60 seconds, so it never outlives a broken test).

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mcp_secure::audit::{AuditEvent, AuditLog, AuditLogConfig, Phase};

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: audit_crash_child LOG");
    let log = AuditLog::open(&path, AuditLogConfig::default().checkpoint_every(500))
        .expect("open the audit log");
    let stdout = Mutex::new(std::io::stdout());
    let deadline = Instant::now() + Duration::from_secs(60);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (log, stdout) = (&log, &stdout);
            s.spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let mut event =
                        AuditEvent::new(format!("t{t}-{n}"), "update_order", "crash-test");
                    event.user = Some("crash".into());
                    event.phase = Phase::Attempt;
                    event.outcome = "attempt".into();
                    let attempt = log
                        .submit(&event)
                        .and_then(|r| r.wait())
                        .expect("attempt stored");
                    event.phase = Phase::Outcome;
                    event.outcome = "ok".into();
                    event.success = true;
                    let outcome = log
                        .submit(&event)
                        .and_then(|r| r.wait())
                        .expect("outcome stored");
                    let mut out = stdout.lock().unwrap();
                    let _ = writeln!(out, "{attempt}\n{outcome}");
                    let _ = out.flush();
                }
            });
        }
    });
}
