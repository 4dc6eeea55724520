//! Linear-time replacements for SQLite built-ins whose cost is quadratic in their arguments.
//!
//! SQLite's `instr(X, Y)` and `replace(X, Y, Z)` compare `Y` at every position of `X`, and
//! `trim(X, Y)` (`ltrim`, `rtrim`) compares each character of `X` with every character of `Y`:
//! with values of a few megabytes (which allow-listed functions build in well under a second)
//! one call runs for minutes, and the progress handler that enforces the deadline runs only
//! between virtual-machine instructions, never inside a function. [`install`] registers
//! versions of the same names whose cost is linear. Their results are SQLite's for text that
//! is valid UTF-8 (NULs, numbers and blobs included, tested against the built-ins below); for
//! bytes that are not, which SQLite splits into characters its own way, they may differ.

use std::collections::HashSet;

use rusqlite::ToSql;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Error, Result};

use super::sqlite::SQLITE_MAX_VALUE_BYTES;

/// Registers the linear `instr`, `replace`, `trim`, `ltrim` and `rtrim` on `conn`.
pub(super) fn install(conn: &Connection) -> Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    conn.create_scalar_function("instr", 2, flags, instr)?;
    conn.create_scalar_function("replace", 3, flags, replace)?;
    for (name, left, right) in [
        ("trim", true, true),
        ("ltrim", true, false),
        ("rtrim", false, true),
    ] {
        conn.create_scalar_function(name, 2, flags, move |ctx| trim(ctx, left, right))?;
    }
    Ok(())
}

/// An argument as the bytes of its text (`None` for NULL), as `sqlite3_value_text` gives it.
fn text(ctx: &Context<'_>, i: usize) -> Result<Option<Vec<u8>>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n.to_string().into_bytes()),
        // SQLite's own text for a real, from a connection of its own.
        ValueRef::Real(f) => Some(real_text(f)?.into_bytes()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(t.to_vec()),
    })
}

fn real_text(f: f64) -> Result<String> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Option<Connection>> = const { std::cell::RefCell::new(None) };
    }
    SCRATCH.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(Connection::open_in_memory()?);
        }
        let conn = slot.as_ref().expect("just opened");
        conn.query_row("SELECT CAST(?1 AS TEXT)", [f], |row| row.get(0))
    })
}

/// A text result, its bytes as they are: SQLite's own functions return the bytes of their
/// arguments' text unchanged, valid UTF-8 or not, and so do these.
struct TextBytes(Vec<u8>);

impl ToSql for TextBytes {
    fn to_sql(&self) -> Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(&self.0)))
    }
}

fn too_big() -> Error {
    Error::UserFunctionError("string or blob too big".into())
}

/// `instr(X, Y)`: the 1-based position of the first `Y` in `X` (bytes for two blobs,
/// characters otherwise), 0 if none, NULL if either is NULL.
fn instr(ctx: &Context<'_>) -> Result<Option<i64>> {
    let blobs = matches!(
        (ctx.get_raw(0), ctx.get_raw(1)),
        (ValueRef::Blob(_), ValueRef::Blob(_))
    );
    let (Some(haystack), Some(needle)) = (text(ctx, 0)?, text(ctx, 1)?) else {
        return Ok(None);
    };
    let Some(at) = memchr::memmem::find(&haystack, &needle) else {
        return Ok(Some(0));
    };
    let before = &haystack[..at];
    let n = if blobs {
        before.len()
    } else {
        before.iter().filter(|&&b| b & 0xC0 != 0x80).count()
    };
    Ok(Some(n as i64 + 1))
}

/// `replace(X, Y, Z)`: `X` with every `Y` replaced by `Z`; `X` when `Y` is empty; NULL if any
/// is NULL.
fn replace(ctx: &Context<'_>) -> Result<Option<TextBytes>> {
    // In SQLite's order: `X` unchanged for an empty pattern (or one that starts with a NUL,
    // as SQLite reads it) before `Z` is looked at.
    let (Some(x), Some(y)) = (text(ctx, 0)?, text(ctx, 1)?) else {
        return Ok(None);
    };
    if y.first().is_none_or(|&b| b == 0) {
        return Ok(Some(TextBytes(x)));
    }
    let Some(z) = text(ctx, 2)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(x.len());
    let mut last = 0;
    for at in memchr::memmem::find_iter(&x, &y) {
        out.extend_from_slice(&x[last..at]);
        out.extend_from_slice(&z);
        last = at + y.len();
        if out.len() > SQLITE_MAX_VALUE_BYTES {
            return Err(too_big());
        }
    }
    out.extend_from_slice(&x[last..]);
    if out.len() > SQLITE_MAX_VALUE_BYTES {
        return Err(too_big());
    }
    Ok(Some(TextBytes(out)))
}

/// The characters of UTF-8 text as SQLite splits them: a byte and its continuation bytes.
fn chars(text: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    let mut starts: Vec<usize> = (0..text.len())
        .filter(|&i| i == 0 || text[i] & 0xC0 != 0x80)
        .collect();
    starts.push(text.len());
    let bounds: Vec<(usize, usize)> = starts.windows(2).map(|w| (w[0], w[1])).collect();
    bounds.into_iter().map(move |(a, b)| &text[a..b])
}

/// `trim(X, Y)`, `ltrim(X, Y)`, `rtrim(X, Y)`: `X` without the characters of `Y` at its
/// start, its end or both; NULL if either is NULL.
fn trim(ctx: &Context<'_>, left: bool, right: bool) -> Result<Option<TextBytes>> {
    let (Some(x), Some(y)) = (text(ctx, 0)?, text(ctx, 1)?) else {
        return Ok(None);
    };
    // SQLite reads the set of characters up to its first NUL.
    let y = y.split(|&b| b == 0).next().unwrap_or_default();
    let set: HashSet<&[u8]> = chars(y).collect();
    let mut start = 0;
    let mut end = x.len();
    if left {
        for c in chars(&x) {
            if !set.contains(c) {
                break;
            }
            start += c.len();
        }
    }
    if right {
        for c in chars(&x[start..]).rev() {
            if !set.contains(c) {
                break;
            }
            end -= c.len();
        }
    }
    Ok(Some(TextBytes(x[start..end].to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The replacements answer as SQLite's built-ins do.
    #[test]
    fn same_results_as_the_built_ins() {
        let builtin = Connection::open_in_memory().unwrap();
        let ours = Connection::open_in_memory().unwrap();
        install(&ours).unwrap();
        let exprs = [
            "instr('hello', 'l')",
            "instr('héllo wörld', 'wö')",
            "instr('abc', '')",
            "instr('abc', 'x')",
            "instr('', 'x')",
            "instr(NULL, 'x')",
            "instr('x', NULL)",
            "instr(x'00ff10ff', x'10ff')",
            "instr(x'c3a9c3a9', 'é')",
            "instr(12345, 34)",
            "instr(1.5, '.')",
            "instr(12.0, '.0')",
            "replace('hello', 'l', 'L')",
            "replace('héllo', 'é', 'ee')",
            "replace('aaa', 'aa', 'b')",
            "replace('abc', '', 'x')",
            "replace('abc', 'b', '')",
            "replace(NULL, 'b', 'x')",
            "replace('abc', NULL, 'x')",
            "replace('abc', 'b', NULL)",
            "replace(1.25, '.', ',')",
            "replace(100, 0, 9)",
            "typeof(replace(x'6162', 'b', 'c'))",
            "typeof(replace(x'6162', '', 'c'))",
            "trim('xxhixx', 'x')",
            "ltrim('xxhixx', 'x')",
            "rtrim('xxhixx', 'x')",
            "trim('  hi  ', ' ')",
            "trim('ééhiéé', 'é')",
            "trim('abcba', 'ab')",
            "trim('aaa', 'a')",
            "trim('abc', '')",
            "trim(NULL, 'a')",
            "trim('a', NULL)",
            "trim(1200, 0)",
            "rtrim(1.50, '0')",
            "trim('  hi  ')",
            "replace('abc', '', NULL)",
            "replace('abc', char(0) || 'b', 'x')",
            "replace('a' || char(0) || 'b', char(0), '-')",
            "hex(replace(x'61ff62', 'b', 'c'))",
            "trim('ab', 'a' || char(0) || 'b')",
            "trim(char(0) || 'a' || char(0), char(0))",
            "instr('a' || char(0) || 'b', 'b')",
        ];
        for expr in exprs {
            let sql = format!("SELECT quote({expr})");
            let want: String = builtin.query_row(&sql, [], |r| r.get(0)).unwrap();
            let got: String = ours.query_row(&sql, [], |r| r.get(0)).unwrap();
            assert_eq!(got, want, "{expr}");
        }
    }
}
