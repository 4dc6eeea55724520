//! Everything `#[tool]`, `roles!` and `tools!` expand to reaches the runtime through here.
//! Not a public API: it changes with the macros.

pub use ::futures::future::BoxFuture;
pub use ::rmcp::model::{CallToolResult, JsonObject};
pub use ::schemars;
pub use ::serde;
pub use ::serde_json;
pub use ::validator;
pub use mcp_secure_macros::__role_error;

pub use crate::ctx::Ctx;
pub use crate::error::ToolError;
pub use crate::policy::{Approval, FsGrant, Kind, Network, Rate, RoleDecl, SandboxSpec, ToolSpec};
pub use crate::tool::{Bounded, ParsedArgs, ToolHandler, ToolReturn, Tools};

use std::sync::Arc;

/// Builds the schema of a generated arguments struct.
pub fn input_schema<T: schemars::JsonSchema + 'static>() -> JsonObject {
    match ::rmcp::handler::server::tool::schema_for_input::<T>() {
        Ok(s) => (*s).clone(),
        // The generated struct is always an object; this cannot be reached by user input.
        Err(e) => {
            tracing::error!(error = %e, "generated arguments schema is not an object");
            JsonObject::new()
        }
    }
}

/// Deserializes and validates arguments (guard 5).
pub fn parse_args<T>(args: &JsonObject) -> Result<ParsedArgs, ToolError>
where
    T: serde::de::DeserializeOwned + validator::Validate + Send + 'static,
{
    crate::guard::validate::parse::<T>(args)
}

/// Recovers the typed arguments `parse_args` produced.
pub fn downcast<T: 'static>(args: ParsedArgs) -> Result<T, ToolError> {
    args.downcast::<T>()
        .map(|b| *b)
        .map_err(|_| ToolError::internal("arguments of another tool were passed to this tool"))
}

/// Converts the body's return value.
pub fn into_result<R: ToolReturn>(r: R) -> Result<CallToolResult, ToolError> {
    r.into_result()
}

/// The output schema of a return type.
pub fn output_schema<R: ToolReturn>() -> Option<JsonObject> {
    R::output_schema()
}

/// Boxes a generated tool for `tools!`.
pub fn boxed_tool<S, T: ToolHandler<S>>(tool: T) -> Arc<dyn ToolHandler<S>> {
    Arc::new(tool)
}

/// Compile-time check: the parameter type is bounded.
pub const fn assert_bounded<T: ?Sized + Bounded>() {}

/// Compile-time check: the parameter type can be deserialized and described.
pub const fn assert_param<T: ToolParam>() {}

/// Compile-time check: the return type is `Result<T, ToolError>` with a valid `T`.
pub const fn assert_return<R: ToolReturn>() {}

/// A type usable as a tool parameter.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a tool parameter",
    label = "must implement `serde::Deserialize` and `schemars::JsonSchema`",
    note = "derive both on your type: `#[derive(serde::Deserialize, schemars::JsonSchema)]`"
)]
pub trait ToolParam {}
impl<T: serde::de::DeserializeOwned + schemars::JsonSchema> ToolParam for T {}
