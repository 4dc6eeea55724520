//! API keys: `mcs_<env>_<id>_<secret>`, stored as SHA-256 digests in a TOML key file.
//!
//! The secret part is 32 random bytes, so a fast digest is enough (there is nothing to brute
//! force); lookups go by id and compare digests in constant time.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{AuthError, Authenticator, Credential, Environment, KeySource, Principal};
use crate::clock::Clock;

/// One stored key: everything but the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// The public key id (part of the token).
    pub id: String,
    /// The user the key acts as.
    pub user: String,
    /// The roles it grants.
    pub roles: Vec<String>,
    /// The environment it is valid in.
    pub env: Environment,
    /// `sha256:<hex>` of the whole token.
    pub hash: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// When it stops working, if ever.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires: Option<OffsetDateTime>,
    /// A revoked key never works again.
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyFile {
    #[serde(default)]
    pub(super) keys: Vec<KeyEntry>,
}

/// A key just made: the token (shown once, never stored) and its entry.
pub struct NewKey {
    /// The token to hand to the caller. It is not kept anywhere.
    pub token: String,
    /// The stored entry.
    pub entry: KeyEntry,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("token", &"[REDACTED]")
            .field("entry", &self.entry)
            .finish()
    }
}

/// Errors loading or writing a key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("key file {path} is not valid: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A request to the store was not valid.
    #[error("{0}")]
    Invalid(String),
}

/// The key store and [`Authenticator`] for API keys.
#[derive(Debug, Clone)]
pub struct ApiKeyStore {
    keys: Arc<Keys>,
    environment: Environment,
    clock: Clock,
}

/// A store's keys, shared by its clones, and a count of their changes.
#[derive(Debug, Default)]
pub(super) struct Keys {
    /// By key id.
    map: RwLock<crate::LookupMap<String, Stored>>,
    /// Bumped by every change to `map` while its write lock is held, before the change: a
    /// check that reads it under the read lock knows which keys it looked at, and a reader
    /// that finds it unchanged knows that no key has changed since.
    generation: AtomicU64,
}

impl Keys {
    fn read(&self) -> RwLockReadGuard<'_, crate::LookupMap<String, Stored>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The map, to change; the generation is bumped first.
    fn write(&self) -> RwLockWriteGuard<'_, crate::LookupMap<String, Stored>> {
        let map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        map
    }
}

/// What a shared credential (the stdio session's) keeps of a key store's checks: the principal
/// a check granted, handed out borrowed while the store's keys are in a generation in which a
/// check found the key valid, with this principal and this expiry. Any change to the keys (a
/// revocation, a reload, a new key) sends the next call through the whole check again, which
/// brings the kept principal back into use only if the key still grants the same.
pub(super) struct Kept {
    /// The store's keys: compared by address, and kept alive so the address is not reused.
    keys: Arc<Keys>,
    environment: Environment,
    principal: Arc<Principal>,
    expires: Option<OffsetDateTime>,
    /// The latest generation of `keys` in which a check found the key valid.
    generation: AtomicU64,
}

const PREFIX: &str = "mcs";

/// An entry with its digest decoded once, when it is loaded, and the principal it grants built
/// once too: a check hands out a shared reference, it copies no string.
#[derive(Debug)]
struct Stored {
    entry: KeyEntry,
    digest: [u8; 32],
    principal: Arc<Principal>,
}

impl Stored {
    /// `None` when the entry's `hash` is not `sha256:<64 hex digits>` (refused by
    /// `validate_entry` before anything is stored).
    fn new(entry: KeyEntry) -> Option<Self> {
        let digest = parse_hash(&entry.hash)?;
        Some(Stored::with_digest(entry, digest))
    }

    fn with_digest(entry: KeyEntry, digest: [u8; 32]) -> Self {
        let principal = Arc::new(
            Principal::new(entry.user.clone(), entry.roles.iter().cloned())
                .with_key_id(entry.id.clone())
                .with_environment(entry.env),
        );
        Stored {
            entry,
            digest,
            principal,
        }
    }
}

impl ApiKeyStore {
    /// An empty store for a server running in `environment`.
    pub fn new(environment: Environment) -> Self {
        ApiKeyStore {
            keys: Arc::default(),
            environment,
            clock: Clock::system(),
        }
    }

    /// Uses a clock (for expiry tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Loads a key file. A missing file is an empty store.
    pub fn load(path: impl AsRef<Path>, environment: Environment) -> Result<Self, KeyStoreError> {
        let store = Self::new(environment);
        store.reload(path)?;
        Ok(store)
    }

    /// Replaces the keys with the file's. On error the old keys stay.
    pub fn reload(&self, path: impl AsRef<Path>) -> Result<(), KeyStoreError> {
        let path = path.as_ref();
        let file = read_key_file(path)?;
        self.replace_from(file.keys, path)
    }

    /// Replaces the keys with those of a [`KeySource`] (key file, environment variable, secret
    /// manager). On error the old keys stay.
    pub async fn reload_from(&self, source: &dyn KeySource) -> Result<(), KeyStoreError> {
        let entries = source.load().await?;
        self.replace_from(entries, Path::new(&source.describe()))
    }

    /// Loads a store from a [`KeySource`].
    pub async fn load_from(
        source: &dyn KeySource,
        environment: Environment,
    ) -> Result<Self, KeyStoreError> {
        let store = Self::new(environment);
        store.reload_from(source).await?;
        Ok(store)
    }

    /// Replaces the keys with `entries` (checked first; on error the old keys stay).
    pub fn replace(&self, entries: Vec<KeyEntry>) -> Result<(), KeyStoreError> {
        self.replace_from(entries, Path::new("<entries>"))
    }

    fn replace_from(&self, entries: Vec<KeyEntry>, origin: &Path) -> Result<(), KeyStoreError> {
        let mut map = crate::LookupMap::with_capacity_and_hasher(entries.len(), Default::default());
        for entry in entries {
            let invalid = |message| KeyStoreError::Format {
                path: origin.into(),
                message,
            };
            validate_entry(&entry).map_err(invalid)?;
            let id = entry.id.clone();
            let stored = Stored::new(entry)
                .ok_or_else(|| invalid(format!("key `{id}` has a malformed hash")))?;
            if let Some(dup) = map.insert(id, stored) {
                return Err(invalid(format!("key id `{}` appears twice", dup.entry.id)));
            }
        }
        *self.keys.write() = map;
        Ok(())
    }

    /// The server's environment.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// Makes a key and adds it to this store (not to a file: see [`ApiKeyStore::append_to_file`]).
    pub fn generate(
        &self,
        user: &str,
        roles: &[String],
        env: Environment,
        expires: Option<OffsetDateTime>,
    ) -> Result<NewKey, KeyStoreError> {
        let new = make_key(user, roles, env, self.clock.now_utc(), expires)?;
        let stored = Stored::with_digest(new.entry.clone(), digest(&new.token));
        self.keys.write().insert(new.entry.id.clone(), stored);
        Ok(new)
    }

    /// Makes a key and appends its entry to a key file (created with mode 0600 if missing).
    pub fn append_to_file(
        path: impl AsRef<Path>,
        user: &str,
        roles: &[String],
        env: Environment,
        expires: Option<OffsetDateTime>,
    ) -> Result<NewKey, KeyStoreError> {
        let path = path.as_ref();
        let mut file = read_key_file(path)?;
        let new = make_key(user, roles, env, OffsetDateTime::now_utc(), expires)?;
        file.keys.push(new.entry.clone());
        write_key_file(path, &file)?;
        Ok(new)
    }

    /// Marks a key revoked in a key file. Returns false when the id is not there.
    pub fn revoke_in_file(path: impl AsRef<Path>, key_id: &str) -> Result<bool, KeyStoreError> {
        let path = path.as_ref();
        let mut file = read_key_file(path)?;
        let Some(entry) = file.keys.iter_mut().find(|k| k.id == key_id) else {
            return Ok(false);
        };
        entry.revoked = true;
        write_key_file(path, &file)?;
        Ok(true)
    }

    /// Rotates a key in a key file: makes a new key for the same user, roles and environment,
    /// and lets the old one work for `grace` more (revoked at once when `grace` is zero).
    /// Returns the new key; `Ok(None)` when the id is not there.
    pub fn rotate_in_file(
        path: impl AsRef<Path>,
        key_id: &str,
        grace: std::time::Duration,
        expires: Option<OffsetDateTime>,
    ) -> Result<Option<NewKey>, KeyStoreError> {
        let path = path.as_ref();
        let mut file = read_key_file(path)?;
        let now = OffsetDateTime::now_utc();
        let Some(old) = file.keys.iter_mut().find(|k| k.id == key_id) else {
            return Ok(None);
        };
        if old.revoked {
            return Err(KeyStoreError::Invalid(format!(
                "key `{key_id}` is revoked; make a new key instead"
            )));
        }
        let new = make_key(&old.user, &old.roles, old.env, now, expires)?;
        if grace.is_zero() {
            old.revoked = true;
        } else {
            let until = now + grace;
            old.expires = Some(old.expires.map_or(until, |e| e.min(until)));
        }
        file.keys.push(new.entry.clone());
        write_key_file(path, &file)?;
        Ok(Some(new))
    }

    /// Revokes a key in this store.
    pub fn revoke(&self, key_id: &str) -> bool {
        match self.keys.write().get_mut(key_id) {
            Some(e) => {
                e.entry.revoked = true;
                true
            }
            None => false,
        }
    }

    /// The entries, without secrets.
    pub fn entries(&self) -> Vec<KeyEntry> {
        let mut v: Vec<_> = self.keys.read().values().map(|s| s.entry.clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Checks a token synchronously. The principal is shared by every call made with the key.
    pub fn check(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        self.verify(token, &digest(token))
    }

    /// Checks `token`, whose SHA-256 digest is `presented`.
    fn verify(&self, token: &str, presented: &[u8; 32]) -> Result<Arc<Principal>, AuthError> {
        self.verify_with(token, presented, |stored, _| Arc::clone(&stored.principal))
    }

    /// Checks `token`, whose SHA-256 digest is `presented`, and hands the valid key's entry
    /// to `valid` with the generation of the keys it was found in (under the read lock).
    fn verify_with<R>(
        &self,
        token: &str,
        presented: &[u8; 32],
        valid: impl FnOnce(&Stored, u64) -> R,
    ) -> Result<R, AuthError> {
        let (env, id) = split_token(token).ok_or(AuthError::Invalid)?;
        let keys = self.keys.read();
        // Unknown ids and wrong secrets take the same path: compare against a dummy digest.
        let stored = keys.get(id);
        let expected = stored.map_or([0u8; 32], |s| s.digest);
        let matches = same_digest(presented, &expected);
        let (stored, entry) = match stored {
            Some(s) if matches => (s, &s.entry),
            _ => return Err(AuthError::Invalid),
        };
        if env != entry.env {
            // The token's own prefix disagrees with its stored entry: treat as forged.
            return Err(AuthError::Invalid);
        }
        if entry.env != self.environment {
            return Err(AuthError::WrongEnvironment {
                key: entry.env,
                server: self.environment,
            });
        }
        if entry.revoked {
            return Err(AuthError::Revoked);
        }
        if self.expired(entry.expires) {
            return Err(AuthError::Expired);
        }
        Ok(valid(stored, self.keys.generation.load(Ordering::SeqCst)))
    }

    fn expired(&self, expires: Option<OffsetDateTime>) -> bool {
        expires.is_some_and(|exp| self.clock.now_utc() >= exp)
    }

    /// Whether `kept` was found valid by this store in the generation its keys are in now:
    /// then no key has changed since, and the check would find it valid again (but for its
    /// expiry, which time alone can reach).
    fn still_valid(&self, kept: &Kept) -> bool {
        self.made(kept)
            && kept.generation.load(Ordering::SeqCst) == self.keys.generation.load(Ordering::SeqCst)
    }

    /// Whether `kept` was kept by a store with these keys, in this environment.
    fn made(&self, kept: &Kept) -> bool {
        Arc::ptr_eq(&kept.keys, &self.keys) && kept.environment == self.environment
    }

    /// After a successful check of a shared credential: keeps what it found in the credential
    /// (the first time), or marks the kept principal valid in this generation when the key
    /// still grants the same principal with the same expiry.
    fn keep(&self, slot: &OnceLock<Kept>, stored: &Stored, generation: u64) {
        let kept = slot.get_or_init(|| Kept {
            keys: Arc::clone(&self.keys),
            environment: self.environment,
            principal: Arc::clone(&stored.principal),
            expires: stored.entry.expires,
            generation: AtomicU64::new(generation),
        });
        let same = self.made(kept)
            && kept.expires == stored.entry.expires
            && (Arc::ptr_eq(&kept.principal, &stored.principal)
                || *kept.principal == *stored.principal);
        if same {
            kept.generation.fetch_max(generation, Ordering::SeqCst);
        }
    }
}

impl Authenticator for ApiKeyStore {
    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Arc<Principal>, AuthError>> {
        let result = self.verify(credential.expose(), &credential.sha256());
        Box::pin(std::future::ready(result))
    }

    fn authenticate_now(
        &self,
        credential: &Credential,
    ) -> Option<Result<Arc<Principal>, AuthError>> {
        Some(self.verify(credential.expose(), &credential.sha256()))
    }

    /// A shared credential (the stdio session's) keeps the principal of its last successful
    /// check, and gets it back borrowed while no key has changed since; otherwise, and for
    /// every other credential, the whole check.
    fn authenticate_kept<'c>(
        &self,
        credential: &'c Credential,
    ) -> Option<Result<Cow<'c, Arc<Principal>>, AuthError>> {
        let Some(slot) = credential.kept() else {
            return self.authenticate_now(credential).map(|r| r.map(Cow::Owned));
        };
        if let Some(kept) = slot.get().filter(|k| self.still_valid(k)) {
            if self.expired(kept.expires) {
                return Some(Err(AuthError::Expired));
            }
            return Some(Ok(Cow::Borrowed(&kept.principal)));
        }
        let checked = self.verify_with(credential.expose(), &credential.sha256(), |s, g| {
            self.keep(slot, s, g);
            Arc::clone(&s.principal)
        });
        Some(checked.map(Cow::Owned))
    }
}

fn split_token(token: &str) -> Option<(Environment, &str)> {
    let rest = token.strip_prefix(PREFIX)?.strip_prefix('_')?;
    let (env, rest) = split_underscore(rest)?;
    let env = env.parse().ok()?;
    let (id, secret) = split_underscore(rest)?;
    // Every byte is looked at (a fold, not `all`): no branch per character on the secret.
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .fold(true, |ok, b| ok & b.is_ascii_alphanumeric())
        && secret.len() == 64
        && secret
            .bytes()
            .fold(true, |ok, b| ok & b.is_ascii_hexdigit());
    ok.then_some((env, id))
}

/// `s` split at its first `_`, by a plain byte search (the parts are short).
fn split_underscore(s: &str) -> Option<(&str, &str)> {
    let at = s.bytes().position(|b| b == b'_')?;
    Some((s.get(..at)?, s.get(at + 1..)?))
}

/// Compares two digests in constant time: the words' differences are folded together and
/// tested once (`subtle`), with no branch that depends on where they differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let word = |d: &[u8; 32], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&d[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(w)
    };
    let mut diff = 0u64;
    for i in 0..4 {
        diff |= word(a, i) ^ word(b, i);
    }
    diff.ct_eq(&0).into()
}

/// The digest a key file stores for a token, and the one a presented token is compared by.
pub(super) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?;
    let bytes = hex::decode(hex).ok()?;
    bytes.try_into().ok()
}

fn validate_entry(e: &KeyEntry) -> Result<(), String> {
    if e.id.is_empty() || e.id.len() > 64 || !e.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "key id `{}` must be 1 to 64 letters or digits",
            e.id
        ));
    }
    if e.user.is_empty() {
        return Err(format!("key `{}` has no user", e.id));
    }
    if parse_hash(&e.hash).is_none() {
        return Err(format!(
            "key `{}` has a hash that is not `sha256:<64 hex digits>`",
            e.id
        ));
    }
    Ok(())
}

fn make_key(
    user: &str,
    roles: &[String],
    env: Environment,
    now: OffsetDateTime,
    expires: Option<OffsetDateTime>,
) -> Result<NewKey, KeyStoreError> {
    if user.is_empty() {
        return Err(KeyStoreError::Invalid("a key needs a user".into()));
    }
    if roles.is_empty() {
        return Err(KeyStoreError::Invalid(
            "a key needs at least one role".into(),
        ));
    }
    if expires.is_some_and(|e| e <= now) {
        return Err(KeyStoreError::Invalid("the expiry is in the past".into()));
    }
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    crate::random::fill(&mut id);
    crate::random::fill(&mut secret);
    let id = hex::encode(id);
    let token = format!("{PREFIX}_{env}_{id}_{}", hex::encode(secret));
    let entry = KeyEntry {
        id,
        user: user.to_owned(),
        roles: roles.to_vec(),
        env,
        hash: format!("sha256:{}", hex::encode(digest(&token))),
        created: now.replace_nanosecond(0).unwrap_or(now),
        expires,
        revoked: false,
    };
    Ok(NewKey { token, entry })
}

pub(super) fn parse_key_file(text: &str, origin: PathBuf) -> Result<KeyFile, KeyStoreError> {
    toml::from_str(text).map_err(|e| KeyStoreError::Format {
        path: origin,
        message: e.message().to_owned(),
    })
}

pub(super) fn read_key_file(path: &Path) -> Result<KeyFile, KeyStoreError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_key_file(&text, path.into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
        Err(source) => Err(KeyStoreError::Io {
            path: path.into(),
            source,
        }),
    }
}

fn write_key_file(path: &Path, file: &KeyFile) -> Result<(), KeyStoreError> {
    let io = |source| KeyStoreError::Io {
        path: path.into(),
        source,
    };
    let text = toml::to_string_pretty(file).map_err(|e| KeyStoreError::Invalid(e.to_string()))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    // Write a sibling file and rename it over the old one, so a reader never sees half a file.
    let tmp = path.with_extension("toml.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp).map_err(io)?;
    f.write_all(
        b"# mcp-secure API keys: digests only. Make keys with `keygen`; never put a token here.\n",
    )
    .and_then(|_| f.write_all(text.as_bytes()))
    .and_then(|_| f.sync_all())
    .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    /// `token` with the last digit of its secret changed: the same id, a wrong secret.
    fn forged(token: &str) -> String {
        let mut forged = token.to_owned();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        forged
    }

    #[test]
    fn token_format() {
        let secret = "0123456789abcdef".repeat(4);
        let ok = format!("{PREFIX}_live_k1_{secret}");
        assert_eq!(split_token(&ok), Some((Environment::Live, "k1")));
        for bad in [
            format!("{PREFIX}_live__{secret}"),                   // empty id
            format!("{PREFIX}_live_k-1_{secret}"),                // id not alphanumeric
            format!("{PREFIX}_live_k1_{}", &secret[1..]),         // 63 digits
            format!("{PREFIX}_live_k1_{secret}0"),                // 65 digits
            format!("{PREFIX}_live_k1_{}g", &secret[1..]),        // not hex
            format!("{PREFIX}_live_k1_{}_", &secret[1..]),        // underscore in the secret
            format!("{PREFIX}_live_k1{secret}"),                  // no separator
            format!("{PREFIX}_prod_k1_{secret}"),                 // unknown environment
            format!("{PREFIX}_live_ké_{}", &secret[..64]),        // non-ASCII id
            format!("{PREFIX}_live_{}_{secret}", "k".repeat(65)), // id too long
            format!("{PREFIX}live_k1_{secret}"),                  // prefix without `_`
            format!("{PREFIX}_live"),
            String::new(),
        ] {
            assert_eq!(split_token(&bad), None, "{bad}");
        }
    }

    #[test]
    fn digests_differing_in_any_byte_do_not_match() {
        let digest: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        assert!(same_digest(&digest, &digest.clone()));
        for at in 0..32 {
            for flip in [0x01, 0x80, 0xff] {
                let mut other = digest;
                other[at] ^= flip;
                assert!(!same_digest(&digest, &other), "byte {at} ^ {flip:#x}");
            }
        }
    }

    #[test]
    fn generated_keys_authenticate_and_only_digests_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let k = ApiKeyStore::append_to_file(
            &path,
            "alice",
            &roles(&["editor"]),
            Environment::Test,
            None,
        )
        .unwrap();
        assert!(k.token.starts_with("mcs_test_"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(&k.token[k.token.len() - 64..]),
            "the secret must not be stored"
        );
        let store = ApiKeyStore::load(&path, Environment::Test).unwrap();
        let p = store.check(&k.token).unwrap();
        assert_eq!(
            (p.user.as_str(), p.roles.clone()),
            ("alice", roles(&["editor"]))
        );
        assert_eq!(p.key_id.as_deref(), Some(k.entry.id.as_str()));
        assert!(format!("{k:?}").contains("[REDACTED]"));
    }

    /// Every refusal, as `check` gives it and as the server asks for it: the ready answer
    /// (`authenticate_now`) is the awaited one (`authenticate`), the same shared principal.
    #[test]
    fn refusals() {
        let clock = Clock::manual();
        let store = ApiKeyStore::new(Environment::Live).with_clock(clock.clone());
        let live = store
            .generate(
                "bob",
                &roles(&["admin"]),
                Environment::Live,
                Some(clock.now_utc() + time::Duration::hours(1)),
            )
            .unwrap();
        let test = store
            .generate("bob", &roles(&["admin"]), Environment::Test, None)
            .unwrap();
        let check = |token: &str| {
            let checked = store.check(token);
            let credential =
                Credential::new(token.to_owned(), crate::auth::CredentialSource::RequestMeta);
            let now = store
                .authenticate_now(&credential)
                .expect("answers at once");
            let awaited = futures::executor::block_on(store.authenticate(&credential));
            for answer in [now, awaited] {
                match (&checked, &answer) {
                    (Ok(a), Ok(b)) => assert!(Arc::ptr_eq(a, b), "the same principal"),
                    _ => assert_eq!(checked, answer, "{token:?}"),
                }
            }
            checked
        };
        assert!(check(&live.token).is_ok());
        assert!(matches!(
            check(&test.token),
            Err(AuthError::WrongEnvironment { .. })
        ));
        // Wrong secret, same id.
        let forged = forged(&live.token);
        assert_eq!(check(&forged), Err(AuthError::Invalid));
        assert_eq!(check("mcs_live_nope"), Err(AuthError::Invalid));
        assert_eq!(check(""), Err(AuthError::Invalid));
        clock.advance(std::time::Duration::from_secs(3601));
        assert_eq!(check(&live.token), Err(AuthError::Expired));
        assert!(store.revoke(&live.entry.id));
        assert_eq!(check(&live.token), Err(AuthError::Revoked));
    }

    /// The stdio session's credential is hashed once, its clones sharing the digest, but every
    /// check still looks its key up: a session outlives neither a revocation nor an expiry.
    #[test]
    fn a_shared_credential_is_hashed_once_and_checked_every_time() {
        use crate::auth::CredentialSource::{RequestMeta, Session};
        let clock = Clock::manual();
        let store = ApiKeyStore::new(Environment::Live).with_clock(clock.clone());
        let expiry = Some(clock.now_utc() + time::Duration::hours(1));
        let revoked = store
            .generate("eve", &roles(&["admin"]), Environment::Live, None)
            .unwrap();
        let expiring = store
            .generate("eve", &roles(&["admin"]), Environment::Live, expiry)
            .unwrap();
        let now = |c: &Credential| store.authenticate_now(c).expect("answers at once");

        let session = Credential::shared(revoked.token.clone(), Session);
        assert_eq!(session.kept_sha256(), None, "computed when first needed");
        let (first, second) = (session.clone(), session.clone());
        assert_eq!(now(&first).unwrap().user, "eve");
        // Checking one clone computed the digest for all of them.
        assert_eq!(second.kept_sha256(), Some(&digest(&revoked.token)));
        assert_eq!(session.kept_sha256(), Some(&digest(&revoked.token)));
        assert_eq!(now(&second).unwrap().user, "eve");
        // A request's own credential keeps none: it is checked once.
        let own = Credential::new(revoked.token.clone(), RequestMeta);
        assert_eq!(now(&own).unwrap().user, "eve");
        assert_eq!(own.kept_sha256(), None);

        // A wrong secret stays wrong however often it is presented.
        let forged = forged(&revoked.token);
        let forged = Credential::shared(forged, Session);
        for _ in 0..2 {
            assert_eq!(now(&forged.clone()), Err(AuthError::Invalid));
        }

        assert!(store.revoke(&revoked.entry.id));
        assert_eq!(now(&session.clone()), Err(AuthError::Revoked));
        let expiring = Credential::shared(expiring.token, Session);
        assert!(now(&expiring.clone()).is_ok());
        clock.advance(std::time::Duration::from_secs(3601));
        assert_eq!(now(&expiring.clone()), Err(AuthError::Expired));
    }

    /// The session's answer through `authenticate_kept`, as an owned principal, and whether
    /// it came borrowed from what the credential keeps.
    fn kept(store: &ApiKeyStore, c: &Credential) -> (Result<Arc<Principal>, AuthError>, bool) {
        match store.authenticate_kept(c).expect("answers at once") {
            Ok(Cow::Borrowed(p)) => (Ok(Arc::clone(p)), true),
            Ok(Cow::Owned(p)) => (Ok(p), false),
            Err(e) => (Err(e), false),
        }
    }

    /// A session's credential keeps the principal of its last successful check and gets it
    /// back borrowed, but only while no key of the store has changed since: every change sends
    /// the next call through the whole check, which answers with what the keys say now, and
    /// expiry is checked on every call. Each answer is the one a whole check gives.
    #[test]
    fn a_session_keeps_its_principal_only_while_no_key_changes() {
        use crate::auth::CredentialSource::{RequestMeta, Session};
        let clock = Clock::manual();
        let store = ApiKeyStore::new(Environment::Live).with_clock(clock.clone());
        let key = store
            .generate("fay", &roles(&["editor"]), Environment::Live, None)
            .unwrap();
        let session = Credential::shared(key.token.clone(), Session);
        let answer = |store: &ApiKeyStore, c: &Credential| {
            let (kept, borrowed) = kept(store, c);
            let whole = store.check(&key.token);
            match (&kept, &whole) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "the principal a whole check grants"),
                _ => assert_eq!(kept, whole),
            }
            (kept, borrowed)
        };

        // The first check is whole; then the kept principal, the store's own, is borrowed.
        let (first, borrowed) = answer(&store, &session);
        assert!(!borrowed);
        let (again, borrowed) = answer(&store, &session.clone());
        assert!(borrowed, "kept, and shared by the credential's clones");
        assert!(Arc::ptr_eq(&first.unwrap(), &again.unwrap()));
        // A clone of the store shares its keys, and so what the credential keeps.
        assert!(answer(&store.clone(), &session).1);
        // A request's own credential keeps nothing.
        let own = Credential::new(key.token.clone(), RequestMeta);
        assert!(!answer(&store, &own).1 && !answer(&store, &own).1);

        // Another key is made: the next check is whole, and finds the same principal.
        store
            .generate("gus", &roles(&["admin"]), Environment::Live, None)
            .unwrap();
        assert!(!answer(&store, &session).1, "a change is checked whole");
        assert!(
            answer(&store, &session).1,
            "the same principal is kept again"
        );

        // The key's roles change: every call answers with the new ones, never the kept ones.
        let mut entries = store.entries();
        for e in &mut entries {
            if e.id == key.entry.id {
                e.roles = roles(&["read-only"]);
            }
        }
        store.replace(entries.clone()).unwrap();
        for _ in 0..3 {
            let (p, borrowed) = answer(&store, &session);
            assert_eq!(p.unwrap().roles, roles(&["read-only"]));
            assert!(!borrowed, "the kept principal has the old roles");
        }

        // Another store with the same entry, in the same generation as the first (each made
        // one change): its own principal, not the one kept from the first.
        let (one, other) = (
            ApiKeyStore::new(Environment::Live),
            ApiKeyStore::new(Environment::Live),
        );
        one.replace(entries.clone()).unwrap();
        other.replace(entries).unwrap();
        let fresh = Credential::shared(key.token.clone(), Session);
        assert!(!kept(&one, &fresh).1 && kept(&one, &fresh).1);
        let (p, borrowed) = kept(&other, &fresh);
        assert!(!borrowed && Arc::ptr_eq(&p.unwrap(), &other.check(&key.token).unwrap()));
        // A store of the other environment refuses it, kept or not.
        let test = ApiKeyStore::new(Environment::Test);
        test.replace(store.entries()).unwrap();
        assert!(matches!(
            answer(&test, &session).0,
            Err(AuthError::WrongEnvironment { .. })
        ));

        // A revocation refuses the next call and every one after it.
        assert!(store.revoke(&key.entry.id));
        for _ in 0..3 {
            assert_eq!(answer(&store, &session), (Err(AuthError::Revoked), false));
        }

        // An expiry is reached by time alone, with no change to the keys.
        let expiring = store
            .generate(
                "hal",
                &roles(&["editor"]),
                Environment::Live,
                Some(clock.now_utc() + time::Duration::hours(1)),
            )
            .unwrap();
        let session = Credential::shared(expiring.token.clone(), Session);
        let check = |c: &Credential| {
            let answered = kept(&store, c);
            assert_eq!(answered.0.clone().err(), store.check(&expiring.token).err());
            answered
        };
        assert!(!check(&session).1 && check(&session).1);
        clock.advance(std::time::Duration::from_secs(3601));
        assert_eq!(check(&session), (Err(AuthError::Expired), false));

        // A wrong secret is refused every time, and nothing is kept for it.
        let forged = forged(&expiring.token);
        let forged = Credential::shared(forged, Session);
        for _ in 0..2 {
            assert_eq!(kept(&store, &forged), (Err(AuthError::Invalid), false));
        }
        assert!(forged.kept().is_some_and(|slot| slot.get().is_none()));
    }

    /// A revocation refuses every check that starts after it returns, on every thread, while
    /// other threads are checking the same session credential all along.
    #[test]
    fn a_revocation_reaches_every_thread_checking_a_kept_session() {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        let store = ApiKeyStore::new(Environment::Live);
        let key = store
            .generate("ivy", &roles(&["editor"]), Environment::Live, None)
            .unwrap();
        let session = Credential::shared(key.token, crate::auth::CredentialSource::Session);
        assert!(kept(&store, &session).0.is_ok());
        let revoked = AtomicBool::new(false);
        let checking = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let checkers: Vec<_> = (0..3)
                .map(|_| {
                    scope.spawn(|| {
                        // The revocation waits for every thread's first check, which
                        // therefore passes.
                        let first = kept(&store, &session).0;
                        checking.fetch_add(1, Ordering::SeqCst);
                        assert!(first.is_ok(), "{first:?}");
                        let mut after = 0;
                        while after < 1_000 {
                            let started_after = revoked.load(Ordering::SeqCst);
                            let (answer, _) = kept(&store, &session);
                            if started_after {
                                assert_eq!(answer, Err(AuthError::Revoked));
                                after += 1;
                            }
                        }
                    })
                })
                .collect();
            // Waiting for the threads instead of for a while: on a loaded machine a thread
            // may not run at all in a fixed wait. (One that ended early panicked: the join
            // below reports it.)
            while checking.load(Ordering::SeqCst) < checkers.len()
                && !checkers.iter().any(|c| c.is_finished())
            {
                std::thread::yield_now();
            }
            assert!(store.revoke(&key.entry.id));
            revoked.store(true, Ordering::SeqCst);
            for checker in checkers {
                checker.join().unwrap();
            }
        });
    }

    #[test]
    fn revoke_in_file_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let k = ApiKeyStore::append_to_file(
            &path,
            "carol",
            &roles(&["read-only"]),
            Environment::Test,
            None,
        )
        .unwrap();
        let store = ApiKeyStore::load(&path, Environment::Test).unwrap();
        assert!(store.check(&k.token).is_ok());
        assert!(ApiKeyStore::revoke_in_file(&path, &k.entry.id).unwrap());
        store.reload(&path).unwrap();
        assert_eq!(store.check(&k.token), Err(AuthError::Revoked));
        std::fs::write(&path, "keys = 5").unwrap();
        assert!(matches!(
            store.reload(&path),
            Err(KeyStoreError::Format { .. })
        ));
        assert_eq!(
            store.check(&k.token),
            Err(AuthError::Revoked),
            "a bad file keeps the old keys"
        );
    }

    #[test]
    fn rotation_keeps_the_old_key_for_the_grace_period_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let old =
            ApiKeyStore::append_to_file(&path, "dan", &roles(&["editor"]), Environment::Live, None)
                .unwrap();
        let new = ApiKeyStore::rotate_in_file(
            &path,
            &old.entry.id,
            std::time::Duration::from_secs(3600),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (new.entry.user.as_str(), new.entry.env),
            ("dan", Environment::Live)
        );
        let clock = Clock::manual();
        let store = ApiKeyStore::new(Environment::Live).with_clock(clock.clone());
        store.reload(&path).unwrap();
        assert!(
            store.check(&old.token).is_ok() && store.check(&new.token).is_ok(),
            "both work during the grace"
        );
        clock.advance(std::time::Duration::from_secs(3601));
        assert_eq!(store.check(&old.token), Err(AuthError::Expired));
        assert!(store.check(&new.token).is_ok());
        // Zero grace revokes at once; unknown ids are reported.
        let newer =
            ApiKeyStore::rotate_in_file(&path, &new.entry.id, std::time::Duration::ZERO, None)
                .unwrap()
                .unwrap();
        store.reload(&path).unwrap();
        assert_eq!(store.check(&new.token), Err(AuthError::Revoked));
        assert!(store.check(&newer.token).is_ok());
        assert!(
            ApiKeyStore::rotate_in_file(&path, "nope", std::time::Duration::ZERO, None)
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn entries_load_from_an_environment_variable_and_a_custom_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let k = ApiKeyStore::append_to_file(
            &path,
            "erin",
            &roles(&["read-only"]),
            Environment::Test,
            None,
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        // An unset variable is an error (setting one needs `unsafe` here; tests/auth_keys.rs does).
        let var = "MCP_SECURE_TEST_KEYS_ENTRIES_UNSET_7f3a";
        struct Fixed(String);
        impl KeySource for Fixed {
            fn load(&self) -> futures::future::BoxFuture<'_, Result<Vec<KeyEntry>, KeyStoreError>> {
                Box::pin(std::future::ready(
                    parse_key_file(&self.0, "<secret manager>".into()).map(|f| f.keys),
                ))
            }
            fn describe(&self) -> String {
                "secret manager".into()
            }
        }
        let store = ApiKeyStore::load_from(&Fixed(text), Environment::Test)
            .await
            .unwrap();
        assert_eq!(store.check(&k.token).unwrap().user, "erin");
        let missing = super::super::EnvKeySource::new(var);
        assert!(matches!(
            store.reload_from(&missing).await,
            Err(KeyStoreError::Invalid(_))
        ));
        assert!(
            store.check(&k.token).is_ok(),
            "a failed reload keeps the old keys"
        );
        let file = super::super::KeyFileSource::new(&path);
        ApiKeyStore::revoke_in_file(&path, &k.entry.id).unwrap();
        store.reload_from(&file).await.unwrap();
        assert_eq!(store.check(&k.token), Err(AuthError::Revoked));
    }
}
