//! Validated parameter types: values that are safe by construction.

#[cfg(feature = "safe-path")]
pub mod path;
mod secret;
#[cfg(feature = "sqlite")]
pub mod sql;
#[cfg(feature = "url")]
pub mod url;

#[cfg(feature = "safe-path")]
pub use path::{SafePath, SafeRoot};
pub use secret::Secret;
#[cfg(feature = "sqlite")]
pub use sql::{ReadOnlySql, SqlPolicy};
#[cfg(feature = "url")]
pub use url::PublicUrl;

/// Quotes a name taken from untrusted input for an error message: in backticks, at most 64
/// characters, control characters and backticks replaced, so a refusal cannot carry a long
/// value or break the message's layout.
#[cfg(any(feature = "url", feature = "sqlite"))]
pub(crate) fn quote(name: &str) -> String {
    const MAX: usize = 64;
    let mut out = String::from("`");
    for (i, c) in name.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        out.push(if c.is_control() || c == '`' { '?' } else { c });
    }
    out.push('`');
    out
}
