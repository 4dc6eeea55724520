//! One authenticator for every bearer token a server accepts: API keys (`mcs_...`) go to the
//! key store, JWTs (three dot-separated parts) to the JWT checker, anything else is refused.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{AuthError, Authenticator, Credential, Principal};

/// Routes each token by its shape to the API-key store or the JWT checker.
///
/// ```no_run
/// # use mcp_secure::auth::{ApiKeyStore, BearerAuthenticator, Environment};
/// let keys = ApiKeyStore::new(Environment::Live);
/// let auth = BearerAuthenticator::new().api_keys(keys);
/// ```
#[derive(Clone, Default)]
pub struct BearerAuthenticator {
    api_keys: Option<Arc<dyn Authenticator>>,
    jwt: Option<Arc<dyn Authenticator>>,
}

impl std::fmt::Debug for BearerAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuthenticator")
            .field("api_keys", &self.api_keys.is_some())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

impl BearerAuthenticator {
    /// Accepts nothing until told what to accept.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts API keys (`mcs_<env>_<id>_<secret>`) checked by `store`.
    pub fn api_keys(mut self, store: impl Authenticator) -> Self {
        self.api_keys = Some(Arc::new(store));
        self
    }

    /// Accepts JWT access tokens checked by `jwt` (usually a
    /// [`JwtAuthenticator`](super::JwtAuthenticator)).
    pub fn jwt(mut self, jwt: impl Authenticator) -> Self {
        self.jwt = Some(Arc::new(jwt));
        self
    }
}

impl Authenticator for BearerAuthenticator {
    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Arc<Principal>, AuthError>> {
        let token = credential.expose();
        let target = if token.starts_with("mcs_") {
            self.api_keys.as_ref()
        } else if token.bytes().filter(|&b| b == b'.').count() == 2 {
            self.jwt.as_ref()
        } else {
            None
        };
        match target {
            Some(auth) => auth.authenticate(credential),
            None => Box::pin(std::future::ready(Err(AuthError::Invalid))),
        }
    }
}
