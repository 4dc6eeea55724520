//! What the running kernel can enforce, probed once when a server with sandboxed tools is
//! built. The probe is a value ([`KernelSupport`]) so tests and unusual deployments can inject
//! one with [`SandboxConfig::kernel`](super::SandboxConfig::kernel).

use std::fmt;

/// A kernel feature a sandboxed tool relies on. A server refuses to build a sandboxed tool
/// whose features the kernel lacks, unless configuration accepts the weaker sandbox with
/// [`SandboxConfig::accept_weaker`](super::SandboxConfig::accept_weaker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KernelFeature {
    /// seccomp filters (`SECCOMP_SET_MODE_FILTER` with `errno` actions): no `execve`, `fork`,
    /// `ptrace`, `mount`, namespaces, module loading, `bpf`, ...; no sockets for `net = "none"`.
    Seccomp,
    /// Landlock filesystem rules with truncation control (Landlock ABI 3, Linux 6.2): only the
    /// folders `fs` names are reachable, read-only unless `:rw`.
    LandlockFs,
    /// Landlock TCP rules (Landlock ABI 4, Linux 6.7): no TCP bind, TCP connect only to the
    /// configured loopback ports. Needed by `net = "none"` and `net = "loopback"`.
    LandlockNet,
    /// Landlock scopes (Landlock ABI 6, Linux 6.12): no signals to processes outside the
    /// worker, no abstract Unix sockets created outside it.
    LandlockScopes,
}

impl KernelFeature {
    /// Every feature, in the order checks report them.
    pub const ALL: [KernelFeature; 4] = [
        KernelFeature::Seccomp,
        KernelFeature::LandlockFs,
        KernelFeature::LandlockNet,
        KernelFeature::LandlockScopes,
    ];

    /// A stable short name: `seccomp`, `landlock-fs`, `landlock-net`, `landlock-scopes`.
    pub const fn as_str(self) -> &'static str {
        match self {
            KernelFeature::Seccomp => "seccomp",
            KernelFeature::LandlockFs => "landlock-fs",
            KernelFeature::LandlockNet => "landlock-net",
            KernelFeature::LandlockScopes => "landlock-scopes",
        }
    }

    /// The Landlock ABI the feature needs (0 for seccomp).
    pub const fn landlock_abi(self) -> u8 {
        match self {
            KernelFeature::Seccomp => 0,
            KernelFeature::LandlockFs => 3,
            KernelFeature::LandlockNet => 4,
            KernelFeature::LandlockScopes => 6,
        }
    }
}

impl fmt::Display for KernelFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KernelFeature::Seccomp => "seccomp filters (`seccomp`)",
            KernelFeature::LandlockFs => {
                "Landlock filesystem rules (`landlock-fs`: Landlock ABI 3, Linux 6.2)"
            }
            KernelFeature::LandlockNet => {
                "Landlock TCP rules (`landlock-net`: Landlock ABI 4, Linux 6.7)"
            }
            KernelFeature::LandlockScopes => {
                "Landlock scopes (`landlock-scopes`: Landlock ABI 6, Linux 6.12)"
            }
        })
    }
}

/// What the kernel supports: the Landlock ABI and seccomp filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSupport {
    landlock_abi: u8,
    seccomp: bool,
}

impl KernelSupport {
    /// A kernel with this Landlock ABI (0: none; values above 6 count as 6) and, or without,
    /// seccomp filters. For tests and for deployments that must pin what is relied on.
    pub const fn new(landlock_abi: u8, seccomp: bool) -> Self {
        KernelSupport {
            landlock_abi: if landlock_abi > 6 { 6 } else { landlock_abi },
            seccomp,
        }
    }

    /// Asks the running kernel.
    pub fn probe() -> Self {
        KernelSupport::new(probe::landlock_abi(), probe::seccomp())
    }

    /// The highest Landlock ABI the kernel offers, as far as this crate uses it (0 to 6).
    pub const fn landlock_abi(&self) -> u8 {
        self.landlock_abi
    }

    /// True when seccomp filters are available.
    pub const fn seccomp(&self) -> bool {
        self.seccomp
    }

    /// True when the kernel provides `feature`.
    pub const fn has(&self, feature: KernelFeature) -> bool {
        match feature {
            KernelFeature::Seccomp => self.seccomp,
            other => self.landlock_abi >= other.landlock_abi(),
        }
    }
}

#[cfg(all(target_os = "linux", feature = "sandbox"))]
mod probe {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, Scope,
    };

    /// The highest ABI whose every access right the kernel accepts as a hard requirement.
    pub(super) fn landlock_abi() -> u8 {
        let hard = || Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
        let fs = |abi| hard().handle_access(AccessFs::from_all(abi)).is_ok();
        if !fs(ABI::V1) {
            return 0;
        }
        if !fs(ABI::V2) {
            return 1;
        }
        if !fs(ABI::V3) {
            return 2;
        }
        if hard().handle_access(AccessNet::from_all(ABI::V4)).is_err() {
            return 3;
        }
        if !fs(ABI::V5) {
            return 4;
        }
        if hard().scope(Scope::from_all(ABI::V6)).is_err() {
            return 5;
        }
        6
    }

    /// Filters with the actions the worker uses (`errno`, `kill_process`).
    pub(super) fn seccomp() -> bool {
        std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").is_ok_and(|actions| {
            let all: Vec<&str> = actions.split_whitespace().collect();
            all.contains(&"errno") && all.contains(&"kill_process")
        })
    }
}

#[cfg(not(all(target_os = "linux", feature = "sandbox")))]
mod probe {
    pub(super) fn landlock_abi() -> u8 {
        0
    }

    pub(super) fn seccomp() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_by_abi() {
        let k = KernelSupport::new(4, true);
        assert!(k.has(KernelFeature::Seccomp));
        assert!(k.has(KernelFeature::LandlockFs));
        assert!(k.has(KernelFeature::LandlockNet));
        assert!(!k.has(KernelFeature::LandlockScopes));
        let k = KernelSupport::new(2, false);
        assert!(!k.has(KernelFeature::Seccomp) && !k.has(KernelFeature::LandlockFs));
        assert_eq!(KernelSupport::new(9, true).landlock_abi(), 6);
    }

    #[cfg(all(target_os = "linux", feature = "sandbox"))]
    #[test]
    fn probe_agrees_with_the_kernel_this_runs_on() {
        // This machine and CI run Linux 6.18 (Landlock ABI 7) with seccomp filters.
        let k = KernelSupport::probe();
        assert!(k.seccomp(), "{k:?}");
        assert_eq!(k.landlock_abi(), 6, "{k:?}");
    }
}
