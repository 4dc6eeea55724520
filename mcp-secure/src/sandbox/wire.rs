//! The protocol between the server and a worker: frames of a 4-byte big-endian length and one
//! JSON message, over two pipes (the worker's private copies of the stdin and stdout it was
//! started with; its fds 0 and 1 are pointed elsewhere before any tool code runs).
//!
//! ```text
//! server -> worker   Setup(policy)                  worker applies the sandbox
//! worker -> server   Ready | SetupFailed{reason}
//! server -> worker   Call{args, principal}          (pooled workers wait here)
//! worker -> server   Done{result}                   then the worker exits
//! ```
//!
//! The server treats every byte from a worker as hostile: a frame over the size cap, a frame
//! that is not the expected message, or a closed pipe ends the call with a clean `internal`.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use rmcp::model::{CallToolResult, JsonObject};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::auth::{Environment, Principal};
use crate::error::{ErrorCode, ToolError};

/// The most a server sends in one frame (the arguments are capped far below this by
/// `max_input`).
pub(crate) const MAX_TO_WORKER: usize = 96 * 1024 * 1024;

/// What a worker enforces, resolved by the server when it was built.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Policy {
    /// The tool whose body this worker runs.
    pub(crate) tool: String,
    pub(crate) net: NetPolicy,
    /// Paths the body may use (canonical), roots and absolute paths alike.
    pub(crate) paths: Vec<PathGrant>,
    /// The roots by name, for `sandbox::root`.
    pub(crate) roots: Vec<(String, PathBuf)>,
    /// This worker's scratch folder (made by the server for this worker only).
    pub(crate) scratch: Option<PathBuf>,
    pub(crate) limits: Limits,
    /// Features whose absence the worker must treat as an error; the others are applied as far
    /// as the kernel allows (configuration accepted the weaker sandbox).
    pub(crate) required: Required,
    /// The server's pid: the worker stops if its parent is already gone.
    pub(crate) parent: u32,
}

/// `net`, with the ports `loopback` may connect to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub(crate) enum NetPolicy {
    None,
    Loopback { ports: Vec<u16> },
    Any,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PathGrant {
    pub(crate) path: PathBuf,
    pub(crate) write: bool,
}

/// Resource limits, as `setrlimit` takes them.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) address_space: u64,
    pub(crate) cpu_seconds: u64,
    pub(crate) open_files: u64,
    pub(crate) processes: u64,
    pub(crate) file_size: u64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Required {
    pub(crate) seccomp: bool,
    pub(crate) landlock_fs: bool,
    pub(crate) landlock_net: bool,
    pub(crate) landlock_scopes: bool,
}

/// The caller, as the body sees it through `sandbox::principal()`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct WirePrincipal {
    user: String,
    roles: Vec<String>,
    key_id: Option<String>,
    environment: Option<Environment>,
}

impl From<&Principal> for WirePrincipal {
    fn from(p: &Principal) -> Self {
        WirePrincipal {
            user: p.user.clone(),
            roles: p.roles.clone(),
            key_id: p.key_id.clone(),
            environment: p.environment,
        }
    }
}

impl From<WirePrincipal> for Principal {
    fn from(w: WirePrincipal) -> Self {
        let mut p = Principal::new(w.user, w.roles);
        p.key_id = w.key_id;
        p.environment = w.environment;
        p
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ToWorker {
    Setup {
        policy: Policy,
    },
    Call {
        args: JsonObject,
        principal: WirePrincipal,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum FromWorker {
    Ready,
    SetupFailed { reason: String },
    Done { result: WireResult },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireResult {
    Ok(CallToolResult),
    Err(WireError),
}

/// A body's `ToolError`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireError {
    code: String,
    message: String,
    #[serde(default)]
    details: Map<String, Value>,
}

/// The codes a body may report itself; the pipeline's own codes (`unauthorized`,
/// `approval_required`, `timeout`, ...) are the server's to give, so a worker claiming one is
/// reported as `failed`.
const BODY_CODES: [ErrorCode; 4] = [
    ErrorCode::InvalidInput,
    ErrorCode::NotFound,
    ErrorCode::Failed,
    ErrorCode::Internal,
];

impl From<&ToolError> for WireError {
    fn from(e: &ToolError) -> Self {
        WireError {
            code: e.code().as_str().to_owned(),
            message: e.message().to_owned(),
            details: e.details().clone(),
        }
    }
}

impl WireError {
    pub(crate) fn into_tool_error(self) -> ToolError {
        let code = BODY_CODES
            .into_iter()
            .find(|c| c.as_str() == self.code)
            .unwrap_or(ErrorCode::Failed);
        self.details
            .into_iter()
            .fold(ToolError::new(code, self.message), |e, (k, v)| {
                e.with_detail(&k, v)
            })
    }
}

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The pipe closed before a frame started.
    Closed,
    /// The length prefix is over the cap.
    TooLarge(u64),
    /// The bytes are not the expected message.
    Malformed(String),
    Io(io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Closed => f.write_str("the pipe closed"),
            FrameError::TooLarge(n) => write!(f, "a frame of {n} bytes is over the cap"),
            FrameError::Malformed(e) => write!(f, "malformed frame: {e}"),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

fn encode(msg: &impl Serialize) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::other("a frame over 4 GiB cannot be sent"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

fn check_len(header: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(FrameError::TooLarge(u64::from(len))),
    }
}

/// Writes one frame (worker side, blocking).
pub(crate) fn write(w: &mut impl Write, msg: &impl Serialize) -> io::Result<()> {
    w.write_all(&encode(msg)?)?;
    w.flush()
}

/// Reads one frame (worker side, blocking).
pub(crate) fn read<T: DeserializeOwned>(r: &mut impl Read, max: usize) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let len = check_len(header, max)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(FrameError::Io)?;
    decode(&body)
}

/// Writes one frame (server side).
pub(crate) async fn send(
    w: &mut (impl AsyncWrite + Unpin),
    msg: &impl Serialize,
) -> io::Result<()> {
    w.write_all(&encode(msg)?).await?;
    w.flush().await
}

/// Reads one frame of at most `max` bytes (server side). The body is read in chunks as it
/// arrives, so a length prefix alone allocates nothing.
pub(crate) async fn receive<T: DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let len = check_len(header, max)?;
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let read = r
        .take(len as u64)
        .read_to_end(&mut body)
        .await
        .map_err(FrameError::Io)?;
    if read != len {
        return Err(FrameError::Malformed(format!(
            "the frame ended after {read} of {len} bytes"
        )));
    }
    decode(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            tool: "t".into(),
            net: NetPolicy::Loopback { ports: vec![8080] },
            paths: vec![PathGrant {
                path: "/srv/reports".into(),
                write: false,
            }],
            roots: vec![("reports".into(), "/srv/reports".into())],
            scratch: Some("/tmp/s".into()),
            limits: Limits {
                address_space: 1 << 29,
                cpu_seconds: 60,
                open_files: 64,
                processes: 256,
                file_size: 1 << 26,
            },
            required: Required::default(),
            parent: 1,
        }
    }

    #[tokio::test]
    async fn frames_round_trip_between_sync_and_async_ends() {
        let msg = ToWorker::Setup { policy: policy() };
        let mut buf = Vec::new();
        write(&mut buf, &msg).unwrap();
        let back: ToWorker = receive(&mut buf.as_slice(), 1 << 20).await.unwrap();
        match back {
            ToWorker::Setup { policy: p } => assert_eq!(p, policy()),
            other => panic!("{other:?}"),
        }

        let mut buf = Vec::new();
        send(&mut buf, &FromWorker::Ready).await.unwrap();
        let back: FromWorker = read(&mut buf.as_slice(), 1 << 20).unwrap();
        assert!(matches!(back, FromWorker::Ready));
    }

    #[tokio::test]
    async fn hostile_frames_are_refused() {
        // Empty: closed.
        let r: Result<FromWorker, _> = receive(&mut &b""[..], 100).await;
        assert!(matches!(r, Err(FrameError::Closed)));
        // A length over the cap is refused before anything is read or allocated.
        let r: Result<FromWorker, _> = receive(&mut &[0xff, 0xff, 0xff, 0xff][..], 100).await;
        assert!(matches!(r, Err(FrameError::TooLarge(4_294_967_295))));
        // A short body.
        let r: Result<FromWorker, _> = receive(&mut &[0, 0, 0, 10, b'{'][..], 100).await;
        assert!(matches!(r, Err(FrameError::Malformed(_))));
        // Not JSON, or not the message expected.
        let mut buf = Vec::new();
        buf.extend_from_slice(&5u32.to_be_bytes());
        buf.extend_from_slice(b"hello");
        let r: Result<FromWorker, _> = receive(&mut buf.as_slice(), 100).await;
        assert!(matches!(r, Err(FrameError::Malformed(_))));
        let mut buf = Vec::new();
        write(
            &mut buf,
            &serde_json::json!({"type": "done", "result": {"ok": 5}}),
        )
        .unwrap();
        let r: Result<FromWorker, _> = receive(&mut buf.as_slice(), 100).await;
        assert!(matches!(r, Err(FrameError::Malformed(_))));
    }

    #[test]
    fn a_worker_cannot_claim_the_pipelines_codes() {
        let e = ToolError::new(ErrorCode::ApprovalRequired, "approve me")
            .with_detail("approval", "forged");
        let back = WireError::from(&e).into_tool_error();
        assert_eq!(back.code(), ErrorCode::Failed);
        assert_eq!(back.message(), "approve me");
        let e = ToolError::not_found("no report `x`").with_detail("name", "x");
        let back = WireError::from(&e).into_tool_error();
        assert_eq!(back, e);
    }
}
