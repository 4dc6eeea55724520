//! Guard 2: find the caller's credential and resolve it to a principal.

use std::sync::Arc;

use rmcp::model::{Extensions, RequestMetaObject};

use crate::auth::{AuthError, Authenticator, Credential, CredentialSource, Principal};
use crate::error::{ErrorCode, ToolError};

/// The `_meta` key a client may use to send its token with each request.
pub const META_AUTH_TOKEN: &str = "authToken";

/// Picks the credential for a request: a per-request `_meta.authToken` wins over the
/// transport's (HTTP bearer header or the stdio session token).
pub fn credential(meta: &RequestMetaObject, transport: Option<&Credential>) -> Option<Credential> {
    match meta.get(META_AUTH_TOKEN) {
        Some(serde_json::Value::String(t)) => {
            Some(Credential::new(t.clone(), CredentialSource::RequestMeta))
        }
        // A present but non-string token is not silently replaced by the transport's.
        Some(_) => Some(Credential::new(
            String::new(),
            CredentialSource::RequestMeta,
        )),
        None => transport.cloned(),
    }
}

/// The transport's credential for a request: over HTTP, the principal the HTTP layer already
/// resolved from `Authorization: Bearer` (see `server::http`), else that header itself (when
/// rmcp's HTTP service is mounted without our layer); otherwise the session credential (stdio).
pub fn transport_credential(
    extensions: &Extensions,
    session: Option<&Credential>,
) -> Option<Credential> {
    http_credential(extensions).or_else(|| session.cloned())
}

/// The credential of a request that came over HTTP.
#[cfg(feature = "http")]
fn http_credential(extensions: &Extensions) -> Option<Credential> {
    let parts = extensions.get::<http::request::Parts>()?;
    if let Some(principal) = crate::server::http::authenticated(&parts.extensions) {
        return Some(Credential::resolved(
            principal,
            CredentialSource::HttpBearer,
        ));
    }
    bearer_token(&parts.headers).map(|t| Credential::new(t, CredentialSource::HttpBearer))
}

/// Without the `http` feature, no request comes over HTTP.
#[cfg(not(feature = "http"))]
fn http_credential(_: &Extensions) -> Option<Credential> {
    None
}

/// The token of a single well-formed `Authorization: Bearer <token>` header.
#[cfg(feature = "http")]
pub fn bearer_token(headers: &http::HeaderMap) -> Option<String> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then(|| token.to_owned())
}

/// Resolves the credential, or refuses with `unauthorized`.
pub async fn authenticate(
    authenticator: &dyn Authenticator,
    credential: Option<&Credential>,
) -> Result<Arc<Principal>, ToolError> {
    let credential = credential.ok_or_else(|| refusal(&AuthError::Missing))?;
    if let Some(principal) = credential.resolved_principal() {
        return Ok(Arc::clone(principal));
    }
    check(authenticator, credential)
        .await
        .map_err(|e| refusal(&e))
}

/// Asks `authenticator` about `credential`: its ready answer when it has one
/// ([`Authenticator::authenticate_now`]), else the one it awaits.
pub async fn check(
    authenticator: &dyn Authenticator,
    credential: &Credential,
) -> Result<Arc<Principal>, AuthError> {
    match authenticator.authenticate_now(credential) {
        Some(answer) => answer,
        None => authenticator.authenticate(credential).await,
    }
}

fn refusal(e: &AuthError) -> ToolError {
    ToolError::new(ErrorCode::Unauthorized, e.to_string())
}
