//! Parsing: the keys of `#[tool(...)]`, the attributes on tool parameters, and the inputs of
//! `roles!`, `tools!` and `__role_error!`. Syntax only; the rules live in `valid`.
//!
//! Errors that leave the input readable (an unknown key, a duplicate, a value of the wrong
//! kind) are recorded and parsing goes on, so one run reports them all.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{
    Attribute, Block, Expr, ExprLit, FnModifiers, Item, ItemFn, Lit, LitInt, LitStr, Meta, Path,
    Signature, Stmt, Token, Visibility, braced,
};

use crate::ast::{RoleCheck, RoleError, ToolPath};
use crate::rules;
use crate::valid::Ctxt;

/// The keys `#[tool]` accepts, in the order messages list them.
pub(crate) const TOOL_KEYS: &[&str] = &[
    "kind",
    "role",
    "approval",
    "rate",
    "concurrency",
    "timeout",
    "max_input",
    "name",
    "title",
    "description",
    "sandbox",
    "net",
    "fs",
];

/// The function under `#[tool]`, parsed as `syn::ItemFn` parses it (outer attributes,
/// visibility, signature; the body's inner attributes join `attrs`) except the body's
/// statements: no check reads them, so they stay one opaque `Item::Verbatim` that prints back
/// unchanged. Parsing every statement of a long body (and printing it back token by token) was
/// most of the macro's own work. A syntax error in the body is then reported by rustc where it
/// is, instead of failing the whole parse.
pub(crate) fn tool_fn(tokens: TokenStream) -> syn::Result<ItemFn> {
    let parser = |input: ParseStream| {
        let mut attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let content;
        let brace_token = braced!(content in input);
        attrs.extend(content.call(Attribute::parse_inner)?);
        let body: TokenStream = content.parse()?;
        let stmts = if body.is_empty() {
            Vec::new()
        } else {
            vec![Stmt::Item(Item::Verbatim(body))]
        };
        Ok(ItemFn {
            attrs,
            vis,
            modifiers: FnModifiers::default(),
            sig,
            block: Box::new(Block { brace_token, stmts }),
        })
    };
    parser.parse2(tokens)
}

/// The keys of `#[tool(...)]` as written, not yet checked.
#[derive(Default)]
pub(crate) struct ToolArgs {
    pub(crate) kind: Option<LitStr>,
    pub(crate) role: Option<LitStr>,
    pub(crate) approval: Option<LitStr>,
    pub(crate) rate: Option<LitStr>,
    pub(crate) concurrency: Option<LitInt>,
    pub(crate) timeout: Option<LitStr>,
    pub(crate) max_input: Option<LitStr>,
    pub(crate) name: Option<LitStr>,
    pub(crate) title: Option<LitStr>,
    pub(crate) description: Option<LitStr>,
    pub(crate) sandbox: Option<LitStr>,
    pub(crate) net: Option<LitStr>,
    pub(crate) fs: Option<LitStr>,
    /// Every key written, even with a value of the wrong kind, so a bad `kind = read` is not
    /// also reported as a missing `kind`.
    pub(crate) given: Vec<String>,
    /// False when a syntax error stopped parsing: keys after it were not seen, so "missing key"
    /// errors would be wrong.
    pub(crate) complete: bool,
}

/// Parses the tokens inside `#[tool(...)]`.
pub(crate) fn tool_args(cx: &Ctxt, tokens: TokenStream) -> ToolArgs {
    let mut args = ToolArgs {
        complete: true,
        ..ToolArgs::default()
    };
    let parser = syn::meta::parser(|meta| args.key(cx, &meta));
    if let Err(e) = parser.parse2(tokens) {
        cx.syn_error(e);
        args.complete = false;
    }
    args
}

impl ToolArgs {
    fn key(&mut self, cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        self.given.push(key.clone());
        match key.as_str() {
            "kind" => string(cx, meta, &mut self.kind, "kind = \"read\""),
            "role" => string(cx, meta, &mut self.role, "role = \"read-only\""),
            "approval" => string(cx, meta, &mut self.approval, "approval = \"explicit\""),
            "rate" => string(cx, meta, &mut self.rate, "rate = \"60/min\""),
            "concurrency" => integer(cx, meta, &mut self.concurrency, "concurrency = 4"),
            "timeout" => string(cx, meta, &mut self.timeout, "timeout = \"30s\""),
            "max_input" => string(cx, meta, &mut self.max_input, "max_input = \"16KiB\""),
            "name" => string(cx, meta, &mut self.name, "name = \"get_customer\""),
            "title" => string(cx, meta, &mut self.title, "title = \"Get a customer\""),
            "description" => string(cx, meta, &mut self.description, "description = \"...\""),
            "sandbox" => string(cx, meta, &mut self.sandbox, "sandbox = \"process\""),
            "net" => string(cx, meta, &mut self.net, "net = \"none\""),
            "fs" => string(cx, meta, &mut self.fs, "fs = \"reports, scratch\""),
            _ => {
                let expected: Vec<String> = TOOL_KEYS.iter().map(|k| format!("`{k}`")).collect();
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "unknown key `{}`; expected one of: {}",
                        path_text(&meta.path),
                        expected.join(", ")
                    ),
                );
                skip_value(meta)
            }
        }
    }
}

/// `key = "text"`.
fn string(
    cx: &Ctxt,
    meta: &ParseNestedMeta,
    slot: &mut Option<LitStr>,
    example: &str,
) -> syn::Result<()> {
    let Some(value) = value(cx, meta, example)? else {
        return Ok(());
    };
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => store(cx, meta, slot, s),
        other => {
            let key = path_text(&meta.path);
            cx.error_spanned_by(other, format!("`{key}` takes a string; write `{example}`"));
            Ok(())
        }
    }
}

/// `key = 4`.
fn integer(
    cx: &Ctxt,
    meta: &ParseNestedMeta,
    slot: &mut Option<LitInt>,
    example: &str,
) -> syn::Result<()> {
    let Some(value) = value(cx, meta, example)? else {
        return Ok(());
    };
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => store(cx, meta, slot, i),
        other => {
            let key = path_text(&meta.path);
            cx.error_spanned_by(
                other,
                format!("`{key}` takes a whole number; write `{example}`"),
            );
            Ok(())
        }
    }
}

/// The value after `=`, or `None` (error recorded) when the key has none.
fn value(cx: &Ctxt, meta: &ParseNestedMeta, example: &str) -> syn::Result<Option<Expr>> {
    if meta.input.peek(Token![=]) {
        return meta.value()?.parse().map(Some);
    }
    let key = path_text(&meta.path);
    cx.error_spanned_by(
        &meta.path,
        format!("`{key}` needs a value; write `{example}`"),
    );
    skip_value(meta)?;
    Ok(None)
}

fn store<T>(cx: &Ctxt, meta: &ParseNestedMeta, slot: &mut Option<T>, value: T) -> syn::Result<()> {
    if slot.is_some() {
        let key = path_text(&meta.path);
        cx.error_spanned_by(
            &meta.path,
            format!("duplicate key `{key}`; give each key once"),
        );
    } else {
        *slot = Some(value);
    }
    Ok(())
}

/// Consumes whatever follows an unwanted key (`= value` or `(...)`), so parsing goes on.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.input.parse::<TokenTree>()?;
    }
    Ok(())
}

/// `a::b` as written, for messages.
pub(crate) fn path_text(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// What the attributes on one tool parameter say.
#[derive(Default)]
pub(crate) struct ParamAttrs {
    /// Attributes that move to the struct field, in the order written: doc comments,
    /// `#[validate]`, `#[serde]`, `#[schemars]`.
    pub(crate) field: Vec<Attribute>,
    /// The doc comment lines, for the invisible-character scan.
    pub(crate) docs: Vec<LitStr>,
    /// Every string literal in `#[serde]` and `#[schemars]` (renames, descriptions, titles,
    /// `concat!` pieces): text that reaches the schema the model reads, for the same scan.
    pub(crate) texts: Vec<LitStr>,
    /// A `#[validate(length(max = ..))]` or `length(equal = ..)` rule bounds the value.
    pub(crate) length_rule: bool,
    /// One entry per `#[validate(..)]` attribute: its rules if `#[tool]` checks them itself.
    pub(crate) rules: Vec<rules::Parsed>,
    /// `#[unbounded(..)]` is present. A malformed one is reported by itself, and still
    /// suppresses the "unbounded type" error, which would only repeat it.
    pub(crate) unbounded: bool,
    /// `#[serde(rename = "...")]`.
    pub(crate) rename: Option<String>,
    /// The first attribute that only makes sense on an argument (`validate`, `serde`,
    /// `schemars`, `unbounded`), for the error on a context parameter.
    pub(crate) argument_only: Option<Attribute>,
}

/// Sorts the attributes of one parameter: the ones the macro consumes or moves are returned in
/// `ParamAttrs`; the others stay on the function's parameter and are left in `attrs`.
pub(crate) fn param_attrs(cx: &Ctxt, attrs: &mut Vec<Attribute>) -> ParamAttrs {
    let mut out = ParamAttrs::default();
    let mut seen_unbounded = false;
    for attr in std::mem::take(attrs) {
        let path = attr.path();
        if path.is_ident("doc") {
            if let Meta::NameValue(nv) = &attr.meta
                && let Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) = &nv.value
            {
                out.docs.push(s.clone());
            } else {
                // `#[doc = concat!(..)]`, `#[doc = include_str!(..)]`: the schema would carry
                // text the invisible-character scan never saw.
                cx.error_spanned_by(
                    &attr,
                    "a parameter's doc comment must be written out for the macro to read it; write `/// ...` or `#[doc = \"...\"]`",
                );
            }
            out.field.push(attr);
        } else if path.is_ident("validate") {
            out.length_rule |= has_length_rule(&attr);
            out.rules.push(rules::parse(&attr));
            out.argument_only.get_or_insert_with(|| attr.clone());
            out.field.push(attr);
        } else if path.is_ident("serde") {
            if let Some(name) = serde_rename(&attr) {
                out.rename = Some(name);
            }
            string_literals(attr.meta.to_token_stream(), &mut out.texts);
            out.argument_only.get_or_insert_with(|| attr.clone());
            out.field.push(attr);
        } else if path.is_ident("schemars") {
            string_literals(attr.meta.to_token_stream(), &mut out.texts);
            out.argument_only.get_or_insert_with(|| attr.clone());
            out.field.push(attr);
        } else if path.is_ident("unbounded") {
            if seen_unbounded {
                cx.error_spanned_by(&attr, "duplicate `#[unbounded]`; give it once");
            }
            seen_unbounded = true;
            unbounded_reason(cx, &attr);
            out.unbounded = true;
            out.argument_only.get_or_insert(attr);
        } else if path.is_ident("cfg") || path.is_ident("cfg_attr") {
            cx.error_spanned_by(
                &attr,
                "`#[cfg]` cannot remove a tool parameter; declare separate tools under `#[cfg]` instead",
            );
        } else {
            attrs.push(attr);
        }
    }
    out
}

/// Every string literal in `tokens`, nested groups included.
fn string_literals(tokens: TokenStream, out: &mut Vec<LitStr>) {
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => string_literals(g.stream(), out),
            TokenTree::Literal(l) => {
                if let Ok(s) = syn::parse2::<LitStr>(l.into_token_stream()) {
                    out.push(s);
                }
            }
            _ => {}
        }
    }
}

/// Checks `#[unbounded(reason = "...")]`: well formed, with a non-empty reason.
fn unbounded_reason(cx: &Ctxt, attr: &Attribute) {
    const USAGE: &str =
        "write `#[unbounded(reason = \"...\")]` saying why this parameter may be unbounded";
    let Meta::List(list) = &attr.meta else {
        cx.error_spanned_by(attr, format!("`#[unbounded]` needs a reason; {USAGE}"));
        return;
    };
    let mut reason: Option<LitStr> = None;
    let parsed = list.parse_nested_meta(|meta| {
        if !meta.path.is_ident("reason") {
            cx.error_spanned_by(
                &meta.path,
                format!("unknown key `{}`; expected `reason`", path_text(&meta.path)),
            );
            return skip_value(&meta);
        }
        let Some(value) = value(cx, &meta, "reason = \"...\"")? else {
            return Ok(());
        };
        match value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => store(cx, &meta, &mut reason, s),
            other => {
                cx.error_spanned_by(other, "`reason` takes a string; write `reason = \"...\"`");
                Ok(())
            }
        }
    });
    if let Err(e) = parsed {
        cx.syn_error(e);
        return;
    }
    match reason {
        None => cx.error_spanned_by(attr, format!("`#[unbounded]` needs a reason; {USAGE}")),
        Some(r) if r.value().trim().is_empty() => cx.error_spanned_by(
            &r,
            "the reason is empty; say why this parameter may be unbounded",
        ),
        Some(_) => {}
    }
}

/// True for `#[validate(.., length(.., max = ..), ..)]` (or `equal`).
fn has_length_rule(attr: &Attribute) -> bool {
    let Meta::List(list) = &attr.meta else {
        return false;
    };
    let tokens: Vec<TokenTree> = list.tokens.clone().into_iter().collect();
    tokens.windows(2).any(|pair| match pair {
        [TokenTree::Ident(id), TokenTree::Group(g)]
            if id == "length" && g.delimiter() == Delimiter::Parenthesis =>
        {
            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
            inner.windows(2).any(|kv| match kv {
                [TokenTree::Ident(k), TokenTree::Punct(p)] => {
                    (k == "max" || k == "equal") && p.as_char() == '='
                }
                _ => false,
            })
        }
        _ => false,
    })
}

/// The name in `#[serde(rename = "...")]`, if any.
fn serde_rename(attr: &Attribute) -> Option<String> {
    let Meta::List(list) = &attr.meta else {
        return None;
    };
    let tokens: Vec<TokenTree> = list.tokens.clone().into_iter().collect();
    tokens.windows(3).find_map(|w| match w {
        [
            TokenTree::Ident(k),
            TokenTree::Punct(p),
            TokenTree::Literal(l),
        ] if k == "rename" && p.as_char() == '=' => syn::parse2::<LitStr>(l.to_token_stream())
            .ok()
            .map(|s| s.value()),
        _ => None,
    })
}

/// One entry of `roles! { ... }` as written: a name and what follows its `:`.
pub(crate) struct RoleEntry {
    pub(crate) name: LitStr,
    pub(crate) parents: Parents,
}

pub(crate) enum Parents {
    None,
    Roles(Vec<LitStr>),
    /// `: *`.
    All,
}

/// Parses `"a", "b": "a", "c": ["a", "b"], "d": *`. A name that is not a string is reported and
/// skipped; a broken structure (a missing comma) stops parsing.
pub(crate) fn roles(cx: &Ctxt, tokens: TokenStream) -> Vec<RoleEntry> {
    let parser = |input: ParseStream| {
        let mut entries = Vec::new();
        while !input.is_empty() {
            let name = role_name(cx, input)?;
            let parents = if input.peek(Token![:]) {
                input.parse::<Token![:]>()?;
                if input.peek(Token![*]) {
                    input.parse::<Token![*]>()?;
                    Parents::All
                } else if input.peek(syn::token::Bracket) {
                    let content;
                    syn::bracketed!(content in input);
                    let mut list = Vec::new();
                    while !content.is_empty() {
                        list.extend(role_name(cx, &content)?);
                        if content.is_empty() {
                            break;
                        }
                        content.parse::<Token![,]>()?;
                    }
                    Parents::Roles(list)
                } else {
                    Parents::Roles(role_name(cx, input)?.into_iter().collect())
                }
            } else {
                Parents::None
            };
            entries.extend(name.map(|name| RoleEntry { name, parents }));
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(entries)
    };
    parser.parse2(tokens).unwrap_or_else(|e| {
        cx.syn_error(e);
        Vec::new()
    })
}

/// A role name: a string literal. Anything else is reported and skipped.
fn role_name(cx: &Ctxt, input: ParseStream) -> syn::Result<Option<LitStr>> {
    if input.peek(syn::LitStr) {
        return input.parse().map(Some);
    }
    let tt: TokenTree = input.parse()?;
    let text = tt.to_string();
    cx.error_spanned_by(&tt, format!("role names are strings; write `\"{text}\"`"));
    Ok(None)
}

/// Parses `a, path::to::b,`.
pub(crate) fn tools(tokens: TokenStream) -> syn::Result<Vec<ToolPath>> {
    let paths = Punctuated::<Path, Token![,]>::parse_terminated.parse2(tokens)?;
    Ok(paths.into_iter().map(|path| ToolPath { path }).collect())
}

/// Parses `@role "x"; "a", "b"` or `@admin "x"; "a"` (written by the `roles!` expansion).
pub(crate) fn role_error(tokens: TokenStream) -> syn::Result<RoleError> {
    let parser = |input: ParseStream| {
        input.parse::<Token![@]>()?;
        let which: syn::Ident = input.parse()?;
        let check = match which.to_string().as_str() {
            "role" => RoleCheck::Declared,
            "admin" => RoleCheck::Privileged,
            _ => {
                return Err(syn::Error::new(
                    which.span(),
                    "expected `@role` or `@admin`",
                ));
            }
        };
        let role = if input.peek(LitStr) {
            input.parse::<LitStr>()?
        } else {
            let tt: TokenTree = input.parse()?;
            return Err(syn::Error::new(
                tt.span(),
                format!("role names are strings; write `role = \"{tt}\"`"),
            ));
        };
        input.parse::<Token![;]>()?;
        let accepted = Punctuated::<LitStr, Token![,]>::parse_terminated(input)?;
        Ok(RoleError {
            check,
            role,
            accepted: accepted.iter().map(LitStr::value).collect(),
        })
    };
    parser.parse2(tokens)
}

/// Where `#[tool]`'s "missing key" errors point: the attribute itself.
pub(crate) fn attribute_span() -> Span {
    Span::call_site()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn attr(tokens: TokenStream) -> Attribute {
        let mut attrs = Attribute::parse_outer.parse2(tokens).unwrap();
        attrs.remove(0)
    }

    #[test]
    fn length_rules_are_recognised() {
        assert!(has_length_rule(&attr(
            quote!(#[validate(length(max = 64))])
        )));
        assert!(has_length_rule(&attr(
            quote!(#[validate(length(min = 1, max = 64))])
        )));
        assert!(has_length_rule(&attr(
            quote!(#[validate(email, length(equal = 2))])
        )));
        assert!(!has_length_rule(&attr(
            quote!(#[validate(length(min = 1))])
        )));
        assert!(!has_length_rule(&attr(quote!(#[validate(range(max = 5))]))));
        assert!(!has_length_rule(&attr(
            quote!(#[validate(custom(function = "max"))])
        )));
    }

    #[test]
    fn serde_rename_is_read() {
        assert_eq!(
            serde_rename(&attr(quote!(#[serde(rename = "type")]))),
            Some("type".into())
        );
        assert_eq!(serde_rename(&attr(quote!(#[serde(default)]))), None);
    }

    #[test]
    fn tool_keys_are_parsed_and_mistakes_collected() {
        let cx = Ctxt::new();
        let args = tool_args(
            &cx,
            quote!(
                kind = "read",
                role = "r",
                kind = "write",
                colour = "red",
                rate = 5,
                concurrency = 2,
            ),
        );
        assert!(args.complete);
        assert_eq!(args.kind.unwrap().value(), "read");
        assert_eq!(args.concurrency.unwrap().base10_digits(), "2");
        let errors: Vec<String> = cx
            .check()
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "duplicate key `kind`; give each key once",
                "unknown key `colour`; expected one of: `kind`, `role`, `approval`, `rate`, `concurrency`, `timeout`, `max_input`, `name`, `title`, `description`, `sandbox`, `net`, `fs`",
                "`rate` takes a string; write `rate = \"60/min\"`",
            ]
        );
    }

    #[test]
    fn roles_grammar() {
        let cx = Ctxt::new();
        let entries = roles(&cx, quote!("a", "b": "a", "c": ["a", "b",], "d": *,));
        cx.check().unwrap();
        let shape: Vec<(String, String)> = entries
            .iter()
            .map(|e| {
                let parents = match &e.parents {
                    Parents::None => "-".to_string(),
                    Parents::All => "*".to_string(),
                    Parents::Roles(r) => r.iter().map(LitStr::value).collect::<Vec<_>>().join("+"),
                };
                (e.name.value(), parents)
            })
            .collect();
        let expected = [("a", "-"), ("b", "a"), ("c", "a+b"), ("d", "*")]
            .map(|(a, b)| (a.to_string(), b.to_string()));
        assert_eq!(shape, expected);

        let cx = Ctxt::new();
        let entries = roles(&cx, quote!(editor, "b": [viewer]));
        assert_eq!(entries.len(), 1);
        let errors: Vec<String> = cx
            .check()
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "role names are strings; write `\"editor\"`",
                "role names are strings; write `\"viewer\"`"
            ]
        );
    }

    #[test]
    fn role_error_input() {
        let e = role_error(quote!(@admin "editor"; "admin", "root")).unwrap();
        assert_eq!(e.check, RoleCheck::Privileged);
        assert_eq!(e.role.value(), "editor");
        assert_eq!(e.accepted, ["admin", "root"]);
        let e = role_error(quote!(@role "x";)).unwrap();
        assert!(e.accepted.is_empty());
    }
}
