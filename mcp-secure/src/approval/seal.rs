//! The server's approval keys, the HMAC seal of explicit tokens and of the input-required
//! `requestState`, and the set of redeemed seals that makes each one single-use.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "mcsa1";
const DOMAIN: &[u8] = b"mcp-secure/approval/v1";

/// The keys that seal approvals: the current key signs, previous keys still verify, so a key can
/// be rotated without refusing approvals issued just before.
///
/// Keys never appear in `Debug` output. With no keys configured, a server makes a random key at
/// start-up (approvals then do not survive a restart).
#[derive(Clone)]
pub struct ApprovalKeys {
    keys: Arc<Vec<Vec<u8>>>,
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
        })
    }

    /// Adds a previous key, still accepted when verifying (rotation).
    pub fn with_previous(self, previous: impl Into<Vec<u8>>) -> Result<Self, String> {
        let previous = checked(previous.into())?;
        let mut keys = (*self.keys).clone();
        keys.push(previous);
        Ok(ApprovalKeys {
            keys: Arc::new(keys),
        })
    }

    /// A random key for this process only.
    pub fn random() -> Self {
        ApprovalKeys {
            keys: Arc::new(vec![random_key()]),
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
        Ok(ApprovalKeys {
            keys: Arc::new(keys),
        })
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
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
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
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
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
}

/// Redeemed seal ids, kept until their expiry, bounded in number.
#[derive(Debug)]
pub(crate) struct Redeemed {
    ids: Mutex<HashMap<String, i64>>,
    cap: usize,
}

impl Redeemed {
    pub(crate) fn new(cap: usize) -> Self {
        Redeemed {
            ids: Mutex::new(HashMap::new()),
            cap,
        }
    }

    /// Marks a seal used; fails if it was used before.
    pub(crate) fn redeem(&self, opened: &Opened, now: i64) -> Result<(), RedeemError> {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.retain(|_, expires| *expires >= now);
        if ids.contains_key(&opened.id) {
            return Err(RedeemError::Replayed);
        }
        if ids.len() >= self.cap {
            return Err(RedeemError::Full);
        }
        ids.insert(opened.id.clone(), opened.expires);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
