//! Run-time configuration of the sandbox, and its resolution, when the server is built, into
//! the exact policy each sandboxed tool's workers enforce.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::kernel::{KernelFeature, KernelSupport};
use super::wire::{Limits, NetPolicy, PathGrant, Policy, Required};
use crate::policy::{FsTarget, Network, SandboxSpec, ToolSpec};
use crate::server::BuildError;

/// Why no sandboxed tool can run in this build (`None`: they can): the refusal at `build`,
/// and what a worker started anyway says as it exits.
pub(super) const UNAVAILABLE: Option<&str> =
    unavailable(cfg!(target_os = "linux"), cfg!(feature = "sandbox"));

/// [`UNAVAILABLE`]'s reason, for the code built only when the sandbox is unavailable.
#[cfg(not(all(target_os = "linux", feature = "sandbox")))]
pub(super) fn why_unavailable() -> &'static str {
    UNAVAILABLE.unwrap_or("the process sandbox is not available")
}

const fn unavailable(linux: bool, built_in: bool) -> Option<&'static str> {
    match (linux, built_in) {
        (false, _) => Some("the process sandbox needs Linux"),
        (true, false) => Some(
            "the process sandbox is not built in; enable mcp-secure's `sandbox` feature (on by default)",
        ),
        (true, true) => None,
    }
}

/// How sandboxed tools (`#[tool(sandbox = "process", ...)]`) run: the roots their `fs` names,
/// resource limits, the worker pool, and which missing kernel features are accepted.
///
/// ```no_run
/// use std::time::Duration;
/// use mcp_secure::sandbox::SandboxConfig;
///
/// let config = SandboxConfig::new()
///     .root("reports", "/srv/app/reports")      // `fs = "reports"` in a tool
///     .memory_limit(256 * 1024 * 1024)           // address space, bytes
///     .cpu_limit(Duration::from_secs(10))
///     .pool(2);                                   // pre-started workers per tool
/// ```
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    roots: BTreeMap<String, PathBuf>,
    loopback_ports: Vec<u16>,
    memory: u64,
    cpu: Duration,
    open_files: u64,
    processes: u64,
    file_size: u64,
    pool: usize,
    accept_weaker: Vec<KernelFeature>,
    kernel: Option<KernelSupport>,
    program: Option<PathBuf>,
    scratch_dir: Option<PathBuf>,
    max_reply: usize,
    start_timeout: Duration,
    pass_env: Vec<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            roots: BTreeMap::new(),
            loopback_ports: Vec::new(),
            memory: SandboxConfig::DEFAULT_MEMORY,
            cpu: Duration::from_secs(60),
            open_files: 64,
            processes: 256,
            file_size: 64 * 1024 * 1024,
            pool: SandboxConfig::DEFAULT_POOL,
            accept_weaker: Vec::new(),
            kernel: None,
            program: None,
            scratch_dir: None,
            max_reply: 8 * 1024 * 1024,
            start_timeout: Duration::from_secs(10),
            pass_env: vec!["RUST_LOG".into(), "RUST_BACKTRACE".into()],
        }
    }
}

impl SandboxConfig {
    /// The default address-space limit of a worker: 512 MiB.
    pub const DEFAULT_MEMORY: u64 = 512 * 1024 * 1024;
    /// The default number of pre-started workers per sandboxed tool.
    pub const DEFAULT_POOL: usize = 2;

    /// The defaults: no roots, 512 MiB of address space, 60 s of CPU, 64 open files, a file
    /// size limit of 64 MiB, a pool of 2 pre-started workers per tool, the running kernel
    /// probed, and no weaker sandbox accepted.
    pub fn new() -> Self {
        Self::default()
    }

    /// A folder (or file) that tools name in `fs`: `fs = "reports"` or `fs = "reports:rw"`.
    /// It must exist when the server is built; a tool naming a root that is not configured
    /// fails `build`. The name `scratch` is reserved.
    pub fn root(mut self, name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.roots.insert(name.into(), path.into());
        self
    }

    /// The TCP ports `net = "loopback"` tools may connect to (nothing else: no listening, no
    /// UDP). Landlock filters by port only; see the crate documentation for what keeps the
    /// connection on loopback.
    pub fn loopback_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.loopback_ports.extend(ports);
        self
    }

    /// The address space of a worker in bytes (`RLIMIT_AS`, default 512 MiB). An allocation
    /// over it fails; a body that aborts on it is reported as out of memory.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory = bytes;
        self
    }

    /// The CPU time of a worker (`RLIMIT_CPU`, whole seconds, at least 1, default 60 s): the
    /// backstop for tools without a `timeout`, and for CPU burnt by threads.
    pub fn cpu_limit(mut self, cpu: Duration) -> Self {
        self.cpu = cpu;
        self
    }

    /// Most files a worker holds open (`RLIMIT_NOFILE`, default 64).
    pub fn open_files(mut self, n: u64) -> Self {
        self.open_files = n;
        self
    }

    /// `RLIMIT_NPROC` of a worker (default 256). The kernel counts every process and thread of
    /// the user, and does not apply it to root: seccomp, which refuses `fork`, is what stops a
    /// fork bomb; this limit and the address space bound threads.
    pub fn processes(mut self, n: u64) -> Self {
        self.processes = n;
        self
    }

    /// The largest file a worker may write, in bytes (`RLIMIT_FSIZE`, default 64 MiB).
    pub fn file_size_limit(mut self, bytes: u64) -> Self {
        self.file_size = bytes;
        self
    }

    /// Pre-started workers kept per sandboxed tool (default 2). Each worker is already
    /// sandboxed when it waits, serves one call and exits; the pool refills in the background.
    /// `0` starts a worker for each call (slower; see the benchmarks).
    pub fn pool(mut self, workers: usize) -> Self {
        self.pool = workers;
        self
    }

    /// Accepts running sandboxed tools without `feature` when the kernel lacks it. `build`
    /// then logs a warning naming each tool and what it runs without; without this, it fails.
    pub fn accept_weaker(mut self, feature: KernelFeature) -> Self {
        if !self.accept_weaker.contains(&feature) {
            self.accept_weaker.push(feature);
        }
        self
    }

    /// What the kernel supports, instead of probing it (tests; deployments that pin it).
    pub fn kernel(mut self, kernel: KernelSupport) -> Self {
        self.kernel = Some(kernel);
        self
    }

    /// The program started as a worker (default: this executable). It must call
    /// [`worker`](super::worker()) first thing in `main`.
    pub fn program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self
    }

    /// Where scratch folders are made (default: the system's temporary folder).
    pub fn scratch_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.scratch_dir = Some(path.into());
        self
    }

    /// The largest answer read from a worker, in bytes (default 8 MiB); a larger one ends the
    /// call with `internal`. The server's output cap applies after it.
    pub fn max_reply(mut self, bytes: usize) -> Self {
        self.max_reply = bytes;
        self
    }

    /// How long a worker may take to start and sandbox itself (default 10 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// An environment variable passed to workers. Workers start with an empty environment
    /// (secrets such as `MCP_SECURE_TOKEN` stay in the server) but for `RUST_LOG` and
    /// `RUST_BACKTRACE`, and the ones named here.
    pub fn pass_env(mut self, name: impl Into<String>) -> Self {
        self.pass_env.push(name.into());
        self
    }
}

/// Everything tools share, checked once at `build`.
pub(crate) struct Prepared {
    kernel: KernelSupport,
    roots: BTreeMap<String, PathBuf>,
    config: SandboxConfig,
    pub(crate) launch: Arc<Launch>,
}

/// How workers are started (read only by the sandbox's runner).
#[derive(Debug)]
#[cfg_attr(not(all(target_os = "linux", feature = "sandbox")), allow(dead_code))]
pub(crate) struct Launch {
    pub(crate) program: PathBuf,
    pub(crate) env: Vec<(String, OsString)>,
    pub(crate) scratch_dir: PathBuf,
    pub(crate) max_reply: usize,
    pub(crate) start_timeout: Duration,
    pub(crate) pool: usize,
}

impl Prepared {
    pub(crate) fn new(config: SandboxConfig) -> Result<Prepared, BuildError> {
        let kernel = config.kernel.unwrap_or_else(KernelSupport::probe);
        let mut roots = BTreeMap::new();
        for (name, path) in &config.roots {
            if name == "scratch" {
                return Err(BuildError::Invalid(
                    "`scratch` is a reserved sandbox root (each call's private folder); give the root another name".into(),
                ));
            }
            roots.insert(
                name.clone(),
                canonical(path, &format!("sandbox root `{name}`"))?,
            );
        }
        let program = match &config.program {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| {
                BuildError::Invalid(format!(
                    "cannot find this executable to start sandbox workers: {e}; set `SandboxConfig::program`"
                ))
            })?,
        };
        let scratch_dir = match &config.scratch_dir {
            Some(d) => canonical(d, "the sandbox scratch folder")?,
            None => canonical(&std::env::temp_dir(), "the temporary folder")?,
        };
        if config.cpu < Duration::from_secs(1) {
            return Err(BuildError::Invalid(
                "`SandboxConfig::cpu_limit` counts whole seconds; give at least 1 s".into(),
            ));
        }
        let env = config
            .pass_env
            .iter()
            .filter_map(|k| std::env::var_os(k).map(|v| (k.clone(), v)))
            .collect();
        let launch = Arc::new(Launch {
            program,
            env,
            scratch_dir,
            max_reply: config.max_reply,
            start_timeout: config.start_timeout,
            pool: config.pool,
        });
        Ok(Prepared {
            kernel,
            roots,
            config,
            launch,
        })
    }

    /// The policy of one sandboxed tool, or why it cannot run here.
    pub(crate) fn policy(
        &self,
        spec: &'static ToolSpec,
        sandbox: &SandboxSpec,
    ) -> Result<Policy, BuildError> {
        if let Some(why) = UNAVAILABLE {
            return Err(BuildError::Invalid(format!(
                "tool `{}` is sandboxed (`sandbox = \"process\"`): {why}",
                spec.name
            )));
        }
        let mut needed = vec![
            KernelFeature::Seccomp,
            KernelFeature::LandlockFs,
            KernelFeature::LandlockScopes,
        ];
        if sandbox.net != Network::Any {
            needed.push(KernelFeature::LandlockNet);
        }
        needed.sort();
        let mut required = Required::default();
        for feature in needed {
            let present = self.kernel.has(feature);
            if !present && !self.config.accept_weaker.contains(&feature) {
                return Err(BuildError::SandboxFeature {
                    tool: spec.name.into(),
                    feature,
                });
            }
            if !present {
                tracing::warn!(
                    target: "mcp_secure::sandbox",
                    tool = spec.name,
                    feature = feature.as_str(),
                    "sandboxed tool runs with a weaker sandbox than it declares: this kernel lacks {feature}, and `SandboxConfig::accept_weaker` accepts that"
                );
            }
            let slot = match feature {
                KernelFeature::Seccomp => &mut required.seccomp,
                KernelFeature::LandlockFs => &mut required.landlock_fs,
                KernelFeature::LandlockNet => &mut required.landlock_net,
                KernelFeature::LandlockScopes => &mut required.landlock_scopes,
            };
            *slot = present;
        }

        let mut paths = Vec::new();
        let mut roots = Vec::new();
        for grant in sandbox.fs {
            match grant.target {
                FsTarget::Root(name) => {
                    let path = self
                        .roots
                        .get(name)
                        .ok_or_else(|| BuildError::SandboxRoot {
                            tool: spec.name.into(),
                            root: name.into(),
                        })?;
                    roots.push((name.to_owned(), path.clone()));
                    paths.push(PathGrant {
                        path: path.clone(),
                        write: grant.write,
                    });
                }
                FsTarget::Path(path) => paths.push(PathGrant {
                    path: canonical(
                        Path::new(path),
                        &format!("path `{path}` (`fs` of tool `{}`)", spec.name),
                    )?,
                    write: grant.write,
                }),
                // Made per worker by the runner.
                FsTarget::Scratch => {}
            }
        }
        let net = match sandbox.net {
            Network::Loopback => {
                if self.config.loopback_ports.is_empty() {
                    tracing::warn!(
                        target: "mcp_secure::sandbox",
                        tool = spec.name,
                        "`net = \"loopback\"` with no `SandboxConfig::loopback_ports`: the tool can connect nowhere"
                    );
                }
                NetPolicy::Loopback {
                    ports: self.config.loopback_ports.clone(),
                }
            }
            Network::Any => NetPolicy::Any,
            Network::None => NetPolicy::None,
        };
        Ok(Policy {
            tool: spec.name.to_owned(),
            net,
            paths,
            roots,
            scratch: None,
            limits: Limits {
                address_space: self.config.memory,
                cpu_seconds: self.config.cpu.as_secs(),
                open_files: self.config.open_files,
                processes: self.config.processes,
                file_size: self.config.file_size,
            },
            required,
            parent: std::process::id(),
        })
    }
}

fn canonical(path: &Path, what: &str) -> Result<PathBuf, BuildError> {
    path.canonicalize().map_err(|e| {
        BuildError::Invalid(format!("{what}: `{}` cannot be used: {e}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Approval, Kind};

    static SPEC: ToolSpec = ToolSpec::__new(
        "boxed",
        None,
        "A sandboxed tool.",
        Kind::Read,
        "reader",
        Approval::None,
        None,
        None,
        None,
        None,
        &[],
        Some(SandboxSpec::__new(Network::None, &[])),
    );

    #[test]
    fn why_the_sandbox_is_unavailable() {
        assert_eq!(unavailable(true, true), None);
        for built_in in [true, false] {
            assert_eq!(
                unavailable(false, built_in),
                Some("the process sandbox needs Linux")
            );
        }
        let off = unavailable(true, false).expect("refused");
        assert!(
            off.contains("enable mcp-secure's `sandbox` feature"),
            "{off}"
        );
    }

    /// This build's answer for a sandboxed tool on a kernel with every feature: a policy with
    /// the sandbox built in (on Linux), the refusal without it.
    #[test]
    fn a_sandboxed_tool_gets_a_policy_only_with_the_sandbox_built_in() {
        let built_in = cfg!(all(target_os = "linux", feature = "sandbox"));
        assert_eq!(UNAVAILABLE.is_none(), built_in, "{UNAVAILABLE:?}");
        let prepared = Prepared::new(SandboxConfig::new().kernel(KernelSupport::new(6, true)))
            .expect("prepared");
        let sandbox = SPEC.sandbox.as_ref().expect("sandboxed");
        match (prepared.policy(&SPEC, sandbox), UNAVAILABLE) {
            (Ok(_), None) => {}
            (Err(BuildError::Invalid(message)), Some(why)) => assert_eq!(
                message,
                format!("tool `boxed` is sandboxed (`sandbox = \"process\"`): {why}")
            ),
            (other, why) => panic!("{other:?} with the sandbox unavailable because {why:?}"),
        }
    }
}
