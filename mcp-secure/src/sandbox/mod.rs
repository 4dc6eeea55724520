//! Sandboxed tools: `#[tool(..., sandbox = "process", net = "none", fs = "reports, scratch")]`
//! runs the tool's body in a separate, restricted worker process.
//!
//! The server keeps the whole pipeline (size, authentication, roles, rate, validation,
//! approval, concurrency, output cap, audit); only the run step changes. The server sends the
//! validated arguments and the caller to a worker, which re-parses them with the same generated
//! code and runs the body; on timeout, cancellation or a dropped request the server kills and
//! reaps the worker. A worker is the server's own executable started again with
//! [`WORKER_ENV`] set, whose `main` calls [`worker()`] first thing; it serves one call and exits.
//! By default each sandboxed tool keeps [`SandboxConfig::DEFAULT_POOL`] workers pre-started
//! and already sandboxed.
//!
//! Before the body runs, the worker: takes its protocol pipes to private descriptors (its
//! stdout becomes its stderr) and closes every other descriptor it inherited; makes sure it is
//! single-threaded; dies with the server; sets
//! rlimits (address space, CPU seconds, open files, processes, file size, no core dumps); drops
//! every capability; sets `no_new_privs`; restricts itself with Landlock (only the granted
//! paths, read-only unless `:rw`; no TCP bind, TCP connect only to the loopback ports for
//! `net = "loopback"`; no signals or abstract Unix sockets outside); and installs seccomp
//! filters refusing with `EPERM` `execve`, `fork`, `clone` of processes (`clone3` gets
//! `ENOSYS`), `ptrace`, other processes' memory, mounts, namespaces, `chroot`, module and kexec
//! loading, `bpf`, `perf_event_open`, keyrings, `io_uring`, raising limits, clearing the
//! parent-death signal, signals to other processes, `listen` unless `net = "any"` and, for
//! `net = "none"`, every `socket`.
//!
//! Where the kernel lacks a feature ([`KernelFeature`]), `build` refuses the tool unless
//! [`SandboxConfig::accept_weaker`] accepts running without it, and then logs a warning.

#[cfg(all(target_os = "linux", feature = "sandbox"))]
mod apply;
mod config;
mod kernel;
#[cfg(all(target_os = "linux", feature = "sandbox"))]
mod pool;
#[cfg(all(target_os = "linux", feature = "sandbox"))]
mod runner;
// Without the sandbox the worker protocol is not spoken; the policy types in it are still
// built, so that a sandboxed tool's declaration is checked before the tool is refused.
#[cfg_attr(not(all(target_os = "linux", feature = "sandbox")), allow(dead_code))]
mod wire;
mod worker;

pub use config::SandboxConfig;
pub use kernel::{KernelFeature, KernelSupport};
pub use worker::{WORKER_ENV, principal, root, scratch, worker};

pub(crate) use config::Prepared;
#[cfg(all(target_os = "linux", feature = "sandbox"))]
pub(crate) use runner::Runner;

/// Outside Linux, or without the `sandbox` feature, no sandboxed tool can be built
/// (`Prepared::policy` refuses), so no runner is ever made; were one made, it would refuse
/// every call.
#[cfg(not(all(target_os = "linux", feature = "sandbox")))]
pub(crate) struct Runner;

#[cfg(not(all(target_os = "linux", feature = "sandbox")))]
impl Runner {
    pub(crate) fn new(
        _tool: &'static str,
        _policy: wire::Policy,
        _with_scratch: bool,
        _launch: std::sync::Arc<config::Launch>,
    ) -> Self {
        Runner
    }

    pub(crate) async fn call(
        &self,
        _args: rmcp::model::JsonObject,
        _principal: &crate::auth::Principal,
        _limit: Option<std::time::Duration>,
        _cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<rmcp::model::CallToolResult, crate::ToolError> {
        Err(crate::ToolError::new(
            crate::error::ErrorCode::Internal,
            config::why_unavailable(),
        ))
    }
}
