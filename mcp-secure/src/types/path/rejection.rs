//! Why a path was refused.

use std::fmt;

/// The rule that refused a path. [`PathRule::as_str`] is a stable name, safe to match on and to
/// show to clients.
///
/// [`SafePath::parse`](super::SafePath::parse) checks the rules from `TooLong` to
/// `TooManyComponents` on the whole path, in the order listed here, then each component in
/// turn against the rules from `EmptyComponent` to `TrailingDotOrSpace` (and `DriveLetter`);
/// the first rule that matches is reported. The last four are checked when a
/// [`SafeRoot`](super::SafeRoot) opens the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathRule {
    /// Longer than [`SafePath::MAX_LEN`](super::SafePath::MAX_LEN) bytes (checked first, before
    /// the path is scanned).
    TooLong,
    /// The empty string.
    Empty,
    /// A NUL byte, which C APIs read as the end of the path (`report.txt\0.png`).
    NulByte,
    /// A control character (C0, DEL, C1), a line or paragraph separator, an invisible or
    /// bidirectional formatting character (`U+202E`, `U+200B`, ...), or an invisible filler or
    /// tag character (`U+3164`, `U+E0041`, ...), which make a name display as something else.
    ControlChar,
    /// A character that some systems map to `/`, `\` or `.` (fullwidth and mathematical
    /// slashes, fullwidth full stop, the dot leaders): Windows' "best fit" conversion turns
    /// `..／x` into `../x`, and NFKC normalization turns `‥/x` into `../x`.
    LookalikeChar,
    /// A Windows drive prefix (`C:`, `c:foo`) as a component.
    DriveLetter,
    /// A backslash: a separator on Windows (`..\..\x`, `\\server\share`).
    Backslash,
    /// An absolute path (`/etc/passwd`, `//server/share`).
    Absolute,
    /// A first component that starts with `~` (`~/.ssh`, `~root`): shells and some libraries
    /// expand it to a home directory.
    LeadingTilde,
    /// More than [`SafePath::MAX_COMPONENTS`](super::SafePath::MAX_COMPONENTS) components.
    TooManyComponents,
    /// An empty component: `a//b`, or a trailing `/`.
    EmptyComponent,
    /// A `.` component (`./a`, `a/./b`): refused so that every file has exactly one spelling.
    CurrentDir,
    /// A `..` component, anywhere, even where it would stay inside the root (`a/../b`): whether
    /// `a/..` is the root depends on whether `a` is a symlink, so a path is never normalized
    /// by its text; and one spelling per file keeps allow-lists and audit records honest.
    ParentDir,
    /// A component longer than [`SafePath::MAX_COMPONENT_LEN`](super::SafePath::MAX_COMPONENT_LEN)
    /// bytes (the usual file-system limit).
    ComponentTooLong,
    /// A Windows device name as a component, with or without extension (`CON`, `nul.txt`,
    /// `COM1`, `LPT9.log`, `CONIN$`): on Windows these open a device, not a file.
    ReservedName,
    /// A component that ends with `.` or a space (`secret.txt.`, `...`): Windows strips them,
    /// so `secret.txt.` opens `secret.txt`.
    TrailingDotOrSpace,
    /// Opening the path led outside the root: a symlink that points outside it (or is
    /// absolute), on the way or at the end.
    EscapesRoot,
    /// A symlink on the way, while the root refuses all symlinks
    /// ([`Symlinks::Refuse`](super::Symlinks::Refuse)).
    Symlink,
    /// Not a regular file (a directory, FIFO, socket or device) where a file was expected.
    NotAFile,
    /// The file is larger than the read cap.
    TooLarge,
}

impl PathRule {
    /// The rule's stable name (`"parent_dir"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            PathRule::TooLong => "too_long",
            PathRule::Empty => "empty",
            PathRule::NulByte => "nul_byte",
            PathRule::ControlChar => "control_char",
            PathRule::LookalikeChar => "lookalike_char",
            PathRule::DriveLetter => "drive_letter",
            PathRule::Backslash => "backslash",
            PathRule::Absolute => "absolute",
            PathRule::LeadingTilde => "leading_tilde",
            PathRule::TooManyComponents => "too_many_components",
            PathRule::EmptyComponent => "empty_component",
            PathRule::CurrentDir => "current_dir",
            PathRule::ParentDir => "parent_dir",
            PathRule::ComponentTooLong => "component_too_long",
            PathRule::ReservedName => "reserved_name",
            PathRule::TrailingDotOrSpace => "trailing_dot_or_space",
            PathRule::EscapesRoot => "escapes_root",
            PathRule::Symlink => "symlink",
            PathRule::NotAFile => "not_a_file",
            PathRule::TooLarge => "too_large",
        }
    }

    /// Every rule, in declaration order.
    pub const ALL: &'static [PathRule] = &[
        PathRule::TooLong,
        PathRule::Empty,
        PathRule::NulByte,
        PathRule::ControlChar,
        PathRule::LookalikeChar,
        PathRule::DriveLetter,
        PathRule::Backslash,
        PathRule::Absolute,
        PathRule::LeadingTilde,
        PathRule::TooManyComponents,
        PathRule::EmptyComponent,
        PathRule::CurrentDir,
        PathRule::ParentDir,
        PathRule::ComponentTooLong,
        PathRule::ReservedName,
        PathRule::TrailingDotOrSpace,
        PathRule::EscapesRoot,
        PathRule::Symlink,
        PathRule::NotAFile,
        PathRule::TooLarge,
    ];

    /// The rule with this stable name.
    pub fn from_name(name: &str) -> Option<PathRule> {
        PathRule::ALL.iter().copied().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for PathRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused path: the rule that refused it and a short explanation.
///
/// The explanation says where (component number, character code point) but never repeats the
/// path, so it is safe to return to a client and to log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("path refused by rule `{rule}`: {detail}")]
pub struct PathRejection {
    /// The rule that refused the path.
    pub rule: PathRule,
    /// The explanation (without the rule name); never contains the path.
    pub detail: String,
}

impl PathRejection {
    pub(crate) fn new(rule: PathRule, detail: impl Into<String>) -> Self {
        PathRejection {
            rule,
            detail: detail.into(),
        }
    }

    /// The rule that refused the path.
    pub fn rule(&self) -> PathRule {
        self.rule
    }

    /// The explanation (without the rule name).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_unique() {
        let names: std::collections::HashSet<_> =
            PathRule::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), PathRule::ALL.len());
        for rule in PathRule::ALL {
            assert_eq!(PathRule::from_name(rule.as_str()), Some(*rule));
        }
        assert_eq!(PathRule::from_name("nope"), None);
    }

    #[test]
    fn message_shape() {
        let r = PathRejection::new(PathRule::ParentDir, "component 2 is `..`");
        assert_eq!(
            r.to_string(),
            "path refused by rule `parent_dir`: component 2 is `..`"
        );
    }
}
