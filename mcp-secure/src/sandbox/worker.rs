//! The worker: the server's own executable, started again with [`WORKER_ENV`] set, that
//! sandboxes itself and runs one call of one tool. Also what a sandboxed body can ask about
//! its call: [`root`], [`scratch`] and [`principal`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use crate::auth::Principal;
use crate::error::ToolError;
use crate::tool::Tools;

/// Set by the server in a worker's environment (to the server's pid). [`worker`] looks for it.
pub const WORKER_ENV: &str = "MCP_SECURE_SANDBOX_WORKER";

/// What the body of a sandboxed call may know, set once in the worker.
struct Grants {
    roots: Vec<(String, PathBuf)>,
    scratch: Option<PathBuf>,
}

static GRANTS: OnceLock<Grants> = OnceLock::new();
static PRINCIPAL: OnceLock<Principal> = OnceLock::new();

/// Runs this process as a sandbox worker when the server started it as one, and returns the
/// exit code `main` must return; returns `None` (doing nothing) otherwise.
///
/// Call it **first thing in `main`**, before parsing arguments and before starting any thread
/// or async runtime (Landlock and seccomp bind only the calling thread and the threads it
/// starts later, so `main` must be synchronous: build the runtime after this call). Pass every
/// sandboxed tool the server registers:
///
/// ```no_run
/// # use mcp_secure::{ToolError, roles, tool, tools};
/// # roles! { "read-only" }
/// /// Read a report.
/// #[tool(kind = "read", role = "read-only", sandbox = "process", fs = "reports")]
/// async fn read_report(#[validate(length(max = 64))] name: String) -> Result<String, ToolError> {
///     let dir = mcp_secure::sandbox::root("reports")?;
///     std::fs::read_to_string(dir.join(name)).map_err(|e| ToolError::failed(e.to_string()))
/// }
///
/// fn main() -> std::process::ExitCode {
///     if let Some(code) = mcp_secure::sandbox::worker(tools![read_report]) {
///         return code;
///     }
///     // ... build the runtime and the server as usual.
///     std::process::ExitCode::SUCCESS
/// }
/// ```
///
/// A worker reads its policy from the server, moves the protocol pipes to private descriptors
/// (its stdout becomes its stderr, so a `println!` in a body cannot forge an answer), applies
/// the sandbox, reads one call, runs the body and exits. Its stderr is logged by the server and
/// never reaches the client.
pub fn worker(tools: Tools<()>) -> Option<ExitCode> {
    let _ = std::env::var_os(WORKER_ENV)?;
    Some(imp::run(tools))
}

/// The folder (or file) of the root `name` that this tool's `fs` grants, inside a sandboxed
/// body: `sandbox::root("reports")?.join(file)`.
pub fn root(name: &str) -> Result<&'static Path, ToolError> {
    let grants = GRANTS.get().ok_or_else(outside)?;
    grants
        .roots
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.as_path())
        .ok_or_else(|| {
            ToolError::internal(format!(
                "root `{name}` is not granted to this tool; add it to the tool's `fs`"
            ))
        })
}

/// This call's private scratch folder (read-write, empty at the start of the call, removed
/// after it), inside a sandboxed body whose `fs` lists `scratch`.
pub fn scratch() -> Result<&'static Path, ToolError> {
    let grants = GRANTS.get().ok_or_else(outside)?;
    grants.scratch.as_deref().ok_or_else(|| {
        ToolError::internal("this tool has no scratch folder; add `scratch` to its `fs`")
    })
}

/// Who is calling, inside a sandboxed body (sandboxed tools take no `Ctx`).
pub fn principal() -> Result<&'static Principal, ToolError> {
    PRINCIPAL.get().ok_or_else(outside)
}

fn outside() -> ToolError {
    ToolError::internal(
        "`mcp_secure::sandbox::{root, scratch, principal}` work only in the body of a sandboxed tool, inside its worker",
    )
}

#[cfg(all(target_os = "linux", feature = "sandbox"))]
mod imp {
    use std::fs::File;
    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::panic::AssertUnwindSafe;
    use std::sync::Arc;

    use futures::FutureExt;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::ctx::Ctx;
    use crate::sandbox::apply;
    use crate::sandbox::wire::{self, FromWorker, Policy, ToWorker, WireError, WireResult};

    /// The exit code of a worker that could not do its job (its reason is on stderr).
    const FAILED: u8 = 70;

    pub(super) fn run(tools: Tools<()>) -> ExitCode {
        match serve(tools) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mcp-secure sandbox worker: {e}");
                ExitCode::from(FAILED)
            }
        }
    }

    /// The protocol pipes on private descriptors; fd 0 reads `/dev/null`, fd 1 writes to
    /// stderr.
    fn private_channel() -> Result<(File, File), String> {
        let err = |e: rustix::io::Errno| format!("moving the protocol pipes: {e}");
        let input = rustix::io::fcntl_dupfd_cloexec(std::io::stdin().as_fd(), 3).map_err(err)?;
        let output = rustix::io::fcntl_dupfd_cloexec(std::io::stdout().as_fd(), 3).map_err(err)?;
        let null = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
        rustix::stdio::dup2_stdin(&null).map_err(err)?;
        rustix::stdio::dup2_stdout(std::io::stderr().as_fd()).map_err(err)?;
        drop(null);
        let keep = [input.as_raw_fd(), output.as_raw_fd()];
        close_inherited(&keep)?;
        Ok((File::from(input), File::from(output)))
    }

    /// Closes every descriptor above stderr but `keep`: the worker inherits whatever the server
    /// holds without close-on-exec (a socket-activated listener, a file its supervisor handed
    /// it, ...), and Landlock does not restrict descriptors already open. Nothing in the worker
    /// owns them: `worker()` runs first thing in `main`.
    fn close_inherited(keep: &[RawFd]) -> Result<(), String> {
        let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
            .map_err(|e| format!("listing this process's descriptors: {e}"))?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        // The listing's own descriptor is closed by now: it fails with EBADF, ignored.
        for fd in open {
            if fd > 2 && !keep.contains(&fd) {
                let _ = nix::unistd::close(fd);
            }
        }
        Ok(())
    }

    fn serve(tools: Tools<()>) -> Result<(), String> {
        let (mut input, mut output) = private_channel()?;
        let policy: Policy = match wire::read(&mut input, wire::MAX_TO_WORKER) {
            Ok(ToWorker::Setup { policy }) => policy,
            Ok(other) => return Err(format!("expected the policy, got {other:?}")),
            Err(e) => return Err(format!("reading the policy: {e}")),
        };
        let ready = setup(&tools, &policy);
        let reply = match &ready {
            Ok(_) => FromWorker::Ready,
            Err(reason) => FromWorker::SetupFailed {
                reason: reason.clone(),
            },
        };
        wire::write(&mut output, &reply).map_err(|e| format!("answering the server: {e}"))?;
        let (handler, runtime) = ready?;

        // Pooled workers wait here, sandboxed, for their call.
        let (args, principal) = match wire::read(&mut input, wire::MAX_TO_WORKER) {
            Ok(ToWorker::Call { args, principal }) => (args, Principal::from(principal)),
            Ok(other) => return Err(format!("expected a call, got {other:?}")),
            // The server dropped this worker unused.
            Err(wire::FrameError::Closed) => return Ok(()),
            Err(e) => return Err(format!("reading the call: {e}")),
        };
        let _ = PRINCIPAL.set(principal.clone());
        let result = match handler.parse(&args) {
            Ok(parsed) => {
                let ctx = Ctx::new(
                    Arc::new(()),
                    Arc::new(principal),
                    None,
                    &CancellationToken::new(),
                );
                let body = AssertUnwindSafe(handler.call(ctx, parsed)).catch_unwind();
                match runtime.block_on(body) {
                    Ok(result) => result,
                    // The panic message went to stderr (the server's log).
                    Err(_) => Err(ToolError::new(
                        crate::error::ErrorCode::Internal,
                        "internal error",
                    )),
                }
            }
            Err(e) => Err(e),
        };
        let result = match result {
            Ok(r) => WireResult::Ok(r),
            Err(e) => WireResult::Err(WireError::from(&e)),
        };
        wire::write(&mut output, &FromWorker::Done { result })
            .map_err(|e| format!("answering the server: {e}"))?;
        runtime.shutdown_background();
        Ok(())
    }

    type Handler = Arc<dyn crate::tool::ToolHandler<()>>;

    /// Finds the tool, builds the runtime the body runs on, then sandboxes the process.
    fn setup(
        tools: &Tools<()>,
        policy: &Policy,
    ) -> Result<(Handler, tokio::runtime::Runtime), String> {
        let handler = tools
            .0
            .iter()
            .find(|t| t.spec().name == policy.tool && t.spec().sandbox.is_some())
            .cloned()
            .ok_or_else(|| {
                format!(
                    "tool `{}` is not among the sandboxed tools given to `mcp_secure::sandbox::worker(tools![..])`; add it there",
                    policy.tool
                )
            })?;
        let _ = GRANTS.set(Grants {
            roots: policy.roots.clone(),
            scratch: policy.scratch.clone(),
        });
        // A current-thread runtime starts no thread; the blocking pool's threads, started
        // later, inherit the sandbox.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("starting the runtime: {e}"))?;
        apply::apply(policy)?;
        Ok((handler, runtime))
    }
}

#[cfg(not(all(target_os = "linux", feature = "sandbox")))]
mod imp {
    use super::*;

    pub(super) fn run(_tools: Tools<()>) -> ExitCode {
        let why = crate::sandbox::config::why_unavailable();
        eprintln!("mcp-secure sandbox worker: {why}");
        ExitCode::from(70)
    }
}
