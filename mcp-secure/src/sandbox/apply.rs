//! Inside a worker, before any tool code runs: the restrictions of its [`Policy`], in the order
//! that lets each step still be taken (rlimits before seccomp forbids `setrlimit`, capabilities
//! before Landlock, seccomp last).
//!
//! 1. one thread only (Landlock and seccomp bind the calling thread and the threads it starts);
//! 2. die with the server (`PR_SET_PDEATHSIG`), and stop if it is already gone;
//! 3. rlimits: address space, CPU seconds, open files, processes, file size, no core dumps;
//! 4. drop every capability (bounding, ambient, effective, permitted, inheritable);
//! 5. `no_new_privs`;
//! 6. Landlock: the filesystem (only the granted paths, read-only unless `:rw`, nothing
//!    executable), TCP (no bind; connect only to the loopback ports), scopes (signals and
//!    abstract Unix sockets stay inside the worker);
//! 7. seccomp: `errno` for the system calls a tool body never needs (below), clearing the
//!    parent-death signal, and `listen` and non-TCP stream protocols unless `net = "any"`.

use std::collections::BTreeMap;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use rustix::process::{Resource, Rlimit, Signal};
use rustix::thread::{CapabilitySet, CapabilitySets};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

use super::wire::{Limits, NetPolicy, Policy};

/// Applies the whole sandbox to this (single-threaded) process.
pub(crate) fn apply(policy: &Policy) -> Result<(), String> {
    single_threaded()?;
    parent_death(policy.parent)?;
    rlimits(&policy.limits)?;
    drop_capabilities()?;
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("no_new_privs: {e}"))?;
    landlock(policy)?;
    seccomp(policy)?;
    Ok(())
}

fn single_threaded() -> Result<(), String> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map_err(|e| format!("cannot count this process's threads in /proc: {e}"))?
        .count();
    if threads == 1 {
        Ok(())
    } else {
        Err(format!(
            "the worker has {threads} threads when it sandboxes itself, and Landlock and seccomp bind only the calling thread; call `mcp_secure::sandbox::worker(..)` first thing in a synchronous `main`, before any runtime or thread starts"
        ))
    }
}

fn parent_death(parent: u32) -> Result<(), String> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))?;
    let now = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get().unsigned_abs());
    if now == parent {
        Ok(())
    } else {
        Err("the server that started this worker is gone".into())
    }
}

fn rlimits(l: &Limits) -> Result<(), String> {
    let set = |resource: Resource, name: &str, soft: u64, hard: u64| {
        rustix::process::setrlimit(
            resource,
            Rlimit {
                current: Some(soft),
                maximum: Some(hard),
            },
        )
        .map_err(|e| format!("setrlimit({name}): {e}"))
    };
    set(Resource::As, "RLIMIT_AS", l.address_space, l.address_space)?;
    // SIGXCPU at the soft limit, SIGKILL a second later.
    set(
        Resource::Cpu,
        "RLIMIT_CPU",
        l.cpu_seconds,
        l.cpu_seconds.saturating_add(1),
    )?;
    set(
        Resource::Nofile,
        "RLIMIT_NOFILE",
        l.open_files,
        l.open_files,
    )?;
    set(Resource::Nproc, "RLIMIT_NPROC", l.processes, l.processes)?;
    set(Resource::Fsize, "RLIMIT_FSIZE", l.file_size, l.file_size)?;
    set(Resource::Core, "RLIMIT_CORE", 0, 0)?;
    Ok(())
}

fn drop_capabilities() -> Result<(), String> {
    // The bounding set needs CAP_SETPCAP to shrink; without it (not root) it is already empty
    // of anything this process could use, so failures are ignored.
    for bit in 0..64 {
        let _ = rustix::thread::remove_capability_from_bounding_set(
            CapabilitySet::from_bits_retain(1 << bit),
        );
    }
    let _ = rustix::thread::clear_ambient_capability_set();
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(|e| format!("capset: {e}"))
}

fn level(required: bool) -> CompatLevel {
    if required {
        CompatLevel::HardRequirement
    } else {
        CompatLevel::BestEffort
    }
}

/// Read access: files and directory listings. Never `Execute`.
fn read_access() -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::ReadDir
}

/// Read-write access: everything Landlock controls but executing and making device nodes.
fn write_access() -> BitFlags<AccessFs> {
    read_access() | (AccessFs::from_write(ABI::V6) & !(AccessFs::MakeChar | AccessFs::MakeBlock))
}

fn landlock(policy: &Policy) -> Result<(), String> {
    let req = policy.required;
    let err = |e: landlock::RulesetError| format!("Landlock: {e}");
    // The filesystem: ABI 3 rights as required (or best effort when accepted weaker), newer
    // rights (device ioctls, ABI 5) as far as the kernel goes.
    let mut ruleset = Ruleset::default()
        .set_compatibility(level(req.landlock_fs))
        .handle_access(AccessFs::from_all(ABI::V3))
        .map_err(err)?
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI::V6))
        .map_err(err)?;
    if !matches!(policy.net, NetPolicy::Any) {
        ruleset = ruleset
            .set_compatibility(level(req.landlock_net))
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(err)?;
    }
    ruleset = ruleset
        .set_compatibility(level(req.landlock_scopes))
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .map_err(err)?;
    let mut created = ruleset
        .set_compatibility(CompatLevel::BestEffort)
        .create()
        .map_err(err)?;

    let grants = policy
        .paths
        .iter()
        .map(|g| (g.path.as_path(), g.write))
        .chain(policy.scratch.as_deref().map(|s| (s, true)));
    for (path, write) in grants {
        let fd = PathFd::new(path).map_err(|e| format!("Landlock: {}: {e}", path.display()))?;
        let mut access = if write { write_access() } else { read_access() };
        if !path.is_dir() {
            access &= AccessFs::from_file(ABI::V6);
        }
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(err)?;
    }
    if let NetPolicy::Loopback { ports } = &policy.net {
        for &port in ports {
            created = created
                .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
                .map_err(err)?;
        }
    }
    let status = created.restrict_self().map_err(err)?;
    if req.landlock_fs && status.ruleset == RulesetStatus::NotEnforced {
        return Err("Landlock is required and was not enforced".into());
    }
    if !status.no_new_privs {
        return Err("no_new_privs was not set".into());
    }
    Ok(())
}

/// System calls a tool body never needs: they fail with `EPERM`.
fn denied() -> Vec<i64> {
    let mut calls = vec![
        // Running other programs.
        libc::SYS_execve,
        libc::SYS_execveat,
        // Other processes: tracing, their memory, their descriptors.
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_process_madvise,
        libc::SYS_pidfd_getfd,
        libc::SYS_pidfd_send_signal,
        libc::SYS_kcmp,
        libc::SYS_tkill,
        // Mounts, namespaces, root changes.
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        // The kernel itself.
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_userfaultfd,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_syslog,
        // io_uring performs operations (sockets, opens) that seccomp does not see.
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        // Raising the limits set above (root could raise hard limits).
        libc::SYS_setrlimit,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_iopl,
        libc::SYS_ioperm,
    ]);
    calls
}

fn cond(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, len, op, value).map_err(|e| format!("seccomp: {e}"))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| format!("seccomp: {e}"))
}

/// The `EPERM` filter: whole calls from [`denied`], and calls refused by their arguments.
fn eperm_rules(policy: &Policy) -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    use SeccompCmpArgLen::{Dword, Qword};
    use SeccompCmpOp::{MaskedEq, Ne};
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied().into_iter().map(|nr| (nr, Vec::new())).collect();
    // New processes: `clone` without CLONE_THREAD (threads stay allowed).
    rules.insert(
        libc::SYS_clone,
        vec![rule(vec![cond(
            0,
            Qword,
            MaskedEq(libc::CLONE_THREAD as u64),
            0,
        )?])?],
    );
    // Setting limits through prlimit64 (reading them, with a null new limit, stays allowed).
    rules.insert(
        libc::SYS_prlimit64,
        vec![rule(vec![cond(2, Qword, Ne, 0)?])?],
    );
    // Signals go only to this process (kill(0) would reach the server's process group).
    let pid = u64::from(std::process::id());
    for nr in [
        libc::SYS_kill,
        libc::SYS_tgkill,
        libc::SYS_rt_sigqueueinfo,
        libc::SYS_rt_tgsigqueueinfo,
    ] {
        rules.insert(nr, vec![rule(vec![cond(0, Dword, Ne, pid)?])?]);
    }
    // Dying with the server: the parent-death signal set above stays.
    rules.insert(
        libc::SYS_prctl,
        vec![rule(vec![cond(
            0,
            Dword,
            SeccompCmpOp::Eq,
            libc::PR_SET_PDEATHSIG as u64,
        )?])?],
    );
    if !matches!(policy.net, NetPolicy::Any) {
        // No listening: `listen` on an unbound socket binds it to a port the kernel picks,
        // which Landlock's `bind` rule never sees.
        rules.insert(libc::SYS_listen, Vec::new());
    }
    match &policy.net {
        NetPolicy::None => {
            rules.insert(libc::SYS_socket, Vec::new());
        }
        NetPolicy::Loopback { .. } => {
            // TCP over IPv4 or IPv6 only: no Unix, netlink, packet or other families, and no
            // datagram, raw or other types (Landlock filters TCP ports; UDP it would not).
            let mut socket = vec![rule(vec![
                cond(0, Dword, Ne, libc::AF_INET as u64)?,
                cond(0, Dword, Ne, libc::AF_INET6 as u64)?,
            ])?];
            for kind in 0..16u64 {
                if kind != libc::SOCK_STREAM as u64 {
                    socket.push(rule(vec![cond(1, Dword, MaskedEq(0xf), kind)?])?);
                }
            }
            // Stream sockets of other protocols (MPTCP, SCTP) are not TCP to Landlock, whose
            // port rules would not apply to them: the protocol is 0 or TCP.
            socket.push(rule(vec![
                cond(2, Dword, Ne, 0)?,
                cond(2, Dword, Ne, libc::IPPROTO_TCP as u64)?,
            ])?);
            rules.insert(libc::SYS_socket, socket);
        }
        NetPolicy::Any => {}
    }
    Ok(rules)
}

fn seccomp(policy: &Policy) -> Result<(), String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("seccomp: {e}"))?;
    let compile =
        |rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32| -> Result<BpfProgram, String> {
            let filter = SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(errno as u32),
                arch,
            )
            .map_err(|e| format!("seccomp: {e}"))?;
            filter
                .try_into()
                .map_err(|e: seccompiler::BackendError| format!("seccomp: {e}"))
        };
    let mut programs = vec![compile(eperm_rules(policy)?, libc::EPERM)?];
    // clone3 cannot be filtered by its flags (they are behind a pointer): ENOSYS makes the C
    // library fall back to clone, which the rule above filters.
    programs.push(compile(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        libc::ENOSYS,
    )?);
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_guard());

    let result = programs
        .iter()
        .try_for_each(|p| seccompiler::apply_filter(p).map_err(|e| format!("seccomp: {e}")));
    match result {
        Err(e) if policy.required.seccomp => Err(e),
        Err(e) => {
            eprintln!("mcp-secure sandbox: seccomp not applied ({e}); accepted by configuration");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// On x86_64 the x32 ABI reaches the same system calls under other numbers (bit 30 set) and
/// the same audit architecture, so a filter by number alone could be walked around:
/// every x32 call fails with `ENOSYS`.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    // BPF_LD | BPF_W | BPF_ABS, BPF_JMP | BPF_JEQ | BPF_K, BPF_JMP | BPF_JGE | BPF_K, BPF_RET | BPF_K.
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const JGE_K: u16 = 0x35;
    const RET_K: u16 = 0x06;
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let op = |code, k, jt, jf| sock_filter { code, jt, jf, k };
    vec![
        op(LD_W_ABS, 4, 0, 0), // seccomp_data.arch
        op(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        op(RET_K, libc::SECCOMP_RET_KILL_PROCESS, 0, 0),
        op(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        op(JGE_K, X32_SYSCALL_BIT, 0, 1),
        op(RET_K, libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32), 0, 0),
        op(RET_K, libc::SECCOMP_RET_ALLOW, 0, 0),
    ]
}
