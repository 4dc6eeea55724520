//! Opening [`SafePath`]s through a directory handle.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, Metadata, OpenOptions};

use super::rejection::{PathRejection, PathRule};
use super::safe_path::SafePath;
use crate::error::ToolError;

/// What a [`SafeRoot`] does with symlinks inside the root.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Symlinks {
    /// Follow a relative symlink while its target stays inside the root (`docs/latest ->
    /// v2`); refuse one that leaves it, on the way or at the end (`leak -> ../../etc/passwd`),
    /// and every absolute symlink, with [`PathRule::EscapesRoot`]. The default.
    #[default]
    FollowInsideRoot,
    /// Refuse every symlink on the way and at the end with [`PathRule::Symlink`]. Use it when
    /// people who can write inside the root must not be able to alias one name to another.
    Refuse,
}

/// A directory that tool calls may reach only below: every [`SafePath`] is opened relative to
/// a handle on this directory, with `openat2(RESOLVE_BENEATH)` where the kernel has it and
/// `cap-std`'s component-by-component resolution (`O_NOFOLLOW`) elsewhere, never by joining
/// strings.
///
/// ```
/// use mcp_secure::types::path::{SafePath, SafeRoot};
///
/// # let dir = tempfile::tempdir().unwrap();
/// # std::fs::create_dir(dir.path().join("notes")).unwrap();
/// let root = SafeRoot::new(dir.path())?;
/// let path = SafePath::parse("notes/today.md")?;
/// root.write(&path, "buy milk")?;
/// assert_eq!(root.read_to_string_capped(&path, 1024)?, "buy milk");
///
/// // A symlink that leaves the root is refused when it is opened.
/// # #[cfg(unix)]
/// std::os::unix::fs::symlink("/etc/passwd", dir.path().join("notes/leak"))?;
/// # #[cfg(unix)] {
/// let err = root.read(&SafePath::parse("notes/leak")?).unwrap_err();
/// assert_eq!(err.rule().unwrap().as_str(), "escapes_root");
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// What the root cannot see: a hard link inside it to a file outside (make sure no one
/// untrusted can create files in the root), and bind mounts. Reads are capped
/// ([`SafeRoot::max_read`], 16 MiB by default); only regular files are read or written (a
/// FIFO, socket or device is [`PathRule::NotAFile`], and is opened non-blocking so that
/// checking it cannot hang).
#[derive(Debug)]
pub struct SafeRoot {
    dir: Dir,
    symlinks: Symlinks,
    max_read: u64,
}

impl SafeRoot {
    /// The default cap of [`SafeRoot::read`] and [`SafeRoot::read_to_string`]: 16 MiB.
    pub const DEFAULT_MAX_READ: u64 = 16 * 1024 * 1024;

    /// Opens `dir` (which must exist) as a root. This is the one place a path is used with
    /// the process's full authority; take it from configuration, never from a tool argument.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<SafeRoot> {
        let dir = Dir::open_ambient_dir(dir, ambient_authority())?;
        Ok(SafeRoot::from_dir(dir))
    }

    /// A root on an open `cap-std` directory handle.
    pub fn from_dir(dir: Dir) -> SafeRoot {
        SafeRoot {
            dir,
            symlinks: Symlinks::default(),
            max_read: SafeRoot::DEFAULT_MAX_READ,
        }
    }

    /// Sets what happens to symlinks inside the root (default: [`Symlinks::FollowInsideRoot`]).
    pub fn symlinks(mut self, symlinks: Symlinks) -> SafeRoot {
        self.symlinks = symlinks;
        self
    }

    /// Sets the cap of [`SafeRoot::read`] and [`SafeRoot::read_to_string`], in bytes.
    pub fn max_read(mut self, max_bytes: u64) -> SafeRoot {
        self.max_read = max_bytes;
        self
    }

    /// The directory handle, for operations this type does not wrap. It is still confined to
    /// the root, but takes any path: pass it only [`SafePath::as_str`] values.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Opens a regular file for reading.
    pub fn open(&self, path: &SafePath) -> Result<File, PathError> {
        let mut options = OpenOptions::new();
        options.read(true);
        self.open_with(path, &mut options)
    }

    /// Opens a file for writing, creating it or truncating it (like [`File::create`]).
    pub fn create(&self, path: &SafePath) -> Result<File, PathError> {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        self.open_with(path, &mut options)
    }

    /// Creates a new file for writing; fails with [`io::ErrorKind::AlreadyExists`] if
    /// anything (a file, a directory, a symlink) already has that name.
    pub fn create_new(&self, path: &SafePath) -> Result<File, PathError> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        self.open_with(path, &mut options)
    }

    /// Opens a file for appending, creating it if needed.
    pub fn append(&self, path: &SafePath) -> Result<File, PathError> {
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        self.open_with(path, &mut options)
    }

    /// Reads a whole file, at most [`SafeRoot::max_read`] bytes.
    pub fn read(&self, path: &SafePath) -> Result<Vec<u8>, PathError> {
        self.read_capped(path, self.max_read)
    }

    /// Reads a whole UTF-8 file, at most [`SafeRoot::max_read`] bytes.
    pub fn read_to_string(&self, path: &SafePath) -> Result<String, PathError> {
        self.read_to_string_capped(path, self.max_read)
    }

    /// Reads a whole file; a file longer than `max_bytes` is refused with
    /// [`PathRule::TooLarge`] (reading stops at the cap, whatever the file's size says).
    pub fn read_capped(&self, path: &SafePath, max_bytes: u64) -> Result<Vec<u8>, PathError> {
        let file = self.open(path)?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > max_bytes {
            return Err(too_large(max_bytes));
        }
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut buf)?;
        if buf.len() as u64 > max_bytes {
            return Err(too_large(max_bytes));
        }
        Ok(buf)
    }

    /// Reads a whole UTF-8 file of at most `max_bytes` bytes (see [`SafeRoot::read_capped`]);
    /// invalid UTF-8 is an [`io::ErrorKind::InvalidData`] error.
    pub fn read_to_string_capped(
        &self,
        path: &SafePath,
        max_bytes: u64,
    ) -> Result<String, PathError> {
        let bytes = self.read_capped(path, max_bytes)?;
        String::from_utf8(bytes).map_err(|_| {
            PathError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "the file is not valid UTF-8",
            ))
        })
    }

    /// Writes `contents` to a file, creating it or replacing its contents.
    pub fn write(&self, path: &SafePath, contents: impl AsRef<[u8]>) -> Result<(), PathError> {
        let mut file = self.create(path)?;
        file.write_all(contents.as_ref())?;
        Ok(())
    }

    /// Creates a directory and its missing parents.
    pub fn create_dir_all(&self, path: &SafePath) -> Result<(), PathError> {
        self.check_symlinks(path, true)?;
        self.dir.create_dir_all(path.as_str()).map_err(classify)
    }

    /// The metadata of what `path` names (after following symlinks inside the root).
    pub fn metadata(&self, path: &SafePath) -> Result<Metadata, PathError> {
        self.check_symlinks(path, true)?;
        self.dir.metadata(path.as_str()).map_err(classify)
    }

    /// Whether `path` names something (after following symlinks inside the root). A path
    /// that escapes the root does not exist.
    pub fn exists(&self, path: &SafePath) -> bool {
        self.metadata(path).is_ok()
    }

    /// Removes a file (a symlink itself, not its target).
    pub fn remove_file(&self, path: &SafePath) -> Result<(), PathError> {
        self.check_symlinks(path, false)?;
        self.dir.remove_file(path.as_str()).map_err(classify)
    }

    fn open_with(&self, path: &SafePath, options: &mut OpenOptions) -> Result<File, PathError> {
        self.check_symlinks(path, true)?;
        if self.symlinks == Symlinks::Refuse {
            // Closes the race with the check above for the last component.
            options.follow(FollowSymlinks::No);
        }
        nonblocking(options);
        let file = self
            .dir
            .open_with(path.as_str(), options)
            .map_err(|e| self.classify_open(e))?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(PathError::Refused(PathRejection::new(
                PathRule::NotAFile,
                format!("the path names a {}, not a regular file", kind(&meta)),
            )));
        }
        Ok(file.into_std())
    }

    /// With [`Symlinks::Refuse`], refuses a path with a symlink among its first components
    /// (all of them if `last`). Renaming a directory into place after this check can only put
    /// a symlink that stays inside the root on the way: `cap-std` still confines the open.
    fn check_symlinks(&self, path: &SafePath, last: bool) -> Result<(), PathError> {
        if self.symlinks != Symlinks::Refuse {
            return Ok(());
        }
        let text = path.as_str();
        let mut ends: Vec<usize> = text.match_indices('/').map(|(i, _)| i).collect();
        if last {
            ends.push(text.len());
        }
        for (n, end) in ends.into_iter().enumerate() {
            match self.dir.symlink_metadata(&text[..end]) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(PathError::Refused(PathRejection::new(
                        PathRule::Symlink,
                        format!("component {} is a symlink", n + 1),
                    )));
                }
                Ok(_) => {}
                // Missing, or not a directory: the open itself reports it.
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }

    fn classify_open(&self, e: io::Error) -> PathError {
        #[cfg(unix)]
        if self.symlinks == Symlinks::Refuse && e.raw_os_error() == Some(libc::ELOOP) {
            return PathError::Refused(PathRejection::new(
                PathRule::Symlink,
                "the last component is a symlink",
            ));
        }
        classify(e)
    }
}

#[cfg(unix)]
fn nonblocking(options: &mut OpenOptions) {
    use cap_std::fs::OpenOptionsExt;
    // A FIFO would block the open until a writer comes; a regular file ignores the flag.
    options.custom_flags(libc::O_NONBLOCK);
}

#[cfg(not(unix))]
fn nonblocking(_: &mut OpenOptions) {}

fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}

fn too_large(max_bytes: u64) -> PathError {
    PathError::Refused(PathRejection::new(
        PathRule::TooLarge,
        format!("the file is larger than {max_bytes} bytes"),
    ))
}

/// `cap-std` reports an escape as `PermissionDenied` with its own message and no OS error
/// code (a real `EACCES` has one).
fn classify(e: io::Error) -> PathError {
    if e.kind() == io::ErrorKind::PermissionDenied
        && e.raw_os_error().is_none()
        && e.to_string().contains("outside")
    {
        return PathError::Refused(PathRejection::new(
            PathRule::EscapesRoot,
            "the path leads outside the root (through a symlink)",
        ));
    }
    PathError::Io(e)
}

/// Why a [`SafeRoot`] operation failed: a refusal (with its [`PathRule`]) or an I/O error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path was refused.
    #[error(transparent)]
    Refused(#[from] PathRejection),
    /// The operation failed (not found, permission denied, ...). `cap-std`'s errors do not
    /// contain the path.
    #[error("file operation failed: {0}")]
    Io(#[from] io::Error),
}

impl PathError {
    /// The rule, for a refusal.
    pub fn rule(&self) -> Option<PathRule> {
        match self {
            PathError::Refused(r) => Some(r.rule),
            PathError::Io(_) => None,
        }
    }

    /// The I/O error's kind, for an I/O error.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            PathError::Refused(_) => None,
            PathError::Io(e) => Some(e.kind()),
        }
    }
}

/// Refusals become `invalid_input` (naming the rule), a missing file `not_found`, an existing
/// one (`create_new`) or permission denied `failed`, anything else `internal`.
impl From<PathError> for ToolError {
    fn from(e: PathError) -> ToolError {
        match e {
            PathError::Refused(r) => {
                let rule = r.rule.as_str();
                ToolError::invalid_input(r.to_string()).with_detail("rule", rule)
            }
            PathError::Io(e) => match e.kind() {
                io::ErrorKind::NotFound => ToolError::not_found("no such file or directory"),
                io::ErrorKind::AlreadyExists => ToolError::failed("the file already exists"),
                io::ErrorKind::PermissionDenied => ToolError::failed("permission denied"),
                io::ErrorKind::InvalidData => ToolError::failed("the file is not valid UTF-8"),
                io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory => {
                    ToolError::failed("a component of the path is not a directory")
                }
                _ => ToolError::internal(e),
            },
        }
    }
}

/// Parse errors become `invalid_input` naming the rule.
impl From<PathRejection> for ToolError {
    fn from(r: PathRejection) -> ToolError {
        PathError::Refused(r).into()
    }
}
