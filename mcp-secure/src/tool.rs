//! The contract between `#[tool]`-generated code and the server, and the types tool
//! signatures use.

use std::any::Any;
use std::sync::Arc;

use futures::future::BoxFuture;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use schemars::JsonSchema;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::error::ToolError;
use crate::policy::ToolSpec;

/// Arguments that have been deserialized and validated, waiting for the body to run.
pub type ParsedArgs = Box<dyn Any + Send>;

/// One tool, as the server drives it. `#[tool]` implements this; there is no reason to
/// implement it by hand, and doing so cannot bypass the pipeline: the server calls `parse`
/// and `call` only after its guards pass.
pub trait ToolHandler<S>: Send + Sync + 'static {
    /// The policy, fixed at compile time.
    fn spec(&self) -> &'static ToolSpec;
    /// The JSON schema of the arguments.
    fn input_schema(&self) -> JsonObject;
    /// The JSON schema of structured output, for tools returning [`Json<T>`].
    fn output_schema(&self) -> Option<JsonObject>;
    /// Deserializes (unknown fields refused) and validates the arguments. They are borrowed:
    /// the server keeps them for the audit record and the approval binding.
    fn parse(&self, args: &JsonObject) -> Result<ParsedArgs, ToolError>;
    /// Runs the body with parsed arguments.
    fn call(
        &self,
        ctx: Ctx<S>,
        args: ParsedArgs,
    ) -> BoxFuture<'static, Result<CallToolResult, ToolError>>;
    /// Runs the body without a [`Ctx`], for a body that takes none; otherwise gives the
    /// arguments back (what this default does), and the server calls [`ToolHandler::call`].
    /// The server then builds no `Ctx` for the call: no handle to the state or the request
    /// is taken, and the request's cancellation is watched without a handle of its own.
    fn call_without_ctx(
        &self,
        args: ParsedArgs,
    ) -> Result<BoxFuture<'static, Result<CallToolResult, ToolError>>, ParsedArgs> {
        Err(args)
    }
}

/// The tools given to a server, made by `tools![a, b, c]`.
pub struct Tools<S>(pub(crate) Vec<Arc<dyn ToolHandler<S>>>);

impl<S> Tools<S> {
    /// Builds a list from handlers (what `tools!` expands to).
    pub fn new(list: Vec<Arc<dyn ToolHandler<S>>>) -> Self {
        Tools(list)
    }

    /// Adds the tools of another list.
    pub fn merge(mut self, other: Tools<S>) -> Self {
        self.0.extend(other.0);
        self
    }

    /// How many tools.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<S: 'static> std::fmt::Debug for Tools<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|t| t.spec().name))
            .finish()
    }
}

/// Structured output: the value is sent as `structuredContent` (and as JSON text for older
/// clients), and its schema is the tool's `outputSchema`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Json<T>(pub T);

/// What a tool body may return on success.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by a tool",
    note = "return text (`String`), structured output (`mcp_secure::Json<T>`) or an rmcp `CallToolResult`"
)]
pub trait IntoToolOutput {
    /// Converts into the result sent to the client.
    fn into_tool_output(self) -> Result<CallToolResult, ToolError>;
    /// The output schema, if the output is structured.
    fn output_schema() -> Option<JsonObject> {
        None
    }
}

impl IntoToolOutput for String {
    fn into_tool_output(self) -> Result<CallToolResult, ToolError> {
        Ok(CallToolResult::success(vec![ContentBlock::text(self)]))
    }
}

impl IntoToolOutput for &'static str {
    fn into_tool_output(self) -> Result<CallToolResult, ToolError> {
        self.to_owned().into_tool_output()
    }
}

impl IntoToolOutput for CallToolResult {
    fn into_tool_output(self) -> Result<CallToolResult, ToolError> {
        Ok(self)
    }
}

impl<T: Serialize + JsonSchema + 'static> IntoToolOutput for Json<T> {
    fn into_tool_output(self) -> Result<CallToolResult, ToolError> {
        let value = serde_json::to_value(&self.0).map_err(ToolError::internal)?;
        Ok(CallToolResult::structured(value))
    }
    fn output_schema() -> Option<JsonObject> {
        Some((*rmcp::handler::server::tool::schema_for_output::<T>()).clone())
    }
}

/// The return type of a tool: `Result<T, ToolError>` where `T` is an [`IntoToolOutput`].
#[diagnostic::on_unimplemented(
    message = "a tool must return `Result<T, mcp_secure::ToolError>`, not `{Self}`",
    note = "`T` may be `String`, `mcp_secure::Json<U>` or an rmcp `CallToolResult`"
)]
pub trait ToolReturn {
    /// Converts the body's result.
    fn into_result(self) -> Result<CallToolResult, ToolError>;
    /// The output schema of the success type.
    fn output_schema() -> Option<JsonObject>;
}

impl<T: IntoToolOutput> ToolReturn for Result<T, ToolError> {
    fn into_result(self) -> Result<CallToolResult, ToolError> {
        self.and_then(IntoToolOutput::into_tool_output)
    }
    fn output_schema() -> Option<JsonObject> {
        T::output_schema()
    }
}

/// A parameter type whose values are small by construction, so `#[tool]` accepts it without a
/// `#[validate(length(max = ..))]` rule.
///
/// Implemented for numbers, `bool`, `char`, and `Option`, arrays and `Secret` of bounded types.
/// Implement it for your own enums and small structs whose fields are all bounded; a type that
/// can hold an arbitrarily long string or list must not implement it.
#[diagnostic::on_unimplemented(
    message = "parameter type `{Self}` is not known to be bounded",
    label = "this parameter could be arbitrarily large",
    note = "add `#[validate(length(max = N))]`, use a bounded type such as `ReadOnlySql`, implement `mcp_secure::Bounded` for `{Self}` if every value of it is small, or opt out with `#[unbounded(reason = \"...\")]`"
)]
pub trait Bounded {}

macro_rules! bounded {
    ($($t:ty),*) => { $(impl Bounded for $t {})* };
}
bounded!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    bool,
    char,
    ()
);
impl<T: Bounded> Bounded for Option<T> {}
impl<T: Bounded, const N: usize> Bounded for [T; N] {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, JsonSchema)]
    struct Out {
        n: u32,
    }

    #[test]
    fn json_output_is_structured_with_schema() {
        let r = Json(Out { n: 3 }).into_tool_output().unwrap();
        assert_eq!(r.structured_content.unwrap()["n"], 3);
        let schema = <Json<Out> as IntoToolOutput>::output_schema().unwrap();
        assert_eq!(schema["type"], "object");
        assert!(<String as IntoToolOutput>::output_schema().is_none());
    }
}
