//! The sandbox a tool declares (`sandbox = "process"`, `net`, `fs`), fixed at compile time. The
//! runtime that enforces it is in [`crate::sandbox`].

/// What a sandboxed tool's body may reach over the network (`net = "..."`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Network {
    /// No sockets at all: `socket(2)` fails with `EPERM`, and Landlock denies every TCP bind
    /// and connect. The default for a sandboxed tool.
    None,
    /// TCP connections to the ports listed in
    /// [`SandboxConfig::loopback_ports`](crate::sandbox::SandboxConfig::loopback_ports) only;
    /// no listening, no UDP, no Unix sockets. A process sandbox filters by port, not by
    /// address: that the port is reached on loopback must come from the network the process
    /// runs in (a container with no other interface). See the crate documentation.
    Loopback,
    /// No network restriction beyond the container's.
    Any,
}

impl Network {
    /// The stable lower-case name used in attributes and manifests.
    pub const fn as_str(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Loopback => "loopback",
            Network::Any => "any",
        }
    }
}

/// What one entry of `fs = "..."` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FsTarget {
    /// A root given at run time with
    /// [`SandboxConfig::root`](crate::sandbox::SandboxConfig::root).
    Root(&'static str),
    /// An absolute path.
    Path(&'static str),
    /// A fresh private folder made for each call and removed after it.
    Scratch,
}

/// One entry of `fs = "..."`: a target and whether the body may change it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct FsGrant {
    /// What is granted.
    pub target: FsTarget,
    /// Read-write (`:rw`); read-only otherwise. Always true for scratch.
    pub write: bool,
}

impl FsGrant {
    /// Used by the generated code.
    #[doc(hidden)]
    pub const fn __root(name: &'static str, write: bool) -> Self {
        FsGrant {
            target: FsTarget::Root(name),
            write,
        }
    }

    /// Used by the generated code.
    #[doc(hidden)]
    pub const fn __path(path: &'static str, write: bool) -> Self {
        FsGrant {
            target: FsTarget::Path(path),
            write,
        }
    }

    /// Used by the generated code.
    #[doc(hidden)]
    pub const fn __scratch() -> Self {
        FsGrant {
            target: FsTarget::Scratch,
            write: true,
        }
    }
}

/// The sandbox of a tool whose body runs in a separate, restricted worker process
/// (`sandbox = "process"`).
#[derive(Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SandboxSpec {
    /// What the body may reach over the network.
    pub net: Network,
    /// The folders and files the body may use; nothing else on the filesystem is reachable.
    pub fs: &'static [FsGrant],
}

impl SandboxSpec {
    /// Used by the generated code.
    #[doc(hidden)]
    pub const fn __new(net: Network, fs: &'static [FsGrant]) -> Self {
        SandboxSpec { net, fs }
    }

    /// True when the tool gets a scratch folder.
    pub fn has_scratch(&self) -> bool {
        self.fs.iter().any(|g| g.target == FsTarget::Scratch)
    }
}
