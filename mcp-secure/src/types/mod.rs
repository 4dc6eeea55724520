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

/// Whether `c` can make text display as other text: a control character (C0, DEL, C1), a line
/// or paragraph separator, an invisible or bidirectional formatting character (`U+202E`,
/// `U+200B`, ...), an invisible filler or tag character (`U+3164`, `U+E0041`, ...). `SafePath`
/// refuses them, and approval prompts show them escaped. (The same set as `#[tool]` refuses in
/// descriptions at compile time, but for the variation selectors `U+E0100`-`U+E01EF`, which
/// names in CJK scripts use.)
pub(crate) fn is_hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

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
