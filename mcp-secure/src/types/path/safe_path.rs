//! The validated type.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

use super::rejection::{PathRejection, PathRule};
use crate::types::is_hidden_char;

/// A relative path that names something inside a root directory, whatever the root.
///
/// The only ways to get one are [`SafePath::parse`] and deserialization (which calls it). An
/// accepted path is non-empty, at most [`SafePath::MAX_LEN`] bytes, `/`-separated, relative,
/// and each of its at most [`SafePath::MAX_COMPONENTS`] components is a plain name: not empty,
/// not `.` or `..`, no control, invisible or look-alike characters, no backslash or drive
/// prefix, no Windows device name, no trailing dot or space, and the first does not start with
/// `~`. So every file has exactly one spelling. Each refusal is a [`PathRejection`] naming its
/// [`PathRule`].
///
/// A `SafePath` cannot leave the root *by its text*; symlinks are the root's business: open
/// it with a [`SafeRoot`](super::SafeRoot), never by joining it to a directory name.
///
/// As a `#[tool]` parameter it needs no `#[validate(length(max = ..))]` rule: it is
/// [`Bounded`](crate::Bounded), and its JSON schema says `maxLength`.
///
/// ```
/// use mcp_secure::types::path::SafePath;
///
/// let p = SafePath::parse("reports/2024/q1.csv").unwrap();
/// assert_eq!(p.as_str(), "reports/2024/q1.csv");
/// assert_eq!(p.components().collect::<Vec<_>>(), ["reports", "2024", "q1.csv"]);
///
/// let refused = SafePath::parse("reports/../../etc/passwd").unwrap_err();
/// assert_eq!(refused.rule().as_str(), "parent_dir");
/// assert_eq!(refused.to_string(), "path refused by rule `parent_dir`: component 2 is `..`");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SafePath(Arc<str>);

impl SafePath {
    /// The longest path accepted, in bytes (UTF-8). Checked before anything else.
    pub const MAX_LEN: usize = 1024;
    /// The most components (`a/b/c` has three) accepted.
    pub const MAX_COMPONENTS: usize = 32;
    /// The longest component accepted, in bytes (the usual file-system limit).
    pub const MAX_COMPONENT_LEN: usize = 255;

    /// Checks `path` against every rule of [`PathRule`] that can be decided from the text, in
    /// the order they are listed there.
    pub fn parse(path: &str) -> Result<Self, PathRejection> {
        check(path)?;
        Ok(SafePath(Arc::from(path)))
    }

    /// The path, exactly as given (it is already in its only spelling).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, in order (never empty, never `.` or `..`).
    pub fn components(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.split('/')
    }

    /// The last component (the file name).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The path without its last component, or `None` for a one-component path.
    pub fn parent(&self) -> Option<SafePath> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| SafePath(Arc::from(parent)))
    }

    /// `self/name`, checked again as a whole.
    pub fn join(&self, name: &str) -> Result<SafePath, PathRejection> {
        SafePath::parse(&format!("{}/{name}", self.0))
    }
}

fn check(path: &str) -> Result<(), PathRejection> {
    use PathRule::*;
    let refuse = |rule, detail: String| Err(PathRejection::new(rule, detail));

    if path.len() > SafePath::MAX_LEN {
        return refuse(
            TooLong,
            format!(
                "the path is {} bytes long; the limit is {}",
                path.len(),
                SafePath::MAX_LEN
            ),
        );
    }
    if path.is_empty() {
        return refuse(Empty, "the path is empty".into());
    }
    if let Some(at) = path.find('\0') {
        return refuse(NulByte, format!("NUL byte at byte {at}"));
    }
    if let Some((at, c)) = path.char_indices().find(|&(_, c)| is_hidden_char(c)) {
        return refuse(
            ControlChar,
            format!("control or invisible character {} at byte {at}", code(c)),
        );
    }
    if let Some((at, c)) = path.char_indices().find(|&(_, c)| is_lookalike(c)) {
        return refuse(
            LookalikeChar,
            format!(
                "character {} at byte {at} looks like `/`, `\\` or `.` to some systems",
                code(c)
            ),
        );
    }
    if is_drive(path) {
        return refuse(
            DriveLetter,
            "component 1 is a Windows drive prefix (`X:`)".into(),
        );
    }
    if let Some(at) = path.find('\\') {
        return refuse(
            Backslash,
            format!("backslash at byte {at}: use `/` as the separator"),
        );
    }
    if path.starts_with('/') {
        return refuse(
            Absolute,
            "the path is absolute; give it relative to the root".into(),
        );
    }
    if path.starts_with('~') {
        return refuse(
            LeadingTilde,
            "component 1 starts with `~` (a home directory to shells)".into(),
        );
    }
    if path.split('/').nth(SafePath::MAX_COMPONENTS).is_some() {
        return refuse(
            TooManyComponents,
            format!(
                "the path has {} components; the limit is {}",
                path.split('/').count(),
                SafePath::MAX_COMPONENTS
            ),
        );
    }
    for (i, component) in path.split('/').enumerate() {
        let n = i + 1;
        let refusal = match component {
            "" => Some((
                EmptyComponent,
                format!("component {n} is empty (`//` or a trailing `/`)"),
            )),
            "." => Some((CurrentDir, format!("component {n} is `.`"))),
            ".." => Some((ParentDir, format!("component {n} is `..`"))),
            _ if component.len() > SafePath::MAX_COMPONENT_LEN => Some((
                ComponentTooLong,
                format!(
                    "component {n} is {} bytes long; the limit is {}",
                    component.len(),
                    SafePath::MAX_COMPONENT_LEN
                ),
            )),
            _ if is_drive(component) => Some((
                DriveLetter,
                format!("component {n} is a Windows drive prefix (`X:`)"),
            )),
            _ if is_reserved(component) => Some((
                ReservedName,
                format!("component {n} is a Windows device name"),
            )),
            _ if component.ends_with(['.', ' ']) => Some((
                TrailingDotOrSpace,
                format!("component {n} ends with a dot or a space"),
            )),
            _ => None,
        };
        if let Some((rule, detail)) = refusal {
            return refuse(rule, detail);
        }
    }
    Ok(())
}

fn code(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// Characters that Windows' "best fit" code-page conversion (or a careless normalization,
/// such as NFKC) turns into `/`, `\`, `.` or `..`.
fn is_lookalike(c: char) -> bool {
    matches!(
        c,
        '\u{2024}' // ONE DOT LEADER
            | '\u{2025}' // TWO DOT LEADER (NFKC: `..`)
            | '\u{2100}' // ACCOUNT OF (NFKC: `a/c`)
            | '\u{2101}' // ADDRESSED TO THE SUBJECT (NFKC: `a/s`)
            | '\u{2105}' // CARE OF (NFKC: `c/o`)
            | '\u{2106}' // CADA UNA (NFKC: `c/u`)
            | '\u{2044}' // FRACTION SLASH
            | '\u{2215}' // DIVISION SLASH
            | '\u{2216}' // SET MINUS
            | '\u{2571}' // BOX DRAWINGS LIGHT DIAGONAL UPPER RIGHT TO LOWER LEFT
            | '\u{2572}' // BOX DRAWINGS LIGHT DIAGONAL UPPER LEFT TO LOWER RIGHT
            | '\u{29F5}' // REVERSE SOLIDUS OPERATOR
            | '\u{29F8}' // BIG SOLIDUS
            | '\u{29F9}' // BIG REVERSE SOLIDUS
            | '\u{FE30}' // PRESENTATION FORM FOR VERTICAL TWO DOT LEADER (NFKC: `..`)
            | '\u{FE52}' // SMALL FULL STOP
            | '\u{FE68}' // SMALL REVERSE SOLIDUS
            | '\u{FF0E}' // FULLWIDTH FULL STOP
            | '\u{FF0F}' // FULLWIDTH SOLIDUS
            | '\u{FF3C}' // FULLWIDTH REVERSE SOLIDUS
            | '\u{FF61}' // HALFWIDTH IDEOGRAPHIC FULL STOP
    )
}

/// `X:` or `X:rest`, with `X` an ASCII letter.
fn is_drive(component: &str) -> bool {
    let b = component.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// A Windows device name: the part before the first dot, without trailing spaces, is one of
/// `CON`, `PRN`, `AUX`, `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9` (also with superscript digits),
/// `CONIN$`, `CONOUT$`, `CLOCK$`, in any case.
fn is_reserved(component: &str) -> bool {
    let stem = component.split('.').next().unwrap_or(component);
    let stem = stem.trim_end_matches(' ').to_ascii_uppercase();
    match stem.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" | "CLOCK$" => true,
        _ => {
            let Some(rest) = stem
                .strip_prefix("COM")
                .or_else(|| stem.strip_prefix("LPT"))
            else {
                return false;
            };
            let mut chars = rest.chars();
            matches!(
                (chars.next(), chars.next()),
                (Some('0'..='9' | '¹' | '²' | '³'), None)
            )
        }
    }
}

impl fmt::Debug for SafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SafePath").field(&&*self.0).finish()
    }
}

impl fmt::Display for SafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SafePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SafePath {
    type Err = PathRejection;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for SafePath {
    type Error = PathRejection;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for SafePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(d)?;
        SafePath::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for SafePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl JsonSchema for SafePath {
    fn schema_name() -> Cow<'static, str> {
        "SafePath".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": SafePath::MAX_LEN,
            "description": format!(
                "A path relative to the server's root directory, at most {} bytes, with `/` \
                 between components (e.g. `reports/2024/q1.csv`). Not absolute, no `.` or `..` \
                 components, no empty components, no backslashes or drive letters, no control \
                 characters, no leading `~`.",
                SafePath::MAX_LEN
            ),
        })
    }
}

impl crate::tool::Bounded for SafePath {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> &'static str {
        SafePath::parse(s).unwrap_err().rule().as_str()
    }

    #[test]
    fn accepts_plain_relative_paths() {
        for ok in [
            "a",
            "a/b/c.txt",
            ".hidden",
            "a/.b",
            "a/~b",
            "dir with spaces/f",
            "ünïcødé/日本語.txt",
            "a..b",
            "..a",
            "C",
            "ab:c",
            "console.log",
            "COM10",
            "nul-thing.txt",
            "$HOME",
            "%WINDIR%",
            "*",
        ] {
            assert!(SafePath::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refusal_order() {
        assert_eq!(rule(&"/".repeat(2000)), "too_long");
        assert_eq!(rule(""), "empty");
        assert_eq!(rule("/a\0"), "nul_byte");
        assert_eq!(rule("/a\n"), "control_char");
        assert_eq!(rule("C:\\Windows"), "drive_letter");
        assert_eq!(rule("..\\x"), "backslash");
        assert_eq!(rule("/~"), "absolute");
        assert_eq!(rule("~/.."), "leading_tilde");
        assert_eq!(rule(&"a/".repeat(40)), "too_many_components");
        assert_eq!(rule("a//.."), "empty_component");
        assert_eq!(rule("./.."), "current_dir");
        assert_eq!(rule("a/../b"), "parent_dir");
        assert_eq!(rule(&"x".repeat(256)), "component_too_long");
        assert_eq!(rule("a/c:"), "drive_letter");
        assert_eq!(rule("a/NUL .txt"), "reserved_name");
        assert_eq!(rule("a/lpt¹"), "reserved_name");
        assert_eq!(rule("a/secret.txt."), "trailing_dot_or_space");
        assert_eq!(rule("a/..."), "trailing_dot_or_space");
        assert_eq!(rule("a\u{202E}txt.exe"), "control_char");
        assert_eq!(rule("..\u{FF0F}etc"), "lookalike_char");
    }

    #[test]
    fn limits_are_inclusive() {
        let max_component = "x".repeat(SafePath::MAX_COMPONENT_LEN);
        assert!(SafePath::parse(&max_component).is_ok());
        let max_components = vec!["a"; SafePath::MAX_COMPONENTS].join("/");
        assert!(SafePath::parse(&max_components).is_ok());
        let long = [&*max_component; 4].join("/");
        assert!(long.len() <= SafePath::MAX_LEN);
        assert!(SafePath::parse(&long).is_ok());
    }

    #[test]
    fn parts_and_join() {
        let p = SafePath::parse("a/b/c.txt").unwrap();
        assert_eq!(p.file_name(), "c.txt");
        assert_eq!(p.parent().unwrap().as_str(), "a/b");
        assert_eq!(SafePath::parse("x").unwrap().parent(), None);
        assert_eq!(p.join("d").unwrap().as_str(), "a/b/c.txt/d");
        assert_eq!(p.join("..").unwrap_err().rule(), PathRule::ParentDir);
        assert_eq!(p.join("/etc").unwrap_err().rule(), PathRule::EmptyComponent);
    }

    #[test]
    fn serde_and_schema() {
        let p: SafePath = serde_json::from_str(r#""notes/today.md""#).unwrap();
        assert_eq!(
            format!("{p:?} {p}"),
            r#"SafePath("notes/today.md") notes/today.md"#
        );
        assert_eq!(serde_json::to_string(&p).unwrap(), r#""notes/today.md""#);
        let err = serde_json::from_str::<SafePath>(r#""../../etc/shadow""#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("path refused by rule `parent_dir`: component 1 is `..`"),
            "{err}"
        );
        assert!(!err.contains("shadow"), "{err}");
        let schema = schemars::schema_for!(SafePath);
        let v = schema.as_value();
        assert_eq!(v["type"], "string");
        assert_eq!(v["maxLength"], SafePath::MAX_LEN);
    }

    #[test]
    fn is_bounded() {
        fn bounded<T: crate::tool::Bounded>() {}
        bounded::<SafePath>();
        bounded::<Option<SafePath>>();
    }
}
