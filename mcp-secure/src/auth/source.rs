//! Where API key entries come from: a key file, an environment variable, or a secret manager.
//! Every source yields the same TOML document (`[[keys]]` entries: digests, never tokens).

use std::path::PathBuf;

use futures::future::BoxFuture;

use super::keys::{KeyEntry, KeyStoreError, parse_key_file};

/// A place that holds key entries. Implement it for a secret manager backend (Vault, AWS
/// Secrets Manager, ...) and load it with [`ApiKeyStore::reload_from`](super::ApiKeyStore::reload_from).
pub trait KeySource: Send + Sync {
    /// Fetches the current entries.
    fn load(&self) -> BoxFuture<'_, Result<Vec<KeyEntry>, KeyStoreError>>;

    /// A name for messages (never a secret).
    fn describe(&self) -> String;
}

/// A TOML key file. A missing file holds no keys.
#[derive(Clone, Debug)]
pub struct KeyFileSource {
    path: PathBuf,
}

impl KeyFileSource {
    /// The file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        KeyFileSource { path: path.into() }
    }

    /// The file whose path is in the environment variable `var` (e.g. `MCP_SECURE_KEY_FILE`).
    pub fn from_env(var: &str) -> Result<Self, KeyStoreError> {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(|p| KeyFileSource::new(PathBuf::from(p)))
            .ok_or_else(|| {
                KeyStoreError::Invalid(format!("environment variable `{var}` is not set"))
            })
    }

    /// The file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl KeySource for KeyFileSource {
    fn load(&self) -> BoxFuture<'_, Result<Vec<KeyEntry>, KeyStoreError>> {
        Box::pin(std::future::ready(
            super::keys::read_key_file(&self.path).map(|f| f.keys),
        ))
    }

    fn describe(&self) -> String {
        format!("key file {}", self.path.display())
    }
}

/// An environment variable holding the key file's TOML text (for platforms that inject secrets
/// as variables). The variable holds digests, never tokens.
#[derive(Clone, Debug)]
pub struct EnvKeySource {
    var: String,
}

impl EnvKeySource {
    /// The variable `var` (e.g. `MCP_SECURE_KEYS`).
    pub fn new(var: impl Into<String>) -> Self {
        EnvKeySource { var: var.into() }
    }
}

impl KeySource for EnvKeySource {
    fn load(&self) -> BoxFuture<'_, Result<Vec<KeyEntry>, KeyStoreError>> {
        let result = match std::env::var(&self.var) {
            Ok(text) => {
                parse_key_file(&text, PathBuf::from(format!("${}", self.var))).map(|f| f.keys)
            }
            Err(std::env::VarError::NotPresent) => Err(KeyStoreError::Invalid(format!(
                "environment variable `{}` is not set",
                self.var
            ))),
            Err(std::env::VarError::NotUnicode(_)) => Err(KeyStoreError::Invalid(format!(
                "environment variable `{}` is not UTF-8",
                self.var
            ))),
        };
        Box::pin(std::future::ready(result))
    }

    fn describe(&self) -> String {
        format!("environment variable ${}", self.var)
    }
}
