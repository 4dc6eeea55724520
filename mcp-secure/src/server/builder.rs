use std::sync::Arc;

use rmcp::model::{Tool, ToolAnnotations};

use super::record::AuditGuard;
use super::{Entry, Inner, SecureServer};
use crate::approval::{ApprovalKeys, Approver};
use crate::audit::{AlertPolicy, Alerter, Alerts, AuditSink, FailurePolicy, TracingSink};
use crate::auth::Authenticator;
use crate::clock::Clock;
use crate::guard::approval::{Approvals, DEFAULT_HUMAN_TIMEOUT, DEFAULT_TOKEN_TTL};
use crate::guard::concurrency::ConcurrencyLimit;
use crate::guard::rate::{DEFAULT_KEY_THRESHOLD, KeyedLimit};
use crate::policy::{Approval, Kind, Rate, RoleDecl, Roles, ToolSpec};
use crate::sandbox::{KernelFeature, Prepared, Runner, SandboxConfig};
use crate::tool::Tools;

/// Why a server could not be built. Every check that can be made before serving is made here.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// No `roles(...)` was given.
    #[error("no roles were given; pass the crate's `ROLES` (from `roles!`) to `.roles(..)`")]
    MissingRoles,
    /// No authenticator was given: there is no unauthenticated mode.
    #[error("no authenticator was given; pass one to `.authenticator(..)` (e.g. an `ApiKeyStore`)")]
    MissingAuthenticator,
    /// The role declaration is inconsistent.
    #[error("invalid roles: {0}")]
    Roles(String),
    /// Two tools have the same name.
    #[error("two tools are named `{0}`")]
    DuplicateTool(String),
    /// A tool names a role that is not declared.
    #[error("tool `{tool}` needs role `{role}`, which is not declared")]
    UnknownRole {
        /// The tool.
        tool: String,
        /// The role.
        role: String,
    },
    /// A tool's policy is weaker than its class allows.
    #[error("tool `{0}` has a policy weaker than its kind allows")]
    WeakPolicy(String),
    /// A value given to the builder is not valid.
    #[error("{0}")]
    Invalid(String),
    /// Configuration asked for a weaker approval than the tool declares: a deployment may make
    /// approvals stricter, never weaker.
    #[error(
        "tool `{tool}` declares `approval = \"{declared}\"`; configuration may make it stricter, not `{requested}`"
    )]
    WeakerApproval {
        /// The tool.
        tool: String,
        /// What the tool declares.
        declared: &'static str,
        /// What configuration asked for.
        requested: &'static str,
    },
    /// A sandboxed tool needs a kernel feature this machine lacks, and configuration does not
    /// accept running without it.
    #[error(
        "tool `{tool}` is sandboxed and needs {feature}, which this kernel does not provide; run it on a kernel that has it, or accept the weaker sandbox with `SandboxConfig::new().accept_weaker(KernelFeature::{feature:?})`"
    )]
    SandboxFeature {
        /// The tool.
        tool: String,
        /// What is missing.
        feature: KernelFeature,
    },
    /// A sandboxed tool names a root (`fs = "name"`) that configuration does not give.
    #[error(
        "tool `{tool}` uses sandbox root `{root}` (`fs`), which is not configured; add `.sandbox(SandboxConfig::new().root(\"{root}\", dir))`"
    )]
    SandboxRoot {
        /// The tool.
        tool: String,
        /// The root's name.
        root: String,
    },
}

/// Builds a [`SecureServer`]. Nothing is served until `build` has checked the whole policy.
pub struct ServerBuilder<S> {
    state: S,
    name: String,
    version: String,
    instructions: Option<String>,
    roles: Option<&'static [RoleDecl]>,
    tools: Tools<S>,
    authenticator: Option<Arc<dyn Authenticator>>,
    audit: Vec<Arc<dyn AuditSink>>,
    audit_policy: FailurePolicy,
    alerters: Vec<Arc<dyn Alerter>>,
    alert_policy: AlertPolicy,
    audit_digest_key: Option<[u8; 32]>,
    principal_rate: Option<Rate>,
    max_output: usize,
    audit_value_limit: usize,
    clock: Clock,
    approval_keys: Option<ApprovalKeys>,
    approval_ttl: std::time::Duration,
    human_timeout: std::time::Duration,
    approver: Option<Arc<dyn Approver>>,
    stricter: Vec<(String, Approval)>,
    sandbox: Option<SandboxConfig>,
}

impl<S: Send + Sync + 'static> ServerBuilder<S> {
    pub(super) fn new(state: S) -> Self {
        ServerBuilder {
            state,
            name: "mcp-secure-server".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            instructions: None,
            roles: None,
            tools: Tools::new(Vec::new()),
            authenticator: None,
            audit: Vec::new(),
            audit_policy: FailurePolicy::default(),
            alerters: Vec::new(),
            alert_policy: AlertPolicy::default(),
            audit_digest_key: None,
            principal_rate: None,
            max_output: 1024 * 1024,
            audit_value_limit: 4096,
            clock: Clock::system(),
            approval_keys: None,
            approval_ttl: DEFAULT_TOKEN_TTL,
            human_timeout: DEFAULT_HUMAN_TIMEOUT,
            approver: None,
            stricter: Vec::new(),
            sandbox: None,
        }
    }

    /// The server's name and version as clients see them.
    pub fn name(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.name = name.into();
        self.version = version.into();
        self
    }

    /// Instructions sent to clients at initialization.
    pub fn instructions(mut self, text: impl Into<String>) -> Self {
        self.instructions = Some(text.into());
        self
    }

    /// The role hierarchy: the `ROLES` constant `roles!` makes.
    pub fn roles(mut self, roles: &'static [RoleDecl]) -> Self {
        self.roles = Some(roles);
        self
    }

    /// Adds tools: `.tools(tools![a, b])`.
    pub fn tools(mut self, tools: Tools<S>) -> Self {
        self.tools = self.tools.merge(tools);
        self
    }

    /// Sets the authenticator (required).
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }

    /// Adds an audit sink. With none, records go to `tracing` ([`TracingSink`]).
    pub fn audit(mut self, sink: impl AuditSink) -> Self {
        self.audit.push(Arc::new(sink));
        self
    }

    /// What to do while the audit sink fails: [`FailurePolicy::FailClosed`] (the default)
    /// refuses calls with `internal`; [`FailurePolicy::FailOpen`] runs them and alerts.
    pub fn audit_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.audit_policy = policy;
        self
    }

    /// Adds an alerter (e.g. [`WebhookAlerter`](crate::audit::WebhookAlerter)). With none,
    /// alerts are logged ([`LogAlerter`](crate::audit::LogAlerter)).
    pub fn alerter(mut self, alerter: impl Alerter) -> Self {
        self.alerters.push(Arc::new(alerter));
        self
    }

    /// When refusals become an alert (default: more than 10 per principal within a minute).
    pub fn alert_policy(mut self, policy: AlertPolicy) -> Self {
        self.alert_policy = policy;
        self
    }

    /// The key of the digests kept for redacted values (`hmac-sha256`). Give a fixed key to
    /// match digests across restarts; by default each server makes a random one.
    pub fn audit_digest_key(mut self, key: [u8; 32]) -> Self {
        self.audit_digest_key = Some(key);
        self
    }

    /// A server-wide rate per principal, across all tools, e.g. `"600/min"`.
    pub fn principal_rate(mut self, rate: &str) -> Result<Self, BuildError> {
        self.principal_rate = Some(Rate::parse(rate).map_err(BuildError::Invalid)?);
        Ok(self)
    }

    /// The largest tool output sent back, in bytes (default 1 MiB).
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// The largest input or output kept whole in an audit record (default 4 KiB); larger ones
    /// are truncated and recorded with their SHA-256.
    pub fn audit_value_limit(mut self, bytes: usize) -> Self {
        self.audit_value_limit = bytes;
        self
    }

    /// The clock for rate limits and timestamps (tests use [`Clock::manual`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The keys that seal explicit approval tokens and input-required state (current key plus
    /// previous keys for rotation). Without them, a random key is made at start-up and
    /// approvals do not survive a restart. Load them from a private file
    /// ([`ApprovalKeys::load_or_create`]), never from code.
    pub fn approval_keys(mut self, keys: ApprovalKeys) -> Self {
        self.approval_keys = Some(keys);
        self
    }

    /// How long an explicit approval token is valid (default 5 minutes, at most 366 days:
    /// longer fails `build`).
    pub fn approval_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.approval_ttl = ttl;
        self
    }

    /// How long a human is waited for, by elicitation, the input-required round trip or the
    /// out-of-band approver (default 2 minutes, at most 366 days: longer fails `build`).
    pub fn human_approval_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.human_timeout = timeout;
        self
    }

    /// Asks a human out of band (e.g. a [`FileApprovalQueue`](crate::approval::FileApprovalQueue))
    /// when a tool needs human approval and the client cannot ask (no elicitation capability).
    pub fn approver(mut self, approver: impl Approver) -> Self {
        self.approver = Some(Arc::new(approver));
        self
    }

    /// Makes a tool's approval stricter than declared, e.g.
    /// `.require_approval("update_order", Approval::Human)`. Asking for a weaker approval, or
    /// naming an unknown tool, fails `build`.
    pub fn require_approval(mut self, tool: impl Into<String>, approval: Approval) -> Self {
        self.stricter.push((tool.into(), approval));
        self
    }

    /// How sandboxed tools (`sandbox = "process"`) run: their roots, limits, worker pool and
    /// the kernel features whose absence is accepted. Without it, sandboxed tools get
    /// [`SandboxConfig::default`] (which has no roots: a tool naming one fails `build`).
    pub fn sandbox(mut self, config: SandboxConfig) -> Self {
        self.sandbox = Some(config);
        self
    }

    /// Checks the policy and builds the server.
    pub fn build(self) -> Result<SecureServer<S>, BuildError> {
        let decls = self.roles.ok_or(BuildError::MissingRoles)?;
        let roles = Roles::new(decls).map_err(BuildError::Roles)?;
        let authenticator = self.authenticator.ok_or(BuildError::MissingAuthenticator)?;
        let audit: Arc<dyn AuditSink> = match self.audit.len() {
            0 => Arc::new(TracingSink),
            1 => Arc::clone(&self.audit[0]),
            _ => Arc::new(self.audit),
        };
        let alerter: Option<Arc<dyn Alerter>> = match self.alerters.len() {
            0 => None,
            1 => Some(Arc::clone(&self.alerters[0])),
            _ => Some(Arc::new(self.alerters)),
        };
        let digest_key = self.audit_digest_key.unwrap_or_else(|| {
            let mut key = [0u8; 32];
            crate::random::fill(&mut key);
            key
        });
        let audit = Arc::new(AuditGuard::new(
            audit,
            self.clock.clone(),
            self.audit_value_limit,
            self.audit_policy,
            Alerts::new(alerter, self.alert_policy, self.clock.clone()),
            digest_key,
        ));
        // Sandboxed tools: the kernel is probed and the configuration checked once.
        let sandboxes = if self.tools.0.iter().any(|h| h.spec().sandbox.is_some()) {
            Some(Prepared::new(self.sandbox.unwrap_or_default())?)
        } else {
            None
        };
        let mut tools = Vec::with_capacity(self.tools.len());
        let mut by_name = crate::LookupMap::default();
        for handler in self.tools.0 {
            let spec = handler.spec();
            if by_name.insert(spec.name, tools.len()).is_some() {
                return Err(BuildError::DuplicateTool(spec.name.into()));
            }
            if !roles.contains(spec.role) {
                return Err(BuildError::UnknownRole {
                    tool: spec.name.into(),
                    role: spec.role.into(),
                });
            }
            // The macro refuses these at compile time; a hand-written handler is checked here.
            if spec.approval < spec.kind.minimum_approval()
                || (spec.kind == Kind::Admin && !roles.is_privileged(&[spec.role]))
            {
                return Err(BuildError::WeakPolicy(spec.name.into()));
            }
            let mut tool = Tool::new(
                spec.name,
                spec.description,
                Arc::new(handler.input_schema()),
            );
            tool.title = spec.title.map(str::to_owned);
            tool.output_schema = handler.output_schema().map(Arc::new);
            tool.annotations = Some(annotations(spec.kind, spec.title));
            let mut approval = spec.approval;
            for (_, stricter) in self.stricter.iter().filter(|(name, _)| name == spec.name) {
                if *stricter < spec.approval {
                    return Err(BuildError::WeakerApproval {
                        tool: spec.name.into(),
                        declared: spec.approval.as_str(),
                        requested: stricter.as_str(),
                    });
                }
                approval = approval.max(*stricter);
            }
            let sandbox = match (&spec.sandbox, &sandboxes) {
                (Some(declared), Some(prepared)) => Some(Runner::new(
                    spec.name,
                    prepared.policy(spec, declared)?,
                    declared.has_scratch(),
                    Arc::clone(&prepared.launch),
                )),
                _ => None,
            };
            tools.push(Entry {
                sandbox,
                approval,
                redactor: crate::audit::Redactor::from_schema(&tool.input_schema),
                rate: spec
                    .rate
                    .map(|r| KeyedLimit::new(r, self.clock.clone(), DEFAULT_KEY_THRESHOLD)),
                concurrency: spec.concurrency.map(ConcurrencyLimit::new),
                handler,
                spec,
                tool,
            });
        }
        if let Some((unknown, _)) = self
            .stricter
            .iter()
            .find(|(name, _)| !by_name.contains_key(name.as_str()))
        {
            return Err(BuildError::Invalid(format!(
                "`require_approval` names `{unknown}`, which is not a registered tool"
            )));
        }
        let approvals = Approvals::new(
            self.approval_keys.unwrap_or_else(ApprovalKeys::random),
            self.approval_ttl,
            self.human_timeout,
            self.approver,
            self.clock.clone(),
        )
        .map_err(BuildError::Invalid)?;
        let max_input = tools
            .iter()
            .map(|t| t.spec.max_input)
            .fold(ToolSpec::DEFAULT_MAX_INPUT, usize::max);
        Ok(SecureServer {
            inner: Arc::new(Inner {
                approvals,
                state: Arc::new(self.state),
                name: self.name,
                version: self.version,
                instructions: self.instructions,
                roles,
                tools,
                by_name,
                authenticator,
                audit,
                principal_limit: self
                    .principal_rate
                    .map(|r| KeyedLimit::new(r, self.clock.clone(), DEFAULT_KEY_THRESHOLD)),
                max_input,
                max_output: self.max_output,
            }),
            transport: "direct",
            session: None,
        })
    }
}

/// Annotations derived from the same `kind` that is enforced, so they cannot disagree.
fn annotations(kind: Kind, title: Option<&str>) -> ToolAnnotations {
    let a = ToolAnnotations::new()
        .read_only(kind == Kind::Read)
        .destructive(matches!(kind, Kind::Delete | Kind::Admin))
        .open_world(false);
    let mut a = if kind == Kind::Read {
        a.idempotent(true)
    } else {
        a
    };
    a.title = title.map(str::to_owned);
    a
}
