//! The server: a builder, the one call pipeline, and the rmcp `ServerHandler` that every
//! transport drives.

mod builder;
mod handler;
#[cfg(feature = "http")]
pub mod http;
mod pipeline;
mod record;

use std::sync::Arc;

pub use builder::{BuildError, ServerBuilder};
#[cfg(feature = "http")]
pub use http::{HttpConfig, HttpServer};

use crate::auth::{Authenticator, Credential};
use crate::guard::approval::Approvals;
use crate::guard::concurrency::ConcurrencyLimit;
use crate::guard::rate::KeyedLimit;
use crate::policy::{Approval, Roles, ToolSpec};
use crate::tool::ToolHandler;

/// A secured MCP server. Cheap to clone; clones share all state (limiters, audit, keys).
///
/// It implements rmcp's `ServerHandler`, so it can be served on any rmcp transport:
/// `server.serve(transport)`. Use [`SecureServer::serve_stdio`] for stdio with the session
/// token from `MCP_SECURE_TOKEN`.
pub struct SecureServer<S> {
    inner: Arc<Inner<S>>,
    transport: &'static str,
    session: Option<Credential>,
}

impl<S> Clone for SecureServer<S> {
    fn clone(&self) -> Self {
        SecureServer {
            inner: Arc::clone(&self.inner),
            transport: self.transport,
            session: self.session.clone(),
        }
    }
}

impl<S> std::fmt::Debug for SecureServer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureServer")
            .field("name", &self.inner.name)
            .field(
                "tools",
                &self
                    .inner
                    .tools
                    .iter()
                    .map(|t| t.spec.name)
                    .collect::<Vec<_>>(),
            )
            .field("transport", &self.transport)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

struct Inner<S> {
    state: Arc<S>,
    name: String,
    version: String,
    instructions: Option<String>,
    roles: Roles,
    tools: Vec<Entry<S>>,
    by_name: crate::LookupMap<&'static str, usize>,
    authenticator: Arc<dyn Authenticator>,
    audit: Arc<record::AuditGuard>,
    principal_limit: Option<KeyedLimit>,
    /// The size cap on arguments before the caller is known: the largest of any tool's
    /// `max_input` (and the default, for unknown names), the same for every name.
    max_input: usize,
    max_output: usize,
    approvals: Approvals,
}

struct Entry<S> {
    handler: Arc<dyn ToolHandler<S>>,
    spec: &'static ToolSpec,
    tool: rmcp::model::Tool,
    rate: Option<KeyedLimit>,
    concurrency: Option<ConcurrencyLimit>,
    /// The approval calls need: the declared one, or stricter by configuration.
    approval: Approval,
    /// Finds the secret values in the arguments, wherever they are (from the input schema).
    redactor: crate::audit::Redactor,
    /// Runs the body in a sandboxed worker process (`sandbox = "process"`).
    sandbox: Option<crate::sandbox::Runner>,
}

impl<S: Send + Sync + 'static> SecureServer<S> {
    /// Starts a builder around the application state tools receive through `Ctx<S>`.
    pub fn builder(state: S) -> ServerBuilder<S> {
        ServerBuilder::new(state)
    }

    /// The same server with a transport label for audit records (`stdio`, `http`, ...).
    pub fn with_transport(mut self, label: &'static str) -> Self {
        self.transport = label;
        self
    }

    /// The same server with a session credential, used for requests that carry no
    /// `_meta.authToken` (the stdio process token).
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session = Some(Credential::shared(
            token,
            crate::auth::CredentialSource::Session,
        ));
        self
    }

    /// The declared tools' specifications, in registration order.
    pub fn specs(&self) -> impl Iterator<Item = &'static ToolSpec> + '_ {
        self.inner.tools.iter().map(|t| t.spec)
    }

    /// The application state.
    pub fn state(&self) -> &S {
        &self.inner.state
    }

    /// Serves MCP over stdin/stdout until the client disconnects. The session token is read
    /// from `MCP_SECURE_TOKEN` (a request's `_meta.authToken` still takes precedence).
    pub async fn serve_stdio(self) -> Result<(), std::io::Error> {
        use rmcp::ServiceExt;
        let mut server = self.with_transport("stdio");
        if let Ok(token) = std::env::var("MCP_SECURE_TOKEN") {
            server = server.with_session_token(token);
        } else {
            tracing::warn!("MCP_SECURE_TOKEN is not set: every call must carry `_meta.authToken`");
        }
        let running = server
            // What `rmcp::transport::stdio()` returns, without its `transport-io` feature.
            .serve((tokio::io::stdin(), tokio::io::stdout()))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        running
            .waiting()
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(())
    }
}
