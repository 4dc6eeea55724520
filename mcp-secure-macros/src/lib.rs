//! Procedural macros for [mcp-secure](https://docs.rs/mcp-secure): `#[tool]`, `roles!` and
//! `tools!`. Use them through the `mcp_secure` crate, which documents them; the generated code
//! reaches the runtime only through `::mcp_secure::__private`.
//!
//! Each macro runs three stages over a typed model: parse (`attr`), check (`valid`, which
//! builds the `ast` model and collects every error) and emit (`expand`, which cannot fail).
//! This file is the only one that touches `proc_macro`.

#![forbid(unsafe_code)]

mod ast;
mod attr;
mod expand;
mod grammar;
mod rules;
mod valid;

#[cfg(test)]
mod tests;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;

use crate::valid::Ctxt;

/// Declares an MCP tool on a free `async fn`. See the `mcp_secure` crate for the keys, the
/// rules and the errors.
#[proc_macro_attribute]
pub fn tool(args: TokenStream, item: TokenStream) -> TokenStream {
    tool_impl(args.into(), item.into()).into()
}

/// Declares the crate's roles, once, at the crate root:
/// `roles! { "read-only", "editor": "read-only", "admin": * }`.
///
/// Expands to `pub const ROLES` and to the crate-private `__mcs_check_role!` macro that
/// `#[tool]` calls as `crate::__mcs_check_role!`, which is why it must be invoked at the crate
/// root.
#[proc_macro]
pub fn roles(input: TokenStream) -> TokenStream {
    roles_impl(input.into()).into()
}

/// Lists tools for a server: `tools![get_customer, orders::update_order]`.
#[proc_macro]
pub fn tools(input: TokenStream) -> TokenStream {
    match attr::tools(input.into()) {
        Ok(paths) => expand::tools(&paths),
        Err(e) => expand::error(&e),
    }
    .into()
}

/// Stands in for validator's `Validate` derive when mcp-secure is built without its
/// `validator` feature: reports the first `#[validate]` rule that needs it, on the user's
/// attribute. `#[tool]` derives it only for arguments with such a rule; not for direct use.
#[doc(hidden)]
#[proc_macro_derive(__ValidatorFeatureOff, attributes(validate))]
pub fn __validator_feature_off(input: TokenStream) -> TokenStream {
    rules::feature_off(input.into()).into()
}

/// Reports a failed role check on the user's literal. Called by the `__mcs_check_role!` macro
/// that `roles!` writes; not for direct use.
#[doc(hidden)]
#[proc_macro]
pub fn __role_error(input: TokenStream) -> TokenStream {
    match attr::role_error(input.into()) {
        Ok(e) => expand::role_error(&e),
        Err(e) => expand::error(&e),
    }
    .into()
}

pub(crate) fn tool_impl(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let cx = Ctxt::new();
    let args = attr::tool_args(&cx, args);
    let func = match attr::tool_fn(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            cx.error_at(
                proc_macro2::Span::call_site(),
                "`#[tool]` goes on a free `async fn`; write `async fn name(ctx: Ctx<App>, ...) -> Result<T, ToolError>`",
            );
            let errors = cx.check().err().unwrap_or_default();
            return expand::unchanged(item, errors);
        }
    };
    let tool = valid::tool(&cx, args, func);
    match cx.check() {
        Ok(()) => expand::tool(&tool),
        Err(errors) => expand::fallback(&tool.func, errors),
    }
}

pub(crate) fn roles_impl(input: TokenStream2) -> TokenStream2 {
    let cx = Ctxt::new();
    let entries = attr::roles(&cx, input);
    let decls = valid::roles(&cx, entries);
    // With mistakes, the roles that parsed are still emitted, so the crate's tools do not
    // report a missing `__mcs_check_role!` on top of the real error.
    let errors = cx.check().err().unwrap_or_default();
    expand::unchanged(expand::roles(&decls), errors)
}
