//! Guard 6: approval. It runs after validation and rate limiting, so nobody is asked to approve
//! an invalid or excessive call, and the body runs only with an approval this server verified:
//!
//! - `none`: nothing to do (read tools, unless declared or configured stricter);
//! - `explicit`: a first call gets a single-use HMAC token bound to caller, tool, argument digest
//!   and expiry; the same call presenting it runs;
//! - `human`: MCP elicitation (sessions before 2026-07-28), the input-required round trip
//!   (2026-07-28 and later, with an HMAC-sealed `requestState`), or the configured out-of-band
//!   [`Approver`]; clients that cannot be asked are refused.
//!
//! Every decision is returned for the call's audit record: how, by whom, when.

use std::sync::Arc;
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{
    ClientResult, ElicitRequest, ElicitRequestParams, ElicitationAction, ElicitationCapability,
    ElicitationSchema, InputRequest, InputRequests, InputRequiredResult, JsonObject,
    ProtocolVersion, ServerRequest,
};
use rmcp::service::{PeerRequestOptions, RequestContext, ServiceError};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::approval::{
    ApprovalInput, ApprovalKeys, ApprovalRequest, Approver, Binding, Decision, INPUT_KEY,
    RedeemError, Redeemed, arguments_digest, open, random_id, seal, summary,
};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::{ErrorCode, ToolError};
use crate::policy::{Approval, ToolSpec};

/// How long an explicit token is valid by default: 5 minutes.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a human is waited for by default: 2 minutes.
pub const DEFAULT_HUMAN_TIMEOUT: Duration = Duration::from_secs(2 * 60);

/// The longest token lifetime or human wait accepted: 366 days.
pub const MAX_APPROVAL_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// The answer a human gives in the elicitation form.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct HumanApproval {
    /// Set to true to run this exact call; anything else refuses it.
    approve: bool,
}

/// Whether a client can be asked with a form: its `elicitation` capability names form mode, or
/// no mode at all (clients from before modes existed ask with forms). rmcp's own rule.
fn asks_with_forms(capability: Option<&ElicitationCapability>) -> bool {
    capability.is_some_and(|e| e.form.is_some() || e.url.is_none())
}

/// The server's approval state: keys, redeemed seals, timeouts and the optional approver.
pub(crate) struct Approvals {
    keys: ApprovalKeys,
    redeemed: Arc<Redeemed>,
    token_ttl: Duration,
    human_timeout: Duration,
    approver: Option<Arc<dyn Approver>>,
    clock: Clock,
    /// The schema of the form a human answers (`HumanApproval`), made once.
    form_schema: ElicitationSchema,
}

/// One call as the approval step sees it.
pub(crate) struct Call<'a> {
    pub spec: &'static ToolSpec,
    /// Finds the secret values in the arguments (summaries and prompts never show them).
    pub redactor: &'a crate::audit::Redactor,
    /// The approval this call needs: the declared one, or stricter by configuration.
    pub required: Approval,
    pub principal: &'a Principal,
    /// The validated call's raw arguments.
    pub args: &'a JsonObject,
    pub input: &'a ApprovalInput,
    pub request: Option<&'a RequestContext<RoleServer>>,
}

/// What the call may do next.
pub(crate) enum Verdict {
    /// Run the body.
    Run,
    /// Answer with an input-required result and wait for the retry.
    Ask(InputRequiredResult),
}

/// The verdict, and the decision for the audit record.
pub(crate) struct Checked {
    pub audit: Option<Value>,
    pub verdict: Result<Verdict, ToolError>,
}

impl Checked {
    fn run(audit: Value) -> Self {
        Checked {
            audit: Some(audit),
            verdict: Ok(Verdict::Run),
        }
    }
}

/// Facts about one call, computed once.
#[derive(Clone)]
struct Facts<'a> {
    call: &'a Call<'a>,
    digest: String,
    arguments: JsonObject,
    summary: String,
    now: OffsetDateTime,
}

impl Facts<'_> {
    fn binding<'b>(&'b self, purpose: &'b str) -> Binding<'b> {
        Binding {
            purpose,
            user: &self.call.principal.user,
            key_id: self.call.principal.key_id.as_deref().unwrap_or(""),
            tool: self.call.spec.name,
            digest: &self.digest,
        }
    }

    fn tool(&self) -> &'static str {
        self.call.spec.name
    }

    /// A refusal with `approval_denied`, and its audit entry.
    fn denied(&self, method: &str, by: Option<&str>, reason: &str) -> Checked {
        Checked {
            audit: Some(json!({
                "method": method, "decision": "denied", "by": by, "at": rfc3339(self.now), "reason": reason,
            })),
            verdict: Err(ToolError::new(
                ErrorCode::ApprovalDenied,
                format!("`{}` was not run: {reason}", self.tool()),
            )),
        }
    }

    fn approved(&self, method: &str, by: &str, id: &str) -> Checked {
        Checked::run(
            json!({ "method": method, "decision": "approved", "by": by, "at": rfc3339(self.now), "id": id }),
        )
    }
}

/// Milliseconds since the Unix epoch: the expiry unit of seals.
fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Approvals {
    pub(crate) fn new(
        keys: ApprovalKeys,
        token_ttl: Duration,
        human_timeout: Duration,
        approver: Option<Arc<dyn Approver>>,
        clock: Clock,
    ) -> Result<Self, String> {
        // Expiries are dates: a longer wait would overflow the calendar when a call adds it.
        for (what, d) in [
            ("approval_ttl", token_ttl),
            ("human_approval_timeout", human_timeout),
        ] {
            if d > MAX_APPROVAL_DURATION {
                return Err(format!(
                    "`{what}` must be at most {} days",
                    MAX_APPROVAL_DURATION.as_secs() / 86_400
                ));
            }
        }
        let form_schema = ElicitationSchema::from_type::<HumanApproval>()
            .map_err(|e| format!("the approval form's schema: {e}"))?;
        Ok(Approvals {
            redeemed: keys.redeemed(),
            keys,
            token_ttl,
            human_timeout,
            approver,
            clock,
            form_schema,
        })
    }

    /// Decides whether the call may run now. A call that needs no approval is answered at
    /// once; the others are checked in a boxed future (which may wait for a human), so every
    /// call's future does not carry the state of an elicitation round trip (~2.6 KB).
    pub(crate) async fn check(&self, call: Call<'_>) -> Checked {
        if call.required == Approval::None {
            return Checked {
                audit: None,
                verdict: Ok(Verdict::Run),
            };
        }
        Box::pin(self.check_required(call)).await
    }

    /// [`Approvals::check`] for a call that needs an approval.
    async fn check_required(&self, call: Call<'_>) -> Checked {
        let arguments = call.redactor.redacted(call.args);
        let facts = Facts {
            digest: arguments_digest(call.args),
            summary: summary(call.spec.name, &call.principal.user, &arguments),
            arguments,
            now: self.clock.now_utc(),
            call: &call,
        };
        if call.required == Approval::Explicit {
            return self.explicit(&facts);
        }
        let Some(request) = call.request else {
            return self.out_of_band(&facts, None).await;
        };
        let on_2026 = request
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        if on_2026 {
            let capabilities = request.client_capabilities();
            let can_elicit = asks_with_forms(capabilities.and_then(|c| c.elicitation).as_ref());
            if can_elicit || call.input.request_state.is_some() {
                return self.round_trip(&facts);
            }
        } else {
            let info = request.peer.peer_info();
            if asks_with_forms(
                info.as_deref()
                    .and_then(|i| i.capabilities.elicitation.as_ref()),
            ) {
                return self.elicit(&facts, request).await;
            }
        }
        self.out_of_band(&facts, Some(request)).await
    }

    /// `explicit`: hand out a token, or redeem the one presented.
    fn explicit(&self, f: &Facts<'_>) -> Checked {
        let binding = f.binding("token");
        let Some(token) = &f.call.input.token else {
            let id = random_id();
            let expires_at = f.now + self.token_ttl;
            let token = seal(&self.keys, &id, unix_ms(expires_at), &binding);
            let expires = rfc3339(expires_at);
            let message = format!(
                "{}. To confirm, call `{}` again with the same arguments and `_meta[\"{}\"]` set to \
                 `approval.token` (single use, valid until {expires})",
                f.summary,
                f.tool(),
                crate::approval::META_APPROVAL_TOKEN,
            );
            return Checked {
                audit: Some(json!({
                    "method": "explicit", "decision": "requested", "at": rfc3339(f.now), "id": id, "expires_at": expires,
                })),
                verdict: Err(ToolError::new(ErrorCode::ApprovalRequired, message)
                    .with_detail("approval_kind", Approval::Explicit.as_str())
                    .with_detail(
                        "approval",
                        json!({ "token": token, "expires_at": expires, "summary": f.summary }),
                    )),
            };
        };
        let Some(opened) = open(&self.keys, token, &binding) else {
            return f.denied(
                "explicit",
                None,
                "the approval token is not valid for this call (it was issued for other arguments, another \
                 tool or another caller, or not by this server); call again without it to get a new one",
            );
        };
        let now = unix_ms(f.now);
        if now >= opened.expires {
            return f.denied(
                "explicit",
                None,
                "the approval token has expired; call again without it to get a new one",
            );
        }
        match self.redeemed.redeem(&opened, now) {
            Ok(()) => f.approved("explicit", &f.call.principal.user, &opened.id),
            Err(RedeemError::Replayed) => {
                f.denied("explicit", None, "the approval token was already used")
            }
            Err(RedeemError::Full) => f.denied(
                "explicit",
                None,
                "too many approvals are in flight; try again later",
            ),
            Err(RedeemError::Journal) => f.denied(
                "explicit",
                None,
                "the approval could not be recorded, so it was not used; try again later",
            ),
        }
    }

    /// `human` on 2026-07-28 sessions: ask through an input-required result, then verify the
    /// sealed state and read the answer on the retry.
    fn round_trip(&self, f: &Facts<'_>) -> Checked {
        const METHOD: &str = "input_required";
        let binding = f.binding("state");
        let input = f.call.input;
        let Some(state) = &input.request_state else {
            if input.input_responses.is_some() {
                return f.denied(
                    METHOD,
                    None,
                    "input responses came without the request state they answer",
                );
            }
            let id = random_id();
            let expires_at = f.now + self.human_timeout;
            let sealed = seal(&self.keys, &id, unix_ms(expires_at), &binding);
            let mut requests = InputRequests::new();
            requests.insert(
                INPUT_KEY.to_owned(),
                InputRequest::Elicitation(self.form(f)),
            );
            return Checked {
                audit: Some(json!({
                    "method": METHOD, "decision": "requested", "at": rfc3339(f.now), "id": id,
                    "expires_at": rfc3339(expires_at),
                })),
                verdict: Ok(Verdict::Ask(InputRequiredResult::new(
                    Some(requests),
                    Some(sealed),
                ))),
            };
        };
        let Some(opened) = open(&self.keys, state, &binding) else {
            return f.denied(
                METHOD,
                None,
                "the request state is not valid for this call (tampered with, or issued for other arguments, \
                 another tool or another caller)",
            );
        };
        let now = unix_ms(f.now);
        if now >= opened.expires {
            return f.denied(METHOD, None, "the approval request has expired");
        }
        match self.redeemed.redeem(&opened, now) {
            Ok(()) => {}
            Err(RedeemError::Replayed) => {
                return f.denied(METHOD, None, "this approval was already answered");
            }
            Err(RedeemError::Full) => {
                return f.denied(
                    METHOD,
                    None,
                    "too many approvals are in flight; try again later",
                );
            }
            Err(RedeemError::Journal) => {
                return f.denied(
                    METHOD,
                    None,
                    "the approval could not be recorded, so it was not used; try again later",
                );
            }
        }
        let user = f.call.principal.user.as_str();
        let answer = input
            .input_responses
            .as_ref()
            .and_then(|r| r.get(INPUT_KEY));
        match answer.and_then(|a| a.get("action")).and_then(Value::as_str) {
            Some("accept") => match answer
                .and_then(|a| a.get("content"))
                .and_then(|c| c.get("approve"))
            {
                Some(Value::Bool(true)) => f.approved(METHOD, user, &opened.id),
                Some(Value::Bool(false)) => f.denied(METHOD, Some(user), "the human answered no"),
                _ => f.denied(METHOD, None, "the answer was not understood"),
            },
            Some("decline") => f.denied(METHOD, Some(user), "the human declined"),
            Some("cancel") => f.denied(METHOD, Some(user), "the human cancelled"),
            _ => f.denied(METHOD, None, "the answer was not understood"),
        }
    }

    /// The form a human answers: the call described, and one yes/no field.
    fn form(&self, f: &Facts<'_>) -> ElicitRequest {
        ElicitRequest::new(ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: self.message(f),
            requested_schema: self.form_schema.clone(),
        })
    }

    /// `human` on sessions with server-to-client requests: MCP elicitation (an
    /// `elicitation/create` request to the client), bounded by the timeout and by the
    /// request's cancellation.
    async fn elicit(&self, f: &Facts<'_>, request: &RequestContext<RoleServer>) -> Checked {
        const METHOD: &str = "elicitation";
        let user = f.call.principal.user.as_str();
        let form = self.form(f);
        let options = PeerRequestOptions::with_timeout(self.human_timeout);
        let asked = async {
            let sent = request
                .peer
                .send_request_with_option(ServerRequest::ElicitRequest(form), options);
            sent.await?.await_response().await
        };
        let answer = tokio::select! {
            answer = asked => answer,
            () = request.ct.cancelled() => return f.denied(METHOD, None, "the request was cancelled while waiting"),
        };
        let id = random_id();
        let result = match answer {
            Ok(ClientResult::ElicitResult(result)) => result,
            Ok(_) => return f.denied(METHOD, None, "the answer was not understood"),
            Err(ServiceError::Timeout { .. }) => {
                return f.denied(
                    METHOD,
                    None,
                    &format!("no answer within {} s", self.human_timeout.as_secs_f64()),
                );
            }
            Err(e) => {
                tracing::warn!(tool = f.tool(), error = %e, "elicitation failed");
                return f.denied(METHOD, None, "the client could not ask for approval");
            }
        };
        match result.action {
            ElicitationAction::Accept => {
                match result.content.map(serde_json::from_value::<HumanApproval>) {
                    Some(Ok(HumanApproval { approve: true })) => f.approved(METHOD, user, &id),
                    Some(Ok(HumanApproval { approve: false })) => {
                        f.denied(METHOD, Some(user), "the human answered no")
                    }
                    None | Some(Err(_)) => f.denied(METHOD, None, "the answer was not understood"),
                }
            }
            ElicitationAction::Decline => f.denied(METHOD, Some(user), "the human declined"),
            ElicitationAction::Cancel => f.denied(METHOD, Some(user), "the human cancelled"),
            // An action this rmcp does not know: not a yes.
            _ => f.denied(METHOD, None, "the answer was not understood"),
        }
    }

    /// `human` for clients that cannot be asked: the out-of-band approver, or a refusal.
    async fn out_of_band(
        &self,
        f: &Facts<'_>,
        request: Option<&RequestContext<RoleServer>>,
    ) -> Checked {
        const METHOD: &str = "approver";
        let Some(approver) = &self.approver else {
            return Checked {
                audit: Some(json!({ "method": "none", "decision": "unavailable", "at": rfc3339(f.now) })),
                verdict: Err(ToolError::new(
                    ErrorCode::ApprovalRequired,
                    format!(
                        "`{}` needs a human's approval, but this client cannot ask for it (it did not declare the \
                         elicitation capability) and the server has no out-of-band approver; use a client that \
                         supports elicitation",
                        f.tool()
                    ),
                )
                .with_detail("approval_kind", Approval::Human.as_str())),
            };
        };
        let id = random_id();
        let ask = ApprovalRequest {
            id: id.clone(),
            tool: f.tool().to_owned(),
            kind: f.call.spec.kind.as_str().to_owned(),
            user: f.call.principal.user.clone(),
            key_id: f.call.principal.key_id.clone(),
            arguments: f.arguments.clone(),
            digest: f.digest.clone(),
            summary: f.summary.clone(),
            requested_at: f.now,
            expires_at: f.now + self.human_timeout,
            timeout: self.human_timeout,
        };
        let cancelled = async {
            match request {
                Some(r) => r.ct.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let bound = self.human_timeout + Duration::from_secs(2);
        let answer = tokio::select! {
            answer = tokio::time::timeout(bound, approver.decide(ask)) => answer,
            () = cancelled => return f.denied(METHOD, None, "the request was cancelled while waiting"),
        };
        let mut decided = f.clone();
        decided.now = self.clock.now_utc();
        match answer {
            Ok(Ok(Decision::Approved { by })) => decided.approved(METHOD, &by, &id),
            Ok(Ok(Decision::Denied { by, reason })) => {
                decided.denied(METHOD, by.as_deref(), &reason)
            }
            Err(_) => decided.denied(
                METHOD,
                None,
                &format!("no decision within {} s", self.human_timeout.as_secs_f64()),
            ),
            Ok(Err(e)) => Checked {
                audit: Some(
                    json!({ "method": METHOD, "decision": "failed", "at": rfc3339(decided.now), "id": id }),
                ),
                verdict: Err(ToolError::internal(format!("approver failed: {e}"))),
            },
        }
    }

    /// The text a human sees: tool, caller, arguments (secrets redacted).
    fn message(&self, f: &Facts<'_>) -> String {
        use crate::approval::shown;
        let args = if f.arguments.is_empty() {
            "(none)".to_owned()
        } else {
            shown(&crate::approval::canonical_json(&Value::Object(
                f.arguments.clone(),
            )))
            .into_owned()
        };
        format!(
            "Approve this call? {}.\n\nTool: {} ({} tool)\nCaller: {}\nArguments: {args}\n\nSet approve to true to run it.",
            f.summary,
            f.tool(),
            f.call.spec.kind.as_str(),
            shown(&f.call.principal.user),
        )
    }
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals")
            .field("keys", &self.keys)
            .field("token_ttl", &self.token_ttl)
            .field("human_timeout", &self.human_timeout)
            .field("approver", &self.approver.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{FormElicitationCapability, UrlElicitationCapability};

    #[test]
    fn only_clients_that_take_forms_are_asked_with_one() {
        let with = |form: bool, url: bool| {
            let mut e = ElicitationCapability::new();
            e.form = form.then(FormElicitationCapability::default);
            e.url = url.then(UrlElicitationCapability::default);
            e
        };
        assert!(!asks_with_forms(None), "no elicitation capability");
        assert!(
            asks_with_forms(Some(&with(false, false))),
            "no mode named: forms"
        );
        assert!(asks_with_forms(Some(&with(true, false))));
        assert!(asks_with_forms(Some(&with(true, true))));
        assert!(!asks_with_forms(Some(&with(false, true))), "URL mode only");
    }
}
