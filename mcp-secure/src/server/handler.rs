//! rmcp's `ServerHandler` for [`SecureServer`]: `tools/list` shows each caller only the tools it
//! may use, and `tools/call` goes through the pipeline.

use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::SecureServer;
use crate::approval::ApprovalInput;
use crate::guard::{authn, authz};

impl<S: Send + Sync + 'static> ServerHandler for SecureServer<S> {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new(&self.inner.name, &self.inner.version);
        info.instructions = self.inner.instructions.clone();
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        mut context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let credential = authn::credential(&mut context.meta, || {
            authn::transport_credential(&context.extensions, self.session.as_ref())
        });
        let tools = match authn::authenticate(&*self.inner.authenticator, credential.as_deref())
            .await
        {
            Ok(principal) => self
                .inner
                .tools
                .iter()
                .filter(|t| authz::allowed(&self.inner.roles, &principal, t.spec))
                .map(|t| t.tool.clone())
                .collect(),
            Err(e) => {
                tracing::info!(reason = %e.message(), "tools/list by an unauthenticated caller: no tools shown");
                Vec::new()
            }
        };
        Ok(ListToolsResult::with_all_items(tools).with_cache_scope(CacheScope::Private))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let credential = authn::credential(&mut context.meta, || {
            authn::transport_credential(&context.extensions, self.session.as_ref())
        });
        let approval = ApprovalInput::from_meta(request.meta.iter().chain([&context.meta]))
            .with_round_trip(request.request_state, request.input_responses);
        // Boxed: rmcp moves the request's future around (into its task, between states); a
        // pointer is cheaper to move than the whole pipeline's state.
        Ok(Box::pin(self.respond_as(
            &request.name,
            request.arguments,
            credential,
            Some(context),
            approval,
        ))
        .await)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner
            .by_name
            .get(name)
            .map(|&i| self.inner.tools[i].tool.clone())
    }
}
