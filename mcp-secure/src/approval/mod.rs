//! Approvals: what a call that needs one must carry, the keys that seal them, and the
//! out-of-band [`Approver`] for clients that cannot ask a human themselves.
//!
//! - `approval = "explicit"`: the first call returns `approval_required` with
//!   `structuredContent.error.approval = {token, expires_at, summary}`; the same call with
//!   `_meta["mcp-secure/approval"] = token` runs. The token is an HMAC over the caller, the tool,
//!   the [`arguments_digest`] and the expiry; it is single-use.
//! - `approval = "human"`: MCP elicitation on sessions that allow server-to-client requests, the
//!   input-required round trip (with an HMAC-sealed `requestState`) on 2026-07-28 sessions, or an
//!   [`Approver`] (e.g. [`FileApprovalQueue`]) for clients without the elicitation capability.

mod queue;
mod seal;

use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::model::{InputResponses, JsonObject, RequestMetaObject};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub use queue::{FileApprovalQueue, QueueError, QueueState, QueuedApproval};
pub use seal::ApprovalKeys;
pub(crate) use seal::{Binding, RedeemError, Redeemed, open, random_id, seal};

/// The `_meta` key that carries an explicit approval token on the second call.
pub const META_APPROVAL_TOKEN: &str = "mcp-secure/approval";

/// The key of the elicitation request (and its response) in the input-required round trip.
pub const INPUT_KEY: &str = "mcp-secure/approval";

/// What a call brings for the approval step: an explicit token, or the answers of an
/// input-required round trip.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ApprovalInput {
    /// `_meta["mcp-secure/approval"]`: the token from a previous `approval_required` result.
    pub token: Option<String>,
    /// The `requestState` echoed from an `InputRequiredResult`.
    pub request_state: Option<String>,
    /// The client's answers to the input requests of an `InputRequiredResult`.
    pub input_responses: Option<InputResponses>,
}

/// The input of a call that brings none (most calls).
pub(crate) static NO_APPROVAL_INPUT: ApprovalInput = ApprovalInput {
    token: None,
    request_state: None,
    input_responses: None,
};

impl ApprovalInput {
    /// True when the call brings nothing for the approval step. (Taken apart whole: a field
    /// added later must be counted here, or a call bringing only it would lose it.)
    pub(crate) fn is_none(&self) -> bool {
        let ApprovalInput {
            token,
            request_state,
            input_responses,
        } = self;
        token.is_none() && request_state.is_none() && input_responses.is_none()
    }

    /// Reads the explicit token from request `_meta` (the first of the given objects that has
    /// one). A present but non-string value becomes an empty token, which is refused.
    pub fn from_meta<'a>(metas: impl IntoIterator<Item = &'a RequestMetaObject>) -> Self {
        let token = metas
            .into_iter()
            .find_map(|m| m.get(META_APPROVAL_TOKEN))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                _ => String::new(),
            });
        ApprovalInput {
            token,
            ..Self::default()
        }
    }

    /// Adds the input-required retry fields.
    pub fn with_round_trip(
        mut self,
        request_state: Option<String>,
        input_responses: Option<InputResponses>,
    ) -> Self {
        self.request_state = request_state;
        self.input_responses = input_responses;
        self
    }
}

/// The canonical JSON of a value: object keys sorted, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::from(k.as_str()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// SHA-256 (hex) of the canonical JSON of the arguments: what an approval is bound to.
pub fn arguments_digest(args: &JsonObject) -> String {
    hex::encode(Sha256::digest(
        canonical_json(&Value::Object(args.clone())).as_bytes(),
    ))
}

/// Text for a human to read, with every character that can hide or reorder text (the set
/// `SafePath` refuses) written as a JSON escape (`\u202e`), so what is shown is what runs.
/// (Inside a JSON string, the escape means the same character.)
pub(crate) fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    use crate::types::is_hidden_char;
    if !text.chars().any(is_hidden_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hidden_char(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A plain sentence saying what a call will do, e.g.
/// `update_order will run as ed with order_id = "o-5001", status = "shipped"`. Give it redacted
/// arguments; long values are shortened; control, invisible and bidirectional characters are
/// written as escapes (`\u202e`).
pub fn summary(tool: &str, user: &str, args: &JsonObject) -> String {
    const MAX_VALUE: usize = 120;
    let mut keys: Vec<&String> = args.keys().collect();
    keys.sort();
    let parts: Vec<String> = keys
        .into_iter()
        .map(|k| {
            let mut v = shown(&canonical_json(&args[k])).into_owned();
            if v.len() > MAX_VALUE {
                let mut cut = MAX_VALUE;
                while !v.is_char_boundary(cut) {
                    cut -= 1;
                }
                v.truncate(cut);
                v.push('…');
            }
            format!("{} = {v}", shown(k))
        })
        .collect();
    let (tool, user) = (shown(tool), shown(user));
    if parts.is_empty() {
        format!("{tool} will run as {user} with no arguments")
    } else {
        format!("{tool} will run as {user} with {}", parts.join(", "))
    }
}

/// One call waiting for a human's decision, as an [`Approver`] sees it.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct ApprovalRequest {
    /// A random id for this request (32 hex characters).
    pub id: String,
    /// The tool.
    pub tool: String,
    /// The tool's kind (`write`, `delete`, `admin`, ...).
    pub kind: String,
    /// The caller.
    pub user: String,
    /// The id of the caller's key, if any.
    pub key_id: Option<String>,
    /// The arguments, secrets redacted.
    pub arguments: JsonObject,
    /// SHA-256 of the canonical arguments.
    pub digest: String,
    /// What will happen, in plain words.
    pub summary: String,
    /// When the request was made.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// After this, the call is refused whatever the answer.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// How long the server waits.
    #[serde(skip)]
    pub timeout: Duration,
}

/// A human's decision on an [`ApprovalRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Run the call.
    Approved {
        /// Who approved.
        by: String,
    },
    /// Do not run it.
    Denied {
        /// Who denied, when someone did (none for a timeout).
        by: Option<String>,
        /// Why, in words for the caller.
        reason: String,
    },
}

/// Asks a human, out of band, whether a call may run: for clients that cannot ask (no
/// elicitation capability). The server bounds the wait by [`ApprovalRequest::timeout`] too.
pub trait Approver: Send + Sync + 'static {
    /// Waits for a decision; an `Err` refuses the call as `internal`.
    fn decide(&self, request: ApprovalRequest) -> BoxFuture<'static, std::io::Result<Decision>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_input_is_none_only_when_every_field_is() {
        assert!(ApprovalInput::default().is_none());
        assert!(NO_APPROVAL_INPUT.is_none());
        let token = ApprovalInput {
            token: Some(String::new()),
            ..ApprovalInput::default()
        };
        let state = ApprovalInput::default().with_round_trip(Some("s".into()), None);
        let answers = ApprovalInput::default().with_round_trip(None, Some(Default::default()));
        for input in [token, state, answers] {
            assert!(!input.is_none(), "{input:?}");
        }
    }

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let a = json!({"b": [1, {"z": 1, "a": "x y"}], "a": null});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":null,"b":[1,{"a":"x y","z":1}]}"#
        );
        let x = json!({"order_id": "o-1", "status": "shipped"});
        let y = json!({"status": "shipped", "order_id": "o-1"});
        let obj = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(arguments_digest(&obj(x.clone())), arguments_digest(&obj(y)));
        assert_ne!(
            arguments_digest(&obj(x)),
            arguments_digest(&obj(json!({"order_id": "o-2", "status": "shipped"})))
        );
    }

    #[test]
    fn summary_is_plain_and_redacted() {
        #[allow(dead_code)]
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        struct Args {
            status: String,
            order_id: String,
            pin: crate::Secret<String>,
        }
        let redactor =
            crate::audit::Redactor::from_schema(&crate::__private::input_schema::<Args>());
        let args = json!({"status": "shipped", "order_id": "o-5001", "pin": "1234"});
        let args = redactor.redacted(args.as_object().unwrap());
        assert_eq!(
            summary("update_order", "ed", &args),
            r#"update_order will run as ed with order_id = "o-5001", pin = "[REDACTED]", status = "shipped""#
        );
        assert_eq!(
            summary("purge", "ed", &JsonObject::new()),
            "purge will run as ed with no arguments"
        );
        // What a human reads is what runs: no character hides or reorders the text.
        let sneaky = json!({"note": "a\u{202E}b\u{2028}c\u{7F}d😀\u{E0041}"});
        assert_eq!(
            summary("edit", "e\u{200B}d", sneaky.as_object().unwrap()),
            r#"edit will run as e\u200bd with note = "a\u202eb\u2028c\u007fd😀\udb40\udc41""#
        );
        let long = json!({"body": "é".repeat(200)});
        assert!(summary("t", "u", long.as_object().unwrap()).ends_with('…'));
    }
}
