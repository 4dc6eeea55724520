//! File paths from untrusted callers: [`SafePath`], a relative path that cannot name anything
//! outside a root by its text, and [`SafeRoot`], a directory handle that opens it without
//! letting symlinks lead outside either.
//!
//! # Threat model
//!
//! A tool that takes a file name from a model or a client must assume the name was written by
//! an attacker (a prompt injection is enough). Joining it to a base directory
//! (`base.join(name)`, `format!("{base}/{name}")`) lets through
//!
//! - absolute paths, which replace the base: `Path::new("/srv/data").join("/etc/shadow")` is
//!   `/etc/shadow`;
//! - `..` components: `../../.ssh/id_ed25519`, also after a "normalization" that removes
//!   `../` once (`....//`);
//! - Windows forms: `..\..\x`, `C:\Windows`, `C:x` (drive-relative), `\\server\share`,
//!   device names (`CON`, `nul.txt`), trailing dots (`secret.txt.` is `secret.txt`), and
//!   look-alike slashes that the "best fit" code-page conversion turns into real ones;
//! - NUL bytes (`report.pdf\0.png`, cut short by C APIs), control and bidirectional characters
//!   that make a name display as another, `~` that shells expand to a home directory;
//! - and, whatever the text, **symlinks**: `uploads/avatar.png -> /etc/passwd`, or a
//!   symlinked directory `uploads/shared -> ../../other-tenant`. No check of the string can
//!   see them; and checking the file system first, then opening, races with whoever can
//!   change it.
//!
//! # The layers
//!
//! 1. **The type** ([`SafePath`]): [`SafePath::parse`] (and deserialization, which calls it)
//!    refuses every form above that the text shows, each with a [`PathRejection`] naming its
//!    [`PathRule`]. `..` is refused even where it would stay inside (`a/../b`): what `a/..`
//!    names depends on whether `a` is a symlink, so a path is never normalized by its text,
//!    and one spelling per file keeps allow-lists and audit records honest. Empty components
//!    (`a//b`, a trailing `/`) and `.` are refused for the same reason (and because `a//b`
//!    is usually a bug in whatever built the path). As a `#[tool]` parameter, `SafePath` is
//!    [`Bounded`](crate::Bounded): a string with `maxLength` = [`SafePath::MAX_LEN`], and a
//!    refusal is an `invalid_input` error naming the rule.
//!
//! 2. **The root** ([`SafeRoot`]): opened once from configuration, it opens every
//!    `SafePath` relative to its directory handle with `cap-std`, which resolves the path
//!    beneath the handle (`openat2` with `RESOLVE_BENEATH` on Linux 5.6+, component by
//!    component with `O_NOFOLLOW` elsewhere). A symlink whose target stays inside the root is
//!    followed; one that leaves it, or any absolute symlink, is refused with
//!    [`PathRule::EscapesRoot`], in the kernel, at open time, so there is no window between a
//!    check and the use. [`Symlinks::Refuse`] refuses all symlinks instead. Reads are capped
//!    and only regular files are read or written.
//!
//! ```
//! use mcp_secure::types::path::{SafePath, SafeRoot};
//! use mcp_secure::{Ctx, ToolError, roles, tool};
//!
//! roles! { "reader" }
//!
//! struct App {
//!     docs: SafeRoot,
//! }
//!
//! /// Reads one document.
//! #[tool(kind = "read", role = "reader")]
//! async fn read_doc(
//!     ctx: Ctx<App>,
//!     /// The document, relative to the documents folder.
//!     path: SafePath,
//! ) -> Result<String, ToolError> {
//!     // A refusal becomes `invalid_input` naming its rule, a missing file `not_found`.
//!     Ok(ctx.docs.read_to_string_capped(&path, 64 * 1024)?)
//! }
//! # fn main() {}
//! ```
//!
//! # What this does not cover
//!
//! Hard links (a hard link inside the root to a file outside is that file: keep untrusted
//! local users from creating files in the root), bind mounts, and what the file *contains*.
//! Which files a given caller may read is an authorization question: give each tenant its own
//! root, or check the path against an allow-list (the single spelling makes that sound).

mod rejection;
mod root;
mod safe_path;

pub use rejection::{PathRejection, PathRule};
pub use root::{PathError, SafeRoot, Symlinks};
pub use safe_path::SafePath;
