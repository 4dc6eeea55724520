//! A file-based approval queue: the server writes `<dir>/<id>.json` (state `pending`) and waits;
//! an operator (another process, e.g. `customer_service approvals approve ID`) rewrites it as
//! `approved` or `denied`. Every write goes to a temporary file first and is renamed into place,
//! so a reader never sees half a file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::seal::{private_file, random_id};
use super::{ApprovalRequest, Approver, Decision};

/// Where a queued approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum QueueState {
    /// Waiting for an operator.
    Pending,
    /// An operator approved it.
    Approved,
    /// An operator denied it.
    Denied,
    /// Nobody decided in time; the call was refused.
    Expired,
}

impl QueueState {
    /// The lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            QueueState::Pending => "pending",
            QueueState::Approved => "approved",
            QueueState::Denied => "denied",
            QueueState::Expired => "expired",
        }
    }
}

/// One entry of the queue, as stored in `<id>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueuedApproval {
    /// The request id (32 hex characters); the file name.
    pub id: String,
    /// Where it stands.
    pub state: QueueState,
    /// The tool.
    pub tool: String,
    /// The caller.
    pub user: String,
    /// What will happen, in plain words (secrets redacted).
    pub summary: String,
    /// The arguments, secrets redacted.
    pub arguments: JsonObject,
    /// When the call asked.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// After this, the call is refused whatever the answer.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Who decided.
    #[serde(default)]
    pub decided_by: Option<String>,
    /// When.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
}

/// Why an operator's decision was not recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The id is not a queue id.
    #[error("`{0}` is not an approval id (32 hex characters)")]
    BadId(String),
    /// No such request.
    #[error("no approval request `{0}`")]
    NotFound(String),
    /// It was already decided (or expired).
    #[error("approval request `{id}` is already {state}")]
    Decided {
        /// The request.
        id: String,
        /// Its state.
        state: &'static str,
    },
    /// It expired before the decision.
    #[error("approval request `{0}` has expired")]
    Expired(String),
    /// Reading or writing the queue failed.
    #[error("approval queue: {0}")]
    Io(#[from] std::io::Error),
}

/// A queue of approvals in a folder, answered by an operator command in another process.
#[derive(Clone, Debug)]
pub struct FileApprovalQueue {
    dir: PathBuf,
    poll: Duration,
}

impl FileApprovalQueue {
    /// Opens (and creates, owner-only) the queue folder.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(FileApprovalQueue {
            dir,
            poll: Duration::from_millis(200),
        })
    }

    /// How often a waiting server looks at the file (default 200 ms).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(1));
        self
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every entry, oldest first.
    pub fn list(&self) -> std::io::Result<Vec<QueuedApproval>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if valid_id(id) {
                match self.read(id) {
                    Ok(Some(q)) => out.push(q),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(id, error = %e, "unreadable approval request skipped"),
                }
            }
        }
        out.sort_by_key(|q| q.requested_at);
        Ok(out)
    }

    /// One entry.
    pub fn get(&self, id: &str) -> Result<QueuedApproval, QueueError> {
        if !valid_id(id) {
            return Err(QueueError::BadId(id.to_owned()));
        }
        self.read(id)?
            .ok_or_else(|| QueueError::NotFound(id.to_owned()))
    }

    /// An operator approves a pending, unexpired request.
    pub fn approve(&self, id: &str, by: &str) -> Result<QueuedApproval, QueueError> {
        self.answer(id, true, by)
    }

    /// An operator denies a pending, unexpired request.
    pub fn deny(&self, id: &str, by: &str) -> Result<QueuedApproval, QueueError> {
        self.answer(id, false, by)
    }

    fn answer(&self, id: &str, approve: bool, by: &str) -> Result<QueuedApproval, QueueError> {
        let mut q = self.get(id)?;
        if q.state != QueueState::Pending {
            return Err(QueueError::Decided {
                id: id.to_owned(),
                state: q.state.as_str(),
            });
        }
        let now = OffsetDateTime::now_utc();
        if now >= q.expires_at {
            return Err(QueueError::Expired(id.to_owned()));
        }
        q.state = if approve {
            QueueState::Approved
        } else {
            QueueState::Denied
        };
        q.decided_by = Some(by.to_owned());
        q.decided_at = Some(now);
        self.write(&q)?;
        Ok(q)
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn read(&self, id: &str) -> std::io::Result<Option<QueuedApproval>> {
        match std::fs::read(self.path(id)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a temporary file, then renames it over `<id>.json`.
    fn write(&self, q: &QueuedApproval) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{}.{}.tmp", q.id, random_id()));
        let result = (|| {
            let mut file = private_file(&tmp)?;
            file.write_all(&serde_json::to_vec_pretty(q).map_err(std::io::Error::other)?)?;
            file.sync_all()?;
            std::fs::rename(&tmp, self.path(&q.id))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    async fn wait(self, request: ApprovalRequest) -> std::io::Result<Decision> {
        let mut q = QueuedApproval {
            id: request.id.clone(),
            state: QueueState::Pending,
            tool: request.tool,
            user: request.user,
            summary: request.summary,
            arguments: request.arguments,
            requested_at: request.requested_at,
            expires_at: request.expires_at,
            decided_by: None,
            decided_at: None,
        };
        self.write(&q)?;
        tracing::info!(id = %q.id, tool = %q.tool, user = %q.user, "approval request queued; waiting for an operator");
        let deadline = tokio::time::Instant::now() + request.timeout;
        loop {
            match self.read(&q.id)? {
                Some(now) if now.state == QueueState::Approved => {
                    return Ok(Decision::Approved {
                        by: now.decided_by.unwrap_or_else(|| "operator".into()),
                    });
                }
                Some(now) if now.state != QueueState::Pending => {
                    return Ok(Decision::Denied {
                        by: now.decided_by,
                        reason: format!("the operator's answer was `{}`", now.state.as_str()),
                    });
                }
                Some(_) => {}
                None => {
                    return Ok(Decision::Denied {
                        by: None,
                        reason: "the approval request was removed".into(),
                    });
                }
            }
            if tokio::time::Instant::now() >= deadline {
                q.state = QueueState::Expired;
                q.decided_at = Some(OffsetDateTime::now_utc());
                self.write(&q)?;
                return Ok(Decision::Denied {
                    by: None,
                    reason: format!(
                        "no operator decided within {} s",
                        request.timeout.as_secs_f64()
                    ),
                });
            }
            tokio::time::sleep(self.poll.min(deadline - tokio::time::Instant::now())).await;
        }
    }
}

impl Approver for FileApprovalQueue {
    fn decide(&self, request: ApprovalRequest) -> BoxFuture<'static, std::io::Result<Decision>> {
        Box::pin(self.clone().wait(request))
    }
}

fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(timeout: Duration) -> ApprovalRequest {
        let now = OffsetDateTime::now_utc();
        ApprovalRequest {
            id: random_id(),
            tool: "purge".into(),
            kind: "delete".into(),
            user: "ed".into(),
            key_id: None,
            arguments: JsonObject::new(),
            digest: String::new(),
            summary: "purge will run as ed with no arguments".into(),
            requested_at: now,
            expires_at: now + timeout,
            timeout,
        }
    }

    #[tokio::test]
    async fn operator_decisions_reach_the_waiting_call() {
        let dir = tempfile::tempdir().unwrap();
        let queue = FileApprovalQueue::open(dir.path())
            .unwrap()
            .poll_interval(Duration::from_millis(5));
        for approve in [true, false] {
            let req = request(Duration::from_secs(30));
            let id = req.id.clone();
            let waiting = tokio::spawn(Approver::decide(&queue, req));
            while queue.get(&id).is_err() {
                tokio::task::yield_now().await;
            }
            assert_eq!(
                queue
                    .list()
                    .unwrap()
                    .iter()
                    .filter(|q| q.state == QueueState::Pending)
                    .count(),
                1
            );
            if approve {
                queue.approve(&id, "olga")
            } else {
                queue.deny(&id, "olga")
            }
            .unwrap();
            let decision = waiting.await.unwrap().unwrap();
            if approve {
                assert_eq!(decision, Decision::Approved { by: "olga".into() });
            } else {
                assert!(
                    matches!(decision, Decision::Denied { by: Some(ref b), .. } if b == "olga")
                );
            }
            assert!(matches!(
                queue.approve(&id, "olga"),
                Err(QueueError::Decided { .. })
            ));
        }
        assert!(matches!(
            queue.approve("../../etc/passwd", "x"),
            Err(QueueError::BadId(_))
        ));
        assert!(matches!(
            queue.deny(&random_id(), "x"),
            Err(QueueError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn no_decision_in_time_is_a_denial_and_cannot_be_approved_later() {
        let dir = tempfile::tempdir().unwrap();
        let queue = FileApprovalQueue::open(dir.path())
            .unwrap()
            .poll_interval(Duration::from_millis(5));
        let req = request(Duration::from_millis(50));
        let id = req.id.clone();
        let decision = Approver::decide(&queue, req).await.unwrap();
        assert!(matches!(decision, Decision::Denied { by: None, .. }));
        assert_eq!(queue.get(&id).unwrap().state, QueueState::Expired);
        assert!(queue.approve(&id, "late").is_err());
    }
}
