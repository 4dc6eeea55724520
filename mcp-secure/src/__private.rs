//! Everything `#[tool]`, `roles!` and `tools!` expand to reaches the runtime through here.
//! Not a public API: it changes with the macros.

pub use crate::guard::validate::{CheckRules, Failed, length_within};
pub use ::futures::future::BoxFuture;
pub use ::rmcp::model::{CallToolResult, JsonObject};
pub use ::schemars;
pub use ::serde;
pub use ::serde_json;
#[cfg(feature = "validator")]
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

/// Without the `validator` feature, `#[derive(validator::Validate)]` on arguments with a rule
/// only validator checks is a compile error that names the rule and the feature.
#[cfg(not(feature = "validator"))]
pub mod validator {
    pub use mcp_secure_macros::__ValidatorFeatureOff as Validate;
}

/// Deserializes and validates arguments with validator's derive (guard 5).
#[cfg(feature = "validator")]
pub fn parse_args<T>(args: &JsonObject) -> Result<ParsedArgs, ToolError>
where
    T: serde::de::DeserializeOwned + validator::Validate + Send + 'static,
{
    crate::guard::validate::parse::<T>(args)
}

/// Without the `validator` feature, the code that names this function does not compile (the
/// derive above reports the rule); it exists so that error is the only one, and refuses.
#[cfg(not(feature = "validator"))]
pub fn parse_args<T>(_: &JsonObject) -> Result<ParsedArgs, ToolError> {
    Err(ToolError::internal(
        "a `#[validate]` rule needs mcp-secure's `validator` feature",
    ))
}

/// Deserializes arguments and checks the `length` and `range` rules `#[tool]` wrote.
pub fn parse_args_checked<T>(args: &JsonObject) -> Result<ParsedArgs, ToolError>
where
    T: serde::de::DeserializeOwned + CheckRules + Send + 'static,
{
    crate::guard::validate::parse_checked::<T>(args)
}

/// [`parse_args`] for arguments without a `#[validate]` rule: no `Validate` impl is generated
/// for them (the derived one would always pass).
pub fn parse_args_without_rules<T>(args: &JsonObject) -> Result<ParsedArgs, ToolError>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    crate::guard::validate::parse_without_rules::<T>(args)
}

/// Recovers the typed arguments `parse_args` produced.
pub fn downcast<T: 'static>(args: ParsedArgs) -> Result<T, ToolError> {
    match args.downcast::<T>() {
        Ok(b) => Ok(*b),
        Err(_) => Err(wrong_arguments()),
    }
}

fn wrong_arguments() -> ToolError {
    ToolError::internal("arguments of another tool were passed to this tool")
}

/// Converts the body's return value.
pub fn into_result<R: ToolReturn>(r: R) -> Result<CallToolResult, ToolError> {
    r.into_result()
}

/// The output schema of a return type.
pub fn output_schema<R: ToolReturn>() -> Option<JsonObject> {
    R::output_schema()
}

/// The entry points of one `#[tool]`, as plain function pointers: the macro fills them with
/// instances of the generic helpers above and one non-generic `call` per tool, so no trait
/// impl (and no generic code) is generated per tool. `C` is what `call` receives: `()` for a
/// tool without context, `Ctx<App>` for one with.
pub struct ToolFns<C> {
    /// The policy.
    pub spec: ToolSpec,
    /// `input_schema::<Args>`.
    pub input_schema: fn() -> JsonObject,
    /// `output_schema::<Return>`.
    pub output_schema: fn() -> Option<JsonObject>,
    /// `parse_args_checked::<Args>`, `parse_args::<Args>` (validator's rules) or
    /// `parse_args_without_rules::<Args>`.
    pub parse: fn(&JsonObject) -> Result<ParsedArgs, ToolError>,
    /// Runs the body with parsed arguments.
    pub call: fn(C, ParsedArgs) -> BoxFuture<'static, Result<CallToolResult, ToolError>>,
}

/// A tool without a context parameter: it runs on a server with any state.
pub struct Stateless {
    /// The tool's entry points.
    pub fns: &'static ToolFns<()>,
}

/// A tool taking `Ctx<S>`: it runs on a server with state `S`.
pub struct WithState<S: 'static> {
    /// The tool's entry points.
    pub fns: &'static ToolFns<Ctx<S>>,
}

/// The methods both handler types answer from their `ToolFns` alike (only `call` differs).
macro_rules! from_tool_fns {
    () => {
        fn spec(&self) -> &'static ToolSpec {
            &self.fns.spec
        }
        fn input_schema(&self) -> JsonObject {
            (self.fns.input_schema)()
        }
        fn output_schema(&self) -> Option<JsonObject> {
            (self.fns.output_schema)()
        }
        fn parse(&self, args: &JsonObject) -> Result<ParsedArgs, ToolError> {
            (self.fns.parse)(args)
        }
    };
}

impl<S: Send + Sync + 'static> ToolHandler<S> for Stateless {
    from_tool_fns!();
    fn call(
        &self,
        ctx: Ctx<S>,
        args: ParsedArgs,
    ) -> BoxFuture<'static, Result<CallToolResult, ToolError>> {
        drop(ctx);
        (self.fns.call)((), args)
    }
    fn call_without_ctx(
        &self,
        args: ParsedArgs,
    ) -> Result<BoxFuture<'static, Result<CallToolResult, ToolError>>, ParsedArgs> {
        Ok((self.fns.call)((), args))
    }
}

impl<S: 'static> ToolHandler<S> for WithState<S> {
    from_tool_fns!();
    fn call(
        &self,
        ctx: Ctx<S>,
        args: ParsedArgs,
    ) -> BoxFuture<'static, Result<CallToolResult, ToolError>> {
        (self.fns.call)(ctx, args)
    }
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
