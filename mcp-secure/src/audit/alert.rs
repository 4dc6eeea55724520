//! Alerts on failures: a burst of refusals for one principal, any internal error, any failure
//! of the audit sink. [`Alerter`]s deliver them; the server decides when to fire.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::clock::Clock;

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// More refusals for one principal within the window than the policy allows.
    Refusals,
    /// A call failed inside the server (`internal`).
    Internal,
    /// The audit sink failed to store a record.
    AuditFailure,
}

/// One alert, as sent to every [`Alerter`] (and as the webhook's JSON body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Alert {
    /// What happened.
    pub kind: AlertKind,
    /// When (RFC 3339, UTC).
    pub ts: String,
    /// The principal concerned, if any (`<unauthenticated>` for refusals without one).
    pub principal: Option<String>,
    /// The tool concerned, if any.
    pub tool: Option<String>,
    /// How many events the alert stands for (refusals in the window; 1 otherwise).
    pub count: u32,
    /// A sentence for people.
    pub message: String,
}

/// Delivers alerts. Must not block for long: calls wait for it.
pub trait Alerter: Send + Sync + 'static {
    /// Delivers one alert.
    fn alert(&self, alert: &Alert);
}

/// When refusals become an alert: more than `max_refusals` for one principal within `window`.
/// At most one such alert per principal per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlertPolicy {
    /// Refusals allowed in the window before an alert.
    pub max_refusals: u32,
    /// The sliding window.
    pub window: Duration,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            max_refusals: 10,
            window: Duration::from_secs(60),
        }
    }
}

impl AlertPolicy {
    /// More than `max_refusals` per principal within `window` fires an alert.
    pub fn refusals(max_refusals: u32, window: Duration) -> Self {
        AlertPolicy {
            max_refusals,
            window,
        }
    }
}

/// Writes alerts as `tracing` events at `error` (target `mcp_secure::alert`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogAlerter;

impl Alerter for LogAlerter {
    fn alert(&self, alert: &Alert) {
        tracing::error!(
            target: "mcp_secure::alert",
            kind = ?alert.kind,
            principal = alert.principal.as_deref().unwrap_or("-"),
            tool = alert.tool.as_deref().unwrap_or("-"),
            count = alert.count,
            "{}",
            alert.message
        );
    }
}

/// POSTs each alert as JSON to an `http://host:port/path` URL, from a background thread (a
/// slow receiver never slows calls). Up to 256 alerts wait; past that an alert is logged at
/// `error` instead of sent.
#[derive(Debug)]
pub struct WebhookAlerter {
    url: String,
    tx: Mutex<SyncSender<Alert>>,
}

impl WebhookAlerter {
    /// An alerter for `url` (plain `http://`; put a TLS proxy in front for anything else).
    pub fn new(url: &str) -> Result<Self, String> {
        let target = Target::parse(url)?;
        let (tx, rx) = sync_channel::<Alert>(256);
        std::thread::Builder::new()
            .name("mcp-secure-webhook".into())
            .spawn(move || {
                for alert in rx {
                    if let Err(e) = target.post(&alert) {
                        tracing::error!(target: "mcp_secure::alert", error = %e, url = %target.url, "webhook alert failed: {}", alert.message);
                    }
                }
            })
            .map_err(|e| format!("cannot start the webhook thread: {e}"))?;
        Ok(WebhookAlerter {
            url: url.to_owned(),
            tx: Mutex::new(tx),
        })
    }

    /// The URL alerts go to.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Alerter for WebhookAlerter {
    fn alert(&self, alert: &Alert) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(TrySendError::Full(a) | TrySendError::Disconnected(a)) =
            tx.try_send(alert.clone())
        {
            tracing::error!(target: "mcp_secure::alert", url = %self.url, "webhook queue unavailable; alert only logged: {}", a.message);
        }
    }
}

struct Target {
    url: String,
    host: String,
    authority: String,
    path: String,
}

impl Target {
    const TIMEOUT: Duration = Duration::from_secs(3);

    fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{url}`: only `http://` URLs are supported"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("`{url}` has no usable host"));
        }
        let host = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let path = if path.is_empty() { "/" } else { path };
        Ok(Target {
            url: url.to_owned(),
            host,
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    fn post(&self, alert: &Alert) -> Result<(), String> {
        let body = serde_json::to_vec(alert).map_err(|e| e.to_string())?;
        let addr = self
            .host
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or_else(|| format!("`{}` does not resolve", self.host))?;
        let mut stream =
            TcpStream::connect_timeout(&addr, Self::TIMEOUT).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Self::TIMEOUT))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(Self::TIMEOUT))
            .map_err(|e| e.to_string())?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: mcp-secure\r\n\r\n",
            self.path,
            self.authority,
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(&body))
            .map_err(|e| e.to_string())?;
        let mut status = [0u8; 12];
        stream
            .read_exact(&mut status)
            .map_err(|e| format!("no response: {e}"))?;
        let code = std::str::from_utf8(&status[9..12]).unwrap_or("");
        if code.starts_with('2') {
            Ok(())
        } else {
            Err(format!("the receiver answered {code}"))
        }
    }
}

/// Fans alerts out to several alerters.
impl Alerter for Vec<Arc<dyn Alerter>> {
    fn alert(&self, alert: &Alert) {
        for a in self {
            a.alert(alert);
        }
    }
}

/// Decides when to alert: keeps a sliding window of refusals per principal (bounded memory).
pub(crate) struct Alerts {
    alerter: Option<Arc<dyn Alerter>>,
    policy: AlertPolicy,
    clock: Clock,
    windows: Mutex<HashMap<String, Window>>,
}

#[derive(Default)]
struct Window {
    times: VecDeque<Duration>,
    last_alert: Option<Duration>,
}

const MAX_TRACKED: usize = 10_000;

impl Alerts {
    pub(crate) fn new(
        alerter: Option<Arc<dyn Alerter>>,
        policy: AlertPolicy,
        clock: Clock,
    ) -> Self {
        Alerts {
            alerter,
            policy,
            clock,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn fire(
        &self,
        kind: AlertKind,
        principal: Option<&str>,
        tool: Option<&str>,
        count: u32,
        message: String,
    ) {
        let ts = self
            .clock
            .now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let alert = Alert {
            kind,
            ts,
            principal: principal.map(str::to_owned),
            tool: tool.map(str::to_owned),
            count,
            message,
        };
        match &self.alerter {
            Some(a) => a.alert(&alert),
            None => LogAlerter.alert(&alert),
        }
    }

    /// Counts a refusal; alerts once per window when the principal goes over the limit.
    pub(crate) fn refusal(&self, principal: Option<&str>, tool: &str, code: &str) {
        let who = principal.unwrap_or("<unauthenticated>");
        let now = self.clock.elapsed();
        let window = self.policy.window;
        let fire = {
            let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
            if windows.len() >= MAX_TRACKED && !windows.contains_key(who) {
                windows.retain(|_, w| {
                    w.times
                        .back()
                        .is_some_and(|&t| now.saturating_sub(t) < window)
                });
            }
            let w = windows.entry(who.to_owned()).or_default();
            w.times.push_back(now);
            while w
                .times
                .front()
                .is_some_and(|&t| now.saturating_sub(t) >= window)
            {
                w.times.pop_front();
            }
            let limit = self.policy.max_refusals as usize;
            while w.times.len() > limit + 1 {
                w.times.pop_front();
            }
            let quiet = w.last_alert.is_none_or(|t| now.saturating_sub(t) >= window);
            if w.times.len() > limit && quiet {
                w.last_alert = Some(now);
                Some(w.times.len())
            } else {
                None
            }
        };
        if let Some(count) = fire {
            let message = format!(
                "more than {} refusals for `{who}` within {:?} (latest: `{code}` on `{tool}`)",
                self.policy.max_refusals, window
            );
            self.fire(
                AlertKind::Refusals,
                Some(who),
                Some(tool),
                u32::try_from(count).unwrap_or(u32::MAX),
                message,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Clone)]
    struct Collect(Arc<Mutex<Vec<Alert>>>);
    impl Alerter for Collect {
        fn alert(&self, alert: &Alert) {
            self.0.lock().unwrap().push(alert.clone());
        }
    }

    #[test]
    fn one_alert_per_principal_per_window() {
        let clock = Clock::manual();
        let seen = Collect::default();
        let alerts = Alerts::new(
            Some(Arc::new(seen.clone())),
            AlertPolicy::refusals(3, Duration::from_secs(10)),
            clock.clone(),
        );
        for _ in 0..3 {
            alerts.refusal(Some("mallory"), "t", "forbidden");
        }
        assert!(
            seen.0.lock().unwrap().is_empty(),
            "three refusals are within the limit"
        );
        for _ in 0..20 {
            alerts.refusal(Some("mallory"), "t", "forbidden");
        }
        alerts.refusal(Some("alice"), "t", "forbidden");
        assert_eq!(
            seen.0.lock().unwrap().len(),
            1,
            "one alert for the whole burst"
        );
        assert_eq!(
            seen.0.lock().unwrap()[0].principal.as_deref(),
            Some("mallory")
        );
        clock.advance(Duration::from_secs(11));
        alerts.refusal(Some("mallory"), "t", "forbidden");
        assert_eq!(
            seen.0.lock().unwrap().len(),
            1,
            "the window slid: one refusal is not a burst"
        );
        for _ in 0..3 {
            alerts.refusal(Some("mallory"), "t", "forbidden");
        }
        assert_eq!(
            seen.0.lock().unwrap().len(),
            2,
            "a new burst in a new window alerts again"
        );
    }

    #[test]
    fn webhook_urls_are_plain_http() {
        assert!(Target::parse("https://example.com/hook").is_err());
        let t = Target::parse("http://127.0.0.1:9000/alerts").unwrap();
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:9000", "/alerts")
        );
        assert_eq!(
            Target::parse("http://localhost").unwrap().host,
            "localhost:80"
        );
    }
}
