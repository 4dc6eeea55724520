//! Authentication: who is calling.
//!
//! An [`Authenticator`] turns a presented [`Credential`] into a [`Principal`]. The shipped one is
//! [`ApiKeyStore`]: API keys whose digests (never the keys) live in a key file, an environment
//! variable or a secret manager, never in the code. [`JwtAuthenticator`] checks OAuth 2.1 access
//! tokens (JWTs) as a resource server; [`BearerAuthenticator`] routes each bearer token to one of
//! them by its shape.

#[cfg(feature = "http")]
mod bearer;
#[cfg(feature = "http")]
pub mod jwt;
mod keys;
mod principal;
mod source;
mod watch;

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};

#[cfg(feature = "http")]
pub use bearer::BearerAuthenticator;
#[cfg(feature = "http")]
pub use jwt::{JwksSource, JwtAuthenticator, JwtConfig, RolesClaim, TokenError};
pub use keys::{ApiKeyStore, KeyEntry, KeyStoreError, NewKey};
pub use principal::{Environment, Principal};
pub use source::{EnvKeySource, KeyFileSource, KeySource};
pub use watch::KeyFileWatcher;

/// A bearer secret as presented by a caller, with where it came from. The token is held as a
/// [`secrecy::SecretString`] (zeroed on drop); `Debug` is redacted.
///
/// A credential many requests present (the stdio session's, see [`Credential::shared`]) keeps
/// its token's SHA-256 digest, which the [`ApiKeyStore`] compares, once computed: it is hashed
/// once, not on every call. Nothing else is kept: the key store still looks the key up, and
/// checks its revocation and expiry, on every call.
#[derive(Clone)]
pub struct Credential {
    secret: Secret,
    source: CredentialSource,
    /// A principal the transport already resolved from this credential (the HTTP layer
    /// authenticates before the request reaches rmcp). Only this crate can set it.
    resolved: Option<Arc<Principal>>,
}

/// A credential's token: a request's own, or one shared by every clone with its digest.
#[derive(Clone)]
enum Secret {
    Own(SecretString),
    Shared(Arc<SharedToken>),
}

/// A token many requests present, its digest once computed, and what the API-key store keeps
/// of its checks.
struct SharedToken {
    token: SecretString,
    sha256: OnceLock<[u8; 32]>,
    kept: OnceLock<keys::Kept>,
}

/// Where a credential was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialSource {
    /// The `_meta.authToken` of the request.
    RequestMeta,
    /// The token the stdio server process was started with (`MCP_SECURE_TOKEN`).
    Session,
    /// An HTTP `Authorization: Bearer` header.
    HttpBearer,
}

impl Credential {
    /// Wraps a presented token.
    pub fn new(token: impl Into<String>, source: CredentialSource) -> Self {
        Credential {
            secret: Secret::Own(SecretString::from(token.into())),
            source,
            resolved: None,
        }
    }

    /// Wraps a token that many requests present, such as the stdio session's: its clones share
    /// one copy of the secret (a clone is a reference count, not a copy of the token) and one
    /// digest, computed the first time any of them is checked. The API-key store keeps the
    /// principal of a successful check in it too, and hands it out borrowed while no key has
    /// changed since ([`Authenticator::authenticate_kept`]).
    pub fn shared(token: impl Into<String>, source: CredentialSource) -> Self {
        Credential {
            secret: Secret::Shared(Arc::new(SharedToken {
                token: SecretString::from(token.into()),
                sha256: OnceLock::new(),
                kept: OnceLock::new(),
            })),
            source,
            resolved: None,
        }
    }

    /// A credential the transport has already authenticated to `principal`.
    #[cfg(feature = "http")]
    pub(crate) fn resolved(principal: Arc<Principal>, source: CredentialSource) -> Self {
        Credential {
            secret: Secret::Own(SecretString::from(String::new())),
            source,
            resolved: Some(principal),
        }
    }

    /// The secret token. Compare it only through digests; never log it.
    pub fn expose(&self) -> &str {
        match &self.secret {
            Secret::Own(token) => token.expose_secret(),
            Secret::Shared(shared) => shared.token.expose_secret(),
        }
    }

    /// The SHA-256 digest of the token: computed for a request's own credential, computed
    /// once and then kept for a [`Credential::shared`] one and all its clones.
    pub(crate) fn sha256(&self) -> [u8; 32] {
        match &self.secret {
            Secret::Own(token) => keys::digest(token.expose_secret()),
            Secret::Shared(shared) => *shared
                .sha256
                .get_or_init(|| keys::digest(shared.token.expose_secret())),
        }
    }

    /// The digest kept so far, if any (only a shared credential keeps one).
    #[cfg(test)]
    pub(crate) fn kept_sha256(&self) -> Option<&[u8; 32]> {
        match &self.secret {
            Secret::Own(_) => None,
            Secret::Shared(shared) => shared.sha256.get(),
        }
    }

    /// Where the API-key store keeps what it found of a shared credential (`None` for one of
    /// its own).
    fn kept(&self) -> Option<&OnceLock<keys::Kept>> {
        match &self.secret {
            Secret::Own(_) => None,
            Secret::Shared(shared) => Some(&shared.kept),
        }
    }

    /// The principal the transport resolved, if it did.
    pub(crate) fn resolved_principal(&self) -> Option<&Arc<Principal>> {
        self.resolved.as_ref()
    }

    /// Where it came from.
    pub fn source(&self) -> CredentialSource {
        self.source
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("token", &"[REDACTED]")
            .field("source", &self.source)
            .field("resolved", &self.resolved.as_ref().map(|p| &p.user))
            .finish()
    }
}

/// Why a credential was refused. The message is safe to show the caller: it never contains the
/// credential, and it does not say whether a key id exists.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential was presented.
    #[error("no credential was presented; pass an API key")]
    Missing,
    /// The credential is not a valid key (unknown id, wrong secret or malformed: not told apart).
    #[error("the API key is not valid")]
    Invalid,
    /// The key belongs to the other environment.
    #[error("this is a `{key}` key and this server runs in `{server}`; use a `{server}` key")]
    WrongEnvironment {
        /// The key's environment.
        key: Environment,
        /// The server's environment.
        server: Environment,
    },
    /// The key has expired.
    #[error("the API key has expired; ask for a new one")]
    Expired,
    /// The key was revoked.
    #[error("the API key was revoked")]
    Revoked,
    /// An access token (JWT) was refused.
    #[cfg(feature = "http")]
    #[error("{0}")]
    Token(TokenError),
    /// The credential is valid but grants no role this server knows (HTTP 403
    /// `insufficient_scope`).
    #[error("the token grants no role this server knows")]
    InsufficientScope,
}

impl AuthError {
    /// The OAuth 2.0 bearer error code (RFC 6750 §3.1) for an HTTP answer: `None` for a missing
    /// credential, `insufficient_scope` for a valid one without a usable role, otherwise
    /// `invalid_token`.
    pub fn bearer_error(&self) -> Option<&'static str> {
        match self {
            AuthError::Missing => None,
            AuthError::InsufficientScope => Some("insufficient_scope"),
            _ => Some("invalid_token"),
        }
    }
}

/// Resolves credentials to principals. Implement it to plug in another identity source.
///
/// The principal is shared (`Arc`): an authenticator that knows its principals in advance (the
/// API-key store) hands out the same one for every call instead of copying it.
pub trait Authenticator: Send + Sync + 'static {
    /// Checks a credential.
    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Arc<Principal>, AuthError>>;

    /// Checks a credential without waiting, when this authenticator can (a lookup in memory,
    /// as the API-key store does): the server asks this first, and awaits
    /// [`Authenticator::authenticate`] only on `None` (the default), so a ready answer costs
    /// no boxed future. When it answers, it must answer as `authenticate` would.
    fn authenticate_now(
        &self,
        credential: &Credential,
    ) -> Option<Result<Arc<Principal>, AuthError>> {
        let _ = credential;
        None
    }

    /// Checks a credential presented on every call of a session (one made with
    /// [`Credential::shared`], as the stdio session's is), and may answer with a principal the
    /// credential keeps from an earlier check, borrowed: the call then copies nothing and
    /// writes no count that every call shares. The server asks this first. The API-key store
    /// keeps a principal for as long as none of its keys has changed since a check found the
    /// key valid; a revocation, a reload or a new key sends the next call through the whole
    /// check again, and expiry is checked on every call. When it answers, it must answer as
    /// [`Authenticator::authenticate`] would; the default is
    /// [`Authenticator::authenticate_now`]'s answer.
    fn authenticate_kept<'c>(
        &self,
        credential: &'c Credential,
    ) -> Option<Result<Cow<'c, Arc<Principal>>, AuthError>> {
        self.authenticate_now(credential)
            .map(|answer| answer.map(Cow::Owned))
    }
}
