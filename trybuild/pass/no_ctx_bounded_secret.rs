//! A tool without context works with any state; a user enum made `Bounded`; an explicit opt-out;
//! `Secret` parameters listed in the spec.

use mcp_secure::{Bounded, Secret, ToolError, ToolHandler, Tools, roles, tool, tools};
use schemars::JsonSchema;
use serde::Deserialize;

roles! { "read-only", "ops": "read-only" }

/// Where a token is used.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Billing,
    Shipping,
}

impl Bounded for Service {}

/// Replace a service's API token.
#[tool(kind = "write", role = "ops", approval = "explicit")]
pub async fn rotate_token(
    /// The service whose token is replaced.
    service: Service,
    /// The new token.
    #[validate(length(min = 16, max = 128))]
    token: Secret<String>,
    /// The previous token, if it must be revoked too.
    old_token: Option<Secret<u64>>,
    /// A note for the operators.
    #[unbounded(reason = "shown to operators only, never to the model")]
    #[serde(default, rename = "operatorNote")]
    note: Option<String>,
) -> Result<String, ToolError> {
    let _ = (token.expose().len(), old_token, note);
    Ok(format!("rotated {service:?}"))
}

struct OtherState;

fn main() {
    let a: Tools<()> = tools![rotate_token];
    let b: Tools<OtherState> = tools![rotate_token];
    assert_eq!((a.len(), b.len()), (1, 1));

    let spec = ToolHandler::<()>::spec(&__mcs_tool_rotate_token);
    assert_eq!(spec.secret_fields, ["token", "old_token"]);
    let schema =
        serde_json::Value::Object(ToolHandler::<()>::input_schema(&__mcs_tool_rotate_token));
    assert_eq!(schema["properties"]["token"]["writeOnly"], true, "{schema}");
    assert!(schema["properties"]["operatorNote"].is_object(), "{schema}");
}
