//! Guard 1: refuse arguments over the tool's `max_input` before anything parses them.
//!
//! rmcp hands the server already-decoded JSON, so the size is that of the arguments' compact
//! JSON encoding. It is computed by walking the value (no serializer, no allocation) and
//! abandoned as soon as it passes the cap; the result is exactly `serde_json::to_vec(v).len()`.

use std::io;

use rmcp::model::JsonObject;
use serde_json::Value;

use crate::error::ToolError;

struct Counter {
    n: usize,
    max: usize,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    // serde_json writes each token with `write_all`: one addition and one check, not the
    // default loop around `write`.
    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.n += buf.len();
        if self.n > self.max {
            return Err(io::Error::other("over the cap"));
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The compact JSON size of any serializable `value`, or `None` once it passes `max`.
/// For JSON values, [`json_size`] gives the same answer without running a serializer.
pub fn encoded_size<T: serde::Serialize + ?Sized>(value: &T, max: usize) -> Option<usize> {
    let mut c = Counter { n: 0, max };
    serde_json::to_writer(&mut c, value).ok().map(|()| c.n)
}

/// The compact JSON size of `value`, or `None` once it passes `max`.
pub fn json_size(value: &Value, max: usize) -> Option<usize> {
    let mut n = 0;
    add_value(value, &mut n, max).then_some(n)
}

/// The compact JSON size of a string (quotes and escapes included), or `None` once it passes
/// `max`.
pub fn str_size(s: &str, max: usize) -> Option<usize> {
    let mut n = 0;
    add_str(s, &mut n, max).then_some(n)
}

/// The compact JSON size of an object, or `None` once it passes `max`.
pub fn object_size(object: &JsonObject, max: usize) -> Option<usize> {
    let mut n = 0;
    add_object(object, &mut n, max).then_some(n)
}

/// Adds `len` to the running total; false once it passes `max`.
fn add(n: &mut usize, len: usize, max: usize) -> bool {
    *n = n.saturating_add(len);
    *n <= max
}

fn add_value(value: &Value, n: &mut usize, max: usize) -> bool {
    match value {
        Value::Null | Value::Bool(true) => add(n, 4, max),
        Value::Bool(false) => add(n, 5, max),
        // Numbers are rare and short: their exact text comes from the serializer itself.
        Value::Number(x) => encoded_size(x, max.saturating_sub(*n)).is_some_and(|l| add(n, l, max)),
        Value::String(s) => add_str(s, n, max),
        Value::Array(items) => {
            if !add(n, 2 + items.len().saturating_sub(1), max) {
                return false;
            }
            items.iter().all(|v| add_value(v, n, max))
        }
        Value::Object(map) => add_object(map, n, max),
    }
}

fn add_object(map: &JsonObject, n: &mut usize, max: usize) -> bool {
    // Braces, one colon per entry, commas between entries.
    if !add(n, 2 + map.len() + map.len().saturating_sub(1), max) {
        return false;
    }
    map.iter()
        .all(|(k, v)| add_str(k, n, max) && add_value(v, n, max))
}

/// A string's encoded size: quotes, and serde_json's escapes (`\"`, `\\`, `\n`-style for five
/// control characters, `\u00XX` for the other controls below U+0020; nothing else is escaped).
fn add_str(s: &str, n: &mut usize, max: usize) -> bool {
    if !add(n, s.len() + 2, max) {
        return false;
    }
    // Most strings have nothing to escape: found sixteen bytes at a time, not counted byte by
    // byte.
    if !crate::audit::needs_escape(s.as_bytes()) {
        return true;
    }
    let extra: usize = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 0x08 | 0x09 | 0x0a | 0x0c | 0x0d => 1,
            0x00..=0x1f => 5,
            _ => 0,
        })
        .sum();
    add(n, extra, max)
}

/// Refuses with `too_large` when the encoded arguments exceed `max` bytes; returns their size.
#[inline]
pub fn check(args: &JsonObject, max: usize) -> Result<usize, ToolError> {
    object_size(args, max).ok_or_else(|| over(max))
}

/// The `too_large` refusal of arguments over `max` bytes.
#[cold]
pub fn over(max: usize) -> ToolError {
    super::too_large("the arguments are", max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn counts_and_stops_at_the_cap() {
        let args = json!({"a": "x".repeat(100)}).as_object().unwrap().clone();
        let exact = serde_json::to_vec(&args).unwrap().len();
        assert_eq!(object_size(&args, exact), Some(exact));
        assert_eq!(check(&args, exact).unwrap(), exact);
        let e = check(&args, exact - 1).unwrap_err();
        assert_eq!(e.code(), ErrorCode::TooLarge);
    }

    #[test]
    fn matches_the_serializer_on_every_kind_of_value() {
        let value = json!({
            "null": null, "t": true, "f": false, "int": -12345, "big": u64::MAX,
            "float": 1.5e-7, "empty": "", "escapes": "\"\\\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}é😀",
            "arr": [[], {}, [1, [2, {"x": []}]]], "": {"": ""}
        });
        let exact = serde_json::to_vec(&value).unwrap().len();
        assert_eq!(json_size(&value, usize::MAX), Some(exact));
        assert_eq!(json_size(&value, exact), Some(exact));
        assert_eq!(json_size(&value, exact - 1), None);
        assert_eq!(encoded_size(&value, usize::MAX), Some(exact));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x7f]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The walk agrees with serde_json byte for byte, and stops exactly at the cap.
        #[test]
        fn walk_equals_serializer(value in arb_json(), cut in 0usize..400) {
            let exact = serde_json::to_vec(&value).unwrap().len();
            prop_assert_eq!(json_size(&value, usize::MAX), Some(exact));
            let max = cut.min(exact);
            prop_assert_eq!(json_size(&value, max), (max >= exact).then_some(exact));
        }
    }
}
