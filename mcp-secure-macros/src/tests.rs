//! Expansion snapshots: a change in the generated code shows up in review as a `.snap` diff.

use proc_macro2::TokenStream;
use quote::quote;

/// Formats generated tokens (prettyplease works on syn 2 trees, so the tokens are re-parsed).
fn pretty(tokens: TokenStream) -> String {
    let file: syn2::File = syn2::parse2(tokens).expect("the expansion parses as a file");
    prettyplease::unparse(&file)
}

#[test]
fn read_tool_with_ctx_and_validated_string() {
    let out = crate::tool_impl(
        quote!(
            kind = "read",
            role = "read-only",
            rate = "60/min",
            timeout = "5s"
        ),
        quote! {
            /// Get one customer.
            ///
            /// Returns the customer's public record.
            pub async fn get_customer(
                ctx: Ctx<App>,
                /// The customer's id.
                #[validate(length(min = 1, max = 64))]
                customer_id: String,
            ) -> Result<Json<Customer>, ToolError> {
                ctx.db.customer(&customer_id).await.map(Json)
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn write_tool_with_secret_and_no_ctx() {
    let out = crate::tool_impl(
        quote!(
            kind = "write",
            role = "editor",
            approval = "explicit",
            concurrency = 2,
            max_input = "4KiB",
            name = "rotate-token",
            title = "Rotate an API token"
        ),
        quote! {
            /// Replace a service's API token.
            async fn rotate_token(
                /// The service whose token is replaced.
                service: Service,
                /// The new token.
                #[validate(length(min = 16, max = 128))]
                token: Secret<String>,
                #[unbounded(reason = "free text shown to operators only")]
                #[serde(default)]
                note: Option<String>,
            ) -> Result<String, ToolError> {
                Ok(format!("rotated {service:?}"))
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn sandboxed_tool() {
    let out = crate::tool_impl(
        quote!(
            kind = "read",
            role = "read-only",
            timeout = "10s",
            sandbox = "process",
            net = "none",
            fs = "reports, scratch, /srv/cache:rw"
        ),
        quote! {
            /// Read one report.
            pub async fn read_report(
                /// The report's name.
                #[validate(length(min = 1, max = 64))]
                name: String,
            ) -> Result<String, ToolError> {
                let dir = mcp_secure::sandbox::root("reports")?;
                std::fs::read_to_string(dir.join(name)).map_err(ToolError::failed)
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

/// No `#[validate]` rule: no `Validate` derive, parsed by `parse_args_without_rules`. The body,
/// with an inner doc comment, is kept as it was written.
#[test]
fn tool_without_rules() {
    let out = crate::tool_impl(
        quote!(kind = "read", role = "read-only"),
        quote! {
            /// Add two numbers.
            pub async fn add(a: u32, b: u32) -> Result<u64, ToolError> {
                //! Never overflows.
                let sum = u64::from(a) + u64::from(b);
                Ok(sum)
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

/// `length` and `range` with literal bounds, on plain and `Option` types, exclusive and
/// negative bounds, and a `message`: the generated `CheckRules`, no derive.
#[test]
fn tool_with_own_rules() {
    let out = crate::tool_impl(
        quote!(kind = "write", role = "editor"),
        quote! {
            /// Order some items.
            pub async fn order(
                #[validate(range(min = 1, max = 10))]
                qty: u32,
                #[validate(length(max = 64))]
                note: Option<String>,
                #[validate(range(exclusive_min = -0.5, max = 2.5e1), range(max = 20.0, message = "too heavy"))]
                weight: Option<f64>,
                #[validate(length(equal = 2))]
                tag: String,
                #[validate(range(exclusive_max = 0x7f))]
                #[validate(range(min = 1u8))]
                level: u8,
            ) -> Result<String, ToolError> {
                Ok(format!("{qty}"))
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

/// Any rule `#[tool]` does not check itself (here `email`, next to a `length` it would):
/// validator's `Validate` derive for the whole struct.
#[test]
fn tool_with_derived_rules() {
    let out = crate::tool_impl(
        quote!(kind = "write", role = "editor"),
        quote! {
            /// Notify someone.
            pub async fn notify(
                #[validate(email, length(max = 64))]
                to: String,
                #[validate(length(max = 64))]
                text: String,
            ) -> Result<String, ToolError> {
                Ok(to)
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

fn expansion(param: TokenStream) -> String {
    pretty(crate::tool_impl(
        quote!(kind = "read", role = "r"),
        quote! {
            /// Doc.
            pub async fn f(#param) -> Result<String, ToolError> {
                Ok(String::new())
            }
        },
    ))
}

fn derives(out: &str) -> bool {
    out.contains("::mcp_secure::__private::validator::Validate\n)]")
}

/// Rules `#[tool]` checks itself, and those it leaves to validator's derive.
#[test]
fn who_checks_which_rule() {
    for own in [
        quote!(#[validate(length(min = 1, max = 9))] s: String),
        quote!(#[validate(length(max = 3, message = "short"))] s: String),
        quote!(#[validate(range(min = -3))] n: i8),
        quote!(#[validate(range(max = 1e3))] n: f64),
        quote!(#[validate()] #[validate(length(max = 2))] s: String),
    ] {
        let out = expansion(own.clone());
        assert!(
            !derives(&out) && out.contains("CheckRules for"),
            "{own}: {out}"
        );
    }
    for derived in [
        quote!(#[validate(email)] #[validate(length(max = 64))] s: String),
        quote!(#[validate(length(max = MAX))] s: String),
        quote!(#[validate(length(max = 3, code = "short"))] s: String),
        quote!(#[validate(range(min = LOW))] n: u8),
        quote!(#[validate(range(min = 1 + 1))] n: u8),
        quote!(#[validate(length(max = 3), custom(function = "f"))] s: String),
        quote!(#[validate(length(max = 3), length(min = "1"))] s: String),
        quote!(#[validate(length(max = 3, message = format!("x")))] s: String),
        quote!(#[validate(length(max = 3, unknown = 3))] s: String),
        quote!(#[validate = "x"] #[validate(length(max = 3))] s: String),
    ] {
        let out = expansion(derived.clone());
        assert!(
            derives(&out) && !out.contains("CheckRules"),
            "{derived}: {out}"
        );
    }
}

/// Own rules written so that no value can pass, or written wrong, are the macro's errors.
#[test]
fn own_rule_mistakes() {
    for (param, expected) in [
        (
            quote!(#[validate(length(max = 3, equal = 2))] s: String),
            "`equal` cannot be combined with `min` or `max`",
        ),
        (
            quote!(#[validate(length(min = 5, max = 4))] s: String),
            "`min` (5) is greater than `max` (4): no value can pass",
        ),
        (
            quote!(#[validate(length())] s: String),
            "`length` needs a bound",
        ),
        (
            quote!(#[validate(length(max = 3, max = 4))] s: String),
            "duplicate `max`; give it once",
        ),
        (
            quote!(#[validate(length(max = 99999999999999999999999))] s: String),
            "`max` must be a length (a non-negative integer)",
        ),
        (quote!(#[validate(range())] n: u8), "`range` needs a bound"),
        (
            quote!(#[validate(range(min = 1, exclusive_min = 0))] n: u8),
            "give either `min` or `exclusive_min`, not both",
        ),
        (
            quote!(#[validate(range(exclusive_max = 3, max = 2))] n: u8),
            "give either `max` or `exclusive_max`, not both",
        ),
        (
            quote!(#[validate(range(min = 10, max = -10))] n: i8),
            "no value can pass `range`: it must be at least 10 and at most -10",
        ),
        (
            quote!(#[validate(range(min = 1.5, exclusive_max = 1.5))] n: f64),
            "no value can pass `range`: it must be at least 1.5 and less than 1.5",
        ),
        (
            quote!(#[validate(range(max = 1e999))] n: f64),
            "`max` (inf) is not a finite number",
        ),
    ] {
        let out = expansion(param.clone());
        assert!(
            out.contains(expected),
            "{param}: missing {expected:?} in {out}"
        );
        assert!(!out.contains("__mcs_tool_f"), "{param}: {out}");
    }
    // Equal bounds, both inclusive, are one value: allowed.
    let out = expansion(quote!(#[validate(range(min = 2, max = 2))] n: u8));
    assert!(out.contains("must be between 2 and 2"), "{out}");
}

/// Without the `validator` feature, validator's derive is `__ValidatorFeatureOff`: one error,
/// on the first attribute with a rule only validator checks.
#[test]
fn feature_off_names_the_first_validator_rule() {
    let out = crate::rules::feature_off(quote! {
        struct A {
            #[validate(length(max = 3))]
            a: String,
            #[validate(range(min = 1), email)]
            b: String,
            #[validate(url)]
            c: String,
        }
    });
    let text = out.to_string();
    assert_eq!(text.matches("compile_error").count(), 1, "{text}");
    assert!(
        text.contains("enable mcp-secure's `validator` feature"),
        "{text}"
    );
}

#[test]
fn sandbox_rules() {
    let out = crate::tool_impl(
        quote!(kind = "read", role = "r", net = "any", fs = "data"),
        quote! {
            /// Not sandboxed.
            async fn t() -> Result<String, ToolError> { Ok(String::new()) }
        },
    )
    .to_string();
    assert!(
        out.contains(
            "`net` is enforced only in a sandbox; add `sandbox = \\\"process\\\"`, or remove `net`"
        ),
        "{out}"
    );
    assert!(out.contains("`fs` is enforced only in a sandbox"), "{out}");

    let out = crate::tool_impl(
        quote!(kind = "read", role = "r", sandbox = "process"),
        quote! {
            /// Sandboxed with state.
            async fn t(ctx: Ctx<App>) -> Result<String, ToolError> { Ok(String::new()) }
        },
    )
    .to_string();
    assert!(
        out.contains("a sandboxed tool cannot take `Ctx<App>`"),
        "{out}"
    );

    let out = crate::tool_impl(
        quote!(
            kind = "read",
            role = "r",
            sandbox = "vm",
            net = "all",
            fs = "a,,b"
        ),
        quote! {
            /// Bad values.
            async fn t(ctx: Ctx<App>) -> Result<String, ToolError> { Ok(String::new()) }
        },
    )
    .to_string();
    for expected in [
        "unknown sandbox `vm`",
        "unknown net `all`",
        "has an empty entry",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in {out}");
    }
    assert!(
        !out.contains("cannot take `Ctx"),
        "an invalid sandbox does not cascade: {out}"
    );
}

#[test]
fn roles_expansion() {
    let out = crate::roles_impl(
        quote!("read-only", "editor": "read-only", "lead": ["editor", "support"], "support", "admin": *),
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn tools_expansion() {
    let paths = crate::attr::tools(quote!(get_customer, orders::update_order,)).unwrap();
    let out = crate::expand::tools(&paths);
    assert_eq!(
        out.to_string(),
        quote!(::mcp_secure::__private::Tools::new(::std::vec![
            ::mcp_secure::__private::boxed_tool(__mcs_tool_get_customer),
            ::mcp_secure::__private::boxed_tool(orders::__mcs_tool_update_order)
        ]))
        .to_string()
    );
    let empty = crate::expand::tools(&crate::attr::tools(quote!()).unwrap());
    assert_eq!(
        empty.to_string(),
        quote!(::mcp_secure::__private::Tools::new(::std::vec![])).to_string()
    );
}

#[test]
fn mistakes_keep_the_function_and_strip_consumed_attributes() {
    let out = crate::tool_impl(
        quote!(kind = "write", role = "editor", approval = "none"),
        quote! {
            /// Rename.
            async fn rename(
                /// New name.
                #[validate(length(max = 10))]
                #[allow(unused)]
                name: String,
            ) -> Result<String, ToolError> { Ok(name) }
        },
    );
    let text = out.to_string();
    assert!(text.contains("async fn rename"), "{text}");
    assert!(text.contains("# [allow (unused)] name : String"), "{text}");
    assert!(
        !text.contains("validate") && !text.contains("New name"),
        "{text}"
    );
    assert!(text.contains("a `write` tool needs at least"), "{text}");
    assert!(!text.contains("__mcs_tool_rename"), "{text}");
}

#[test]
fn every_mistake_is_reported_at_once() {
    let out = crate::tool_impl(
        quote!(kind = "reed", rate = "0/min", timeout = "1.5s", foo = 1),
        quote! {
            fn f(q: String, p: (u8, u8)) {}
        },
    );
    let text = out.to_string();
    for expected in [
        "unknown key `foo`",
        "`#[tool]` needs a `role`",
        "unknown kind `reed`",
        "rate `0/min` allows no call",
        "timeout `1.5s` must be a whole number",
        "tool functions must be `async`",
        "parameter `q` is an unbounded `String`",
        "tool `f` returns nothing",
        "tool `f` has no description",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
}

#[test]
fn raw_identifiers_and_mut_parameters() {
    let out = crate::tool_impl(
        quote!(kind = "read", role = "r"),
        quote! {
            /// Match.
            async fn r#match(mut r#type: u8, #[serde(rename = "pin")] code: Secret<u16>) -> Result<String, ToolError> {
                r#type += 1;
                Ok(r#type.to_string())
            }
        },
    );
    let text = pretty(out);
    assert!(text.contains("const __mcs_tool_match:"), "{text}");
    assert!(text.contains("r#type: u8,"), "{text}");
    assert!(
        text.contains("\"match\","),
        "the wire name drops `r#`: {text}"
    );
    assert!(
        text.contains("&[\"pin\"]"),
        "secret fields use the serde name: {text}"
    );
    assert!(text.contains("r#match(__mcs_arg_0, __mcs_arg_1)"), "{text}");
}

#[test]
fn role_error_messages() {
    let msg = |tokens: TokenStream| {
        let e = crate::attr::role_error(tokens).unwrap();
        crate::expand::role_error(&e).to_string()
    };
    assert!(
        msg(quote!(@role "edtor"; "read-only", "editor"))
            .contains("unknown role `edtor`; declared roles are: `read-only`, `editor`")
    );
    assert!(msg(quote!(@admin "editor"; "admin")).contains(
        "admin tools need a privileged role, and `editor` is not one; privileged roles (declared with `: *`) are: `admin`"
    ));
    assert!(msg(quote!(@admin "editor";)).contains("no role is privileged"));
    assert!(msg(quote!(@role "x";)).contains("no role is declared"));
    assert!(crate::attr::role_error(quote!(@who "x";)).is_err());
}

#[test]
fn context_parameter_rules() {
    let out = crate::tool_impl(
        quote!(kind = "read", role = "r"),
        quote! {
            /// Two contexts.
            async fn t(
                #[validate(length(max = 3))] a: Ctx<App>,
                b: mcp_secure::Ctx<App>,
                c: Ctx,
            ) -> Result<String, ToolError> { Ok(String::new()) }
        },
    )
    .to_string();
    assert!(
        out.contains("this attribute applies to arguments, not to the context parameter"),
        "{out}"
    );
    assert_eq!(
        out.matches("a tool takes at most one context parameter")
            .count(),
        2,
        "{out}"
    );
    assert!(out.contains("`Ctx` needs the state type"), "{out}");
}

/// Text a parameter's attributes put in the schema is scanned like its doc comment: a doc
/// comment the macro cannot read, and invisible characters in `#[schemars]` and `#[serde]`
/// strings (a description, a rename), are refused.
#[test]
fn parameter_schema_text_is_scanned() {
    let out = expansion(quote! {
        #[doc = concat!("The query.", "\u{202E}")]
        #[validate(length(max = 64))]
        q: String
    });
    assert!(
        out.contains("a parameter's doc comment must be written out"),
        "{out}"
    );
    let out = expansion(quote! {
        #[schemars(description = "Count.\u{E0049}")]
        n: u8
    });
    assert!(
        out.contains("an attribute of parameter `n` contains the invisible character U+E0049"),
        "{out}"
    );
    let out = expansion(quote! {
        #[serde(rename = "n\u{200B}")]
        n: u8
    });
    assert!(
        out.contains("an attribute of parameter `n` contains the invisible character U+200B"),
        "{out}"
    );
    let out = expansion(quote! {
        /// Plain text.
        #[serde(rename = "count", default)]
        #[schemars(description = "How many.")]
        n: u8
    });
    assert!(!out.contains("compile_error"), "{out}");
}
