//! The server's approval keys, the HMAC seal of explicit tokens and of the input-required
//! `requestState`, and the set of redeemed seals that makes each one single-use.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "mcsa1";
const DOMAIN: &[u8] = b"mcp-secure/approval/v1";

/// The keys that seal approvals: the current key signs, previous keys still verify, so a key can
/// be rotated without refusing approvals issued just before.
///
/// Keys never appear in `Debug` output. With no keys configured, a server makes a random key at
/// start-up (approvals then do not survive a restart).
///
/// Clones share one record of redeemed tokens, so servers given the same keys refuse a token
/// any of them redeemed. Keys read from a file ([`ApprovalKeys::load_or_create`]) outlive the
/// process, and so do the tokens they seal: their single use is kept in a journal beside the
/// key file (`<key file>.redeemed`), shared by every process that loads the file, so a token
/// used before a restart, or in another process, is refused. Keys made with
/// [`ApprovalKeys::new`] keep that record in memory only: a token they sealed is single-use
/// within the process, and may be presented again after a restart until it expires.
#[derive(Clone)]
pub struct ApprovalKeys {
    keys: Arc<Vec<Vec<u8>>>,
    /// The redemptions of tokens these keys sealed (with a journal when they must survive
    /// restarts), shared by every clone.
    redeemed: Arc<Redeemed>,
}

impl std::fmt::Debug for ApprovalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalKeys")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl ApprovalKeys {
    /// The shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 32;

    /// Keys with one current key (at least [`ApprovalKeys::MIN_LEN`] bytes).
    pub fn new(current: impl Into<Vec<u8>>) -> Result<Self, String> {
        let current = checked(current.into())?;
        Ok(ApprovalKeys {
            keys: Arc::new(vec![current]),
            redeemed: Arc::new(Redeemed::new(REDEEMED_CAP)),
        })
    }

    /// Adds a previous key, still accepted when verifying (rotation).
    pub fn with_previous(self, previous: impl Into<Vec<u8>>) -> Result<Self, String> {
        let previous = checked(previous.into())?;
        let mut keys = (*self.keys).clone();
        keys.push(previous);
        Ok(ApprovalKeys {
            keys: Arc::new(keys),
            redeemed: self.redeemed,
        })
    }

    /// A random key for this process only.
    pub fn random() -> Self {
        ApprovalKeys {
            keys: Arc::new(vec![random_key()]),
            redeemed: Arc::new(Redeemed::new(REDEEMED_CAP)),
        }
    }

    /// Reads keys from a file of hex lines (the first is current, the others previous), creating
    /// the file with one random key, readable by its owner only (mode 0600), when it is absent.
    /// To rotate, add a new first line; remove old lines once their approvals have expired.
    pub fn load_or_create(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref();
        let invalid = |m: String| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {m}", path.display()),
            )
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let line = hex::encode(random_key());
                let mut file = private_file(path)?;
                file.write_all(format!("{line}\n").as_bytes())?;
                file.sync_all()?;
                line
            }
            Err(e) => return Err(e),
        };
        let mut keys = Vec::new();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let key = hex::decode(line).map_err(|_| invalid("a key line is not hex".into()))?;
            keys.push(checked(key).map_err(invalid)?);
        }
        if keys.is_empty() {
            return Err(invalid("no key in the file".into()));
        }
        let mut journal = path.as_os_str().to_owned();
        journal.push(".redeemed");
        let redeemed = Redeemed::open(REDEEMED_CAP, Path::new(&journal), unix_now_ms())?;
        Ok(ApprovalKeys {
            keys: Arc::new(keys),
            redeemed: Arc::new(redeemed),
        })
    }

    /// The redemptions of these keys' tokens, shared by every clone: the journal of keys
    /// loaded from a file, else a set in memory.
    pub(crate) fn redeemed(&self) -> Arc<Redeemed> {
        Arc::clone(&self.redeemed)
    }

    fn current(&self) -> &[u8] {
        &self.keys[0]
    }
}

fn checked(key: Vec<u8>) -> Result<Vec<u8>, String> {
    if key.len() < ApprovalKeys::MIN_LEN {
        return Err(format!(
            "an approval key must be at least {} bytes, got {}",
            ApprovalKeys::MIN_LEN,
            key.len()
        ));
    }
    Ok(key)
}

fn random_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    crate::random::fill(&mut key);
    key
}

/// Creates a new file readable and writable by its owner only.
pub(crate) fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// A random id for a seal or a queued request: 16 bytes, hex.
pub(crate) fn random_id() -> String {
    let mut id = [0u8; 16];
    crate::random::fill(&mut id);
    hex::encode(id)
}

/// What a seal is bound to. None of it is stored in the seal; verification recomputes it from
/// the call at hand, so a seal for other arguments, another tool or another caller fails.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binding<'a> {
    /// `token` (explicit) or `state` (input-required): a seal of one kind is not one of the other.
    pub purpose: &'a str,
    pub user: &'a str,
    pub key_id: &'a str,
    pub tool: &'a str,
    pub digest: &'a str,
}

/// A verified seal: its id and expiry (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opened {
    pub id: String,
    pub expires: i64,
}

fn mac(key: &[u8], id: &str, expires: i64, b: &Binding<'_>) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    let expires = expires.to_string();
    for field in [
        DOMAIN,
        b.purpose.as_bytes(),
        id.as_bytes(),
        expires.as_bytes(),
        b.user.as_bytes(),
        b.key_id.as_bytes(),
        b.tool.as_bytes(),
        b.digest.as_bytes(),
    ] {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field);
    }
    mac
}

/// Seals `id` and `expires` for the binding with the current key: `mcsa1.<id>.<expires>.<tag>`.
pub(crate) fn seal(keys: &ApprovalKeys, id: &str, expires: i64, binding: &Binding<'_>) -> String {
    let tag = mac(keys.current(), id, expires, binding)
        .finalize()
        .into_bytes();
    format!("{VERSION}.{id}.{expires}.{}", hex::encode(tag))
}

/// Verifies a seal against the binding with every key (constant-time tag comparison). Says
/// nothing about expiry or reuse: the caller checks those.
pub(crate) fn open(keys: &ApprovalKeys, sealed: &str, binding: &Binding<'_>) -> Option<Opened> {
    let mut parts = sealed.split('.');
    let (Some(VERSION), Some(id), Some(expires), Some(tag), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if id.len() != 32 || !id.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let expires: i64 = expires.parse().ok()?;
    let tag = hex::decode(tag).ok()?;
    keys.keys
        .iter()
        .any(|key| mac(key, id, expires, binding).verify_slice(&tag).is_ok())
        .then(|| Opened {
            id: id.to_owned(),
            expires,
        })
}

/// Why a seal could not be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedeemError {
    /// It was redeemed before.
    Replayed,
    /// Too many unexpired seals are on record; nothing is evicted early, since that would
    /// allow a replay.
    Full,
    /// The redemption could not be written to the journal: the seal is not used (fail closed).
    Journal,
}

/// How many unexpired redemptions are kept at most.
pub(crate) const REDEEMED_CAP: usize = 100_000;

/// Redeemed seal ids, kept until their expiry, bounded in number; with a journal, each
/// redemption is written (and synced) before it is accepted, and read back at start-up.
///
/// Several processes may share one journal (servers started on the same data folder): each
/// redemption is made under an exclusive lock on the file, after reading what the others
/// appended since, and a process that finds the file replaced (another one rewrote it at
/// start-up) opens the new one.
#[derive(Debug)]
pub(crate) struct Redeemed {
    state: Mutex<RedeemedState>,
    cap: usize,
}

#[derive(Debug, Default)]
struct RedeemedState {
    ids: HashMap<String, i64>,
    journal: Option<Journal>,
}

/// The journal file shared with other processes, and how far this one has read it.
#[derive(Debug)]
struct Journal {
    path: std::path::PathBuf,
    file: std::fs::File,
    /// Bytes of `file` read into `ids` (complete lines only).
    read: u64,
}

impl Journal {
    fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)?;
        Ok(Journal {
            path: path.to_owned(),
            file,
            read: 0,
        })
    }

    /// Locks the journal (exclusively, against other processes), opening it again first if
    /// another process replaced it; unlocked when the guard drops.
    fn lock(&mut self) -> std::io::Result<JournalLock<'_>> {
        loop {
            self.file.lock()?;
            if same_file(&self.file, &self.path)? {
                return Ok(JournalLock(self));
            }
            let _ = self.file.unlock();
            *self = Journal::open(&self.path)?;
        }
    }
}

/// A locked journal.
struct JournalLock<'a>(&'a mut Journal);

impl Drop for JournalLock<'_> {
    fn drop(&mut self) {
        let _ = self.0.file.unlock();
    }
}

impl JournalLock<'_> {
    /// Reads the lines appended since the last read into `ids` (unexpired ones); says whether
    /// the file ends inside a line (a writer that crashed mid-line).
    fn catch_up(&mut self, ids: &mut HashMap<String, i64>, now: i64) -> std::io::Result<bool> {
        use std::io::{Read, Seek, SeekFrom};
        let journal = &mut *self.0;
        journal.file.seek(SeekFrom::Start(journal.read))?;
        let mut tail = Vec::new();
        journal.file.read_to_end(&mut tail)?;
        let complete = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        read_lines(&String::from_utf8_lossy(&tail[..complete]), ids, now);
        journal.read += complete as u64;
        Ok(complete < tail.len())
    }

    /// Appends one line and syncs it (the file is in append mode).
    fn append(&mut self, line: &str) -> std::io::Result<()> {
        self.0.file.write_all(line.as_bytes())?;
        self.0.file.sync_data()
    }
}

/// True when `path` still names the open `file` (no other process replaced it).
fn same_file(file: &std::fs::File, path: &Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (open, named) = (file.metadata()?, std::fs::metadata(path)?);
        Ok(open.dev() == named.dev() && open.ino() == named.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        Ok(true)
    }
}

/// Reads journal lines (`<id> <expires-ms>`) into `ids`, keeping the unexpired ones.
fn read_lines(text: &str, ids: &mut HashMap<String, i64>, now: i64) {
    for line in text.lines() {
        // A torn line (a crash mid-write) is the only malformed one possible; its seal was
        // never accepted, so skipping it loses nothing.
        let Some((id, expires)) = line.split_once(' ') else {
            continue;
        };
        if let Ok(expires) = expires.trim().parse::<i64>()
            && expires >= now
        {
            ids.insert(id.to_owned(), expires);
        }
    }
}

impl Redeemed {
    pub(crate) fn new(cap: usize) -> Self {
        Redeemed {
            state: Mutex::new(RedeemedState::default()),
            cap,
        }
    }

    /// Reads the journal at `path` (lines `<id> <expires-ms>`), keeps the unexpired entries,
    /// rewrites it with only those (mode 0600), and appends to it from then on.
    ///
    /// The rewrite is made under the lock of the journal it replaces, so no other process
    /// appends to the old file meanwhile; the others open the new one before their next
    /// redemption.
    pub(crate) fn open(cap: usize, path: &Path, now: i64) -> std::io::Result<Self> {
        let mut ids = HashMap::new();
        let mut old = match Journal::open(path) {
            Ok(journal) => Some(journal),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut lock = old.as_mut().map(Journal::lock).transpose()?;
        if let Some(lock) = &mut lock {
            lock.catch_up(&mut ids, now)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", random_id()));
        let tmp = Path::new(&tmp);
        let written = (|| {
            let mut file = private_file(tmp)?;
            for (id, expires) in &ids {
                writeln!(file, "{id} {expires}")?;
            }
            file.sync_all()?;
            std::fs::rename(tmp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(tmp);
        }
        written?;
        drop(lock);
        Ok(Redeemed {
            state: Mutex::new(RedeemedState {
                ids,
                journal: Some(Journal::open(path)?),
            }),
            cap,
        })
    }

    /// Marks a seal used; fails if it was used before.
    pub(crate) fn redeem(&self, opened: &Opened, now: i64) -> Result<(), RedeemError> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *guard;
        let failed = |e: std::io::Error| {
            tracing::error!(error = %e, "the approval journal cannot be used; refusing the approval");
            RedeemError::Journal
        };
        // With a journal: locked against other processes until the redemption is written,
        // after reading what they redeemed since.
        let mut lock = match &mut state.journal {
            Some(journal) => Some(journal.lock().map_err(failed)?),
            None => None,
        };
        let torn = match &mut lock {
            Some(lock) => lock.catch_up(&mut state.ids, now).map_err(failed)?,
            None => false,
        };
        state.ids.retain(|_, expires| *expires >= now);
        if state.ids.contains_key(&opened.id) {
            return Err(RedeemError::Replayed);
        }
        if state.ids.len() >= self.cap {
            return Err(RedeemError::Full);
        }
        if let Some(lock) = &mut lock {
            // After a torn line, start a line of our own.
            let line = format!(
                "{}{} {}\n",
                if torn { "\n" } else { "" },
                opened.id,
                opened.expires
            );
            lock.append(&line).map_err(failed)?;
        }
        state.ids.insert(opened.id.clone(), opened.expires);
        Ok(())
    }
}

fn unix_now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_keeps_redemptions_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("approval.key.redeemed");
        let seal = |id: &str, expires| Opened {
            id: id.into(),
            expires,
        };
        let r = Redeemed::open(10, &path, 100).unwrap();
        assert_eq!(r.redeem(&seal("a", 1_000), 100), Ok(()));
        assert_eq!(r.redeem(&seal("old", 150), 100), Ok(()));
        drop(r);
        // A torn line, as a crash mid-write would leave it.
        tear(&path);
        let r = Redeemed::open(10, &path, 200).unwrap();
        assert_eq!(r.redeem(&seal("a", 1_000), 200), Err(RedeemError::Replayed));
        assert_eq!(r.redeem(&seal("b", 1_000), 200), Ok(()));
        // Expired entries were dropped when the journal was rewritten.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("old") && !text.contains("tor "), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// Ends the journal with a torn line, as a crash mid-write leaves it.
    fn tear(path: &Path) {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap()
            .write_all(b"tor")
            .unwrap();
    }

    #[test]
    fn processes_sharing_a_journal_see_each_others_redemptions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("approval.key.redeemed");
        let seal = |id: &str| Opened {
            id: id.into(),
            expires: 1_000,
        };
        let one = Redeemed::open(10, &path, 100).unwrap();
        // A second process starts and rewrites the journal under the first one.
        let two = Redeemed::open(10, &path, 100).unwrap();
        assert_eq!(one.redeem(&seal("a"), 100), Ok(()));
        assert_eq!(two.redeem(&seal("a"), 100), Err(RedeemError::Replayed));
        assert_eq!(two.redeem(&seal("b"), 100), Ok(()));
        assert_eq!(one.redeem(&seal("b"), 100), Err(RedeemError::Replayed));
        // A third process dies mid-line; the next redemption starts a line of its own.
        tear(&path);
        assert_eq!(one.redeem(&seal("c"), 100), Ok(()));
        drop((one, two));
        let three = Redeemed::open(10, &path, 100).unwrap();
        for id in ["a", "b", "c"] {
            assert_eq!(
                three.redeem(&seal(id), 100),
                Err(RedeemError::Replayed),
                "{id}"
            );
        }
    }

    fn binding<'a>(tool: &'a str, digest: &'a str) -> Binding<'a> {
        Binding {
            purpose: "token",
            user: "ed",
            key_id: "k1",
            tool,
            digest,
        }
    }

    #[test]
    fn seals_verify_only_for_their_binding_and_keys() {
        let keys = ApprovalKeys::new([7u8; 32]).unwrap();
        let id = random_id();
        let token = seal(&keys, &id, 100, &binding("edit", "d1"));
        assert_eq!(
            open(&keys, &token, &binding("edit", "d1")),
            Some(Opened {
                id: id.clone(),
                expires: 100
            })
        );
        assert_eq!(open(&keys, &token, &binding("edit", "d2")), None);
        assert_eq!(open(&keys, &token, &binding("purge", "d1")), None);
        let other = Binding {
            purpose: "state",
            ..binding("edit", "d1")
        };
        assert_eq!(open(&keys, &token, &other), None);
        // A later expiry with the old tag is a forgery.
        let forged = token.replacen(".100.", ".999.", 1);
        assert_eq!(open(&keys, &forged, &binding("edit", "d1")), None);
        // Another server's key.
        assert_eq!(
            open(
                &ApprovalKeys::new([8u8; 32]).unwrap(),
                &token,
                &binding("edit", "d1")
            ),
            None
        );
        // Rotation: the old key still verifies, new seals use the new key.
        let rotated = ApprovalKeys::new([9u8; 32])
            .unwrap()
            .with_previous([7u8; 32])
            .unwrap();
        assert!(open(&rotated, &token, &binding("edit", "d1")).is_some());
        let fresh = seal(&rotated, &id, 100, &binding("edit", "d1"));
        assert_eq!(open(&keys, &fresh, &binding("edit", "d1")), None);
        assert!(ApprovalKeys::new([1u8; 16]).is_err());
        assert!(!format!("{rotated:?}").contains("9"), "keys never print");
    }

    #[test]
    fn redeemed_ids_are_single_use_and_bounded() {
        let r = Redeemed::new(2);
        let a = Opened {
            id: "a".into(),
            expires: 10,
        };
        assert_eq!(r.redeem(&a, 5), Ok(()));
        assert_eq!(r.redeem(&a, 6), Err(RedeemError::Replayed));
        assert_eq!(
            r.redeem(
                &Opened {
                    id: "b".into(),
                    expires: 10
                },
                6
            ),
            Ok(())
        );
        assert_eq!(
            r.redeem(
                &Opened {
                    id: "c".into(),
                    expires: 10
                },
                6
            ),
            Err(RedeemError::Full)
        );
        // Expired ids are forgotten, which is safe: an expired seal is refused anyway.
        assert_eq!(
            r.redeem(
                &Opened {
                    id: "c".into(),
                    expires: 20
                },
                11
            ),
            Ok(())
        );
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("approval.key");
        let a = ApprovalKeys::load_or_create(&path).unwrap();
        let b = ApprovalKeys::load_or_create(&path).unwrap();
        assert_eq!(a.current(), b.current());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&path, "zz\n").unwrap();
        assert!(ApprovalKeys::load_or_create(&path).is_err());
    }
}
