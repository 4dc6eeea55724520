//! The typed model the checks produce and the emitter reads. Everything here has already been
//! checked: `expand` makes no decision and reports no error.

use syn::{Attribute, Ident, ItemFn, LitStr, Path, Type};

use crate::rules::OwnRule;

/// The permission class of a tool (`kind = "..."`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Read,
    Write,
    Delete,
    Admin,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Delete => "delete",
            Kind::Admin => "admin",
        }
    }

    /// The approval used when the attribute gives none; also the weakest one accepted.
    pub(crate) fn minimum_approval(self) -> Approval {
        match self {
            Kind::Read => Approval::None,
            Kind::Write => Approval::Explicit,
            Kind::Delete | Kind::Admin => Approval::Human,
        }
    }

    /// The name of the runtime variant, `Read` for `::mcp_secure::__private::Kind::Read`.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            Kind::Read => "Read",
            Kind::Write => "Write",
            Kind::Delete => "Delete",
            Kind::Admin => "Admin",
        }
    }
}

/// How a call is approved (`approval = "..."`), ordered from weakest to strongest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Approval {
    None,
    Explicit,
    Human,
}

impl Approval {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Approval::None => "none",
            Approval::Explicit => "explicit",
            Approval::Human => "human",
        }
    }

    pub(crate) fn variant(self) -> &'static str {
        match self {
            Approval::None => "None",
            Approval::Explicit => "Explicit",
            Approval::Human => "Human",
        }
    }
}

/// `count` calls per `per_secs` seconds (`rate = "60/min"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rate {
    pub(crate) count: u32,
    pub(crate) per_secs: u64,
}

/// What a sandboxed tool's network may reach (`net = "..."`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Net {
    None,
    Loopback,
    Any,
}

impl Net {
    /// The name of the runtime variant, `None` for `::mcp_secure::__private::Network::None`.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            Net::None => "None",
            Net::Loopback => "Loopback",
            Net::Any => "Any",
        }
    }
}

/// What one entry of `fs = "..."` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FsTarget {
    /// A root configured at run time: `SandboxConfig::root("reports", dir)`.
    Root(String),
    /// An absolute path.
    Path(String),
    /// The per-call private folder, always read-write.
    Scratch,
}

/// One entry of `fs = "..."`: read-only unless `:rw`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FsEntry {
    pub(crate) target: FsTarget,
    pub(crate) write: bool,
}

/// `sandbox = "process"` with its `net` and `fs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sandbox {
    pub(crate) net: Net,
    pub(crate) fs: Vec<FsEntry>,
}

/// One `#[tool]` function, checked.
pub(crate) struct Tool {
    /// The user's function as it is emitted: unchanged but for the parameter attributes that
    /// moved to the arguments struct.
    pub(crate) func: ItemFn,
    /// The name on the wire.
    pub(crate) name: String,
    pub(crate) title: Option<String>,
    pub(crate) description: String,
    pub(crate) kind: Kind,
    /// The role, as a literal spanned at the user's `role = "..."`.
    pub(crate) role: LitStr,
    pub(crate) approval: Approval,
    pub(crate) rate: Option<Rate>,
    pub(crate) concurrency: Option<u32>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) max_input: Option<u64>,
    /// The body runs in a sandboxed worker process (`sandbox = "process"`).
    pub(crate) sandbox: Option<Sandbox>,
    /// `S` of the `Ctx<S>` parameter; `None` when the tool takes no context.
    pub(crate) state: Option<Type>,
    /// The parameters, in the order the function takes them.
    pub(crate) args: Vec<Arg>,
    /// The declared return type.
    pub(crate) ret: Type,
}

/// One parameter of a tool function.
pub(crate) enum Arg {
    /// The `Ctx<S>` extractor, passed by the server.
    Ctx,
    /// An argument the client sends: one field of the arguments struct.
    Field(Box<Field>),
}

/// A parameter that becomes a field of the generated arguments struct.
pub(crate) struct Field {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// Attributes that move to the struct field: doc comments, `#[validate]`, `#[serde]`,
    /// `#[schemars]`.
    pub(crate) attrs: Vec<Attribute>,
    /// The field's name in the JSON arguments.
    pub(crate) wire_name: String,
    /// A `Secret<_>`: its value is redacted in audit records and errors.
    pub(crate) secret: bool,
    /// Neither a length rule nor an opt-out bounds it: emit `assert_bounded::<T>()`.
    pub(crate) assert_bounded: bool,
    /// Its `#[validate(..)]` rules.
    pub(crate) rules: Rules,
}

/// The `#[validate]` rules of one parameter, by who implements them.
pub(crate) enum Rules {
    /// No `#[validate]` attribute.
    None,
    /// Only `length` and `range` rules with literal bounds: the generated code checks them
    /// (see `rules`).
    Own(Vec<OwnRule>),
    /// Any other rule: validator's `Validate` derive.
    Derive,
}

/// How the arguments struct checks its rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Validation {
    /// No rules: no impl, `parse_args_without_rules`.
    None,
    /// Only `Rules::Own`: the macro writes `CheckRules`, `parse_args_checked`.
    Own,
    /// Some `Rules::Derive`: validator's derive writes `Validate`, `parse_args`.
    Derive,
}

impl Tool {
    pub(crate) fn fields(&self) -> impl Iterator<Item = &Field> {
        self.args.iter().filter_map(|a| match a {
            Arg::Field(f) => Some(&**f),
            Arg::Ctx => None,
        })
    }

    /// How the arguments struct checks its rules.
    pub(crate) fn validation(&self) -> Validation {
        let mut validation = Validation::None;
        for f in self.fields() {
            match f.rules {
                Rules::None => {}
                Rules::Own(_) => validation = Validation::Own,
                Rules::Derive => return Validation::Derive,
            }
        }
        validation
    }
}

/// One role of `roles! { ... }`, checked.
pub(crate) struct RoleDecl {
    pub(crate) name: LitStr,
    /// Roles inherited directly.
    pub(crate) inherits: Vec<LitStr>,
    /// Declared with `: *`: inherits every role and may call `admin` tools.
    pub(crate) privileged: bool,
}

/// One entry of `tools![...]`: the path the user wrote.
pub(crate) struct ToolPath {
    pub(crate) path: Path,
}

/// Which check of `__mcs_check_role!` failed (`__role_error!(@role ..)` or `(@admin ..)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoleCheck {
    Declared,
    Privileged,
}

/// The input of `__role_error!`: the role the user wrote and the roles that would have passed.
pub(crate) struct RoleError {
    pub(crate) check: RoleCheck,
    pub(crate) role: LitStr,
    pub(crate) accepted: Vec<String>,
}
