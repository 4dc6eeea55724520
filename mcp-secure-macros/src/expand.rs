//! Emitting. Every decision was made by `valid`; nothing here fails.
//!
//! All paths are absolute (`::mcp_secure::__private::..`, `::core::..`, `::std::..`), every
//! generated item starts with `__mcs_`, and code whose errors rustc may report is spanned on
//! the user's tokens.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, LitStr};

use crate::ast::{
    Arg, FsTarget, Kind, RoleCheck, RoleDecl, RoleError, Rules, Sandbox, Tool, ToolPath, Validation,
};
use crate::rules;

/// The generated handler constant of a tool: `__mcs_tool_<fn>`.
pub(crate) fn tool_struct(fn_ident: &Ident) -> Ident {
    let name = fn_ident.to_string();
    format_ident!(
        "__mcs_tool_{}",
        name.trim_start_matches("r#"),
        span = fn_ident.span()
    )
}

fn args_struct(fn_ident: &Ident) -> Ident {
    let name = fn_ident.to_string();
    format_ident!(
        "__mcs_args_{}",
        name.trim_start_matches("r#"),
        span = fn_ident.span()
    )
}

/// A tool that passed every check: the function, its arguments struct, its handler and the
/// compile-time checks.
///
/// Paths are written out in each template rather than interpolated from a shared
/// `TokenStream`: in a proc macro every interpolated stream is a round trip to the compiler,
/// while written-out tokens are only pushed. The `crate = ".."` strings are built as literals
/// for the same reason (a string in a `quote!` template is lexed by the compiler).
pub(crate) fn tool(tool: &Tool) -> TokenStream {
    let func = &tool.func;
    let vis = &func.vis;
    let fn_ident = &func.sig.ident;
    let args_ident = args_struct(fn_ident);
    let tool_ident = tool_struct(fn_ident);

    let fields = tool.fields().map(|f| {
        let (attrs, ident, ty) = (&f.attrs, &f.ident, &f.ty);
        quote!(#(#attrs)* #ident: #ty,)
    });
    let schema_name = Literal::string(&tool.name);
    let serde_crate = Literal::string("::mcp_secure::__private::serde");
    let schemars_crate = Literal::string("::mcp_secure::__private::schemars");

    // Arguments without a `#[validate]` rule implement nothing (a derived `Validate` would
    // always pass) and are parsed by `parse_args_without_rules`; arguments whose only rules are
    // `length` and `range` with literal bounds implement `CheckRules` (see `own_rules`) and are
    // parsed by `parse_args_checked`; the others derive validator's `Validate`.
    let (validate_derive, validate_attr, validate_impl, parse) = match tool.validation() {
        Validation::None => (
            TokenStream::new(),
            TokenStream::new(),
            TokenStream::new(),
            quote!(parse_args_without_rules),
        ),
        Validation::Own => (
            TokenStream::new(),
            TokenStream::new(),
            own_rules(tool, &args_ident),
            quote!(parse_args_checked),
        ),
        Validation::Derive => {
            let validator_crate = Literal::string("::mcp_secure::__private::validator");
            (
                quote!(, ::mcp_secure::__private::validator::Validate),
                quote!(#[validate(crate = #validator_crate)]),
                // The derive checks a `nested` field by calling its `validate` method, which
                // needs the trait in scope; `as _` adds no name to the user's module.
                quote! {
                    #[allow(unused_imports)]
                    use ::mcp_secure::__private::validator::Validate as _;
                },
                quote!(parse_args),
            )
        }
    };

    // The handler: `WithState<App>` (a `ToolHandler<App>`) for a tool with `Ctx<App>`,
    // `Stateless` (a `ToolHandler` for any state) otherwise. Both are runtime types holding
    // function pointers, so nothing generic is generated per tool.
    let (handler, handler_ctor, ctx_param) = match &tool.state {
        Some(state) => (
            quote!(::mcp_secure::__private::WithState<#state>),
            quote!(WithState),
            quote!(__mcs_ctx),
        ),
        None => (
            quote!(::mcp_secure::__private::Stateless),
            quote!(Stateless),
            quote!(_),
        ),
    };
    let ret = &tool.ret;
    let spec = spec(tool);

    // `let __mcs_args_x { a: __mcs_arg_0, .. } = downcast(..)?; x(__mcs_ctx, __mcs_arg_0, ..)`
    let mut bindings = Vec::new();
    let mut call_args = Vec::new();
    for (i, arg) in tool.args.iter().enumerate() {
        match arg {
            Arg::Ctx => call_args.push(quote!(__mcs_ctx)),
            Arg::Field(f) => {
                let local = format_ident!("__mcs_arg_{}", i);
                let ident = &f.ident;
                bindings.push(quote!(#ident: #local));
                call_args.push(local.into_token_stream());
            }
        }
    }
    let call = quote_spanned! {fn_ident.span()=> #fn_ident(#(#call_args),*).await };

    let checks = checks(tool);

    // The checks come first: rustc reports errors roughly in item order, and theirs read best.
    quote! {
        #func

        #checks

        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[derive(
            ::mcp_secure::__private::serde::Deserialize,
            ::mcp_secure::__private::schemars::JsonSchema
            #validate_derive
        )]
        #[serde(crate = #serde_crate, deny_unknown_fields)]
        #[schemars(crate = #schemars_crate, rename = #schema_name)]
        #validate_attr
        #vis struct #args_ident {
            #(#fields)*
        }

        #validate_impl

        #[doc(hidden)]
        #[allow(non_upper_case_globals, private_interfaces)]
        #vis const #tool_ident: #handler = ::mcp_secure::__private::#handler_ctor {
            fns: &::mcp_secure::__private::ToolFns {
                spec: #spec,
                input_schema: ::mcp_secure::__private::input_schema::<#args_ident>,
                output_schema: ::mcp_secure::__private::output_schema::<#ret>,
                parse: ::mcp_secure::__private::#parse::<#args_ident>,
                call: |#ctx_param, __mcs_args| {
                    ::std::boxed::Box::pin(async move {
                        let #args_ident { #(#bindings),* } =
                            ::mcp_secure::__private::downcast::<#args_ident>(__mcs_args)?;
                        ::mcp_secure::__private::into_result(#call)
                    })
                },
            },
        };
    }
}

/// The `CheckRules` impl of arguments whose rules are all `length` and `range` with literal
/// bounds: each field's checks in order, each pushing the field's name and the rule's message
/// when it fails. Cheaper to compile than validator's derive, and needs no validator at all.
fn own_rules(tool: &Tool, args_ident: &Ident) -> TokenStream {
    let checks = tool.fields().filter_map(|f| match &f.rules {
        Rules::Own(own) => Some(rules::checks(&f.ident, rules::is_option(&f.ty), own)),
        _ => None,
    });
    quote! {
        #[automatically_derived]
        impl ::mcp_secure::__private::CheckRules for #args_ident {
            fn check_rules(&self, __mcs_failed: &mut ::mcp_secure::__private::Failed) {
                #(#checks)*
            }
        }
    }
}

/// `ToolSpec::__new(..)`, every value a constant.
fn spec(tool: &Tool) -> TokenStream {
    let name = &tool.name;
    let title = option(tool.title.as_ref().map(|t| quote!(#t)));
    let description = &tool.description;
    let kind = Ident::new(tool.kind.variant(), Span::call_site());
    let role = &tool.role;
    let approval = Ident::new(tool.approval.variant(), Span::call_site());
    let rate = match tool.rate {
        Some(r) => {
            let count = Literal::u32_unsuffixed(r.count);
            let per = Literal::u64_unsuffixed(r.per_secs);
            quote!(::mcp_secure::__private::Rate::new(#count, ::core::time::Duration::from_secs(#per)))
        }
        None => quote!(::core::option::Option::None),
    };
    let concurrency = option(
        tool.concurrency
            .map(|n| Literal::u32_unsuffixed(n).into_token_stream()),
    );
    let timeout = option(tool.timeout_ms.map(|ms| {
        let ms = Literal::u64_unsuffixed(ms);
        quote!(::core::time::Duration::from_millis(#ms))
    }));
    let max_input = option(
        tool.max_input
            .map(|b| Literal::usize_unsuffixed(b as usize).into_token_stream()),
    );
    let secrets = tool.fields().filter(|f| f.secret).map(|f| &f.wire_name);
    let sandbox = option(tool.sandbox.as_ref().map(sandbox));
    quote! {
        ::mcp_secure::__private::ToolSpec::__new(
            #name,
            #title,
            #description,
            ::mcp_secure::__private::Kind::#kind,
            #role,
            ::mcp_secure::__private::Approval::#approval,
            #rate,
            #concurrency,
            #timeout,
            #max_input,
            &[#(#secrets),*],
            #sandbox,
        )
    }
}

/// `SandboxSpec::__new(Network::X, &[FsGrant::__root("reports", false), ..])`.
fn sandbox(sandbox: &Sandbox) -> TokenStream {
    let net = Ident::new(sandbox.net.variant(), Span::call_site());
    let grants = sandbox.fs.iter().map(|e| {
        let write = e.write;
        match &e.target {
            FsTarget::Root(name) => quote!(::mcp_secure::__private::FsGrant::__root(#name, #write)),
            FsTarget::Path(path) => quote!(::mcp_secure::__private::FsGrant::__path(#path, #write)),
            FsTarget::Scratch => quote!(::mcp_secure::__private::FsGrant::__scratch()),
        }
    });
    quote!(::mcp_secure::__private::SandboxSpec::__new(::mcp_secure::__private::Network::#net, &[#(#grants),*]))
}

fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

/// `const _: () = { .. };` with the checks rustc runs, each spanned on the user's token.
fn checks(tool: &Tool) -> TokenStream {
    let mut checks = Vec::new();
    for f in tool.fields() {
        let ty = &f.ty;
        checks.push(quote_spanned!(ty.span()=> ::mcp_secure::__private::assert_param::<#ty>();));
        if f.assert_bounded {
            checks.push(
                quote_spanned!(ty.span()=> ::mcp_secure::__private::assert_bounded::<#ty>();),
            );
        }
    }
    let ret = &tool.ret;
    checks.push(quote_spanned!(ret.span()=> ::mcp_secure::__private::assert_return::<#ret>();));
    let role = &tool.role;
    // An admin tool needs a privileged role, which is necessarily declared: one check says it.
    let check = if tool.kind == Kind::Admin {
        quote!(@admin)
    } else {
        quote!(@role)
    };
    checks.push(quote_spanned!(role.span()=> crate::__mcs_check_role!(#check #role);));
    quote! {
        const _: () = {
            #(#checks)*
        };
    }
}

/// A tool with mistakes: the user's function, so the rest of the crate still resolves, and
/// the errors.
pub(crate) fn fallback(func: &ItemFn, errors: Vec<syn::Error>) -> TokenStream {
    let errors = errors.iter().map(syn::Error::to_compile_error);
    quote! {
        #func
        #(#errors)*
    }
}

/// The input as it was, and the errors (for an attribute on something that is not a function).
pub(crate) fn unchanged(item: TokenStream, errors: Vec<syn::Error>) -> TokenStream {
    let errors = errors.iter().map(syn::Error::to_compile_error);
    quote! {
        #item
        #(#errors)*
    }
}

/// `ROLES` and the `__mcs_check_role!` macro `#[tool]` calls.
pub(crate) fn roles(decls: &[RoleDecl]) -> TokenStream {
    let p = quote!(::mcp_secure::__private);
    // Literals made afresh from the values, so `"a"` written as `r"a"` still matches.
    let lit = |s: &LitStr| Literal::string(&s.value());
    let entries = decls.iter().map(|d| {
        let name = lit(&d.name);
        let inherits = d.inherits.iter().map(lit);
        let privileged = d.privileged;
        quote!(#p::RoleDecl { name: #name, inherits: &[#(#inherits),*], privileged: #privileged })
    });
    let all: Vec<Literal> = decls.iter().map(|d| lit(&d.name)).collect();
    let privileged: Vec<Literal> = decls
        .iter()
        .filter(|d| d.privileged)
        .map(|d| lit(&d.name))
        .collect();
    quote! {
        /// The roles declared with `roles!`, for the server builder.
        pub const ROLES: &[#p::RoleDecl] = &[#(#entries),*];

        #[doc(hidden)]
        macro_rules! __mcs_check_role_impl {
            #( (@role #all) => {}; )*
            #( (@admin #privileged) => {}; )*
            (@role $other:tt) => {
                ::mcp_secure::__private::__role_error!(@role $other; #(#all),*);
            };
            (@admin $other:tt) => {
                ::mcp_secure::__private::__role_error!(@admin $other; #(#privileged),*);
            };
        }

        #[doc(hidden)]
        #[allow(unused_imports)]
        pub(crate) use __mcs_check_role_impl as __mcs_check_role;
    }
}

/// The error of a failed role check, on the user's literal.
pub(crate) fn role_error(e: &RoleError) -> TokenStream {
    let role = e.role.value();
    let accepted: Vec<String> = e.accepted.iter().map(|r| format!("`{r}`")).collect();
    let msg = match e.check {
        RoleCheck::Declared if accepted.is_empty() => {
            format!(
                "unknown role `{role}`; no role is declared: declare it in `roles! {{ \"{role}\" }}` at the crate root"
            )
        }
        RoleCheck::Declared => format!(
            "unknown role `{role}`; declared roles are: {}",
            accepted.join(", ")
        ),
        RoleCheck::Privileged if accepted.is_empty() => format!(
            "admin tools need a privileged role, and `{role}` is not one; no role is privileged: declare one with `: *`, e.g. `\"admin\": *`"
        ),
        RoleCheck::Privileged => format!(
            "admin tools need a privileged role, and `{role}` is not one; privileged roles (declared with `: *`) are: {}",
            accepted.join(", ")
        ),
    };
    syn::Error::new(e.role.span(), msg).to_compile_error()
}

/// `Tools::new(vec![boxed_tool(a::__mcs_tool_b), ..])`.
pub(crate) fn tools(paths: &[ToolPath]) -> TokenStream {
    let p = quote!(::mcp_secure::__private);
    let items = paths.iter().map(|t| {
        let mut path = t.path.clone();
        if let Some(last) = path.segments.last_mut() {
            last.ident = tool_struct(&last.ident);
        }
        quote_spanned!(t.path.span()=> #p::boxed_tool(#path))
    });
    quote!(#p::Tools::new(::std::vec![#(#items),*]))
}

/// A syntax error in `tools!` or `__role_error!`.
pub(crate) fn error(e: &syn::Error) -> TokenStream {
    e.to_compile_error()
}
