//! The server's side of a sandboxed call: start a worker (or take a pre-started one from the
//! pool), send it the validated arguments and the principal, wait for its answer under the
//! tool's timeout and the request's cancellation, then kill and reap it whatever happened.
//! A worker is used for one call only.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolResult, JsonObject};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::Launch;
use super::pool::Pool;
use super::wire::{self, FrameError, FromWorker, Policy, ToWorker, WireResult};
use super::worker::WORKER_ENV;
use crate::auth::Principal;
use crate::error::{ErrorCode, ToolError};
use crate::guard::timeout;

/// Runs one sandboxed tool's calls.
pub(crate) struct Runner {
    inner: Arc<RunnerInner>,
}

pub(crate) struct RunnerInner {
    pub(crate) tool: &'static str,
    policy: Policy,
    with_scratch: bool,
    launch: Arc<Launch>,
    pub(crate) pool: Option<Pool>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("tool", &self.inner.tool)
            .finish_non_exhaustive()
    }
}

impl Runner {
    pub(crate) fn new(
        tool: &'static str,
        policy: Policy,
        with_scratch: bool,
        launch: Arc<Launch>,
    ) -> Self {
        let pool = (launch.pool > 0).then(|| Pool::new(launch.pool));
        let runner = Runner {
            inner: Arc::new(RunnerInner {
                tool,
                policy,
                with_scratch,
                launch,
                pool,
            }),
        };
        // Inside a runtime (the usual case), the pool starts filling at once.
        if tokio::runtime::Handle::try_current().is_ok() {
            Pool::start(&runner.inner);
        }
        runner
    }

    /// Runs the call in a worker. The parent keeps everything else of the pipeline; this is
    /// only step 7 for a sandboxed tool.
    pub(crate) async fn call(
        &self,
        args: JsonObject,
        principal: &Principal,
        limit: Option<Duration>,
        cancel: &CancellationToken,
    ) -> Result<CallToolResult, ToolError> {
        let deadline = limit.map(|d| Instant::now() + d);
        let stopped = |why: Stop| {
            cancel.cancel();
            match why {
                Stop::Timeout => timeout::timed_out(limit.unwrap_or_default()),
                Stop::Cancelled => timeout::cancelled(),
            }
        };

        // A worker: pre-started and sandboxed, or started now. Either way it is owned here, so
        // whatever happens below it is killed and reaped before the call returns.
        let mut worker = match Pool::take(&self.inner) {
            Some(worker) => worker,
            None => Worker::spawn(&self.inner).map_err(|e| self.start_failed(&e))?,
        };
        let call = ToWorker::Call {
            args,
            principal: principal.into(),
        };
        let max_reply = self.inner.launch.max_reply;
        let start_timeout = self.inner.launch.start_timeout;
        let outcome = tokio::select! {
            biased;
            () = cancel.cancelled() => Err(Stop::Cancelled),
            () = sleep_until(deadline) => Err(Stop::Timeout),
            r = async {
                worker.handshake(start_timeout).await?;
                Ok::<_, String>(worker.exchange(&call, max_reply).await)
            } => Ok(r),
        };
        let outcome = match outcome {
            Ok(Err(e)) => {
                let end = worker.finish(Duration::from_millis(200)).await;
                return Err(self.start_failed(&format!("{e} (status {:?})", end.status)));
            }
            Ok(Ok(r)) => Ok(r),
            Err(why) => Err(why),
        };
        let tool = self.inner.tool;
        match outcome {
            Err(why) => {
                worker.finish(Duration::ZERO).await;
                Err(stopped(why))
            }
            Ok(Ok(FromWorker::Done { result })) => {
                // It answered and is exiting: reap it off the call's path.
                tokio::spawn(worker.finish(Duration::from_secs(1)));
                match result {
                    WireResult::Ok(r) => Ok(r),
                    WireResult::Err(e) => Err(e.into_tool_error()),
                }
            }
            Ok(Ok(other)) => {
                worker.finish(Duration::ZERO).await;
                tracing::error!(target: "mcp_secure::sandbox", tool, answer = ?other, "sandbox worker answered out of turn");
                Err(broken("malformed_reply", "its answer was malformed"))
            }
            Ok(Err(FrameError::TooLarge(n))) => {
                worker.finish(Duration::ZERO).await;
                tracing::warn!(target: "mcp_secure::sandbox", tool, bytes = n, max = max_reply, "sandbox worker answer over the cap");
                Err(broken(
                    "reply_too_large",
                    &format!("its answer is larger than {max_reply} bytes"),
                ))
            }
            Ok(Err(FrameError::Malformed(e))) => {
                worker.finish(Duration::ZERO).await;
                tracing::warn!(target: "mcp_secure::sandbox", tool, error = %e, "sandbox worker answer is malformed");
                Err(broken("malformed_reply", "its answer was malformed"))
            }
            // The worker stopped without answering: say how, from its exit status.
            Ok(Err(FrameError::Closed | FrameError::Io(_))) => {
                // Let it finish dying (within the deadline) so its status says why.
                let grace = deadline.map_or(Duration::from_secs(1), |d| {
                    d.saturating_duration_since(Instant::now())
                        .min(Duration::from_secs(1))
                });
                let end = worker.finish(grace).await;
                let e = died(&end, &self.inner.policy);
                tracing::warn!(
                    target: "mcp_secure::sandbox",
                    tool,
                    status = ?end.status,
                    reason = e.details().get("sandbox").and_then(|v| v.as_str()).unwrap_or(""),
                    "sandbox worker stopped without answering"
                );
                Err(e)
            }
        }
    }

    fn start_failed(&self, e: &str) -> ToolError {
        tracing::error!(target: "mcp_secure::sandbox", tool = self.inner.tool, error = %e, "sandbox worker could not start");
        broken("start_failed", "the sandbox could not start")
    }
}

enum Stop {
    Timeout,
    Cancelled,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// An `internal` error about a worker, with a stable `sandbox` detail.
fn broken(reason: &'static str, what: &str) -> ToolError {
    ToolError::new(
        ErrorCode::Internal,
        format!("the sandboxed tool failed: {what}"),
    )
    .with_detail("sandbox", reason)
}

/// How a worker that stopped without answering ended, in words a client may see.
fn died(end: &End, policy: &Policy) -> ToolError {
    let mib = |b: u64| b / (1024 * 1024);
    let limits = &policy.limits;
    let Some(status) = end.status else {
        return broken("lost", "it stopped without answering");
    };
    let (reason, what) = match status.signal() {
        _ if end.killed => (
            "closed",
            "it closed its channel without answering".to_string(),
        ),
        Some(libc::SIGXCPU) => (
            "cpu_limit",
            format!("it used up its {} s of CPU time", limits.cpu_seconds),
        ),
        Some(libc::SIGXFSZ) => (
            "file_size_limit",
            format!(
                "it wrote past its file size limit ({} MiB)",
                mib(limits.file_size)
            ),
        ),
        Some(libc::SIGABRT) if end.stderr.contains("memory allocation of") => (
            "out_of_memory",
            format!(
                "it ran out of memory (its limit is {} MiB)",
                mib(limits.address_space)
            ),
        ),
        Some(libc::SIGSEGV | libc::SIGBUS) if end.stderr.contains("overflowed its stack") => {
            ("stack_overflow", "it overflowed its stack".to_string())
        }
        Some(libc::SIGABRT) => ("aborted", "it aborted".to_string()),
        Some(libc::SIGSYS) => (
            "forbidden_syscall",
            "it made a forbidden system call".to_string(),
        ),
        Some(libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE) => {
            ("crashed", "it crashed".to_string())
        }
        Some(libc::SIGKILL) => (
            "killed",
            format!(
                "it was killed, most likely for going over its CPU ({} s) or memory ({} MiB) limit",
                limits.cpu_seconds,
                mib(limits.address_space)
            ),
        ),
        Some(sig) => ("killed", format!("it was killed by signal {sig}")),
        None => (
            "exited",
            format!(
                "it exited with status {} without answering",
                status.code().unwrap_or(-1)
            ),
        ),
    };
    broken(reason, &what)
}

/// How a worker ended.
pub(crate) struct End {
    status: Option<ExitStatus>,
    /// It was still running and was killed by the server.
    killed: bool,
    /// The end of its stderr.
    stderr: String,
}

/// A started worker: its process, its pipes, its stderr logger and its scratch folder.
pub(crate) struct Worker {
    child: Option<Child>,
    input: ChildStdin,
    output: ChildStdout,
    stderr: Option<JoinHandle<String>>,
    scratch: Option<Scratch>,
    /// The policy, until the handshake sends it.
    setup: Option<Policy>,
}

impl Worker {
    /// Starts a worker and waits until it has sandboxed itself (the pool's way).
    pub(crate) async fn start(runner: &RunnerInner) -> Result<Worker, String> {
        let mut worker = Worker::spawn(runner)?;
        match worker.handshake(runner.launch.start_timeout).await {
            Ok(()) => Ok(worker),
            Err(e) => {
                let end = worker.finish(Duration::from_millis(200)).await;
                Err(format!("{e} (status {:?})", end.status))
            }
        }
    }

    /// Starts the process, with its scratch folder, an empty environment but for
    /// [`WORKER_ENV`] and the passed variables, and its stderr going to the log.
    fn spawn(runner: &RunnerInner) -> Result<Worker, String> {
        let launch = &runner.launch;
        let mut policy = runner.policy.clone();
        let scratch = if runner.with_scratch {
            let s = Scratch::new(&launch.scratch_dir, runner.tool)?;
            policy.scratch = Some(s.path.clone());
            Some(s)
        } else {
            None
        };
        let mut cmd = Command::new(&launch.program);
        cmd.env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env(WORKER_ENV, std::process::id().to_string())
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a signal to the server's group does not reach it, and
            // its own kill(0) reaches nothing else (seccomp refuses that anyway).
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", launch.program.display()))?;
        let (Some(input), Some(output), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the worker's pipes are missing".into());
        };
        Ok(Worker {
            stderr: Some(tokio::spawn(log_stderr(runner.tool, child.id(), stderr))),
            child: Some(child),
            input,
            output,
            scratch,
            setup: Some(policy),
        })
    }

    /// Sends the policy and waits until the worker has sandboxed itself; nothing once done.
    async fn handshake(&mut self, limit: Duration) -> Result<(), String> {
        let Some(policy) = self.setup.take() else {
            return Ok(());
        };
        let exchange = async {
            wire::send(&mut self.input, &ToWorker::Setup { policy })
                .await
                .map_err(|e| format!("sending the policy: {e}"))?;
            match wire::receive::<FromWorker>(&mut self.output, 64 * 1024).await {
                Ok(FromWorker::Ready) => Ok(()),
                Ok(FromWorker::SetupFailed { reason }) => {
                    Err(format!("it could not sandbox itself: {reason}"))
                }
                Ok(other) => Err(format!("it answered {other:?} to its policy")),
                Err(e) => Err(format!(
                    "{e} during the handshake; does the worker program's `main` call `mcp_secure::sandbox::worker(..)` first thing?"
                )),
            }
        };
        tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "it did not sandbox itself within {} ms",
                    limit.as_millis()
                ))
            })
    }

    /// True while the process runs.
    pub(crate) fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    async fn exchange(
        &mut self,
        call: &ToWorker,
        max_reply: usize,
    ) -> Result<FromWorker, FrameError> {
        wire::send(&mut self.input, call)
            .await
            .map_err(FrameError::Io)?;
        wire::receive(&mut self.output, max_reply).await
    }

    /// Waits up to `grace` for the process to exit by itself, then kills it, reaps it, and
    /// removes its scratch folder.
    pub(crate) async fn finish(mut self, grace: Duration) -> End {
        let Some(mut child) = self.child.take() else {
            return End {
                status: None,
                killed: false,
                stderr: String::new(),
            };
        };
        let mut killed = false;
        let exited = if grace.is_zero() {
            child.try_wait().ok().flatten()
        } else {
            tokio::time::timeout(grace, child.wait())
                .await
                .ok()
                .and_then(Result::ok)
        };
        let status = match exited {
            Some(status) => Some(status),
            None => {
                killed = child.start_kill().is_ok();
                child.wait().await.ok()
            }
        };
        let stderr = match self.stderr.take() {
            Some(task) => tokio::time::timeout(Duration::from_millis(500), task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => String::new(),
        };
        // Nothing runs in the scratch folder any more.
        drop(self.scratch.take());
        End {
            status,
            killed,
            stderr,
        }
    }
}

impl Drop for Worker {
    /// A worker dropped without `finish` (its call's future was dropped): kill it now and reap
    /// it in the background, then remove its scratch folder.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = child.start_kill();
        let scratch = self.scratch.take();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = child.wait().await;
                drop(scratch);
            });
        }
        // Without a runtime, `kill_on_drop` and tokio's orphan reaper take over.
    }
}

/// A worker's private scratch folder: made empty (mode 0700) before it starts, removed after
/// it is reaped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new(base: &std::path::Path, tool: &str) -> Result<Scratch, String> {
        use std::os::unix::fs::DirBuilderExt;
        let mut bytes = [0u8; 12];
        crate::random::fill(&mut bytes);
        let path = base.join(format!("mcs-scratch-{tool}-{}", hex::encode(bytes)));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("making the scratch folder {}: {e}", path.display()))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(target: "mcp_secure::sandbox", path = %self.path.display(), error = %e, "could not remove a scratch folder");
        }
    }
}

/// Logs what a worker writes to stderr (at most 64 KiB of it) and returns its last 4 KiB, for
/// telling why it stopped. None of it reaches the client.
async fn log_stderr(
    tool: &'static str,
    pid: Option<u32>,
    mut stderr: tokio::process::ChildStderr,
) -> String {
    const LOGGED: usize = 64 * 1024;
    const TAIL: usize = 4 * 1024;
    let mut logged = 0usize;
    let mut tail: Vec<u8> = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > TAIL {
            tail.drain(..tail.len() - TAIL);
        }
        for &b in &buf[..n] {
            if b == b'\n' || line.len() >= 1024 {
                if logged < LOGGED {
                    logged += line.len();
                    tracing::info!(target: "mcp_secure::sandbox::worker", tool, pid, "{}", String::from_utf8_lossy(&line));
                    if logged >= LOGGED {
                        tracing::info!(target: "mcp_secure::sandbox::worker", tool, pid, "(more worker output not logged)");
                    }
                }
                line.clear();
                if b == b'\n' {
                    continue;
                }
            }
            line.push(b);
        }
    }
    if !line.is_empty() && logged < LOGGED {
        tracing::info!(target: "mcp_secure::sandbox::worker", tool, pid, "{}", String::from_utf8_lossy(&line));
    }
    String::from_utf8_lossy(&tail).into_owned()
}
