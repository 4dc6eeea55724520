//! The `#[validate]` rules `#[tool]` checks itself, without validator's derive: `length` and
//! `range` with literal bounds, each with an optional `message`. Their parsing, the
//! compile-time checks of their bounds, their messages and the code that checks them all live
//! here. Any other rule (`email`, `url`, `regex`, `custom`, `nested`, a bound given as a
//! constant, a `code`) is validator's, and needs mcp-secure's `validator` feature.
//!
//! The messages are the ones the runtime writes for validator's errors (`describe_rule` in
//! `mcp-secure/src/guard/validate.rs`); `tests/validate_rules.rs` compares the two, shape by
//! shape.

use proc_macro2::{Literal, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, ExprUnary, Ident, Lit, Type, UnOp};

/// What one `#[validate(..)]` attribute holds.
pub(crate) enum Parsed {
    /// Only rules of this module, checked by the generated code.
    Own(Vec<OwnRule>),
    /// At least one rule only validator's derive checks.
    Validator,
    /// A rule of this module that no value could pass, or written wrong.
    Mistake(syn::Error),
}

/// One rule the generated code checks.
pub(crate) struct OwnRule {
    pub(crate) check: Check,
    /// What a caller reads when the rule fails: the `message` given, or one made from the
    /// bounds.
    pub(crate) message: String,
    /// The rule's name as written, where rustc reports a type without a length.
    span: proc_macro2::Span,
}

pub(crate) enum Check {
    /// The length (characters of a string, items of a collection) is in `min..=max`.
    Length { min: u64, max: u64 },
    /// The value compares to the bounds, written as the user wrote them.
    Range {
        lower: Option<Box<Bound>>,
        upper: Option<Box<Bound>>,
    },
}

/// One bound of a `range` rule.
pub(crate) struct Bound {
    /// The literal as written (with its `-`), so rustc types it against the field.
    expr: Expr,
    inclusive: bool,
    value: Num,
    /// The number as the message writes it.
    text: String,
}

#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    /// `a < b`, `a == b` or `a > b` as numbers (`None` for NaN, which a literal cannot be).
    fn cmp(self, other: Num) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.float().partial_cmp(&b.float()),
        }
    }

    fn float(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// Why `parse` stopped early (`parse_nested_meta` stops at the first `Err`).
enum Stop {
    Validator,
    Mistake(syn::Error),
}

/// Reads one `#[validate(..)]` attribute.
pub(crate) fn parse(attr: &Attribute) -> Parsed {
    let mut rules = Vec::new();
    if let syn::Meta::List(list) = &attr.meta
        && list.tokens.is_empty()
    {
        return Parsed::Own(rules);
    }
    let mut stop = None;
    let result = attr.parse_nested_meta(|meta| {
        let rule = if meta.path.is_ident("length") {
            length(&meta)
        } else if meta.path.is_ident("range") {
            range(&meta)
        } else {
            Err(Stop::Validator)
        };
        match rule {
            Ok(rule) => {
                rules.push(rule);
                Ok(())
            }
            Err(s) => {
                stop = Some(s);
                Err(meta.error("stop"))
            }
        }
    });
    match (stop, result) {
        (Some(Stop::Validator), _) => Parsed::Validator,
        (Some(Stop::Mistake(e)), _) => Parsed::Mistake(e),
        // Not a list of rules at all (`#[validate]`, `#[validate = ..]`): validator's derive
        // says what it expects.
        (None, Err(_)) => Parsed::Validator,
        (None, Ok(())) => Parsed::Own(rules),
    }
}

/// The keys of one rule, each at most once, each value an expression.
fn keys(
    meta: &syn::meta::ParseNestedMeta,
    names: &[&'static str],
) -> Result<Vec<(&'static str, Expr)>, Stop> {
    let mut out: Vec<(&'static str, Expr)> = Vec::new();
    let mut stop = None;
    // `rule()`: no keys (syn's `parse_nested_meta` refuses an empty list).
    let Ok(group) = meta.input.parse::<proc_macro2::Group>() else {
        return Err(Stop::Validator);
    };
    if group.delimiter() != proc_macro2::Delimiter::Parenthesis {
        return Err(Stop::Validator);
    }
    if group.stream().is_empty() {
        return Ok(out);
    }
    let parsed = syn::meta::parser(|kv| {
        let Some(name) = names.iter().find(|n| kv.path.is_ident(n)) else {
            // `code`, or a key validator reports.
            stop = Some(Stop::Validator);
            return Err(kv.error("stop"));
        };
        if out.iter().any(|(n, _)| n == name) {
            stop = Some(Stop::Mistake(
                kv.error(format!("duplicate `{name}`; give it once")),
            ));
            return Err(kv.error("stop"));
        }
        let value: Expr = kv.value()?.parse()?;
        out.push((name, value));
        Ok(())
    })
    .parse2(group.stream());
    match (stop, parsed) {
        (Some(s), _) => Err(s),
        (None, Err(_)) => Err(Stop::Validator),
        (None, Ok(())) => Ok(out),
    }
}

/// `message = "..."`: `Some(text)`; another kind of value: validator's.
fn message(value: &Expr) -> Result<String, Stop> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.value()),
        _ => Err(Stop::Validator),
    }
}

fn mistake(tokens: impl ToTokens, msg: impl std::fmt::Display) -> Stop {
    Stop::Mistake(syn::Error::new_spanned(tokens, msg))
}

/// `length(min = N, max = N, equal = N, message = "..")`, bounds as integer literals.
fn length(meta: &syn::meta::ParseNestedMeta) -> Result<OwnRule, Stop> {
    let (mut min, mut max, mut equal, mut msg) = (None, None, None, None);
    for (name, value) in keys(meta, &["min", "max", "equal", "message"])? {
        if name == "message" {
            msg = Some(message(&value)?);
            continue;
        }
        let Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) = &value
        else {
            // A constant or an expression: validator's derive takes those.
            return Err(Stop::Validator);
        };
        let n: u64 = lit.base10_parse().map_err(|e| {
            mistake(
                lit,
                format!("`{name}` must be a length (a non-negative integer): {e}"),
            )
        })?;
        let slot = match name {
            "min" => &mut min,
            "max" => &mut max,
            _ => &mut equal,
        };
        *slot = Some((n, value));
    }
    let path = &meta.path;
    let (lo, hi, text) = match (min, max, equal) {
        (None, None, None) => {
            return Err(mistake(
                path,
                "`length` needs a bound; write `length(max = N)`, `length(min = N, max = N)` or `length(equal = N)`",
            ));
        }
        (Some(_), _, Some((_, eq))) | (_, Some(_), Some((_, eq))) => {
            return Err(mistake(
                eq,
                "`equal` cannot be combined with `min` or `max`; give either `equal` or the bounds",
            ));
        }
        (None, None, Some((n, _))) => (n, n, format!("length must be exactly {n}")),
        (Some((lo, _)), Some((hi, hi_expr)), None) => {
            if lo > hi {
                return Err(mistake(
                    hi_expr,
                    format!("`min` ({lo}) is greater than `max` ({hi}): no value can pass"),
                ));
            }
            (lo, hi, format!("length must be between {lo} and {hi}"))
        }
        (Some((lo, _)), None, None) => (lo, u64::MAX, format!("length must be at least {lo}")),
        (None, Some((hi, _)), None) => (0, hi, format!("length must be at most {hi}")),
    };
    Ok(OwnRule {
        check: Check::Length { min: lo, max: hi },
        message: msg.unwrap_or(text),
        span: path.span(),
    })
}

/// `range(min|exclusive_min = X, max|exclusive_max = X, message = "..")`, bounds as integer or
/// float literals, possibly negative.
fn range(meta: &syn::meta::ParseNestedMeta) -> Result<OwnRule, Stop> {
    let (mut lower, mut upper, mut msg): (Option<Box<Bound>>, Option<Box<Bound>>, _) =
        (None, None, None);
    let names = ["min", "max", "exclusive_min", "exclusive_max", "message"];
    for (name, value) in keys(meta, &names)? {
        if name == "message" {
            msg = Some(message(&value)?);
            continue;
        }
        let Some((num, text)) = number(&value) else {
            return Err(Stop::Validator);
        };
        if !num.float().is_finite() {
            return Err(mistake(
                &value,
                format!("`{name}` ({text}) is not a finite number"),
            ));
        }
        let (slot, which) = if name.ends_with("min") {
            (&mut lower, "min")
        } else {
            (&mut upper, "max")
        };
        if slot.is_some() {
            return Err(mistake(
                &value,
                format!("give either `{which}` or `exclusive_{which}`, not both"),
            ));
        }
        let bound = Bound {
            expr: value,
            inclusive: !name.starts_with("exclusive"),
            value: num,
            text,
        };
        *slot = Some(Box::new(bound));
    }
    let phrase = |b: &Bound, incl: &str, excl: &str| {
        format!("{} {}", if b.inclusive { incl } else { excl }, b.text)
    };
    let text = match (&lower, &upper) {
        (None, None) => {
            return Err(mistake(
                &meta.path,
                "`range` needs a bound; write `range(min = X, max = X)` (or `exclusive_min`, `exclusive_max`)",
            ));
        }
        (Some(lo), Some(hi)) => {
            let empty = match lo.value.cmp(hi.value) {
                Some(std::cmp::Ordering::Greater) => true,
                Some(std::cmp::Ordering::Equal) => !(lo.inclusive && hi.inclusive),
                _ => false,
            };
            if empty {
                return Err(mistake(
                    &hi.expr,
                    format!(
                        "no value can pass `range`: it must be {} and {}",
                        phrase(lo, "at least", "greater than"),
                        phrase(hi, "at most", "less than")
                    ),
                ));
            }
            if lo.inclusive && hi.inclusive {
                format!("must be between {} and {}", lo.text, hi.text)
            } else {
                format!(
                    "must be {} and {}",
                    phrase(lo, "at least", "greater than"),
                    phrase(hi, "at most", "less than")
                )
            }
        }
        (Some(lo), None) => format!("must be {}", phrase(lo, "at least", "greater than")),
        (None, Some(hi)) => format!("must be {}", phrase(hi, "at most", "less than")),
    };
    Ok(OwnRule {
        check: Check::Range { lower, upper },
        message: msg.unwrap_or(text),
        span: meta.path.span(),
    })
}

/// The number a literal bound holds, and its text: `12`, `-3`, `0.5`, `-1e3` (as `-1000.0`).
fn number(value: &Expr) -> Option<(Num, String)> {
    let (negative, lit) = match value {
        Expr::Lit(ExprLit { lit, .. }) => (false, lit),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            Expr::Lit(ExprLit { lit, .. }) => (true, lit),
            _ => return None,
        },
        _ => return None,
    };
    let sign = if negative { "-" } else { "" };
    match lit {
        Lit::Int(i) => {
            let n: i128 = i.base10_parse().ok()?;
            let n = if negative { -n } else { n };
            Some((Num::Int(n), format!("{sign}{}", i.base10_digits())))
        }
        Lit::Float(f) => {
            let n: f64 = f.base10_parse().ok()?;
            let n = if negative { -n } else { n };
            // As serde_json writes an `f64` (`1.0`, `0.5`, `1e20`), which is how validator's
            // parameters print.
            Some((Num::Float(n), format!("{n:?}")))
        }
        _ => None,
    }
}

/// The checks of one field's own rules, inside `check_rules(&self, __mcs_failed)`. `key` is the
/// field's name as validator's derive reports it; `option` says the field's type is an
/// `Option` (a `range` rule checks only `Some`; `length` counts `None` as passing itself).
pub(crate) fn checks(field: &Ident, option: bool, rules: &[OwnRule]) -> TokenStream {
    let key = Literal::string(&field.to_string());
    let mut out = TokenStream::new();
    for rule in rules {
        let message = Literal::string(&rule.message);
        let fail = quote!(__mcs_failed.push(#key, #message););
        out.extend(match &rule.check {
            Check::Length { min, max } => {
                let (min, max) = (Literal::u64_unsuffixed(*min), Literal::u64_unsuffixed(*max));
                let within = quote_spanned! {rule.span=>
                    ::mcp_secure::__private::length_within(&self.#field, #min, #max)
                };
                quote! {
                    if !#within {
                        #fail
                    }
                }
            }
            Check::Range { lower, upper } => {
                let value = if option {
                    quote!(*__mcs_v)
                } else {
                    quote!(self.#field)
                };
                let cmp = |b: &Bound, incl: TokenStream, excl: TokenStream| {
                    let op = if b.inclusive { incl } else { excl };
                    let expr = &b.expr;
                    quote_spanned!(expr.span()=> #value #op #expr)
                };
                let conds: Vec<TokenStream> = [
                    lower.as_ref().map(|b| cmp(b, quote!(>=), quote!(>))),
                    upper.as_ref().map(|b| cmp(b, quote!(<=), quote!(<))),
                ]
                .into_iter()
                .flatten()
                .collect();
                let test = quote!(if !(#(#conds)&&*) { #fail });
                if option {
                    quote! {
                        if let ::core::option::Option::Some(__mcs_v) = &self.#field {
                            #test
                        }
                    }
                } else {
                    test
                }
            }
        });
    }
    out
}

/// validator's derive unwraps a field whose type's path is `Option`, `std::option::Option` or
/// `core::option::Option` (segment names only, as it compares them); `range` does the same.
pub(crate) fn is_option(ty: &Type) -> bool {
    let Type::Path(p) = ty else {
        return false;
    };
    let mut idents = String::new();
    for segment in &p.path.segments {
        idents.push_str(&segment.ident.to_string());
        idents.push('|');
    }
    matches!(
        idents.as_str(),
        "Option|" | "std|option|Option|" | "core|option|Option|"
    )
}

/// What `__ValidatorFeatureOff` (validator's `Validate` without the feature) expands to: an
/// error on the first `#[validate]` attribute holding a rule only validator checks.
pub(crate) fn feature_off(input: TokenStream) -> TokenStream {
    const MSG: &str = "this `#[validate]` rule is checked by the `validator` crate, which mcp-secure was built without; enable mcp-secure's `validator` feature (on by default), or use only `length` and `range` rules with literal bounds, which `#[tool]` checks itself";
    let attrs = syn::parse2::<syn::ItemStruct>(input)
        .map(|item| {
            let attrs = item.fields.into_iter().flat_map(|f| f.attrs);
            attrs.filter(|a| a.path().is_ident("validate")).collect()
        })
        .unwrap_or_else(|_| Vec::new());
    let first = attrs.iter().find(|a| matches!(parse(a), Parsed::Validator));
    match first {
        Some(attr) => syn::Error::new_spanned(attr, MSG),
        None => syn::Error::new(proc_macro2::Span::call_site(), MSG),
    }
    .to_compile_error()
}
