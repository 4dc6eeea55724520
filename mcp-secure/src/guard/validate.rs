//! Guard 5: turn raw JSON arguments into the tool's typed arguments, or refuse with a clear
//! message that never repeats the offending value (it may be a secret).
//!
//! `#[validate]` rules are checked one of two ways, with the same messages:
//! - `length` and `range` with literal bounds (and an optional `message`): `#[tool]` writes
//!   the checks itself ([`CheckRules`]); the `length` of a value is its [`Length`];
//! - any other rule (`email`, `url`, `regex`, `custom`, `nested`, ...): validator's `Validate`
//!   derive, with mcp-secure's `validator` feature (on by default).

use std::fmt::Write as _;

use rmcp::model::JsonObject;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, Visitor};
use serde_json::Value;
#[cfg(feature = "validator")]
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::error::ToolError;
use crate::tool::ParsedArgs;

/// Deserializes (unknown fields refused by the generated struct) and runs the `validator`
/// rules (arguments with a rule only validator checks).
///
/// Generic only where it must be: the struct's own `Deserialize` runs on `Arguments`, a
/// concrete deserializer, and its errors and validation are described by non-generic code. The
/// field path of an error is tracked by `serde_path_to_error` inside each field's value only,
/// so its wrappers are instantiated once per field type, not once per tool.
#[cfg(feature = "validator")]
pub fn parse<T: DeserializeOwned + Validate + Send + 'static>(
    args: &JsonObject,
) -> Result<ParsedArgs, ToolError> {
    let parsed = deserialize::<T>(args)?;
    if let Err(e) = parsed.validate() {
        return Err(describe_validation(&e));
    }
    Ok(Box::new(parsed))
}

/// Deserializes and runs the rules `#[tool]` checks itself (arguments whose every rule is a
/// `length` or a `range` with literal bounds).
pub fn parse_checked<T: DeserializeOwned + CheckRules + Send + 'static>(
    args: &JsonObject,
) -> Result<ParsedArgs, ToolError> {
    let parsed = deserialize::<T>(args)?;
    let mut failed = Failed(Vec::new());
    parsed.check_rules(&mut failed);
    if !failed.0.is_empty() {
        let parts = failed.0.iter();
        return Err(describe_failures(
            parts.map(|&(f, m)| (f.to_owned(), m.to_owned())).collect(),
        ));
    }
    Ok(Box::new(parsed))
}

/// The checks `#[tool]` writes for arguments whose every `#[validate]` rule is a `length` or a
/// `range` with literal bounds: each failing rule pushes its field and message. Implemented by
/// the macro; there is no reason to implement it by hand.
pub trait CheckRules {
    /// Runs every rule, pushing each one that fails.
    fn check_rules(&self, failed: &mut Failed);
}

/// The rules that failed, in the order they were checked: the field's name and the message.
#[derive(Debug)]
pub struct Failed(Vec<(&'static str, &'static str)>);

impl Failed {
    /// Records a failed rule.
    pub fn push(&mut self, field: &'static str, message: &'static str) {
        self.0.push((field, message));
    }
}

/// A `length(min = .., max = ..)` check: `min <= value.length() <= max` (`equal = N` is
/// `N..=N`, a missing bound is `0` or `u64::MAX`). An absent optional value passes, as with
/// validator.
pub fn length_within<T: ?Sized + Length>(value: &T, min: u64, max: u64) -> bool {
    value.length().is_none_or(|n| min <= n && n <= max)
}

/// What a `length` rule measures: characters (not bytes) of a string, items of a collection,
/// as validator's `ValidateLength` counts them. Implement it for a type of your own to put
/// `#[validate(length(..))]` on it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no length a `length` rule can check",
    label = "not a string or a collection",
    note = "`length` counts the characters of a string or the items of a collection; implement `mcp_secure::guard::validate::Length` for `{Self}`, or use another rule"
)]
pub trait Length {
    /// The length, or `None` for an absent optional value.
    fn length(&self) -> Option<u64>;
}

impl Length for str {
    fn length(&self) -> Option<u64> {
        Some(self.chars().count() as u64)
    }
}

impl Length for String {
    fn length(&self) -> Option<u64> {
        self.as_str().length()
    }
}

impl<T: ?Sized + Length> Length for &T {
    fn length(&self) -> Option<u64> {
        (**self).length()
    }
}

impl<T: ?Sized + Length> Length for Box<T> {
    fn length(&self) -> Option<u64> {
        (**self).length()
    }
}

impl<T: ?Sized + Length> Length for std::sync::Arc<T> {
    fn length(&self) -> Option<u64> {
        (**self).length()
    }
}

impl<T: ?Sized + Length> Length for std::rc::Rc<T> {
    fn length(&self) -> Option<u64> {
        (**self).length()
    }
}

impl<T: Length> Length for Option<T> {
    fn length(&self) -> Option<u64> {
        self.as_ref().and_then(Length::length)
    }
}

impl<T: ?Sized + ToOwned + Length> Length for std::borrow::Cow<'_, T> {
    fn length(&self) -> Option<u64> {
        self.as_ref().length()
    }
}

impl<T, const N: usize> Length for [T; N] {
    fn length(&self) -> Option<u64> {
        Some(N as u64)
    }
}

/// `Length` as the number of items, for collections.
macro_rules! length_by_len {
    ($($ty:ty => [$($g:ident),*]),* $(,)?) => {
        $(impl<$($g),*> Length for $ty {
            fn length(&self) -> Option<u64> {
                Some(self.len() as u64)
            }
        })*
    };
}

length_by_len! {
    [T] => [T],
    Vec<T> => [T],
    std::collections::VecDeque<T> => [T],
    std::collections::BTreeSet<T> => [T],
    std::collections::BTreeMap<K, V> => [K, V],
    std::collections::HashSet<T, S> => [T, S],
    std::collections::HashMap<K, V, S> => [K, V, S],
}

/// [`parse`] for arguments without a single `#[validate]` rule, whose derived `Validate`
/// would always pass: the same deserialization, and no `Validate` impl needed.
pub fn parse_without_rules<T: DeserializeOwned + Send + 'static>(
    args: &JsonObject,
) -> Result<ParsedArgs, ToolError> {
    Ok(Box::new(deserialize::<T>(args)?))
}

fn deserialize<T: DeserializeOwned>(args: &JsonObject) -> Result<T, ToolError> {
    let mut path = String::new();
    T::deserialize(Arguments::new(args, &mut path)).map_err(|e| describe_deserialize(&e, &path))
}

/// The error of a failed deserialization, with the field path where it happened (empty for
/// the object itself: a missing field).
fn describe_deserialize(e: &serde_json::Error, path: &str) -> ToolError {
    let msg = describe_serde_error(&e.to_string());
    if path.is_empty() {
        ToolError::invalid_input(msg)
    } else {
        ToolError::invalid_input(format!("`{path}`: {msg}")).with_detail("field", path)
    }
}

/// The arguments object as a deserializer: the generated struct's visitor reads its entries in
/// order. A failing key or value writes its path (`field`, `field.inner[2]`, as
/// `serde_path_to_error` prints paths) to `path`.
struct Arguments<'a, 'p> {
    iter: serde_json::map::Iter<'a>,
    value: Option<(&'a str, &'a Value)>,
    path: &'p mut String,
}

impl<'a, 'p> Arguments<'a, 'p> {
    fn new(args: &'a JsonObject, path: &'p mut String) -> Self {
        Arguments {
            iter: args.iter(),
            value: None,
            path,
        }
    }
}

impl<'de> de::Deserializer<'de> for Arguments<'de, '_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(&mut self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de> MapAccess<'de> for Arguments<'de, '_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        self.value = Some((key.as_str(), value));
        match seed.deserialize(de::value::BorrowedStrDeserializer::new(key.as_str())) {
            Ok(k) => Ok(Some(k)),
            Err(e) => {
                // An unknown field: its path is its name.
                key.clone_into(self.path);
                Err(e)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let (key, value) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("value requested before its key"))?;
        let mut track = serde_path_to_error::Track::new();
        match seed.deserialize(serde_path_to_error::Deserializer::new(value, &mut track)) {
            Ok(v) => Ok(v),
            Err(e) => {
                write_path(self.path, key, &track.path());
                Err(e)
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// `key` followed by the path inside its value, printed as `serde_path_to_error` prints a
/// whole path: segments separated by `.`, indexes as `[i]` without a separator.
fn write_path(out: &mut String, key: &str, inner: &serde_path_to_error::Path) {
    out.clear();
    out.push_str(key);
    for segment in inner {
        if !matches!(segment, serde_path_to_error::Segment::Seq { .. }) {
            out.push('.');
        }
        let _ = write!(out, "{segment}");
    }
}

/// serde's messages quote the unexpected value (`invalid type: string "hunter2", expected
/// u32`). Keep only what was expected, and the kind of what came.
fn describe_serde_error(raw: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = raw.strip_prefix(prefix) {
            let expected = rest
                .rsplit_once(", expected ")
                .map(|(_, e)| e)
                .unwrap_or("another value");
            let got = rest.split([' ', ',']).next().unwrap_or("value");
            let got = match got {
                "string" | "integer" | "floating" | "boolean" | "map" | "sequence" | "null"
                | "unit" => got,
                _ => "value",
            };
            let expected = expected.split(" at line ").next().unwrap_or(expected);
            return format!("{} {got}, expected {expected}", prefix.trim_end());
        }
    }
    let raw = raw.split(" at line ").next().unwrap_or(raw);
    // `unknown variant `<what the caller sent>`, expected one of ...`: the variant is the
    // caller's value, which may be anything; say only what was expected.
    if let Some(rest) = raw.strip_prefix("unknown variant ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, e)| e);
        return format!("unknown variant, expected {expected}");
    }
    // Other serde messages name fields (`unknown field`, `missing field`), never values.
    raw.to_owned()
}

#[cfg(feature = "validator")]
fn describe_validation(errors: &ValidationErrors) -> ToolError {
    let mut parts = Vec::new();
    collect(errors, String::new(), &mut parts);
    describe_failures(parts)
}

/// Every failed rule as `` `field`: message ``, sorted and joined with `; `; the first field
/// goes in the error's details.
fn describe_failures(mut parts: Vec<(String, String)>) -> ToolError {
    parts.sort();
    let first_field = parts.first().map(|(f, _)| f.clone()).unwrap_or_default();
    let message = parts
        .iter()
        .map(|(f, m)| format!("`{f}`: {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    ToolError::invalid_input(message).with_detail("field", first_field)
}

#[cfg(feature = "validator")]
fn collect(errors: &ValidationErrors, prefix: String, out: &mut Vec<(String, String)>) {
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    out.push((path.clone(), describe_rule(e)));
                }
            }
            ValidationErrorsKind::Struct(inner) => collect(inner, path, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    collect(inner, format!("{path}[{i}]"), out);
                }
            }
        }
    }
}

#[cfg(feature = "validator")]
fn describe_rule(e: &validator::ValidationError) -> String {
    if let Some(m) = &e.message {
        return m.to_string();
    }
    let p = |k: &str| e.params.get(k).map(|v| v.to_string());
    match e.code.as_ref() {
        "length" => match (p("min"), p("max"), p("equal")) {
            (_, _, Some(eq)) => format!("length must be exactly {eq}"),
            (Some(min), Some(max), _) => format!("length must be between {min} and {max}"),
            (Some(min), None, _) => format!("length must be at least {min}"),
            (None, Some(max), _) => format!("length must be at most {max}"),
            _ => "length is out of range".into(),
        },
        // As `#[tool]` writes its own `range` messages (`mcp-secure-macros/src/rules.rs`).
        "range" => {
            let lower = p("min").map(|v| ("at least", v, true));
            let lower = lower.or_else(|| p("exclusive_min").map(|v| ("greater than", v, false)));
            let upper = p("max").map(|v| ("at most", v, true));
            let upper = upper.or_else(|| p("exclusive_max").map(|v| ("less than", v, false)));
            match (lower, upper) {
                (Some((_, lo, true)), Some((_, hi, true))) => {
                    format!("must be between {lo} and {hi}")
                }
                (Some((l, lo, _)), Some((h, hi, _))) => format!("must be {l} {lo} and {h} {hi}"),
                (Some((w, v, _)), None) | (None, Some((w, v, _))) => format!("must be {w} {v}"),
                (None, None) => "is out of range".into(),
            }
        }
        "email" => "must be an email address".into(),
        "url" => "must be a URL".into(),
        "regex" => "does not match the required pattern".into(),
        other => format!("failed the `{other}` rule"),
    }
}

/// The deserializer's paths and messages, against validator's derive.
#[cfg(all(test, feature = "validator"))]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize, Validate, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read through `Debug`
    struct Inner {
        #[validate(range(max = 10))]
        qty: u32,
        tags: Vec<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Mode {
        Fast,
        Slow { depth: u8 },
    }

    #[derive(Deserialize, Validate, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Args {
        #[validate(length(max = 4))]
        text: String,
        n: u32,
        #[serde(default)]
        note: Option<String>,
        maybe: Option<u8>,
        #[validate(nested)]
        inner: Option<Inner>,
        #[serde(rename = "list")]
        items: Option<Vec<Vec<u8>>>,
        mode: Option<Mode>,
        map: Option<BTreeMap<String, u16>>,
    }

    #[derive(Deserialize, Validate, Debug)]
    #[serde(deny_unknown_fields)]
    struct Empty {}

    /// What `parse` returned before it ran on `Arguments`: `serde_path_to_error` around the
    /// whole struct.
    fn old_parse<T: DeserializeOwned + Validate + Send + 'static>(
        args: JsonObject,
    ) -> Result<ParsedArgs, ToolError> {
        let value = serde_json::Value::Object(args);
        let parsed: T = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let msg = describe_serde_error(&e.into_inner().to_string());
            if path.is_empty() || path == "." {
                ToolError::invalid_input(msg)
            } else {
                ToolError::invalid_input(format!("`{path}`: {msg}")).with_detail("field", path)
            }
        })?;
        parsed.validate().map_err(|e| describe_validation(&e))?;
        Ok(Box::new(parsed))
    }

    fn same<T: DeserializeOwned + Validate + Send + std::fmt::Debug + 'static>(
        json: serde_json::Value,
    ) -> Option<ToolError> {
        let serde_json::Value::Object(args) = json else {
            panic!("not an object")
        };
        let new = parse::<T>(&args);
        let old = old_parse::<T>(args);
        match (new, old) {
            (Ok(a), Ok(b)) => {
                assert_eq!(
                    format!("{:?}", a.downcast::<T>().unwrap()),
                    format!("{:?}", b.downcast::<T>().unwrap())
                );
                None
            }
            (Err(a), Err(b)) => {
                assert_eq!(a, b);
                Some(a)
            }
            (a, b) => panic!("{:?} vs {:?}", a.err(), b.err()),
        }
    }

    #[test]
    fn errors_and_paths_match_a_whole_struct_path_tracker() {
        use serde_json::json;
        let ok = json!({"text": "abc", "n": 1, "inner": {"qty": 2, "tags": ["a"]}, "list": [[1]],
            "mode": {"slow": {"depth": 3}}, "map": {"k": 1}});
        assert!(same::<Args>(ok).is_none());
        assert!(same::<Args>(json!({"text": "", "n": 0, "mode": "fast"})).is_none());
        assert!(same::<Empty>(json!({})).is_none());
        let cases = [
            (json!({"n": 1}), "missing field `text`"),
            (
                json!({"text": 5, "n": 1}),
                "`text`: invalid type: integer, expected a string",
            ),
            (
                json!({"text": "a", "n": -1}),
                "`n`: invalid value: integer, expected u32",
            ),
            (
                json!({"text": "a", "n": 1, "evil": 1}),
                "`evil`: unknown field `evil`",
            ),
            (json!({"a": 1, "text": 5}), "`a`: unknown field `a`"),
            (json!({"text": "a", "n": "x", "zz": 1}), "`n`: invalid type"),
            (
                json!({"text": "a", "n": 1, "inner": {"qty": 1, "tags": [1]}}),
                "`inner.tags[0]`: invalid type",
            ),
            (
                json!({"text": "a", "n": 1, "inner": {"qty": 1}}),
                "`inner`: missing field `tags`",
            ),
            (
                json!({"text": "a", "n": 1, "inner": {"qty": 1, "tags": [], "x": 0}}),
                "`inner.x`: unknown field `x`",
            ),
            (
                json!({"text": "a", "n": 1, "list": [[1], [1, 256]]}),
                "`list[1][1]`: invalid value",
            ),
            (
                json!({"text": "a", "n": 1, "items": []}),
                "`items`: unknown field `items`",
            ),
            (
                json!({"text": "a", "n": 1, "mode": "medium"}),
                "`mode`: unknown variant, expected",
            ),
            (
                json!({"text": "a", "n": 1, "mode": {"slow": {"depth": "d"}}}),
                "`mode.slow.depth`: invalid type",
            ),
            (
                json!({"text": "a", "n": 1, "map": {"a.b": "x"}}),
                "`map.a.b`: invalid type",
            ),
            (
                json!({"text": "a", "n": 1, "maybe": null, "note": 3}),
                "`note`: invalid type",
            ),
            (
                json!({"text": "abcdef", "n": 1}),
                "`text`: length must be at most 4",
            ),
            (
                json!({"text": "a", "n": 1, "inner": {"qty": 11, "tags": []}}),
                "`inner.qty`: must be at most 10",
            ),
            (
                json!({"x": 1}),
                "`x`: unknown field `x`, there are no fields",
            ),
        ];
        for (json, expected) in cases {
            let err = if expected.contains("no fields") {
                same::<Empty>(json.clone())
            } else {
                same::<Args>(json.clone())
            };
            let err = err.unwrap_or_else(|| panic!("{json} was accepted"));
            assert!(
                err.message().starts_with(expected),
                "{json}: {}",
                err.message()
            );
        }
    }
}

/// What does not need validator: serde's messages, `Length`, the rules `#[tool]` checks.
#[cfg(test)]
mod own_tests {
    use super::*;
    use std::borrow::Cow;
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

    #[test]
    fn serde_messages_never_repeat_values() {
        let m = describe_serde_error(
            "invalid type: string \"hunter2\", expected u32 at line 1 column 9",
        );
        assert_eq!(m, "invalid type: string, expected u32");
        let m = describe_serde_error("invalid value: integer `77`, expected one of `a`, `b`");
        assert!(!m.contains("77"), "{m}");
        let m = describe_serde_error("unknown field `evil`, expected `a` or `b`");
        assert_eq!(m, "unknown field `evil`, expected `a` or `b`");
    }

    #[test]
    fn lengths_count_characters_and_items() {
        assert_eq!("héllo".length(), Some(5));
        assert_eq!(String::from("日本語").length(), Some(3));
        assert_eq!(Cow::Borrowed("ab").length(), Some(2));
        assert_eq!((&&"abc").length(), Some(3));
        assert_eq!(Box::<str>::from("abcd").length(), Some(4));
        assert_eq!(std::sync::Arc::<str>::from("a").length(), Some(1));
        assert_eq!(std::rc::Rc::new(String::new()).length(), Some(0));
        assert_eq!(vec![1, 2, 3].length(), Some(3));
        assert_eq!([0u8; 4].length(), Some(4));
        assert_eq!([1u8, 2][..].length(), Some(2));
        assert_eq!(VecDeque::from([1]).length(), Some(1));
        assert_eq!(BTreeSet::from([1, 2]).length(), Some(2));
        assert_eq!(BTreeMap::from([(1, 2)]).length(), Some(1));
        assert_eq!(HashSet::from([1, 2, 3]).length(), Some(3));
        assert_eq!(HashMap::from([(1, 2), (3, 4)]).length(), Some(2));
        assert_eq!(Some(String::from("ab")).length(), Some(2));
        assert_eq!(None::<String>.length(), None);
        let secret: crate::Secret<String> = serde_json::from_str("\"s3cret\"").unwrap();
        assert_eq!(secret.length(), Some(6));
    }

    #[test]
    fn length_within_is_inclusive_and_passes_absent_values() {
        assert!(length_within("ab", 2, 2));
        assert!(length_within("ab", 0, 2));
        assert!(!length_within("ab", 3, u64::MAX));
        assert!(!length_within("abc", 0, 2));
        assert!(length_within(&None::<String>, 5, 5));
        assert!(!length_within(&Some(String::new()), 1, 5));
    }

    /// What `#[tool]` writes for `#[validate(length(max = 3))] a: String` and
    /// `#[validate(range(min = 1))] b: u8` (the macro's own tests hold its output to this).
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Checked {
        a: String,
        b: u8,
    }

    impl CheckRules for Checked {
        fn check_rules(&self, failed: &mut Failed) {
            if !length_within(&self.a, 0, 3) {
                failed.push("a", "length must be at most 3");
            }
            if self.b < 1 {
                failed.push("b", "must be at least 1");
            }
        }
    }

    fn checked(v: serde_json::Value) -> Result<Checked, ToolError> {
        let serde_json::Value::Object(args) = v else {
            panic!("not an object")
        };
        parse_checked::<Checked>(&args).map(|p| *p.downcast::<Checked>().unwrap())
    }

    #[test]
    fn checked_rules_refuse_with_every_failure_sorted() {
        use serde_json::json;
        let ok = checked(json!({"a": "abc", "b": 1})).unwrap();
        assert_eq!((ok.a.as_str(), ok.b), ("abc", 1));
        let err = checked(json!({"b": 0, "a": "abcd"})).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidInput);
        assert_eq!(
            err.message(),
            "`a`: length must be at most 3; `b`: must be at least 1"
        );
        assert_eq!(err.details()["field"], "a");
        let err = checked(json!({"a": "x", "b": 0})).unwrap_err();
        assert_eq!(err.message(), "`b`: must be at least 1");
        assert_eq!(err.details()["field"], "b");
        // Deserialization comes first, and its errors are unchanged.
        let err = checked(json!({"a": "x", "b": 300})).unwrap_err();
        assert_eq!(err.message(), "`b`: invalid value: integer, expected u8");
    }
}
