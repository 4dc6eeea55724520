//! One authenticator for every bearer token a server accepts: API keys (`mcs_...`) go to the
//! key store, JWTs (three dot-separated parts) to the JWT checker, anything else is refused.

use std::borrow::Cow;
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

impl BearerAuthenticator {
    /// The authenticator for a token of this shape, if one is configured.
    fn route(&self, credential: &Credential) -> Option<&Arc<dyn Authenticator>> {
        let token = credential.expose();
        if token.starts_with("mcs_") {
            self.api_keys.as_ref()
        } else if token.bytes().filter(|&b| b == b'.').count() == 2 {
            self.jwt.as_ref()
        } else {
            None
        }
    }
}

impl Authenticator for BearerAuthenticator {
    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Arc<Principal>, AuthError>> {
        match self.route(credential) {
            Some(auth) => auth.authenticate(credential),
            None => Box::pin(std::future::ready(Err(AuthError::Invalid))),
        }
    }

    /// API keys are answered at once; a JWT waits (its keys may need fetching).
    fn authenticate_now(
        &self,
        credential: &Credential,
    ) -> Option<Result<Arc<Principal>, AuthError>> {
        match self.route(credential) {
            Some(auth) => auth.authenticate_now(credential),
            None => Some(Err(AuthError::Invalid)),
        }
    }

    fn authenticate_kept<'c>(
        &self,
        credential: &'c Credential,
    ) -> Option<Result<Cow<'c, Arc<Principal>>, AuthError>> {
        match self.route(credential) {
            Some(auth) => auth.authenticate_kept(credential),
            None => Some(Err(AuthError::Invalid)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ApiKeyStore, CredentialSource, Environment};

    /// Stands in for a JWT authenticator: refuses every token, and only by awaiting.
    struct Awaits;

    impl Authenticator for Awaits {
        fn authenticate<'a>(
            &'a self,
            _: &'a Credential,
        ) -> BoxFuture<'a, Result<Arc<Principal>, AuthError>> {
            Box::pin(async { Err(AuthError::Expired) })
        }
    }

    /// API keys are answered at once, JWTs by the authenticator that awaits, anything else
    /// refused at once; the ready answers are the awaited ones.
    #[test]
    fn answers_api_keys_at_once_and_leaves_jwts_to_await() {
        let keys = ApiKeyStore::new(Environment::Test);
        let key = keys
            .generate("ann", &["editor".to_owned()], Environment::Test, None)
            .unwrap();
        let bearer = BearerAuthenticator::new().api_keys(keys).jwt(Awaits);
        let cred = |t: &str| Credential::new(t.to_owned(), CredentialSource::HttpBearer);
        let awaited = |c: &Credential| futures::executor::block_on(bearer.authenticate(c));

        let api = cred(&key.token);
        let now = bearer
            .authenticate_now(&api)
            .expect("an API key is answered at once");
        assert_eq!(now.as_ref().unwrap().user, "ann");
        assert!(Arc::ptr_eq(now.as_ref().unwrap(), &awaited(&api).unwrap()));

        let jwt = cred("aaa.bbb.ccc");
        assert!(bearer.authenticate_now(&jwt).is_none(), "a JWT is awaited");
        assert_eq!(awaited(&jwt), Err(AuthError::Expired));

        let junk = cred("neither");
        assert_eq!(
            bearer.authenticate_now(&junk),
            Some(Err(AuthError::Invalid))
        );
        assert_eq!(awaited(&junk), Err(AuthError::Invalid));
    }
}
