//! Every compile-time rule. The checks turn what `attr` parsed into the typed model of `ast`,
//! recording each mistake in a [`Ctxt`] and going on, so one build reports them all.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use proc_macro2::Span;
use quote::ToTokens;
use syn::{
    Expr, ExprLit, FnArg, GenericArgument, ItemFn, Lit, LitStr, Meta, Pat, PathArguments,
    ReturnType, Type,
};

use crate::ast::{Approval, Arg, Field, Kind, Net, RoleDecl, Rules, Sandbox, Tool};
use crate::attr::{self, Parents, RoleEntry, ToolArgs};
use crate::grammar;
use crate::rules::Parsed;

/// Collects errors. Like serde_derive's, it must be checked: dropping one that holds errors
/// is a bug in the macro, and panics.
pub(crate) struct Ctxt {
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Ctxt {
    pub(crate) fn new() -> Self {
        Ctxt {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// An error spanning `tokens` (from its first to its last token).
    pub(crate) fn error_spanned_by<T: ToTokens>(&self, tokens: T, msg: impl Display) {
        self.syn_error(syn::Error::new_spanned(tokens.into_token_stream(), msg));
    }

    pub(crate) fn error_at(&self, span: Span, msg: impl Display) {
        self.syn_error(syn::Error::new(span, msg));
    }

    pub(crate) fn syn_error(&self, err: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("Ctxt used after check")
            .push(err);
    }

    /// Ends collection: `Err` with every error recorded, in order.
    pub(crate) fn check(self) -> Result<(), Vec<syn::Error>> {
        let errors = self.errors.borrow_mut().take().expect("Ctxt checked twice");
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if !std::thread::panicking() && self.errors.borrow().is_some() {
            panic!("forgot to check for errors");
        }
    }
}

/// Checks one `#[tool]` function and its keys. The returned model is meaningful only when `cx`
/// holds no error; its `func` (with the consumed parameter attributes removed) always is.
pub(crate) fn tool(cx: &Ctxt, args: ToolArgs, mut func: ItemFn) -> Tool {
    signature(cx, &func);
    let sandbox = sandbox(cx, &args);
    let (state, params) = parameters(cx, &mut func, sandbox.is_some());
    let ret = return_type(cx, &func);

    let kind = args.kind.as_ref().and_then(|lit| {
        grammar::kind(&lit.value())
            .map_err(|m| cx.error_spanned_by(lit, m))
            .ok()
    });
    if !args.given.iter().any(|k| k == "kind") && args.complete {
        cx.error_at(
            attr::attribute_span(),
            "`#[tool]` needs a `kind`; add `kind = \"read\"`, `\"write\"`, `\"delete\"` or `\"admin\"`",
        );
    }
    let kind = kind.unwrap_or(Kind::Read);

    let role = match &args.role {
        Some(lit) => LitStr::new(&lit.value(), lit.span()),
        None => {
            if !args.given.iter().any(|k| k == "role") && args.complete {
                cx.error_at(
                    attr::attribute_span(),
                    "`#[tool]` needs a `role`; add `role = \"...\"` naming a role declared in `roles!`",
                );
            }
            LitStr::new("", Span::call_site())
        }
    };

    let approval = match &args.approval {
        Some(lit) => match grammar::approval(&lit.value()) {
            Ok(approval) => {
                approval_for_kind(cx, kind, approval, lit);
                approval
            }
            Err(m) => {
                cx.error_spanned_by(lit, m);
                kind.minimum_approval()
            }
        },
        None => kind.minimum_approval(),
    };

    let rate = value(cx, &args.rate, grammar::rate);
    let timeout_ms = value(cx, &args.timeout, grammar::timeout);
    let max_input = value(cx, &args.max_input, grammar::max_input);
    let concurrency = args.concurrency.as_ref().and_then(|lit| {
        concurrency(lit)
            .map_err(|m| cx.error_spanned_by(lit, m))
            .ok()
    });

    let name = match &args.name {
        Some(lit) => {
            let name = lit.value();
            if let Err(m) = grammar::name(&name) {
                cx.error_spanned_by(lit, m);
            }
            name
        }
        None => {
            let name = func
                .sig
                .ident
                .to_string()
                .trim_start_matches("r#")
                .to_owned();
            if let Err(m) = grammar::name(&name) {
                cx.error_spanned_by(&func.sig.ident, format!("{m}; or set `name = \"...\"`"));
            }
            name
        }
    };

    let title = args.title.as_ref().map(|lit| {
        let title = lit.value();
        visible(cx, &title, lit, "the title");
        title
    });
    let description = description(cx, &args, &func);

    Tool {
        func,
        name,
        title,
        description,
        kind,
        role,
        approval,
        rate,
        concurrency,
        timeout_ms,
        max_input,
        sandbox,
        state,
        args: params,
        ret,
    }
}

/// `sandbox = "process"` with `net` (default `none`) and `fs` (default: nothing). `net` and `fs`
/// without `sandbox` are errors: outside a sandbox nothing would enforce them.
fn sandbox(cx: &Ctxt, args: &ToolArgs) -> Option<Sandbox> {
    let Some(lit) = &args.sandbox else {
        for (key, lit) in [("net", &args.net), ("fs", &args.fs)] {
            if let Some(lit) = lit {
                cx.error_spanned_by(
                    lit,
                    format!(
                        "`{key}` is enforced only in a sandbox; add `sandbox = \"process\"`, or remove `{key}`"
                    ),
                );
            }
        }
        return None;
    };
    let kind_ok = grammar::sandbox(&lit.value())
        .map_err(|m| cx.error_spanned_by(lit, m))
        .is_ok();
    let net = match &args.net {
        Some(_) => value(cx, &args.net, grammar::net),
        None => Some(Net::None),
    };
    let fs = match &args.fs {
        Some(_) => value(cx, &args.fs, grammar::fs),
        None => Some(Vec::new()),
    };
    match (kind_ok, net, fs) {
        (true, Some(net), Some(fs)) => Some(Sandbox { net, fs }),
        _ => None,
    }
}

/// A grammar-checked value, with the grammar's message on the literal when it is wrong.
fn value<T>(cx: &Ctxt, lit: &Option<LitStr>, grammar: fn(&str) -> Result<T, String>) -> Option<T> {
    let lit = lit.as_ref()?;
    grammar(&lit.value())
        .map_err(|m| cx.error_spanned_by(lit, m))
        .ok()
}

fn concurrency(lit: &syn::LitInt) -> Result<u32, String> {
    match lit.base10_parse::<u32>() {
        Ok(0) => Err(
            "`concurrency = 0` would never run the tool; write `concurrency = 1` or more".into(),
        ),
        Ok(n) if lit.suffix().is_empty() => Ok(n),
        Ok(n) => Err(format!(
            "write the number without a suffix: `concurrency = {n}`"
        )),
        Err(_) => Err(format!(
            "`concurrency = {lit}` is too large; write a number up to {}",
            u32::MAX
        )),
    }
}

/// The approval must be at least the kind's minimum.
fn approval_for_kind(cx: &Ctxt, kind: Kind, approval: Approval, lit: &LitStr) {
    if approval >= kind.minimum_approval() {
        return;
    }
    let given = approval.as_str();
    let msg = match kind {
        Kind::Read => return,
        Kind::Write => format!(
            "a `write` tool needs at least `approval = \"explicit\"`; remove `approval = \"{given}\"` or make the tool `kind = \"read\"`"
        ),
        Kind::Delete | Kind::Admin => {
            let article = if kind == Kind::Admin { "an" } else { "a" };
            format!(
                "{article} `{k}` tool needs `approval = \"human\"`; remove `approval = \"{given}\"` (`human` is the default for `{k}`)",
                k = kind.as_str()
            )
        }
    };
    cx.error_spanned_by(lit, msg);
}

/// A free, non-generic, safe `async fn`.
fn signature(cx: &Ctxt, func: &ItemFn) {
    let sig = &func.sig;
    let ident = &sig.ident;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            format!("tool functions must be `async`; write `async fn {ident}`"),
        );
    }
    if let syn::Safety::Unsafe(token) = &sig.safety {
        cx.error_spanned_by(
            token,
            "tool functions cannot be `unsafe`; call unsafe code from inside the body",
        );
    }
    if !sig.generics.params.is_empty() {
        let what = if sig.generics.lifetimes().count() == sig.generics.params.len() {
            "lifetime parameters"
        } else {
            "generic parameters"
        };
        cx.error_spanned_by(
            &sig.generics,
            format!(
                "tool functions cannot have {what}; remove `{}` and use concrete, owned types",
                tokens_text(&sig.generics)
            ),
        );
    } else if let Some(wc) = &sig.generics.where_clause {
        cx.error_spanned_by(wc, "tool functions cannot have a `where` clause; remove it");
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, "tool functions cannot be variadic; remove `...`");
    }
}

/// Sorts the parameters into the context and the fields of the arguments struct. A sandboxed
/// tool cannot take the context: its body runs in another process.
fn parameters(cx: &Ctxt, func: &mut ItemFn, sandboxed: bool) -> (Option<Type>, Vec<Arg>) {
    let mut state: Option<Type> = None;
    let mut seen_ctx = false;
    let mut args = Vec::new();
    for input in &mut func.sig.inputs {
        let pt = match input {
            FnArg::Receiver(receiver) => {
                cx.error_spanned_by(
                    receiver.self_token,
                    "`#[tool]` goes on a free function, not a method; move it out of the `impl` block and take the state as `ctx: Ctx<App>`",
                );
                continue;
            }
            FnArg::Typed(pt) => pt,
        };
        let attrs = attr::param_attrs(cx, &mut pt.attrs);
        if let Some(ctx) = ctx_type(&pt.ty) {
            if seen_ctx {
                cx.error_spanned_by(
                    &pt.ty,
                    "a tool takes at most one context parameter; remove this one",
                );
            }
            seen_ctx = true;
            if sandboxed {
                cx.error_spanned_by(
                    &pt.ty,
                    format!(
                        "a sandboxed tool cannot take `{}`: its body runs in a separate worker process, which has no application state; remove this parameter, and use `mcp_secure::sandbox::principal()` for the caller, `sandbox::root(\"name\")` and `sandbox::scratch()` for the folders `fs` grants",
                        type_text(&pt.ty)
                    ),
                );
            }
            match ctx_state(ctx) {
                Some(s) => state = state.or(Some(s)),
                None => cx.error_spanned_by(&pt.ty, "`Ctx` needs the state type; write `Ctx<App>`"),
            }
            if !matches!(&*pt.pat, Pat::Ident(_) | Pat::Wild(_)) {
                cx.error_spanned_by(
                    &pt.pat,
                    "the context parameter must be a plain name; write `ctx: Ctx<App>`",
                );
            }
            if let Some(a) = &attrs.argument_only {
                cx.error_spanned_by(
                    a,
                    "this attribute applies to arguments, not to the context parameter; remove it",
                );
            }
            args.push(Arg::Ctx);
            continue;
        }

        let ident = match &*pt.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
            other => {
                cx.error_spanned_by(
                    other,
                    "tool parameters must be plain names; write `name: Type` and destructure inside the body",
                );
                continue;
            }
        };
        let name = ident.to_string().trim_start_matches("r#").to_owned();
        for doc in &attrs.docs {
            visible(
                cx,
                &doc.value(),
                doc,
                &format!("the doc comment of parameter `{name}`"),
            );
        }
        for text in &attrs.texts {
            visible(
                cx,
                &text.value(),
                text,
                &format!("an attribute of parameter `{name}`"),
            );
        }
        let ty = (*pt.ty).clone();
        let assert_bounded =
            owned_and_bounded(cx, &name, &ty, attrs.length_rule || attrs.unbounded);
        args.push(Arg::Field(Box::new(Field {
            wire_name: attrs.rename.unwrap_or_else(|| name.clone()),
            secret: is_secret(&ty),
            assert_bounded,
            rules: rules(cx, attrs.rules),
            attrs: attrs.field,
            ident,
            ty,
        })));
    }
    (state, args)
}

/// Who checks a parameter's `#[validate]` rules (see `Rules`): the generated code when every
/// attribute holds only `length` and `range` rules it checks, else validator's derive. Rules
/// no value could pass are reported here.
fn rules(cx: &Ctxt, parsed: Vec<Parsed>) -> Rules {
    if parsed.is_empty() {
        return Rules::None;
    }
    let mut own = Vec::new();
    let mut derive = false;
    for p in parsed {
        match p {
            Parsed::Own(rules) => own.extend(rules),
            Parsed::Validator => derive = true,
            Parsed::Mistake(e) => cx.syn_error(e),
        }
    }
    if derive {
        Rules::Derive
    } else {
        Rules::Own(own)
    }
}

/// Rejects borrowed, `impl Trait` and syntactically unbounded types. Returns true when the type
/// is left to the runtime's `Bounded` trait.
fn owned_and_bounded(cx: &Ctxt, name: &str, ty: &Type, bounded_by_attr: bool) -> bool {
    match peel(ty) {
        Type::Reference(r) => {
            let owned = match peel(&r.elem) {
                Type::Path(p) if p.path.is_ident("str") => {
                    "use `String` with `#[validate(length(max = N))]`".to_string()
                }
                Type::Slice(s) => format!(
                    "use `Vec<{}>` with `#[validate(length(max = N))]`",
                    type_text(&s.elem)
                ),
                other => format!("take `{}` by value", type_text(other)),
            };
            cx.error_spanned_by(
                ty,
                format!("parameter `{name}` borrows its value (`{}`); tool arguments are owned, so {owned}", type_text(ty)),
            );
            return false;
        }
        Type::ImplTrait(_) => {
            cx.error_spanned_by(ty, format!("parameter `{name}` has an `impl Trait` type; tool parameters need a concrete type"));
            return false;
        }
        _ => {}
    }
    if bounded_by_attr {
        return false;
    }
    match unbounded(ty) {
        Some(Unbounded::Text) => cx.error_spanned_by(
            ty,
            format!(
                "parameter `{name}` is an unbounded `{}`; add `#[validate(length(max = N))]` or use a bounded type such as `ReadOnlySql`",
                type_text(ty)
            ),
        ),
        Some(Unbounded::Collection) => cx.error_spanned_by(
            ty,
            format!(
                "parameter `{name}` is an unbounded `{}`; add `#[validate(length(max = N))]` to cap how many items it holds",
                type_text(ty)
            ),
        ),
        Some(Unbounded::Json) => cx.error_spanned_by(
            ty,
            format!(
                "parameter `{name}` is an unbounded `{}`; use a typed struct that implements `mcp_secure::Bounded`, or opt out with `#[unbounded(reason = \"...\")]`",
                type_text(ty)
            ),
        ),
        None => return true,
    }
    false
}

/// Why a type is unbounded, judged by its syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unbounded {
    /// `String`, `str`, `Box<str>`, `Cow<str>`.
    Text,
    /// `Vec`, `VecDeque`, maps and sets.
    Collection,
    /// `serde_json::Value`, `serde_json::Map`.
    Json,
}

fn unbounded(ty: &Type) -> Option<Unbounded> {
    let Type::Path(p) = peel(ty) else { return None };
    if p.qself.is_some() {
        return None;
    }
    let last = p.path.segments.last()?;
    let mut type_args = match &last.arguments {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|g| match g {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    match last.ident.to_string().as_str() {
        "String" | "str" => Some(Unbounded::Text),
        "Box" | "Cow" | "Rc" | "Arc" => match type_args.pop().map(peel) {
            Some(Type::Path(inner)) if inner.path.is_ident("str") => Some(Unbounded::Text),
            Some(Type::Slice(_)) => Some(Unbounded::Collection),
            _ => None,
        },
        "Vec" | "VecDeque" | "LinkedList" | "BinaryHeap" | "HashMap" | "BTreeMap" | "HashSet"
        | "BTreeSet" | "IndexMap" | "IndexSet" => Some(Unbounded::Collection),
        "Value" | "Map" => Some(Unbounded::Json),
        "Option" | "Secret" => type_args.first().and_then(|t| unbounded(t)),
        _ => None,
    }
}

/// Looks through `(T)` and invisible groups.
fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Paren(p) => peel(&p.elem),
        Type::Group(g) => peel(&g.elem),
        other => other,
    }
}

/// The last path segment of a type, if it is a path.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match peel(ty) {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

/// `Some` when the type's last segment is `Ctx`.
fn ctx_type(ty: &Type) -> Option<&syn::PathSegment> {
    last_segment(ty).filter(|s| s.ident == "Ctx")
}

/// `S` of `Ctx<S>`.
fn ctx_state(seg: &syn::PathSegment) -> Option<Type> {
    match &seg.arguments {
        PathArguments::AngleBracketed(a) if a.args.len() == 1 => match a.args.first() {
            Some(GenericArgument::Type(t)) => Some(t.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// `Secret<..>` or `Option<Secret<..>>`.
fn is_secret(ty: &Type) -> bool {
    let Some(seg) = last_segment(ty) else {
        return false;
    };
    if seg.ident == "Secret" {
        return true;
    }
    if seg.ident == "Option"
        && let PathArguments::AngleBracketed(a) = &seg.arguments
        && let Some(GenericArgument::Type(inner)) = a.args.first()
    {
        return is_secret(inner);
    }
    false
}

/// A type as written, for messages: `Option<String>`, not `Option < String >`.
pub(crate) fn type_text(ty: &Type) -> String {
    tokens_text(ty)
}

/// Tokens as a person writes them, for messages.
fn tokens_text<T: ToTokens>(tokens: &T) -> String {
    let mut s = tokens.to_token_stream().to_string();
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" ::", "::"),
        (" : ", ": "),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" ,", ","),
        (" ;", ";"),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// The return type, which must be written out.
fn return_type(cx: &Ctxt, func: &ItemFn) -> Type {
    match &func.sig.output {
        ReturnType::Type(_, ty) => (**ty).clone(),
        ReturnType::Default => {
            cx.error_at(
                func.sig.paren_token.span.close(),
                format!(
                    "tool `{}` returns nothing; a tool returns `Result<T, ToolError>`, e.g. `-> Result<String, ToolError>`",
                    func.sig.ident
                ),
            );
            syn::parse_quote!(())
        }
    }
}

/// The description: `description = "..."`, else the doc comment.
fn description(cx: &Ctxt, args: &ToolArgs, func: &ItemFn) -> String {
    if let Some(lit) = &args.description {
        let text = lit.value().trim().to_owned();
        if text.is_empty() {
            cx.error_spanned_by(
                lit,
                "the description is empty; describe what the tool does and when to use it",
            );
        }
        visible(cx, &text, lit, "the description");
        return text;
    }
    let mut lines = Vec::new();
    for attr in &func.attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        match &attr.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => {
                    let line = s.value();
                    visible(cx, &line, s, "the description");
                    lines.push(line);
                }
                other => cx.error_spanned_by(
                    other,
                    "the tool's doc comment must be written out for the macro to read it; write `description = \"...\"` instead",
                ),
            },
            _ => continue,
        }
    }
    let text = join_doc(&lines);
    if text.is_empty() {
        cx.error_spanned_by(
            &func.sig.ident,
            format!(
                "tool `{}` has no description; add a doc comment or `description = \"...\"`",
                func.sig.ident
            ),
        );
    }
    text
}

/// Doc comment lines as a description: one leading space removed from each line, trailing
/// spaces removed, lines joined with `\n`, the whole trimmed.
pub(crate) fn join_doc(lines: &[String]) -> String {
    let text: Vec<&str> = lines
        .iter()
        .flat_map(|l| l.split('\n'))
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect();
    text.join("\n").trim().to_owned()
}

/// Refuses invisible and bidirectional-control characters in text sent to the model.
fn visible(cx: &Ctxt, text: &str, lit: &LitStr, what: &str) {
    if let Some(c) = grammar::invisible(text) {
        cx.error_spanned_by(
            lit,
            format!(
                "{what} contains the invisible character {}; tool descriptions must be plain visible text",
                grammar::code_point(c)
            ),
        );
    }
}

/// Checks `roles! { ... }`: names non-empty and unique, parents declared, no cycle.
pub(crate) fn roles(cx: &Ctxt, entries: Vec<RoleEntry>) -> Vec<RoleDecl> {
    let mut declared: BTreeMap<String, usize> = BTreeMap::new();
    let mut decls = Vec::new();
    for entry in entries {
        let name = entry.name.value();
        if name.trim().is_empty() {
            cx.error_spanned_by(
                &entry.name,
                "a role name cannot be empty; write a name such as `\"read-only\"`",
            );
            continue;
        }
        if let Some(c) = grammar::invisible(&name) {
            cx.error_spanned_by(
                &entry.name,
                format!("the role name contains the invisible character {}; write it in plain visible text", grammar::code_point(c)),
            );
        }
        if declared.contains_key(&name) {
            cx.error_spanned_by(
                &entry.name,
                format!("role `{name}` is declared twice; remove this one"),
            );
            continue;
        }
        declared.insert(name, decls.len());
        let (inherits, privileged) = match entry.parents {
            Parents::None => (Vec::new(), false),
            Parents::Roles(list) => (list, false),
            Parents::All => (Vec::new(), true),
        };
        decls.push(RoleDecl {
            name: entry.name,
            inherits,
            privileged,
        });
    }

    let names: Vec<String> = declared.keys().map(|n| format!("`{n}`")).collect();
    for decl in &decls {
        let mut seen = BTreeSet::new();
        for parent in &decl.inherits {
            let p = parent.value();
            if !seen.insert(p.clone()) {
                cx.error_spanned_by(
                    parent,
                    format!(
                        "role `{}` inherits `{p}` twice; remove this one",
                        decl.name.value()
                    ),
                );
            } else if !declared.contains_key(&p) {
                cx.error_spanned_by(
                    parent,
                    format!(
                        "role `{}` inherits `{p}`, which is not declared; declared roles are: {}",
                        decl.name.value(),
                        names.join(", ")
                    ),
                );
            }
        }
    }
    cycles(cx, &decls, &declared);
    decls
}

/// Reports each inheritance cycle once, on the edge that closes it.
fn cycles(cx: &Ctxt, decls: &[RoleDecl], index: &BTreeMap<String, usize>) {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Open,
        Done,
    }
    fn visit(
        cx: &Ctxt,
        at: usize,
        decls: &[RoleDecl],
        index: &BTreeMap<String, usize>,
        state: &mut [State],
        path: &mut Vec<usize>,
    ) {
        state[at] = State::Open;
        path.push(at);
        for parent in &decls[at].inherits {
            let Some(&next) = index.get(&parent.value()) else {
                continue;
            };
            match state[next] {
                State::New => visit(cx, next, decls, index, state, path),
                State::Open => {
                    let start = path.iter().position(|&i| i == next).unwrap_or(0);
                    let mut names: Vec<String> = path[start..]
                        .iter()
                        .map(|&i| decls[i].name.value())
                        .collect();
                    names.push(parent.value());
                    cx.error_spanned_by(
                        parent,
                        format!(
                            "roles inherit in a cycle: {}; remove one of these inheritances",
                            names.join(" -> ")
                        ),
                    );
                }
                State::Done => {}
            }
        }
        path.pop();
        state[at] = State::Done;
    }
    let mut state = vec![State::New; decls.len()];
    for i in 0..decls.len() {
        if state[i] == State::New {
            visit(cx, i, decls, index, &mut state, &mut Vec::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::TokenStream;
    use quote::quote;

    fn errors(cx: Ctxt) -> Vec<String> {
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    /// A declared role as (name, inherits, privileged).
    type Shape = (String, Vec<String>, bool);

    fn check_roles(tokens: TokenStream) -> (Vec<Shape>, Vec<String>) {
        let cx = Ctxt::new();
        let entries = attr::roles(&cx, tokens);
        let decls = roles(&cx, entries)
            .into_iter()
            .map(|d| {
                (
                    d.name.value(),
                    d.inherits.iter().map(LitStr::value).collect(),
                    d.privileged,
                )
            })
            .collect();
        (decls, errors(cx))
    }

    #[test]
    fn good_roles() {
        let (decls, errs) = check_roles(
            quote!("read-only", "editor": "read-only", "lead": ["editor", "support"], "support", "admin": *),
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(decls.len(), 5);
        assert_eq!(
            decls[2],
            (
                "lead".into(),
                vec!["editor".into(), "support".into()],
                false
            )
        );
        assert_eq!(decls[4], ("admin".into(), vec![], true));
        let (decls, errs) = check_roles(quote!());
        assert!(decls.is_empty() && errs.is_empty());
    }

    #[test]
    fn duplicate_role() {
        let (_, errs) = check_roles(quote!("a", "b", "a"));
        assert_eq!(errs, ["role `a` is declared twice; remove this one"]);
    }

    #[test]
    fn unknown_parent() {
        let (_, errs) = check_roles(quote!("read-only", "editor": "reader"));
        assert_eq!(
            errs,
            [
                "role `editor` inherits `reader`, which is not declared; declared roles are: `editor`, `read-only`"
            ]
        );
    }

    #[test]
    fn cycles_are_reported_once() {
        let (_, errs) = check_roles(quote!("a": "b", "b": "c", "c": "a"));
        assert_eq!(
            errs,
            ["roles inherit in a cycle: a -> b -> c -> a; remove one of these inheritances"]
        );
        let (_, errs) = check_roles(quote!("a": "a"));
        assert_eq!(
            errs,
            ["roles inherit in a cycle: a -> a; remove one of these inheritances"]
        );
        let (_, errs) = check_roles(quote!("a": ["b", "c"], "b", "c": "b"));
        assert!(errs.is_empty(), "a diamond is not a cycle: {errs:?}");
    }

    #[test]
    fn empty_and_non_string_names() {
        let (_, errs) = check_roles(quote!("", " "));
        assert_eq!(errs.len(), 2);
        assert!(errs[0].starts_with("a role name cannot be empty"));
        let (decls, errs) = check_roles(quote!(admin, 5: *));
        assert!(decls.is_empty());
        assert_eq!(
            errs,
            [
                "role names are strings; write `\"admin\"`",
                "role names are strings; write `\"5\"`"
            ]
        );
        let (_, errs) = check_roles(quote!("a" "b"));
        assert_eq!(errs, ["expected `,`"]);
    }

    #[test]
    fn inherited_twice() {
        let (_, errs) = check_roles(quote!("a", "b": ["a", "a"]));
        assert_eq!(errs, ["role `b` inherits `a` twice; remove this one"]);
    }

    #[test]
    fn unbounded_types_by_syntax() {
        let cases: &[(TokenStream, Option<Unbounded>)] = &[
            (quote!(String), Some(Unbounded::Text)),
            (quote!(std::string::String), Some(Unbounded::Text)),
            (quote!(Box<str>), Some(Unbounded::Text)),
            (quote!(Cow<'static, str>), Some(Unbounded::Text)),
            (quote!(Option<String>), Some(Unbounded::Text)),
            (quote!(Secret<String>), Some(Unbounded::Text)),
            (quote!(Option<Secret<String>>), Some(Unbounded::Text)),
            (quote!(Vec<u8>), Some(Unbounded::Collection)),
            (quote!(VecDeque<u8>), Some(Unbounded::Collection)),
            (quote!(HashMap<String, u8>), Some(Unbounded::Collection)),
            (quote!(BTreeMap<u8, u8>), Some(Unbounded::Collection)),
            (quote!(HashSet<u8>), Some(Unbounded::Collection)),
            (quote!(BTreeSet<u8>), Some(Unbounded::Collection)),
            (quote!(serde_json::Value), Some(Unbounded::Json)),
            (quote!(Value), Some(Unbounded::Json)),
            (
                quote!(serde_json::Map<String, Value>),
                Some(Unbounded::Json),
            ),
            (quote!(u32), None),
            (quote!(Option<u32>), None),
            (quote!(Secret<u64>), None),
            (quote!(Box<Order>), None),
            (quote!(Status), None),
            (quote!([u8; 4]), None),
        ];
        for (tokens, expected) in cases {
            let ty: Type = syn::parse2(tokens.clone()).unwrap();
            assert_eq!(unbounded(&ty), *expected, "{tokens}");
        }
    }

    #[test]
    fn types_print_as_written() {
        for text in [
            "Option<String>",
            "HashMap<String, Vec<u8>>",
            "&'a str",
            "&[u8]",
            "std::string::String",
            "[u8; 4]",
            "::core::option::Option<(u8, u8)>",
        ] {
            let ty: Type = syn::parse_str(text).unwrap();
            assert_eq!(type_text(&ty), text);
        }
        let generics: syn::Generics =
            syn::parse_str("<'a, T: serde::de::DeserializeOwned, const N: usize>").unwrap();
        assert_eq!(
            tokens_text(&generics),
            "<'a, T: serde::de::DeserializeOwned, const N: usize>"
        );
    }

    #[test]
    fn secrets() {
        for (text, secret) in [
            ("Secret<String>", true),
            ("mcp_secure::Secret<u8>", true),
            ("Option<Secret<String>>", true),
            ("String", false),
        ] {
            let ty: Type = syn::parse_str(text).unwrap();
            assert_eq!(is_secret(&ty), secret, "{text}");
        }
    }

    #[test]
    fn doc_lines_join() {
        let lines = [" Get one customer.", "", " Returns the record.  ", ""].map(String::from);
        assert_eq!(join_doc(&lines), "Get one customer.\n\nReturns the record.");
        assert_eq!(join_doc(&["  indented".to_string()]), "indented");
        assert_eq!(join_doc(&[]), "");
    }

    #[test]
    #[should_panic(expected = "forgot to check for errors")]
    fn unchecked_errors_panic() {
        let cx = Ctxt::new();
        cx.error_at(Span::call_site(), "x");
    }
}
