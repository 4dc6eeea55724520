//! The context extractor a tool may take as its first parameter.

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use tokio_util::sync::CancellationToken;

use crate::auth::Principal;

/// What a tool body may know about its call: the application state, the authenticated
/// [`Principal`], the rmcp request context and the request's cancellation.
///
/// Take it as a parameter of any type name `Ctx<S>`: `async fn t(ctx: Ctx<App>, ...)`.
/// It derefs to the state.
pub struct Ctx<S> {
    state: Arc<S>,
    principal: Arc<Principal>,
    call: Call,
}

/// Where the call came from, and so where its cancellation is.
enum Call {
    /// Through an MCP transport: the request's own token (`ct`) is the call's cancellation, so
    /// no second handle is made and dropped per call (each one a lock of the token's node).
    Request(RequestContext<RoleServer>),
    /// A direct call, with a token of its own.
    Direct(CancellationToken),
}

impl<S> Ctx<S> {
    /// `cancel` is the call's cancellation. With a request it must be the request's own `ct`
    /// (the contract of [`SecureServer::call`](crate::SecureServer::call)), which is what the
    /// body is given; it is cloned only for a call without one.
    ///
    /// The request's `_meta.authToken` must be gone already, so that the body never sees the
    /// caller's credential (it cannot leak it or pass it on): `authn::credential` takes it out
    /// on the server's own handler, [`SecureServer::respond`](crate::SecureServer::respond)
    /// on a direct call (`tests/token_passthrough.rs` checks both).
    pub(crate) fn new(
        state: Arc<S>,
        principal: Arc<Principal>,
        request: Option<RequestContext<RoleServer>>,
        cancel: &CancellationToken,
    ) -> Self {
        let call = match request {
            Some(r) => Call::Request(r),
            None => Call::Direct(cancel.clone()),
        };
        Ctx {
            state,
            principal,
            call,
        }
    }

    /// The application state given to the server builder.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// A shared handle to the state, for work that outlives the borrow (e.g. `spawn_blocking`).
    pub fn state_arc(&self) -> Arc<S> {
        Arc::clone(&self.state)
    }

    /// Who is calling.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The rmcp request context (peer, `_meta`, extensions). `None` when the call did not come
    /// through an MCP transport (e.g. a direct pipeline call in a benchmark). The caller's
    /// `_meta.authToken` has been removed from it, and over HTTP the `Authorization` header.
    pub fn request(&self) -> Option<&RequestContext<RoleServer>> {
        match &self.call {
            Call::Request(request) => Some(request),
            Call::Direct(_) => None,
        }
    }

    /// Cancelled when the client cancels the request or the call times out. Long-running
    /// bodies should check it, or hand it to whatever they wait on. It is the request's own
    /// token (`request().ct`), so both say the same.
    pub fn cancellation(&self) -> &CancellationToken {
        match &self.call {
            Call::Request(request) => &request.ct,
            Call::Direct(cancel) => cancel,
        }
    }
}

impl<S> std::ops::Deref for Ctx<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.state
    }
}

impl<S> std::fmt::Debug for Ctx<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}
