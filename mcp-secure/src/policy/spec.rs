use std::num::NonZeroU32;
use std::time::Duration;

use super::SandboxSpec;

/// The permission class of a tool. It decides the default approval, the annotations sent to
/// clients and whether a privileged role is needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Reads data, changes nothing. Allowed by default for the tool's role.
    Read,
    /// Changes data. Needs at least explicit approval.
    Write,
    /// Destroys data. Needs human approval.
    Delete,
    /// Changes the system itself (keys, users, configuration). Needs a privileged role and
    /// human approval.
    Admin,
}

impl Kind {
    /// The stable lower-case name used in attributes, manifests and audit records.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Delete => "delete",
            Kind::Admin => "admin",
        }
    }

    /// The weakest approval this class accepts.
    pub const fn minimum_approval(self) -> Approval {
        match self {
            Kind::Read => Approval::None,
            Kind::Write => Approval::Explicit,
            Kind::Delete | Kind::Admin => Approval::Human,
        }
    }

    /// True when a call of this kind may change state, so its attempt is recorded before the
    /// body runs (write-ahead audit).
    pub const fn is_mutating(self) -> bool {
        !matches!(self, Kind::Read)
    }
}

/// How a call must be approved before its body runs. Ordered from weakest to strongest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Approval {
    /// No approval: the call runs once it passes the other guards.
    None,
    /// A two-phase confirmation: a first call returns a single-use token, a second call with the
    /// token runs the tool.
    Explicit,
    /// A human must say yes for this exact call.
    Human,
}

impl Approval {
    /// The stable lower-case name used in attributes, manifests and audit records.
    pub const fn as_str(self) -> &'static str {
        match self {
            Approval::None => "none",
            Approval::Explicit => "explicit",
            Approval::Human => "human",
        }
    }
}

/// A rate: `count` calls per `per`, enforced as a GCRA with a burst of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    count: NonZeroU32,
    per: Duration,
}

impl Rate {
    /// A rate of `count` calls per `per`. Returns `None` when either is zero.
    pub const fn new(count: u32, per: Duration) -> Option<Self> {
        match NonZeroU32::new(count) {
            Some(count) if !per.is_zero() => Some(Rate { count, per }),
            _ => None,
        }
    }

    /// Parses the attribute grammar `"N/sec|min|hour|day"`, e.g. `"60/min"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (count, unit) = text
            .split_once('/')
            .ok_or_else(|| format!("rate `{text}` must look like `60/min`"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("rate `{text}` must start with a whole number of calls"))?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => {
                return Err(format!(
                    "rate unit `{other}` is not one of `sec`, `min`, `hour`, `day`"
                ));
            }
        };
        Rate::new(count, per).ok_or_else(|| format!("rate `{text}` must allow at least one call"))
    }

    /// Calls allowed per period (also the burst size).
    pub const fn count(&self) -> u32 {
        self.count.get()
    }

    /// The period.
    pub const fn per(&self) -> Duration {
        self.per
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "sec".to_string(),
            60 => "min".to_string(),
            3600 => "hour".to_string(),
            86_400 => "day".to_string(),
            _ => format!("{}ms", self.per.as_millis()),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Everything the framework enforces for one tool, fixed at compile time by `#[tool]`.
///
/// Tool authors do not build this by hand; the generated code holds it in a `static`.
#[derive(Debug)]
#[non_exhaustive]
pub struct ToolSpec {
    /// The tool's name on the wire.
    pub name: &'static str,
    /// A human-readable title.
    pub title: Option<&'static str>,
    /// The description sent to clients (the doc comment).
    pub description: &'static str,
    /// The permission class.
    pub kind: Kind,
    /// The role a caller must reach (directly or by inheritance).
    pub role: &'static str,
    /// The approval a call needs.
    pub approval: Approval,
    /// Per-principal rate for this tool.
    pub rate: Option<Rate>,
    /// Most calls of this tool in flight at once.
    pub concurrency: Option<u32>,
    /// Longest a call may run.
    pub timeout: Option<Duration>,
    /// Largest raw arguments accepted, in bytes.
    pub max_input: usize,
    /// Argument fields whose values never reach an audit record or an error message.
    pub secret_fields: &'static [&'static str],
    /// The body runs in a sandboxed worker process (`sandbox = "process"`).
    pub sandbox: Option<SandboxSpec>,
}

impl ToolSpec {
    /// The default cap on raw arguments when `max_input` is absent: 64 KiB.
    pub const DEFAULT_MAX_INPUT: usize = 64 * 1024;

    /// Used by the generated code. Prefer reading the fields.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub const fn __new(
        name: &'static str,
        title: Option<&'static str>,
        description: &'static str,
        kind: Kind,
        role: &'static str,
        approval: Approval,
        rate: Option<Rate>,
        concurrency: Option<u32>,
        timeout: Option<Duration>,
        max_input: Option<usize>,
        secret_fields: &'static [&'static str],
        sandbox: Option<SandboxSpec>,
    ) -> Self {
        ToolSpec {
            name,
            title,
            description,
            kind,
            role,
            approval,
            rate,
            concurrency,
            timeout,
            max_input: match max_input {
                Some(n) => n,
                None => Self::DEFAULT_MAX_INPUT,
            },
            secret_fields,
            sandbox,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_grammar() {
        let r = Rate::parse("60/min").unwrap();
        assert_eq!((r.count(), r.per()), (60, Duration::from_secs(60)));
        assert_eq!(Rate::parse("5/sec").unwrap().per(), Duration::from_secs(1));
        assert_eq!(Rate::parse("1/day").unwrap().to_string(), "1/day");
        assert!(Rate::parse("0/min").unwrap_err().contains("at least one"));
        assert!(
            Rate::parse("60/fortnight")
                .unwrap_err()
                .contains("fortnight")
        );
        assert!(Rate::parse("-1/min").is_err());
        assert!(Rate::parse("60").is_err());
    }

    #[test]
    fn approvals_are_ordered() {
        assert!(Approval::None < Approval::Explicit && Approval::Explicit < Approval::Human);
        assert_eq!(Kind::Delete.minimum_approval(), Approval::Human);
        assert_eq!(Kind::Write.minimum_approval(), Approval::Explicit);
    }
}
