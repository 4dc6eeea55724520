//! The one pipeline every call goes through, on every transport. Read it top to bottom: the
//! order of the guards is the order of DESIGN §3, and the body is reachable only at the end.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::model::{CallToolResponse, CallToolResult, JsonObject};
use rmcp::service::RequestContext;
use tokio_util::sync::CancellationToken;

use super::SecureServer;
use super::record::{ArgsSize, CallRecord};
use crate::approval::{ApprovalInput, NO_APPROVAL_INPUT};
use crate::auth::{Credential, Principal};
use crate::ctx::Ctx;
use crate::error::{ErrorCode, ToolError};
use crate::guard::{approval, authn, authz, output, size, timeout};

impl<S: Send + Sync + 'static> SecureServer<S> {
    /// Runs one call through every guard and returns the tool result (refusals included, as
    /// `isError` results). Exactly one audit outcome record is written, whatever happens.
    ///
    /// The explicit approval token is read from the request's `_meta`. A call that would need
    /// the input-required round trip (2026-07-28 sessions) is refused with `approval_required`
    /// here; [`SecureServer::respond`] can answer with the `InputRequiredResult` instead.
    ///
    /// `request`'s cancellation token (`ct`) must be this request's own, as rmcp's are: the
    /// body watches it, and a call that times out cancels it.
    ///
    /// `credential` is what authenticates the call. A `_meta.authToken` still in `request` is
    /// not read here; it is taken out, so the tool body never sees it.
    pub async fn call(
        &self,
        name: &str,
        args: Option<JsonObject>,
        credential: Option<Credential>,
        request: Option<RequestContext<RoleServer>>,
    ) -> CallToolResult {
        let input = ApprovalInput::from_meta(request.as_ref().map(|r| &r.meta));
        match self.respond(name, args, credential, request, input).await {
            CallToolResponse::Complete(result) => result,
            _ => ToolError::new(
                ErrorCode::ApprovalRequired,
                format!("`{name}` needs a human's approval through the input-required round trip"),
            )
            .with_detail("approval_kind", "human")
            .to_call_result(),
        }
    }

    /// Like [`SecureServer::call`], with the approval step's input given explicitly, and an
    /// `InputRequiredResult` when a human must be asked through the input-required round trip
    /// (its audit outcome is `approval_required`: one record per round).
    pub fn respond<'a>(
        &'a self,
        name: &'a str,
        args: Option<JsonObject>,
        credential: Option<Credential>,
        request: Option<RequestContext<RoleServer>>,
        approval: ApprovalInput,
    ) -> impl Future<Output = CallToolResponse> + 'a {
        // The body never sees the caller's credential: a request handed in directly may still
        // carry one in `_meta`, next to the `credential` its caller resolved. (The server's own
        // handler takes it out while reading it, and calls `respond_as`.)
        let request = request.map(|mut r| {
            r.meta.remove(authn::META_AUTH_TOKEN);
            r
        });
        self.respond_as(name, args, credential.map(Cow::Owned), request, approval)
    }

    /// [`SecureServer::respond`] with a credential that may be borrowed (the stdio session's,
    /// which every call of the session presents).
    //
    // (Not an `async fn`: an `async fn` moves its arguments into its body's own variables, so
    // the future keeps two slots for each; an `async move` block uses the captured ones in
    // place. rmcp allocates this future for every call.)
    #[allow(clippy::manual_async_fn)]
    pub(super) fn respond_as<'a>(
        &'a self,
        name: &'a str,
        args: Option<JsonObject>,
        credential: Option<Cow<'a, Credential>>,
        mut request: Option<RequestContext<RoleServer>>,
        approval: ApprovalInput,
    ) -> impl Future<Output = CallToolResponse> + 'a {
        // Boxed when there is any: the future keeps 8 bytes for it, not 80, on every call.
        let approval = (!approval.is_none()).then(|| Box::new(approval));
        // The record is drafted when the call's future is made, not when it first runs: the
        // future keeps no slot for the arguments beside the record they move into (992 bytes,
        // not 1,024: at 1,024 glibc consolidated its fast bins about once more every two calls
        // when allocating the box rmcp makes for every call), and a future dropped before it
        // runs still leaves the call's record (`cancelled`).
        let mut record = CallRecord::new(
            &self.inner.audit,
            name,
            self.transport,
            args.unwrap_or_default(),
        );
        async move {
            let result = self
                .guarded(
                    &mut record,
                    name,
                    &credential,
                    &mut request,
                    approval.as_deref().unwrap_or(&NO_APPROVAL_INPUT),
                )
                .await;
            // The record is finished from a borrowed outcome and the response moved out after:
            // the future keeps one slot for the response, not one for it and one for its parts.
            let waiting;
            let outcome = match &result {
                Ok(CallToolResponse::Complete(r)) => Ok(r),
                Ok(_) => {
                    waiting = ToolError::new(
                        ErrorCode::ApprovalRequired,
                        "waiting for a human's answer (input required)",
                    )
                    .with_detail("approval_kind", "human");
                    Err(&waiting)
                }
                Err(e) => Err(e),
            };
            // Failing closed, no result leaves without its record (a refusal still does: it
            // carries nothing of the tool's).
            let deliver = record.finish(outcome).await;
            match result {
                Ok(response) if deliver => response,
                Ok(_) => super::record::outcome_unrecorded().to_call_result().into(),
                Err(e) => e.to_call_result().into(),
            }
        }
    }

    /// Guards 1 to 8 and the body (the record is finished by the caller).
    // An `async move` block, as `respond`'s is.
    #[allow(clippy::manual_async_fn)]
    fn guarded<'a: 'r, 'r>(
        &'a self,
        record: &'r mut CallRecord<'a>,
        name: &'r str,
        credential: &'r Option<Cow<'a, Credential>>,
        request: &'r mut Option<RequestContext<RoleServer>>,
        approval_input: &'r ApprovalInput,
    ) -> impl Future<Output = Result<CallToolResponse, ToolError>> + 'r {
        async move {
            let inner = &*self.inner;
            let entry = inner.by_name.get(name).map(|&i| &inner.tools[i]);

            // The record must know which arguments are secret before anything can end the call.
            record.set_redactor(entry.map(|e| &e.redactor));

            // 0. Audit: failing closed, nothing runs while the audit log cannot store records.
            record.ready()?;

            // 1. Size, before anything reads the arguments. (In a block: the call's future
            //    keeps no slot for the answer while later steps wait.) The caller is not known
            //    yet: the cap is the same for every name, the largest of any tool's, so that
            //    strangers learn nothing about names (nor caps); the tool's own is applied once
            //    the caller is known to be allowed the tool, below.
            {
                let size = size::check(record.args(), inner.max_input);
                record.set_args_size(
                    size.as_ref()
                        .map_or(ArgsSize::OverCap, |&n| ArgsSize::Bytes(n)),
                );
                size?;
            }

            // 2. Authenticate. A credential the server holds (the stdio session's) outlives the
            //    call, and so may the principal it keeps: borrowed by the record and here,
            //    nothing shared by every call is written. Any other principal is the call's own.
            let principal: Cow<'a, Arc<Principal>> = match credential {
                Some(Cow::Borrowed(held)) => {
                    authn::authenticate(&*inner.authenticator, Some(*held)).await?
                }
                own => Cow::Owned(
                    authn::authenticate(&*inner.authenticator, own.as_deref())
                        .await?
                        .into_owned(),
                ),
            };
            record.set_principal(principal.clone());

            // An unknown tool, after authentication so strangers learn nothing about names.
            let entry = entry.ok_or_else(|| {
                ToolError::invalid_input(format!("there is no tool named `{name}`"))
            })?;
            let spec = entry.spec;

            // 3. Authorize.
            authz::check(&inner.roles, &principal, spec)?;

            // 1 (continued). The tool's own size cap, on the size measured above: once the
            //    caller may use the tool, so that it tells no one else the tool's cap.
            if record.args_bytes() > spec.max_input {
                record.set_args_size(ArgsSize::OverCap);
                return Err(size::over(spec.max_input));
            }

            // 4. Rate: the server-wide limit per principal, then the tool's, at the time the
            //    call arrived (the limiters and the record share the server's clock).
            if let Some(limit) = &inner.principal_limit {
                limit.check_at(&principal.user, "this server", record.started())?;
            }
            if let Some(limit) = &entry.rate {
                limit.check_at(&principal.user, spec.name, record.started())?;
            }

            // 5. Validate: shape, rules, unknown fields (parsing borrows the arguments: approval
            //    binds them as called, and a sandboxed body gets them to re-parse in its worker).
            let parsed = entry.handler.parse(record.args())?;

            // 6. Approve: only valid calls within their rates get here.
            // Taken apart at once: no part of it is kept while the body runs.
            let approval::Checked { audit, verdict } = inner
                .approvals
                .check(approval::Call {
                    spec,
                    redactor: &entry.redactor,
                    required: entry.approval,
                    principal: &principal,
                    args: record.args(),
                    input: approval_input,
                    request: request.as_ref(),
                })
                .await;
            if let Some(decision) = audit {
                record.set_approval(decision);
            }
            if let approval::Verdict::Ask(input_required) = verdict? {
                return Ok(CallToolResponse::InputRequired(input_required));
            }

            // 7. Run: inside a concurrency permit, under the timeout and the request's cancellation,
            //    after a write-ahead record for tools that change things.
            let _permit = entry
                .concurrency
                .as_ref()
                .map(|c| c.acquire())
                .transpose()?;
            if spec.kind.is_mutating() {
                record.write_attempt().await?;
            }
            // The body's cancellation is the request's own token (rmcp gives each request one of
            // its own): the client's cancellation reaches it, and a timeout cancels it for
            // whatever the body started. Borrowed from the request while the request stays
            // here; a handle of its own only when the request goes into the body's `Ctx`.
            // A body's own error is output too: under the same cap (`output::check_error`).
            let ran = match &entry.sandbox {
                // In a sandboxed worker process, killed and reaped on timeout or cancellation.
                // Boxed: the calls that run in process do not carry the worker's I/O state.
                Some(sandbox) => {
                    drop(parsed);
                    let raw = record.args().clone();
                    let mut own = None;
                    let cancel = token(request, &mut own);
                    Box::pin(sandbox.call(raw, &principal, spec.timeout, cancel)).await
                }
                None => match entry.handler.call_without_ctx(parsed) {
                    // A body that takes no `Ctx`: none is built.
                    Ok(body) => {
                        let mut own = None;
                        let cancel = token(request, &mut own);
                        timeout::run(body, spec.timeout, cancel).await
                    }
                    Err(parsed) => {
                        // The request goes into the `Ctx`: the body's token, a handle of
                        // its own.
                        let cancel = token(request, &mut None).clone();
                        let ctx = Ctx::new(
                            inner.state.clone(),
                            principal.into_owned(),
                            request.take(),
                            &cancel,
                        );
                        timeout::run(entry.handler.call(ctx, parsed), spec.timeout, &cancel).await
                    }
                },
            };
            let mut result = ran.map_err(|e| output::check_error(e, inner.max_output))?;

            // 8. Output cap. The content's text, written to measure it, is the record's output.
            let content = output::check(&mut result, inner.max_output)?;
            record.set_content(content);
            Ok(CallToolResponse::Complete(result))
        }
    }
}

/// The request's own cancellation token, borrowed; for a call without a request, a new one
/// kept in `own`.
fn token<'t>(
    request: &'t Option<RequestContext<RoleServer>>,
    own: &'t mut Option<CancellationToken>,
) -> &'t CancellationToken {
    match request {
        Some(r) => &r.ct,
        None => own.insert(CancellationToken::new()),
    }
}
